"""llm-router driven by the official Anthropic Python SDK (PyPI `anthropic`).

The proxy is started by tests/python/run.sh on the shipped config.toml, where
the model `echo` is answered by the built-in `mock` provider through the
OpenAI pivot: the proxy translates the Messages request into it and the
answer, streamed or not, back into Anthropic's format. LLM_ROUTER_URL points
at the proxy's /v1 root; the Anthropic SDK takes the proxy's root (it adds
/v1/messages itself).
"""

import os

import anthropic
import pytest

MODEL = "echo"
TEXT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="session")
def client() -> anthropic.Anthropic:
    url = os.environ.get("LLM_ROUTER_URL")
    if not url:
        pytest.fail("LLM_ROUTER_URL is not set: run these tests with `bash tests/python/run.sh`")
    root = url.rstrip("/").removesuffix("/v1")
    # The shipped config has no [auth]: any key goes. No retries, so a failure shows as it is.
    return anthropic.Anthropic(base_url=root, api_key="anything", max_retries=0, timeout=30)


def ask(text: str = TEXT):
    return [
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": text},
    ]


def test_messages_create(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, system="You are an echo.", messages=ask()
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.id
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "text"
    assert block.text == TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(TEXT.split())
    assert message.usage.input_tokens > 0


def test_messages_create_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=ask())
    assert message.content[0].text == "The quick brown"
    assert message.stop_reason == "max_tokens"


def test_messages_create_with_content_blocks(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "blocks work"}]}],
    )
    assert message.content[0].text == "blocks work"


def test_messages_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ask()) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == TEXT
    # Streamed word by word: more than one text delta.
    assert len(pieces) > 1
    assert final.content[0].type == "text"
    assert final.content[0].text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.model == MODEL
    assert final.usage.output_tokens == len(TEXT.split())
    assert final.usage.input_tokens > 0


def test_raw_event_sequence(client: anthropic.Anthropic) -> None:
    events = list(
        client.messages.create(model=MODEL, max_tokens=100, messages=ask("two words"), stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert all(e.index == 0 for e in events if e.type.startswith("content_block"))


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="no-such-model", max_tokens=10, messages=ask())
    assert info.value.status_code == 404
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]


def test_request_id_header(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=ask("hi"))
    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.parse().content[0].text == "hi"
