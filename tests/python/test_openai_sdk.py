"""llm-router driven by the official OpenAI Python SDK (PyPI `openai`).

The proxy is started by tests/python/run.sh on the shipped config.toml, where
the model `echo` is answered by the built-in `mock` provider: it echoes the
last user message, word by word when streamed. LLM_ROUTER_URL points at the
proxy's /v1 root.
"""

import base64
import os
import struct

import openai
import pytest

MODEL = "echo"
TEXT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="session")
def client() -> openai.OpenAI:
    base_url = os.environ.get("LLM_ROUTER_URL")
    if not base_url:
        pytest.fail("LLM_ROUTER_URL is not set: run these tests with `bash tests/python/run.sh`")
    # The shipped config has no [auth]: any key goes. No retries, so a failure shows as it is.
    return openai.OpenAI(base_url=base_url, api_key="anything", max_retries=0, timeout=30)


def ask(text: str = TEXT):
    return [
        {"role": "system", "content": "You are an echo."},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": text},
    ]


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ask())
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == TEXT
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == len(TEXT.split())
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_completion_raw_response_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ask("hi"))
    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.parse().choices[0].message.content == "hi"


def test_chat_completion_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=ask(), stream=True)
    chunks = list(stream)
    assert len(chunks) >= 3, "expected a role chunk, content chunks and a finish chunk"
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == MODEL
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    # Streamed word by word: more than one content delta.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    # Without stream_options no usage chunk is sent.
    assert all(c.usage is None for c in chunks)


def test_chat_completion_stream_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.completion_tokens == len(TEXT.split())
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT


def test_chat_completion_stream_context_manager(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model=MODEL, messages=ask("streamed via helper")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "streamed via helper"
    assert final.choices[0].finish_reason == "stop"


def test_max_tokens_gives_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ask(), max_tokens=1)
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == TEXT.split()[0]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 1


def test_max_completion_tokens_stream_gives_length(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask(), max_completion_tokens=2, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " ".join(TEXT.split()[:2])
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completion(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="say this is a test")
    assert completion.object == "text_completion"
    assert completion.model == MODEL
    assert completion.choices[0].text == "say this is a test"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


def test_completion_stream(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt="say this is a test", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "say this is a test"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_default_base64(client: openai.OpenAI) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it to floats.
    result = client.embeddings.create(model=MODEL, input="hello world")
    assert result.object == "list"
    assert result.model == MODEL
    assert len(result.data) == 1
    vector = result.data[0].embedding
    assert len(vector) == 1536
    assert all(isinstance(x, float) for x in vector[:8])
    norm = sum(x * x for x in vector)
    assert abs(norm - 1.0) < 1e-3
    assert result.usage.prompt_tokens > 0


def test_embeddings_wire_format_is_base64(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model=MODEL, input="hello world")
    body = raw.http_response.json()
    encoded = body["data"][0]["embedding"]
    assert isinstance(encoded, str), "the SDK asked for base64, the answer must be a string"
    floats = struct.unpack(f"<{1536}f", base64.b64decode(encoded))
    parsed = raw.parse().data[0].embedding
    assert list(floats) == pytest.approx(parsed)


def test_embeddings_dimensions(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=MODEL, input="hello world", dimensions=8)
    assert len(result.data[0].embedding) == 8


def test_embeddings_float_and_batch(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model=MODEL, input=["a", "b", "a"], encoding_format="float", dimensions=16
    )
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(d.embedding) == 16 for d in result.data)
    # Deterministic: the same input gives the same vector.
    assert result.data[0].embedding == result.data[2].embedding
    assert result.data[0].embedding != result.data[1].embedding


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids


def test_models_retrieve(client: openai.OpenAI) -> None:
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"
    assert model.owned_by


def test_models_retrieve_unknown(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="no-such-model", messages=ask())
    err = excinfo.value
    assert err.status_code == 404
    assert isinstance(err.body, dict) and err.body.get("message")


def test_unknown_model_not_found_streamed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=ask(), stream=True)
