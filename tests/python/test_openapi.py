"""GET /openapi.json: a valid OpenAPI 3.1 document whose schemas are the
shapes the proxy really sends.

tests/python/run.sh starts the proxy on the shipped config.toml (model `echo`
on the built-in mock provider, no auth) and sets LLM_ROUTER_URL (its /v1 root)
and LLM_ROUTER_BIN (the binary). The document is validated with
openapi-spec-validator; then real answers — a chat.completion, streamed
chunks, Anthropic messages, the model list, health, and errors: 404 unknown
model, 400 malformed JSON, Anthropic-format 404 on /v1/messages, and, from a
second proxy started here with [auth] on, 401s and a 403 — are validated with
jsonschema against the schema the document gives for that operation and
status (its `$ref`s resolved within the document).
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:llm-router:openapi.json"
ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEY = "sk-openapi-client-0123456789"
ADMIN_KEY = "sk-openapi-admin-0123456789"


class Answer:
    """An HTTP answer: status, headers, text, json()."""

    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.text = body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.text)


class Http:
    """A tiny stdlib HTTP client rooted at `base` (no proxies, no retries)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, json_body=None, content: bytes = None, headers=None, timeout: float = 30) -> Answer:
        headers = dict(headers or {})
        data = content
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("content-type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return Answer(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read())

    def get(self, path: str, headers=None, timeout: float = 30) -> Answer:
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path: str, json=None, content: bytes = None, headers=None) -> Answer:
        return self.request("POST", path, json_body=json, content=content, headers=headers)


def root_url() -> str:
    url = os.environ.get("LLM_ROUTER_URL")
    if not url:
        pytest.fail("LLM_ROUTER_URL is not set: run these tests with `bash tests/python/run.sh`")
    return url.rstrip("/").removesuffix("/v1")


@pytest.fixture(scope="module")
def http() -> Http:
    return Http(root_url())


@pytest.fixture(scope="module")
def doc(http: Http) -> dict:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


@pytest.fixture(scope="module")
def registry(doc: dict) -> Registry:
    return Registry().with_resource(DOC_URI, Resource(contents=doc, specification=DRAFT202012))


def deref(doc: dict, node: dict) -> dict:
    """Follow a local `$ref` (a response object, ...) to its target."""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/")
        node = doc
        for part in pointer.split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def response_schema(doc: dict, path: str, method: str, status: int, media: str = "application/json") -> dict:
    """The schema the document gives for `method path` answering `status`
    (or its `default` answer), as a `$ref` into the document."""
    responses = doc["paths"][path][method]["responses"]
    key = str(status) if str(status) in responses else "default"
    assert key in responses, f"{method.upper()} {path} documents no {status} answer"
    response = deref(doc, responses[key])
    assert media in response["content"], f"{method.upper()} {path} {status}: no {media} content"
    return response["content"][media]["schema"]


def absolute_refs(node):
    """`node` with every local `$ref` (`#/components/...`) made to point into
    the document registered as DOC_URI."""
    if isinstance(node, dict):
        return {
            k: (DOC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else absolute_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [absolute_refs(v) for v in node]
    return node


def check(registry: Registry, schema: dict, instance) -> None:
    """Validate `instance` against `schema` (a schema from the document; its
    `$ref`s resolve within the document)."""
    validator = Draft202012Validator(absolute_refs(schema), registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors) + f"\n{json.dumps(instance)[:2000]}"


def component(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def is_valid(registry: Registry, schema: dict, instance) -> bool:
    try:
        check(registry, schema, instance)
    except AssertionError:
        return False
    return True


# ---------------------------------------------------------------------------
# The document


def test_document_is_valid_openapi_3_1(doc: dict, http: Http) -> None:
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)  # raises on any violation of the OpenAPI 3.1 schema
    # info.version is the crate version, the one /health reports.
    assert doc["info"]["version"] == http.get("/health").json()["version"]


def test_every_endpoint_is_described(doc: dict) -> None:
    expected = {
        "/v1/chat/completions": "post",
        "/v1/completions": "post",
        "/v1/embeddings": "post",
        "/v1/messages": "post",
        "/openai/chat/completions": "post",
        "/anthropic/chat/completions": "post",
        "/v1/models": "get",
        "/v1/models/{id}": "get",
        "/": "get",
        "/health": "get",
        "/metrics": "get",
        "/openapi.json": "get",
        "/providers": "get",
        "/backend/info": "get",
        "/router/stats": "get",
        "/router/health": "get",
        "/router/rate-limits": "get",
        "/auth/status": "get",
        "/auth/metrics": "get",
        "/auth/reload-keys": "post",
        "/admin/reload": "post",
    }
    for path, method in expected.items():
        assert method in doc["paths"].get(path, {}), f"{method.upper()} {path} is not described"
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"]["in"] == "header" and schemes["apiKeyHeader"]["name"] == "x-api-key"
    # Streaming endpoints describe their event streams.
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/messages"]:
        ok = doc["paths"][path]["post"]["responses"]["200"]
        assert "text/event-stream" in ok["content"], path
    # The operational endpoints need no key.
    for path in ["/", "/health", "/metrics", "/openapi.json", "/docs", "/redoc"]:
        assert doc["paths"][path]["get"]["security"] == [], path


# ---------------------------------------------------------------------------
# Real answers against the document (the shipped config: no auth)


def chat_request(model: str = "echo", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


def messages_request(model: str = "echo", **extra) -> dict:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}], **extra}


