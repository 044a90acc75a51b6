//! Anthropic end to end: OpenAI clients reaching an `anthropic` backend,
//! Anthropic clients (`/v1/messages`, `/anthropic/chat/completions`) reaching
//! `anthropic` (pass-through), `openai` and `mock` backends (translated), and
//! failover from an OpenAI-compatible target to an Anthropic one, streamed
//! and not. The Anthropic upstream is the scriptable mock answering like
//! Anthropic's API.

mod support;

use serde_json::{json, Value};
use support::*;

/// The resilience layers, no retries (each test says what fails).
const STACK: &str = "[stack]\norder = [\"failover\", \"circuit_breaker\", \"retry\"]\n\n[retry]\nmax_retries = 0\n\n";

fn anthropic_backend(name: &str, upstream: &MockUpstream) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nprovider = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"sk-ant-backend\"\n\n",
        upstream.addr()
    )
}

fn mock_backend(name: &str) -> String {
    format!("[[backends]]\nname = \"{name}\"\nprovider = \"mock\"\n\n")
}

/// An Anthropic `message`, as the Messages API answers.
fn anthropic_message(model: &str, text: &str, tool: bool) -> Value {
    let mut content = vec![json!({"type": "text", "text": text})];
    if tool {
        content.push(json!({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}));
    }
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": if tool { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3},
    })
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An Anthropic event stream: text "Hello there", then (optionally) a
/// tool_use block with its input in two pieces.
fn anthropic_stream(model: &str, tool: bool) -> Vec<String> {
    let mut out = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_stream", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
    ];
    if tool {
        out.extend([
            event("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ]);
    }
    out.extend([
        event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null}, "usage": {"output_tokens": 9}})),
        event("message_stop", json!({"type": "message_stop"})),
    ]);
    out
}

fn script(events: Vec<String>) -> Reply {
    Reply::Script(events.into_iter().map(Step::Send).collect())
}

/// Parse an SSE body into `(event name, data)` pairs (`[DONE]` as a string).
fn parse_sse(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if data.is_empty() {
                return None;
            }
            let value = if data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("bad event data ({e}): {data}"))
            };
            Some((name, value))
        })
        .collect()
}

async fn post(proxy: &Proxy, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(proxy.at(path))
        .header("x-api-key", "client-key")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

// ---------------------------------------------------------------------------
// OpenAI client -> anthropic backend

#[tokio::test]
async fn openai_client_to_anthropic_backend() {
    let up = MockUpstream::with_handler("anthropic", |r| {
        Reply::Json(
            http::StatusCode::OK,
            anthropic_message(&r.model(), "Hi from Claude", false),
        )
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("gpt-4", "claude", Some("claude-sonnet-4-0"))
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "gpt-4", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"}]});
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth("client-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-0");
    assert_eq!(v["choices"][0]["message"]["content"], "Hi from Claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 15);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);

    let sent = up.only_request();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-backend"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let sent = sent.json();
    assert_eq!(sent["model"], "claude-sonnet-4-0");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello"}]}])
    );
}

#[tokio::test]
async fn openai_client_to_anthropic_backend_with_tools() {
    let up = MockUpstream::with_handler("anthropic", |r| {
        Reply::Json(
            http::StatusCode::OK,
            anthropic_message(&r.model(), "Checking.", true),
        )
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("claude", "claude", None)
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "claude", "tools": weather_tools(), "tool_choice": "required",
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["tool_calls"][0]["id"], "toolu_01");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    let sent = up.only_request().json();
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
}

#[tokio::test]
async fn openai_client_to_anthropic_backend_streamed() {
    let up =
        MockUpstream::with_handler("anthropic", |r| script(anthropic_stream(&r.model(), true)))
            .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("claude", "claude", Some("claude-haiku"))
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "tools": weather_tools(), "messages": [{"role": "user", "content": "hi"}]});
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = parse_sse(&r.text().await.unwrap());
    assert!(
        events.iter().all(|(name, _)| name.is_none()),
        "OpenAI events have no names"
    );
    let chunks: Vec<&Value> = events.iter().map(|(_, v)| v).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    let tool_deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"].get("tool_calls"))
        .collect();
    assert_eq!(tool_deltas[0][0]["id"], "toolu_01");
    assert_eq!(tool_deltas[0][0]["index"], 0);
    assert_eq!(tool_deltas[0][0]["function"]["name"], "get_weather");
    let args: String = tool_deltas
        .iter()
        .filter_map(|d| d[0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert!(chunks
        .iter()
        .all(|c| c["model"] == "claude-haiku" || c == &&Value::from("[DONE]")));
    let n = chunks.len();
    assert_eq!(*chunks[n - 1], "[DONE]");
    assert_eq!(chunks[n - 2]["choices"], json!([]));
    assert_eq!(chunks[n - 2]["usage"]["prompt_tokens"], 12);
    assert_eq!(chunks[n - 2]["usage"]["completion_tokens"], 9);
    assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "tool_calls");

    let sent = up.only_request().json();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());
}

#[tokio::test]
async fn anthropic_errors_reach_openai_clients_in_their_format() {
    let up = MockUpstream::start(
        "anthropic",
        Reply::Json(
            http::StatusCode::BAD_REQUEST,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "messages: roles must alternate"}}),
        ),
    )
    .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("claude", "claude", None)
    );
    let proxy = Proxy::start(&config).await;
    for body in [chat_body("claude"), stream_body("claude")] {
        let r = client()
            .post(proxy.at("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_openai_error(&v);
        assert_eq!(v["error"]["message"], "messages: roles must alternate");
        assert_eq!(v["error"]["code"], "invalid_request_error");
    }
    // A request Anthropic cannot express never leaves the proxy.
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(
            &json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input_audio"),
        "{v}"
    );
    assert_eq!(up.requests().len(), 2);
}

// ---------------------------------------------------------------------------
// Anthropic client -> anthropic backend: pass-through

#[tokio::test]
async fn anthropic_client_to_anthropic_backend_passes_through() {
    let answer = anthropic_message("claude-sonnet-4-0", "Bonjour", true);
    let up = MockUpstream::with_handler("anthropic", {
        let answer = answer.clone();
        move |r| {
            if r.json()["stream"] == true {
                script(anthropic_stream(&r.model(), true))
            } else {
                Reply::Json(http::StatusCode::OK, answer.clone())
            }
        }
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("sonnet", "claude", Some("claude-sonnet-4-0"))
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "sonnet",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "top_k": 5,
    });
    let r = client()
        .post(proxy.at("/v1/messages"))
        .header("x-api-key", "client-key")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, answer, "the answer passes through untouched");

    let sent = up.only_request();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-backend"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-0");
    assert_eq!(sent.json(), expected, "only the model is rewritten");

    // Streamed, through the alias endpoint: the events pass through as sent.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post(&proxy, "/anthropic/chat/completions", &streamed).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(text, anthropic_stream("claude-sonnet-4-0", true).concat());
}

