"""The OpenAI Responses API through llm-router, driven by the official SDKs.

`client.responses.create` (plain, streamed, with tools, with structured
output), `client.responses.input_tokens.count`, the Anthropic SDK's
`messages.count_tokens`, and the OpenAI Agents SDK with its default model
(the Responses API). The shipped config.toml's model `echo` is the built-in
mock behind the Chat Completions pivot: every Responses request here is
translated to Chat Completions and every answer back into the Responses
format, streams included.
"""

import json
import os

import anthropic
import openai
import pytest

MODEL = "echo"
TEXT = "The quick brown fox jumps over the lazy dog"

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="session")
def client() -> openai.OpenAI:
    base_url = os.environ.get("LLM_ROUTER_URL")
    if not base_url:
        pytest.fail("LLM_ROUTER_URL is not set: run these tests with `bash tests/python/run.sh`")
    return openai.OpenAI(base_url=base_url, api_key="anything", max_retries=0, timeout=30)


def test_responses_create(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, instructions="You are an echo.", input=TEXT, max_output_tokens=100
    )
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == TEXT
    message = response.output[0]
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert response.usage is not None
    assert response.usage.output_tokens == len(TEXT.split())
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.incomplete_details is None


def test_responses_create_items_and_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "You are an echo."},
            {"role": "user", "content": [{"type": "input_text", "text": "an earlier question"}]},
            {"role": "assistant", "content": "an earlier answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": TEXT}]},
        ],
        max_output_tokens=3,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "The quick brown"


def test_responses_stream(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input=TEXT, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[1] == "response.in_progress"
    assert kinds[-1] == "response.completed"
    for needed in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert needed in kinds, needed
    # Word by word: several deltas, numbered in order.
    assert kinds.count("response.output_text.delta") > 1
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXT
    final = events[-1].response
    assert final.status == "completed"
    assert final.output_text == TEXT
    assert final.usage is not None and final.usage.output_tokens == len(TEXT.split())


def test_responses_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=TEXT) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == TEXT
    assert final.output_text == TEXT


def test_responses_tool_call_and_result(client: openai.OpenAI) -> None:
    # The mock calls a tool when the client requires one.
    first = client.responses.create(
        model=MODEL, input="What is the weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "echo"}
    assert call.call_id
    # The next turn carries the call and its output; the mock echoes the user.
    second = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    assert second.output_text == "What is the weather in Paris?"


def test_responses_tool_call_streamed(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=MODEL, input="weather?", tools=[WEATHER], tool_choice="required", stream=True
        )
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    done = [e for e in events if e.type == "response.function_call_arguments.done"][0]
    assert json.loads(done.arguments) == {"city": "echo"}
    final = events[-1].response
    assert final.output[-1].type == "function_call"
    assert final.output[-1].name == "get_weather"


def test_responses_structured_output(client: openai.OpenAI) -> None:
    # The mock echoes: the user's text is the JSON the schema asks for.
    answer = json.dumps({"city": "Paris", "temperature": 21})
    response = client.responses.create(
        model=MODEL,
        input=answer,
        text={
            "format": {
                "type": "json_schema",
                "name": "weather",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
                    "required": ["city", "temperature"],
                    "additionalProperties": False,
                },
            }
        },
    )
    assert json.loads(response.output_text) == {"city": "Paris", "temperature": 21}


def test_responses_previous_response_id_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in str(e.value)


def test_responses_hosted_tools_are_dropped_and_named(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODEL, input=TEXT, tools=[WEATHER, {"type": "web_search"}]
    )
    assert raw.headers.get("x-llm-router-dropped") == "web_search"
    assert raw.parse().output_text == TEXT


def test_input_tokens_estimate(client: openai.OpenAI) -> None:
    raw = client.responses.input_tokens.with_raw_response.count(model=MODEL, input=TEXT)
    assert raw.headers.get("x-llm-router-estimate") == "true"
    count = raw.parse()
    assert count.input_tokens > 0
    bigger = client.responses.input_tokens.count(model=MODEL, input=TEXT * 10)
    assert bigger.input_tokens > count.input_tokens


def test_anthropic_count_tokens_estimate() -> None:
    root = os.environ["LLM_ROUTER_URL"].removesuffix("/v1")
    client = anthropic.Anthropic(base_url=root, api_key="anything", max_retries=0)
    raw = client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": TEXT}]
    )
    assert raw.headers.get("x-llm-router-estimate") == "true"
    assert raw.parse().input_tokens > 0


def test_agents_sdk_default_model() -> None:
    import agents
    from agents import Agent, Runner, function_tool

    # The SDK's default: the Responses API, through the default client.
    client = openai.AsyncOpenAI(base_url=os.environ["LLM_ROUTER_URL"], api_key="anything", max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_tracing_disabled(True)

    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    agent = Agent(
        name="echo agent",
        instructions="You are an echo.",
        model=MODEL,
        tools=[get_weather],
        model_settings=agents.ModelSettings(tool_choice="required"),
    )
    result = Runner.run_sync(agent, TEXT)
    # The mock called the tool once (required), then, the tool choice reset
    # by the SDK, echoed the user's message.
    assert calls == ["echo"]
    assert result.final_output == TEXT
