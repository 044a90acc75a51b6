//! The agent clients' real requests (tests/fixtures/agent-requests: Codex,
//! the Agents SDK, the AI SDK, Claude Code), replayed through the real
//! server to every provider: an OpenAI-compatible backend (Chat
//! Completions), an OpenAI backend with `api = "responses"`, Anthropic,
//! Gemini, Ollama and the built-in mock. Each upstream answers in its own
//! format (streamed when the fixture streams) with text and a tool call;
//! each answer must come back complete and well formed in the client's
//! format, and what reached the upstream must be the provider's format.

mod support;

use serde_json::{json, Value};
use support::*;

const FIXTURES: &[(&str, &str)] = &[
    (
        "agents-sdk-responses",
        include_str!("fixtures/agent-requests/agents-sdk-responses.json"),
    ),
    (
        "agents-sdk-responses-tool-output",
        include_str!("fixtures/agent-requests/agents-sdk-responses-tool-output.json"),
    ),
    (
        "ai-sdk-responses",
        include_str!("fixtures/agent-requests/ai-sdk-responses.json"),
    ),
    (
        "ai-sdk-responses-json-schema",
        include_str!("fixtures/agent-requests/ai-sdk-responses-json-schema.json"),
    ),
    (
        "ai-sdk-responses-stream-tools",
        include_str!("fixtures/agent-requests/ai-sdk-responses-stream-tools.json"),
    ),
    (
        "ai-sdk-responses-tool-result",
        include_str!("fixtures/agent-requests/ai-sdk-responses-tool-result.json"),
    ),
    (
        "codex-responses-first-turn",
        include_str!("fixtures/agent-requests/codex-responses-first-turn.json"),
    ),
    (
        "codex-responses-tool-result-turn",
        include_str!("fixtures/agent-requests/codex-responses-tool-result-turn.json"),
    ),
    (
        "claude-code-messages-first-turn",
        include_str!("fixtures/agent-requests/claude-code-messages-first-turn.json"),
    ),
    (
        "claude-code-messages-tool-result",
        include_str!("fixtures/agent-requests/claude-code-messages-tool-result.json"),
    ),
    (
        "claude-code-messages-background-task-system",
        include_str!("fixtures/agent-requests/claude-code-messages-background-task-system.json"),
    ),
];

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn named(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// What each kind of upstream answers: text "Hello there" and a call of
/// `exec_command`, JSON or streamed, in the provider's own format.
fn answer(provider: &str, stream: bool) -> Reply {
    match (provider, stream) {
        ("openai", false) => Reply::Json(
            http::StatusCode::OK,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Hello there",
                    "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
        ),
        ("openai", true) => {
            let chunk = |delta: Value, finish: Value| {
                sse(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                    "model": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
            };
            Reply::Script(vec![
                Step::Send(chunk(json!({"role": "assistant", "content": ""}), Value::Null)),
                Step::Send(chunk(json!({"content": "Hello"}), Value::Null)),
                Step::Send(chunk(json!({"content": " there"}), Value::Null)),
                Step::Send(chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "exec_command", "arguments": ""}}]}),
                    Value::Null,
                )),
                Step::Send(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"cmd\":\"ls\"}"}}]}),
                    Value::Null,
                )),
                Step::Send(chunk(json!({}), json!("tool_calls"))),
                Step::Send(sse(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                    "created": 1, "model": "up", "choices": [],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))),
                Step::Send("data: [DONE]\n\n".into()),
            ])
        }
        ("responses", false) => Reply::Json(
            http::StatusCode::OK,
            json!({"id": "resp_1", "object": "response", "created_at": 1, "model": "up",
                "status": "completed", "output": [
                    {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                     "content": [{"type": "output_text", "text": "Hello there", "annotations": []}]},
                    {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "exec_command",
                     "arguments": "{\"cmd\":\"ls\"}", "status": "completed"}],
                "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}),
        ),
        ("responses", true) => {
            let head = json!({"id": "resp_1", "object": "response", "created_at": 1, "model": "up",
                "status": "in_progress", "output": []});
            let mut done = head.clone();
            done["status"] = json!("completed");
            done["usage"] = json!({"input_tokens": 10, "output_tokens": 5, "total_tokens": 15});
            let ev = |kind: &str, seq: u64, mut body: Value| {
                body["type"] = json!(kind);
                body["sequence_number"] = json!(seq);
                Step::Send(named(kind, body))
            };
            Reply::Script(vec![
                ev("response.created", 0, json!({"response": head})),
                ev("response.in_progress", 1, json!({"response": head})),
                ev("response.output_item.added", 2, json!({"output_index": 0, "item": {"id": "msg_1",
                    "type": "message", "role": "assistant", "status": "in_progress", "content": []}})),
                ev("response.output_text.delta", 3, json!({"item_id": "msg_1", "output_index": 0,
                    "content_index": 0, "delta": "Hello there", "logprobs": []})),
                ev("response.output_item.added", 4, json!({"output_index": 1, "item": {"id": "fc_1",
                    "type": "function_call", "call_id": "call_1", "name": "exec_command",
                    "arguments": "", "status": "in_progress"}})),
                ev("response.function_call_arguments.delta", 5, json!({"item_id": "fc_1",
                    "output_index": 1, "delta": "{\"cmd\":\"ls\"}"})),
                ev("response.completed", 6, json!({"response": done})),
            ])
        }
        ("anthropic", false) => Reply::Json(
            http::StatusCode::OK,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "up",
                "content": [{"type": "text", "text": "Hello there"},
                    {"type": "tool_use", "id": "toolu_1", "name": "exec_command", "input": {"cmd": "ls"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 5}}),
        ),
        ("anthropic", true) => Reply::Script(
            vec![
                named("message_start", json!({"type": "message_start", "message": {"id": "msg_1",
                    "type": "message", "role": "assistant", "model": "up", "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 10, "output_tokens": 1}}})),
                named("content_block_start", json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})),
                named("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "Hello there"}})),
                named("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                named("content_block_start", json!({"type": "content_block_start", "index": 1,
                    "content_block": {"type": "tool_use", "id": "toolu_1", "name": "exec_command", "input": {}}})),
                named("content_block_delta", json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "{\"cmd\":\"ls\"}"}})),
                named("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
                named("message_delta", json!({"type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                    "usage": {"output_tokens": 5}})),
                named("message_stop", json!({"type": "message_stop"})),
            ]
            .into_iter()
            .map(Step::Send)
            .collect(),
        ),
        ("gemini", false) => Reply::Json(
            http::StatusCode::OK,
            json!({"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model",
                "parts": [{"text": "Hello there"},
                    {"functionCall": {"name": "exec_command", "args": {"cmd": "ls"}}}]}}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}}),
        ),
        ("gemini", true) => Reply::Script(vec![
            Step::Send(sse(&json!({"candidates": [{"index": 0, "content": {"role": "model",
                "parts": [{"text": "Hello there"}]}}]}))),
            Step::Send(sse(&json!({"candidates": [{"index": 0, "finishReason": "STOP",
                "content": {"role": "model",
                    "parts": [{"functionCall": {"name": "exec_command", "args": {"cmd": "ls"}}}]}}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}}))),
        ]),
        ("ollama", false) => Reply::Json(
            http::StatusCode::OK,
            json!({"model": "up", "created_at": "2026-12-07T00:00:00Z", "done": true,
                "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5,
                "message": {"role": "assistant", "content": "Hello there",
                    "tool_calls": [{"function": {"name": "exec_command", "arguments": {"cmd": "ls"}}}]}}),
        ),
        ("ollama", true) => Reply::Script(vec![
            Step::Send(format!("{}\n", json!({"model": "up", "created_at": "2026-12-07T00:00:00Z",
                "done": false, "message": {"role": "assistant", "content": "Hello there"}}))),
            Step::Send(format!("{}\n", json!({"model": "up", "created_at": "2026-12-07T00:00:00Z",
                "done": false, "message": {"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"name": "exec_command", "arguments": {"cmd": "ls"}}}]}}))),
            Step::Send(format!("{}\n", json!({"model": "up", "created_at": "2026-12-07T00:00:00Z",
                "done": true, "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5,
                "message": {"role": "assistant", "content": ""}}))),
        ]),
        _ => unreachable!("{provider}"),
    }
}

/// The backend section for `provider` (None: the mock).
fn backend(provider: &str, up: Option<&MockUpstream>) -> String {
    let addr = up.map(|u| u.addr().to_string()).unwrap_or_default();
    match provider {
        "openai" => format!("[[backends]]\nname = \"b\"\nprovider = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"sk-up\"\n\n"),
        "responses" => format!("[[backends]]\nname = \"b\"\nprovider = \"openai\"\napi = \"responses\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"sk-up\"\n\n"),
        "anthropic" => format!("[[backends]]\nname = \"b\"\nprovider = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"sk-ant-up\"\n\n"),
        "gemini" => format!("[[backends]]\nname = \"b\"\nprovider = \"gemini\"\nbase_url = \"http://{addr}\"\napi_key = \"g-up\"\n\n"),
        "ollama" => format!("[[backends]]\nname = \"b\"\nprovider = \"ollama\"\nbase_url = \"http://{addr}\"\n\n"),
        _ => "[[backends]]\nname = \"b\"\nprovider = \"mock\"\n\n".into(),
    }
}

/// The upstream path a provider's chat call goes to.
fn upstream_path(provider: &str, stream: bool) -> &'static str {
    match (provider, stream) {
        ("openai", _) => "/v1/chat/completions",
        ("responses", _) => "/v1/responses",
        ("anthropic", _) => "/v1/messages",
        ("gemini", false) => "/v1beta/models/up:generateContent",
        ("gemini", true) => "/v1beta/models/up:streamGenerateContent?alt=sse",
        ("ollama", _) => "/api/chat",
        _ => unreachable!(),
    }
}

/// The `(event name, data)` pairs of an event stream.
fn events(text: &str) -> Vec<(Option<String>, Value)> {
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
            (!data.is_empty() && data != "[DONE]").then(|| {
                let value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("bad event data ({e}): {data}"));
                (name, value)
            })
        })
        .collect()
}