// ---------------------------------------------------------------------------
// Anthropic client -> openai / mock backends: translated

#[tokio::test]
async fn anthropic_client_to_openai_backend() {
    let up = MockUpstream::with_handler("openai", |r| {
        if r.json()["stream"] == true {
            let m = r.model();
            Reply::Script(vec![
                Step::Send(role_chunk(&m)),
                Step::Send(chunk(&m, "Hello", None)),
                Step::Send(chunk(&m, " world", None)),
                Step::Send(chunk(&m, "", Some("stop"))),
                Step::Send(usage_chunk(&m, 11, 2)),
                Step::Send(DONE.to_string()),
            ])
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        openai_backend("oai", &up.base_url(), "api_key = \"sk-openai\""),
        model("claude-sonnet", "oai", Some("gpt-4o"))
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "claude-sonnet", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}]});
    let r = post(&proxy, "/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "from openai"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 1);
    assert_eq!(v["usage"]["output_tokens"], 2);

    let sent = up.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-openai"));
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4o", "max_tokens": 50, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"}]})
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post(&proxy, "/v1/messages", &streamed).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0].1["message"]["model"], "gpt-4o");
    assert_eq!(events[2].1["delta"]["text"], "Hello");
    assert_eq!(events[5].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[5].1["usage"]["input_tokens"], 11);
    assert_eq!(events[5].1["usage"]["output_tokens"], 2);
    let sent = up.requests().pop().unwrap().json();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn anthropic_client_tool_calls_from_openai_backend() {
    let up = MockUpstream::with_handler("openai", |r| {
        let m = r.model();
        let call = |delta: Value| {
            data(&json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": m,
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}))
        };
        Reply::Script(vec![
            // The first chunk is already a tool call.
            Step::Send(call(json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_9",
                "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}))),
            Step::Send(call(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Rome\"}"}}]}))),
            Step::Send(chunk(&m, "", Some("tool_calls"))),
            Step::Send(DONE.to_string()),
        ])
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        openai_backend("oai", &up.base_url(), ""),
        model("m", "oai", None)
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "m", "max_tokens": 50, "stream": true,
    "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}, {"type": "text", "text": "and Rome?"}]},
    ]});
    let r = post(&proxy, "/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(events[0].0.as_deref(), Some("message_start"));
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        events[2].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Rome\"}"})
    );
    assert_eq!(events[3].0.as_deref(), Some("content_block_stop"));
    assert_eq!(events[4].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[5].0.as_deref(), Some("message_stop"));

    let sent = up.only_request().json();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "t1", "content": "sunny"})
    );
    assert_eq!(messages[3], json!({"role": "user", "content": "and Rome?"}));
}