def sse_data(text: str) -> list:
    """The JSON `data:` payloads of an event stream ([DONE] excluded)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                out.append(json.loads(data))
    return out


def test_chat_completion_matches(doc, registry, http) -> None:
    for path in ["/v1/chat/completions", "/openai/chat/completions"]:
        r = http.post(path, json=chat_request())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion"
        check(registry, response_schema(doc, path, "post", 200), body)
        check(registry, doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"], chat_request())


def test_streamed_chunks_match(doc, registry, http) -> None:
    r = http.post("/v1/chat/completions", json=chat_request(stream=True, stream_options={"include_usage": True}))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    response_schema(doc, "/v1/chat/completions", "post", 200, "text/event-stream")
    chunks = sse_data(r.text)
    assert len(chunks) >= 3
    for chunk in chunks:
        check(registry, component("ChatCompletionChunk"), chunk)
    assert r.text.rstrip().endswith("data: [DONE]")


def test_completions_and_embeddings_match(doc, registry, http) -> None:
    r = http.post("/v1/completions", json={"model": "echo", "prompt": "say this"})
    assert r.status_code == 200, r.text
    check(registry, response_schema(doc, "/v1/completions", "post", 200), r.json())
    r = http.post("/v1/embeddings", json={"model": "echo", "input": ["a", "b"]})
    assert r.status_code == 200, r.text
    check(registry, response_schema(doc, "/v1/embeddings", "post", 200), r.json())


def test_anthropic_messages_match(doc, registry, http) -> None:
    for path in ["/v1/messages", "/anthropic/chat/completions"]:
        r = http.post(path, json=messages_request())
        assert r.status_code == 200, r.text
        check(registry, response_schema(doc, path, "post", 200), r.json())
    r = http.post("/v1/messages", json=messages_request(stream=True))
    assert r.status_code == 200
    events = sse_data(r.text)
    assert events and events[0]["type"] == "message_start"
    for event in events:
        check(registry, component("AnthropicStreamEvent"), event)


def test_models_health_root_and_metrics_match(doc, registry, http) -> None:
    for path, url in [("/v1/models", "/v1/models"), ("/v1/models/{id}", "/v1/models/echo"), ("/health", "/health"), ("/", "/")]:
        r = http.get(url)
        assert r.status_code == 200, r.text
        check(registry, response_schema(doc, path, "get", 200), r.json())
    r = http.get("/metrics", headers={"accept": "application/json"})
    assert r.status_code == 200
    check(registry, response_schema(doc, "/metrics", "get", 200), r.json())


def test_errors_match(doc, registry, http) -> None:
    # 404: unknown model, OpenAI format.
    r = http.post("/v1/chat/completions", json=chat_request("no-such-model"))
    assert r.status_code == 404
    body = r.json()
    assert body["error"]["code"] == "model_not_found"
    check(registry, response_schema(doc, "/v1/chat/completions", "post", 404), body)
    assert not is_valid(registry, component("AnthropicError"), body)
    # 400: malformed JSON, and a missing model.
    r = http.post("/v1/chat/completions", content=b'{"model": "echo", "messages": [', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    check(registry, response_schema(doc, "/v1/chat/completions", "post", 400), r.json())
    r = http.post("/v1/embeddings", json={"input": "x"})
    assert r.status_code == 400
    check(registry, response_schema(doc, "/v1/embeddings", "post", 400), r.json())
    # 404 on /v1/models/{id}.
    r = http.get("/v1/models/no-such-model")
    assert r.status_code == 404
    check(registry, response_schema(doc, "/v1/models/{id}", "get", 404), r.json())
    # Anthropic format: 404 unknown model, 400 malformed JSON on /v1/messages.
    r = http.post("/v1/messages", json=messages_request("no-such-model"))
    assert r.status_code == 404
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    check(registry, response_schema(doc, "/v1/messages", "post", 404), body)
    assert not is_valid(registry, component("OpenAIError"), body)
    r = http.post("/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    check(registry, response_schema(doc, "/v1/messages", "post", 400), r.json())


# ---------------------------------------------------------------------------
# With [auth] on: a proxy of our own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def authed() -> Http:
    binary = os.environ.get("LLM_ROUTER_BIN") or str(ROOT / "target" / "debug" / "llm-router")
    if not Path(binary).is_file():
        pytest.fail(f"no llm-router binary at {binary}: run these tests with `bash tests/python/run.sh`")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            f"""[server]
