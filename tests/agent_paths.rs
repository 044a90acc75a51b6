//! The agent APIs' routing, end to end: the `/openai/v1/`, `/openai/` and
//! `/anthropic/v1/` aliases, `?beta=true`, unknown paths (404 in the
//! prefix's format, logged and counted), token counts passed through to
//! the backends that count (Anthropic's `count_tokens`, the Responses API's
//! `input_tokens`), Responses requests passed through to an
//! `api = "responses"` backend (the client's bytes, model rewritten; the
//! stream guarded), Anthropic-only headers kept from other providers, and
//! a stream the client leaves right after its terminal event logged
//! complete.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::*;

fn anthropic_backend(name: &str, upstream: &MockUpstream) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nprovider = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"sk-ant-backend\"\n\n",
        upstream.addr()
    )
}

fn responses_backend(name: &str, upstream: &MockUpstream) -> String {
    openai_backend(name, &upstream.base_url(), "api = \"responses\"\n")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llm-router-agent-paths-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every log record of the session files under `dir`.
fn records(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("router_") || !name.ends_with(".jsonl") || name.contains("_errors") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

async fn post_json(proxy: &Proxy, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(proxy.at(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn aliases_reach_the_same_endpoints() {
    let config = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";
    let proxy = Proxy::start(config).await;
    let chat = json!({"model": "echo", "messages": [{"role": "user", "content": "hi there"}]});
    for path in [
        "/v1/chat/completions",
        "/openai/v1/chat/completions",
        "/openai/chat/completions",
        "/openai/chat/completions/",
    ] {
        let r = post_json(&proxy, path, &chat).await;
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion", "{path}");
    }
    let messages = json!({"model": "echo", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi there"}]});
    for path in [
        "/v1/messages",
        "/v1/messages?beta=true",
        "/anthropic/v1/messages",
        "/anthropic/v1/messages?beta=true",
    ] {
        let r = post_json(&proxy, path, &messages).await;
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "message", "{path}");
    }
    for path in ["/v1/models", "/openai/v1/models", "/openai/models"] {
        let r = client().get(proxy.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"][0]["id"], "echo", "{path}");
    }
    for path in ["/openai/v1/models/echo", "/openai/models/echo"] {
        let r = client().get(proxy.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], "echo", "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_in_their_format_logged_and_counted() {
    let dir = temp_dir("unknown");
    let config = "[stack]\norder = [\"log\", \"metrics\", \"failover\"]\n\n[log]\ndir = \"logs\"\n\n\
         [[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";
    let mut proxy = Proxy::start_with(config, &dir.join("config.toml"), |_| None).await;
    let r = post_json(&proxy, "/v1/nope", &json!({"model": "echo"})).await;
    assert_eq!(r.status(), 404);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_url");
    assert!(v["error"]["message"].as_str().unwrap().contains("/v1/nope"));

    let r = post_json(&proxy, "/anthropic/v1/nope", &json!({})).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");

    let r = client().get(proxy.at("/favicon.ico")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let metrics = client()
        .get(proxy.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = "llm_router_requests_total{model=\"(unknown)\",backend=\"none\",status=\"404\"} 3";
    assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");

    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let records = records(&dir);
    let record = records
        .iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no record of {id} in {records:#?}"));
    assert_eq!(record["status"], 404);
    assert_eq!(record["path"], "/v1/nope");
    assert_eq!(record["method"], "POST");
    assert_eq!(records.len(), 3, "{records:#?}");
}

#[tokio::test]
async fn count_tokens_passes_through_to_anthropic() {
    let up = MockUpstream::start(
        "anthropic",
        Reply::Json(http::StatusCode::OK, json!({"input_tokens": 42})),
    )
    .await;
    let config = format!(
        "{}[[models]]\nname = \"claude\"\ntargets = [{{ backend = \"a\", model = \"claude-real\" }}]\n",
        anthropic_backend("a", &up)
    );
    let proxy = Proxy::start(&config).await;
    for path in [
        "/v1/messages/count_tokens",
        "/v1/messages/count_tokens?beta=true",
        "/anthropic/v1/messages/count_tokens",
    ] {
        let r = client()
            .post(proxy.at(path))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "token-counting-2024-11-01")
            .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("x-llm-router-estimate").is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"input_tokens": 42}));
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.path, "/v1/messages/count_tokens");
        assert_eq!(r.model(), "claude-real");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-backend"));
        assert_eq!(
            r.header("anthropic-beta"),
            Some("token-counting-2024-11-01")
        );
    }
}

#[tokio::test]
async fn input_tokens_and_responses_pass_through_to_a_responses_backend() {
    let up = MockUpstream::with_handler("responses", |r| {
        if r.path.ends_with("/input_tokens") {
            Reply::Json(
                http::StatusCode::OK,
                json!({"object": "response.input_tokens", "input_tokens": 11}),
            )
        } else {
            Reply::Json(
                http::StatusCode::OK,
                json!({"id": "resp_1", "object": "response", "status": "completed",
                       "model": r.model(), "output": [],
                       "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}),
            )
        }
    })
    .await;
    let config = format!(
        "{}[[models]]\nname = \"gpt\"\ntargets = [{{ backend = \"r\", model = \"gpt-5\" }}]\n",
        responses_backend("r", &up)
    );
    let proxy = Proxy::start(&config).await;
    // Encrypted reasoning and an item type the proxy does not know.
    let body = r#"{"model":"gpt","input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"<opaque data>"},{"type":"future_item","x":1},{"role":"user","content":"hi"}],"store":false,"include":["reasoning.encrypted_content"]}"#;
    let r = client()
        .post(proxy.at("/v1/responses"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "resp_1");
    let r = client()
        .post(proxy.at("/openai/v1/responses/input_tokens"))
        .json(&json!({"model": "gpt", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["input_tokens"], 11);

    let seen = up.requests();
    assert_eq!(seen[0].path, "/v1/responses");
    // The client's bytes, only the model rewritten.
    assert_eq!(
        String::from_utf8_lossy(&seen[0].body),
        body.replace("\"gpt\"", "\"gpt-5\"")
    );
    assert_eq!(seen[1].path, "/v1/responses/input_tokens");
    assert_eq!(seen[1].model(), "gpt-5");
}

fn rev(kind: &str, seq: u64, extra: &str) -> String {
    format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{extra}}}\n\n")
}

#[tokio::test]
async fn a_passed_through_responses_stream_cut_after_its_first_output_ends_failed() {
    let head = r#","response":{"id":"resp_9","object":"response","created_at":1,"model":"gpt-5","status":"in_progress","output":[]}"#;
    let up = MockUpstream::start(
        "responses",
        Reply::Script(vec![
            Step::Send(rev("response.created", 0, head)),
            Step::Send(rev("response.in_progress", 1, head)),
            Step::Send(rev(
                "response.output_item.added",
                2,
                r#","output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}"#,
            )),
            Step::Send(rev(
                "response.output_text.delta",
                3,
                r#","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hel""#,
            )),
            Step::Cut,
        ]),
    )
    .await;
    let config = format!(
        "[stack]\norder = [\"failover\"]\n\n{}[[models]]\nname = \"gpt\"\ntargets = [{{ backend = \"r\", model = \"gpt-5\" }}]\n",
        responses_backend("r", &up)
    );
    let proxy = Proxy::start(&config).await;
    let r = post_json(
        &proxy,
        "/v1/responses",
        &json!({"model": "gpt", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_text.delta",
            "error",
            "response.failed"
        ],
        "{text}"
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    assert_eq!(events[5]["response"]["id"], "resp_9");
}

#[tokio::test]
async fn anthropic_headers_go_only_to_anthropic_backends() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let anthropic = MockUpstream::start(
        "anthropic",
        Reply::Json(
            http::StatusCode::OK,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                   "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}),
        ),
    )
    .await;
    let config = format!(
        "{}{}{}{}",
        openai_backend("o", &openai.base_url(), ""),
        anthropic_backend("a", &anthropic),
        model("to-openai", "o", Some("gpt-4o")),
        model("to-anthropic", "a", Some("claude-real")),
    );
    let proxy = Proxy::start(&config).await;
    for model in ["to-openai", "to-anthropic"] {
        let r = client()
            .post(proxy.at("/v1/messages?beta=true"))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "mid-conversation-system-2026-04-07")
            .header("x-stainless-lang", "js")
            .header("x-app", "cli")
            .json(&json!({"model": model, "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
    }
    let o = openai.only_request();
    assert_eq!(o.path, "/v1/chat/completions");
    for gone in ["anthropic-version", "anthropic-beta", "x-stainless-lang"] {
        assert!(o.header(gone).is_none(), "{gone} reached openai");
    }
    assert_eq!(o.header("x-app"), Some("cli"));
    let a = anthropic.only_request();
    assert_eq!(a.path, "/v1/messages");
    assert_eq!(
        a.header("anthropic-beta"),
        Some("mid-conversation-system-2026-04-07")
    );
    assert_eq!(a.header("x-stainless-lang"), Some("js"));
}

#[tokio::test]
async fn a_stream_left_right_after_done_is_logged_complete() {
    let dir = temp_dir("done");
    let up = MockUpstream::start(
        "up",
        Reply::Script(vec![
            Step::Send(data(
                &json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
            )),
            Step::Send(data(
                &json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            )),
            Step::Send("data: [DONE]\n\n".into()),
            // The upstream keeps its connection open after [DONE].
            Step::Stall,
        ]),
    )
    .await;
    let config = format!(
        "[stack]\norder = [\"log\", \"failover\"]\n\n[log]\ndir = \"logs\"\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    );
    let mut proxy = Proxy::start_with(&config, &dir.join("config.toml"), |_| None).await;
    let r = post_json(&proxy, "/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut events = SseReader::new(r);
    let mut seen = Vec::new();
    while let Some(event) = events.next_event().await {
        let done = event.contains("[DONE]");
        seen.push(event);
        if done {
            break;
        }
    }
    // The client leaves at once.
    drop(events);
    up.wait_for("the stream to be dropped", |s| s.streams_aborted == 1)
        .await;
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let records = records(&dir);
    let record = records
        .iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(record["complete"], true, "{record:#}");
}

/// A Responses API event stream as OpenAI sends it: text "Hello there" and
/// a function call, with usage at the end.
fn responses_upstream_stream() -> Vec<Step> {
    let head = r#","response":{"id":"resp_7","object":"response","created_at":1700000000,"model":"gpt-5","status":"in_progress","output":[]}"#;
    let done = r#","response":{"id":"resp_7","object":"response","created_at":1700000000,"model":"gpt-5","status":"completed","output":[],"usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}}"#;
    vec![
        Step::Send(rev("response.created", 0, head)),
        Step::Send(rev("response.in_progress", 1, head)),
        Step::Send(rev(
            "response.output_item.added",
            2,
            r#","output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}"#,
        )),
        Step::Send(rev(
            "response.output_text.delta",
            3,
            r#","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello","logprobs":[]"#,
        )),
        Step::Send(rev(
            "response.output_text.delta",
            4,
            r#","item_id":"msg_1","output_index":0,"content_index":0,"delta":" there","logprobs":[]"#,
        )),
        Step::Send(rev(
            "response.output_item.added",
            5,
            r#","output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"","status":"in_progress"}"#,
        )),
        Step::Send(rev(
            "response.function_call_arguments.delta",
            6,
            r#","item_id":"fc_1","output_index":1,"delta":"{\"city\":\"Paris\"}""#,
        )),
        Step::Send(rev("response.completed", 7, done)),
    ]
}

#[tokio::test]
async fn chat_and_messages_clients_reach_a_responses_backend() {
    let up = MockUpstream::with_handler("responses", |r| {
        let body = r.json();
        if body["stream"] == true {
            Reply::Script(responses_upstream_stream())
        } else {
            Reply::Json(
                http::StatusCode::OK,
                json!({"id": "resp_8", "object": "response", "created_at": 1700000000,
                    "model": "gpt-5", "status": "completed",
                    "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "Hello there", "annotations": []}]}],
                    "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}}),
            )
        }
    })
    .await;
    let config = format!(
        "{}[[models]]\nname = \"gpt\"\ntargets = [{{ backend = \"r\", model = \"gpt-5\" }}]\n",
        responses_backend("r", &up)
    );
    let proxy = Proxy::start(&config).await;

    // Chat Completions, not streamed.
    let r = post_json(
        &proxy,
        "/v1/chat/completions",
        &json!({"model": "gpt", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    let sent = up.requests()[0].json();
    assert_eq!(up.requests()[0].path, "/v1/responses");
    assert_eq!(sent["model"], "gpt-5");
    assert_eq!(sent["instructions"], "Be brief.");
    assert_eq!(sent["max_output_tokens"], 100);

    // Chat Completions, streamed, with usage.
    let r = post_json(
        &proxy,
        "/v1/chat/completions",
        &json!({"model": "gpt", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello there");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    assert!(chunks.iter().any(|c| c["usage"]["total_tokens"] == 13));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    // Anthropic Messages, streamed: the pivot, then Anthropic's events.
    let r = client()
        .post(proxy.at("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("\"text\":\"Hello\""), "{text}");
    assert!(text.contains("\"name\":\"get_weather\""), "{text}");
    assert!(text.contains("\"stop_reason\":\"tool_use\""), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    let sent = up.requests()[2].json();
    assert!(sent.get("stream_options").is_none(), "{sent}");
    assert!(sent.get("max_tokens").is_none(), "{sent}");
}

#[tokio::test]
async fn token_limits_and_effort_fit_the_openai_model() {
    let up = MockUpstream::start("openai", Reply::Chat).await;
    let config = format!(
        "{}{}{}",
        openai_backend("o", &up.base_url(), ""),
        model("to-gpt5", "o", Some("gpt-5")),
        model("to-gpt4o", "o", Some("gpt-4o")),
    );
    let proxy = Proxy::start(&config).await;
    // Claude Code's limits and effort.
    for model in ["to-gpt5", "to-gpt4o"] {
        let r = client()
            .post(proxy.at("/v1/messages"))
            .json(&json!({"model": model, "max_tokens": 64000,
                "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
    }
    // An OpenAI client's max_tokens to a reasoning model.
    let r = post_json(
        &proxy,
        "/v1/chat/completions",
        &json!({"model": "to-gpt5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen = up.requests();
    let gpt5 = seen[0].json();
    assert_eq!(gpt5["max_completion_tokens"], 64000);
    assert!(gpt5.get("max_tokens").is_none());
    assert_eq!(gpt5["reasoning_effort"], "high");
    let gpt4o = seen[1].json();
    assert_eq!(gpt4o["max_tokens"], 16384);
    assert!(gpt4o.get("reasoning_effort").is_none());
    let openai_client = seen[2].json();
    assert_eq!(openai_client["max_completion_tokens"], 50);
    assert!(openai_client.get("max_tokens").is_none());
}

#[tokio::test]
async fn responses_streams_get_reversible_pii_and_response_transforms() {
    let config = "[stack]\norder = [\"pii\", \"transform\", \"failover\"]\n\n\
        [pii]\ndetect = [\"email\"]\naction = \"reversible\"\non = \"request\"\n\n\
        [[transforms]]\nname = \"shout\"\ntype = \"regex_replace\"\npattern = 'quick'\nreplacement = \"QUICK\"\non = \"response\"\n\n\
        [[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";
    let proxy = Proxy::start(config).await;
    let said = "write to jane.doe@example.com about the quick fix";
    let r = post_json(
        &proxy,
        "/v1/responses",
        &json!({"model": "echo", "stream": true, "input": said}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let expected = "write to jane.doe@example.com about the QUICK fix";
    assert_eq!(deltas, expected, "{text}");
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["text"], expected);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        expected
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // The answer not streamed: restored and transformed too.
    let r = post_json(
        &proxy,
        "/v1/responses",
        &json!({"model": "echo", "input": said}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], expected, "{v}");
}

fn chunk_event(model: &str, delta: Value, finish: Value) -> String {
    data(
        &json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

/// The Responses events of a stream, parsed.
fn responses_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn translated_responses_streams_fail_over_before_their_first_output_and_fail_after() {
    // The first target breaks before any content, the second answers.
    let first = MockUpstream::with_handler("first", |r| {
        let model = r.model();
        Reply::Script(vec![
            Step::Send(chunk_event(
                &model,
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )),
            Step::Cut,
        ])
    })
    .await;
    let second = MockUpstream::with_handler("second", |r| {
        let model = r.model();
        Reply::Script(vec![
            Step::Send(chunk_event(
                &model,
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )),
            Step::Send(chunk_event(
                &model,
                json!({"content": "from second"}),
                Value::Null,
            )),
            Step::Send(chunk_event(&model, json!({}), json!("stop"))),
            Step::Send("data: [DONE]\n\n".into()),
        ])
    })
    .await;
    // A target that breaks after its first content.
    let breaks = MockUpstream::with_handler("breaks", |r| {
        let model = r.model();
        Reply::Script(vec![
            Step::Send(chunk_event(
                &model,
                json!({"role": "assistant", "content": "Hel"}),
                Value::Null,
            )),
            Step::Cut,
        ])
    })
    .await;
    let config = format!(
        "[stack]\norder = [\"failover\", \"circuit_breaker\", \"retry\"]\n\n[retry]\nmax_retries = 0\n\n{}{}{}\
         [[models]]\nname = \"smart\"\ntargets = [\n  {{ backend = \"first\", model = \"m1\", priority = 1 }},\n  {{ backend = \"second\", model = \"m2\", priority = 2 }},\n]\n\n\
         [[models]]\nname = \"cut\"\ntargets = [\n  {{ backend = \"breaks\", model = \"m3\", priority = 1 }},\n  {{ backend = \"second\", model = \"m2\", priority = 2 }},\n]\n",
        openai_backend("first", &first.base_url(), ""),
        openai_backend("second", &second.base_url(), ""),
        openai_backend("breaks", &breaks.base_url(), ""),
    );
    let proxy = Proxy::start(&config).await;

    let r = post_json(
        &proxy,
        "/v1/responses",
        &json!({"model": "smart", "stream": true, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = responses_events(&text);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // One clean stream: the first attempt left no trace.
    assert_eq!(
        kinds.iter().filter(|k| **k == "response.created").count(),
        1,
        "{text}"
    );
    assert_eq!(kinds.last(), Some(&"response.completed"), "{text}");
    assert!(!kinds.contains(&"error") && !kinds.contains(&"response.failed"));
    let said: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(said, "from second");
    assert_eq!(events.last().unwrap()["response"]["model"], "m2");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(first.requests().len(), 1);

    // Committed, then cut: response.failed, never response.completed, and
    // no second target.
    let before = second.requests().len();
    let r = post_json(
        &proxy,
        "/v1/responses",
        &json!({"model": "cut", "stream": true, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = responses_events(&text);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"response.output_text.delta"), "{text}");
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["error", "response.failed"],
        "{text}"
    );
    assert!(!kinds.contains(&"response.completed"), "{text}");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(second.requests().len(), before);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let config = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";
    let proxy = Proxy::start(config).await;
    let answers = [
        post_json(&proxy, "/v1/chat/completions", &chat_body("echo")).await,
        post_json(&proxy, "/v1/chat/completions", &stream_body("echo")).await,
        post_json(&proxy, "/v1/nope", &json!({})).await,
        client().get(proxy.at("/health")).send().await.unwrap(),
        client().get(proxy.at("/metrics")).send().await.unwrap(),
    ];
    for r in answers {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", r.url());
        assert_eq!(h["x-frame-options"], "DENY", "{}", r.url());
        assert_eq!(h["referrer-policy"], "no-referrer", "{}", r.url());
    }
}