#[tokio::test]
async fn anthropic_client_to_mock() {
    let config = format!(
        "{STACK}{}{}",
        mock_backend("local"),
        model("echo", "local", None)
    );
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "echo", "max_tokens": 100, "system": "You echo.",
        "messages": [{"role": "user", "content": "an earlier question"},
                     {"role": "assistant", "content": "an earlier answer"},
                     {"role": "user", "content": [{"type": "text", "text": "say these words"}]}]});
    let r = post(&proxy, "/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "echo");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "say these words"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 3);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["max_tokens"] = json!(2);
    let r = post(&proxy, "/anthropic/chat/completions", &streamed).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(events[0].0.as_deref(), Some("message_start"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, v)| v["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "say these");
    let delta = &events[events.len() - 2];
    assert_eq!(delta.0.as_deref(), Some("message_delta"));
    assert_eq!(delta.1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta.1["usage"]["output_tokens"], 2);
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
}

#[tokio::test]
async fn anthropic_clients_get_anthropic_errors() {
    let config = format!(
        "{STACK}{}{}",
        mock_backend("local"),
        model("echo", "local", None)
    );
    let proxy = Proxy::start(&config).await;
    let check = |v: &Value, kind: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    let r = post(
        &proxy,
        "/v1/messages",
        &json!({"model": "nope", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.status(), 404);
    check(&r.json().await.unwrap(), "not_found_error");

    let r = client()
        .post(proxy.at("/v1/messages"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(&r.json().await.unwrap(), "invalid_request_error");

    let r = post(
        &proxy,
        "/v1/messages",
        &json!({"max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.status(), 400);
    check(&r.json().await.unwrap(), "invalid_request_error");

    // A server tool cannot be translated for a non-Anthropic backend.
    let r = post(
        &proxy,
        "/v1/messages",
        &json!({"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    check(&v, "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("web_search_20250305"));

    let r = client().get(proxy.at("/v1/messages")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    check(&r.json().await.unwrap(), "invalid_request_error");
}

#[tokio::test]
async fn openai_errors_reach_anthropic_clients_in_their_format() {
    let up = MockUpstream::start(
        "openai",
        Reply::Json(
            http::StatusCode::UNAUTHORIZED,
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        ),
    )
    .await;
    let config = format!(
        "{STACK}{}{}",
        openai_backend("oai", &up.base_url(), ""),
        model("m", "oai", None)
    );
    let proxy = Proxy::start(&config).await;
    let r = post(
        &proxy,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided"}})
    );
}

// ---------------------------------------------------------------------------
// Failover from an OpenAI-compatible target to an Anthropic one

#[tokio::test]
async fn failover_from_openai_to_anthropic() {
    let openai = MockUpstream::with_handler("openai", |r| {
        if r.json()["stream"] == true {
            // Broken before its first content: failover, invisibly.
            Reply::Script(vec![Step::Send(role_chunk(&r.model())), Step::Cut])
        } else {
            Reply::Json(
                http::StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": {"message": "overloaded", "type": "server_error", "code": null}}),
            )
        }
    })
    .await;
    let anthropic = MockUpstream::with_handler("anthropic", |r| {
        if r.json()["stream"] == true {
            script(anthropic_stream(&r.model(), false))
        } else {
            Reply::Json(
                http::StatusCode::OK,
                anthropic_message(&r.model(), "from claude", false),
            )
        }
    })
    .await;
    let config = format!(
        "{STACK}{}{}[[models]]\nname = \"smart\"\ntargets = [\n  {{ backend = \"oai\", model = \"gpt-4o\", priority = 1 }},\n  {{ backend = \"claude\", model = \"claude-sonnet-4-0\", priority = 2 }},\n]\n",
        openai_backend("oai", &openai.base_url(), ""),
        anthropic_backend("claude", &anthropic),
    );
    let proxy = Proxy::start(&config).await;

    // OpenAI client, not streamed.
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body("smart"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "claude-sonnet-4-0");
    assert_eq!(v["choices"][0]["message"]["content"], "from claude");

    // OpenAI client, streamed.
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&stream_body("smart"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter_map(|(_, c)| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert!(
        events.iter().all(|(_, c)| c.get("usage").is_none()),
        "not asked for"
    );

    // Anthropic client, streamed: the anthropic target passes its events through.
    let body = json!({"model": "smart", "max_tokens": 20, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&proxy, "/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        anthropic_stream("claude-sonnet-4-0", false).concat()
    );

    // Anthropic client, not streamed.
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let r = post(&proxy, "/v1/messages", &whole).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "from claude");

    assert_eq!(openai.requests().len(), 4);
    assert_eq!(anthropic.requests().len(), 4);
    // The OpenAI target got the Anthropic client's request translated.
    let sent = openai.requests()[2].json();
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn anthropic_stream_cut_after_content_ends_with_an_error_event() {
    let up = MockUpstream::with_handler("anthropic", |r| {
        let mut steps: Vec<Step> = anthropic_stream(&r.model(), false)
            .into_iter()
            .take(4)
            .map(Step::Send)
            .collect();
        steps.push(Step::Cut);
        Reply::Script(steps)
    })
    .await;
    let config = format!(
        "{STACK}{}{}",
        anthropic_backend("claude", &up),
        model("claude", "claude", None)
    );
    let proxy = Proxy::start(&config).await;
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&stream_body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"content\":\"Hello\""), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");

    let r = post(
        &proxy,
        "/v1/messages",
        &json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}