listen = "127.0.0.1:{port}"

[stack]
order = ["auth", "failover"]

[auth]
keys = ["{CLIENT_KEY}"]
admin_keys = ["{ADMIN_KEY}"]
jwt = {{ secret = "an-openapi-test-secret-0123456789abcdef", issuer = "https://idp.example", audience = "llm-router" }}

[[backends]]
name = "local"
provider = "mock"

[[models]]
name = "echo"
targets = [{{ backend = "local" }}]
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_KEY")}
        proc = subprocess.Popen([binary, "serve", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            client = Http(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the proxy with [auth] exited: {proc.stderr.read().decode(errors='replace')}")
                try:
                    if client.get("/health", timeout=1).status_code == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("the proxy with [auth] did not become healthy within 20 s")
                time.sleep(0.1)
            yield client
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_auth_errors_match(doc, registry, authed) -> None:
    # The document is served without a key even with auth on.
    assert authed.get("/openapi.json").status_code == 200
    # 401 without a key, with a wrong key, with a malformed token (OpenAI format).
    for headers, code in [
        ({}, "missing_api_key"),
        ({"authorization": "Bearer sk-wrong-0123456789"}, "invalid_api_key"),
        ({"authorization": "Bearer abc.def.ghi"}, "malformed_token"),
    ]:
        r = authed.post("/v1/chat/completions", json=chat_request(), headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
        assert r.json()["error"]["code"] == code
        check(registry, response_schema(doc, "/v1/chat/completions", "post", 401), r.json())
    # 401 in the Anthropic format.
    r = authed.post("/v1/messages", json=messages_request())
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    check(registry, response_schema(doc, "/v1/messages", "post", 401), r.json())
    # 401 on the model list; then it works with the key.
    r = authed.get("/v1/models")
    assert r.status_code == 401
    check(registry, response_schema(doc, "/v1/models", "get", 401), r.json())
    r = authed.get("/v1/models", headers={"x-api-key": CLIENT_KEY})
    assert r.status_code == 200
    check(registry, response_schema(doc, "/v1/models", "get", 200), r.json())
    # Admin: 403 with a client key, 200 with the admin key.
    r = authed.get("/auth/status", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 403
    check(registry, response_schema(doc, "/auth/status", "get", 403), r.json())
    r = authed.get("/auth/status", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200
    status = r.json()
    check(registry, response_schema(doc, "/auth/status", "get", 200), status)
    assert status["jwt"]["algorithm"] == "HS256"
    assert "an-openapi-test-secret" not in r.text
    for path in ["/router/health", "/router/rate-limits", "/auth/metrics", "/providers", "/backend/info", "/router/stats"]:
        r = authed.get(path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200, f"{path}: {r.text}"
        check(registry, response_schema(doc, path, "get", 200), r.json())
    # A chat answer through auth still matches.
    r = authed.post("/v1/chat/completions", json=chat_request(), headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 200
    check(registry, response_schema(doc, "/v1/chat/completions", "post", 200), r.json())