/// Check a Responses answer: complete, with text (and, unless from the
/// mock, the call of `exec_command`). A stream is checked by its events
/// (what a client accumulates), and, when translated, by its final response.
fn check_responses(what: &str, stream: bool, text: &str, mock: bool, translated: bool) {
    let (response, said, call) = if stream {
        let events = events(text);
        let kinds: Vec<&str> = events
            .iter()
            .map(|(_, v)| v["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"response.created"), "{what}: {text}");
        assert_eq!(kinds.get(1), Some(&"response.in_progress"), "{what}");
        assert_eq!(
            kinds.last(),
            Some(&"response.completed"),
            "{what}: {kinds:?}"
        );
        let seqs: Vec<u64> = events
            .iter()
            .map(|(_, v)| v["sequence_number"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{what}: {seqs:?}"
        );
        for (name, v) in &events {
            assert_eq!(name.as_deref(), v["type"].as_str(), "{what}");
        }
        let said: String = events
            .iter()
            .filter(|(_, v)| v["type"] == "response.output_text.delta")
            .map(|(_, v)| v["delta"].as_str().unwrap())
            .collect();
        let name = events
            .iter()
            .find(|(_, v)| {
                v["type"] == "response.output_item.added" && v["item"]["type"] == "function_call"
            })
            .map(|(_, v)| v["item"]["name"].clone());
        let arguments: String = events
            .iter()
            .filter(|(_, v)| v["type"] == "response.function_call_arguments.delta")
            .map(|(_, v)| v["delta"].as_str().unwrap())
            .collect();
        (
            events.last().unwrap().1["response"].clone(),
            said,
            name.map(|n| (n, arguments)),
        )
    } else {
        let response: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        let output = response["output"].as_array().unwrap();
        let said = output
            .iter()
            .find(|i| i["type"] == "message")
            .map(|m| m["content"][0]["text"].as_str().unwrap().to_string())
            .unwrap_or_default();
        let call = output
            .iter()
            .find(|i| i["type"] == "function_call")
            .map(|c| {
                (
                    c["name"].clone(),
                    c["arguments"].as_str().unwrap().to_string(),
                )
            });
        (response, said, call)
    };
    assert_eq!(response["object"], "response", "{what}: {response}");
    assert_eq!(response["status"], "completed", "{what}: {response}");
    assert!(
        response["id"].as_str().unwrap().starts_with("resp_"),
        "{what}"
    );
    assert!(!said.is_empty(), "{what}: {text}");
    if !mock {
        assert_eq!(said, "Hello there", "{what}");
        let (name, arguments) = call.unwrap_or_else(|| panic!("{what}: no call in {text}"));
        assert_eq!(name, "exec_command", "{what}");
        assert_eq!(arguments, "{\"cmd\":\"ls\"}", "{what}");
        assert_eq!(response["usage"]["total_tokens"], 15, "{what}");
        if translated {
            let output = response["output"].as_array().unwrap();
            let message = output.iter().find(|i| i["type"] == "message").unwrap();
            assert_eq!(message["content"][0]["text"], "Hello there", "{what}");
            let call = output
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap();
            assert_eq!(call["arguments"], "{\"cmd\":\"ls\"}", "{what}");
            assert!(call["call_id"].is_string(), "{what}");
        }
    }
}

/// Check a Messages answer the same way.
fn check_messages(what: &str, stream: bool, text: &str, mock: bool) {
    if stream {
        let events = events(text);
        let kinds: Vec<&str> = events
            .iter()
            .map(|(_, v)| v["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"message_start"), "{what}: {text}");
        assert_eq!(kinds.last(), Some(&"message_stop"), "{what}: {kinds:?}");
        let text_out: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["text"].as_str())
            .collect();
        assert!(!text_out.is_empty(), "{what}");
        if !mock {
            assert_eq!(text_out, "Hello there", "{what}");
            assert!(
                events
                    .iter()
                    .any(|(_, v)| v["content_block"]["name"] == "exec_command"),
                "{what}"
            );
            assert!(
                events
                    .iter()
                    .any(|(_, v)| v["delta"]["stop_reason"] == "tool_use"),
                "{what}"
            );
        }
    } else {
        let message: Value = serde_json::from_str(text).unwrap();
        assert_eq!(message["type"], "message", "{what}: {message}");
        if !mock {
            assert_eq!(message["content"][0]["text"], "Hello there", "{what}");
            assert_eq!(message["content"][1]["name"], "exec_command", "{what}");
            assert_eq!(message["stop_reason"], "tool_use", "{what}");
        }
    }
}

#[tokio::test]
async fn every_agent_fixture_through_every_provider() {
    for provider in [
        "openai",
        "responses",
        "anthropic",
        "gemini",
        "ollama",
        "mock",
    ] {
        let up = if provider == "mock" {
            None
        } else {
            let p = provider.to_string();
            Some(
                MockUpstream::with_handler(provider, move |r| {
                    let stream = r.path.contains("stream") || r.json()["stream"] == true;
                    answer(&p, stream)
                })
                .await,
            )
        };
        let config = format!(
            "{}[[models]]\nname = \"*\"\ntargets = [{{ backend = \"b\", model = \"up\" }}]\n",
            backend(provider, up.as_ref())
        );
        let proxy = Proxy::start(&config).await;
        for (name, text) in FIXTURES {
            let what = format!("{name} -> {provider}");
            let fixture: Value = serde_json::from_str(text).unwrap();
            let path = fixture["path"].as_str().unwrap();
            let query = fixture["query"].as_str().unwrap_or("");
            let url = if query.is_empty() {
                proxy.at(path)
            } else {
                proxy.at(&format!("{path}?{query}"))
            };
            let mut req = client().post(url);
            for (k, v) in fixture["headers"].as_object().unwrap() {
                if !matches!(k.as_str(), "content-length" | "host" | "accept-encoding") {
                    req = req.header(k.as_str(), v.as_str().unwrap());
                }
            }
            let body = &fixture["body"];
            let stream = body["stream"] == true;
            let r = req.json(body).send().await.unwrap();
            let status = r.status();
            let dropped = r
                .headers()
                .get("x-llm-router-dropped")
                .map(|v| v.to_str().unwrap().to_string());
            let answer = r.text().await.unwrap();
            assert_eq!(status, 200, "{what}: {answer}");
            let responses = path.ends_with("/responses");
            if responses {
                check_responses(
                    &what,
                    stream,
                    &answer,
                    up.is_none(),
                    provider != "responses",
                );
                // Codex always offers web_search: removed where it cannot run.
                if name.starts_with("codex") {
                    let expected = (provider != "responses").then(|| "web_search".to_string());
                    assert_eq!(dropped, expected, "{what}");
                }
            } else {
                check_messages(&what, stream, &answer, up.is_none());
            }
            if let Some(up) = &up {
                let sent = up.requests().pop().unwrap();
                assert_eq!(sent.path, upstream_path(provider, stream), "{what}");
                for header in sent.headers.keys() {
                    if provider != "anthropic" {
                        assert!(
                            !header.as_str().starts_with("anthropic-"),
                            "{what}: {header}"
                        );
                        if !responses {
                            assert!(
                                !header.as_str().starts_with("x-stainless-"),
                                "{what}: {header}"
                            );
                        }
                    }
                }
                if provider == "responses" && responses {
                    // Passed through: the client's body, model rewritten.
                    let mut expected = body.clone();
                    expected["model"] = json!("up");
                    assert_eq!(sent.json(), expected, "{what}");
                }
            }
        }
    }
}
