//! The cost of every answer, end to end: the real server, mock upstreams
//! that report known usage, and what the client, the log and `/metrics`
//! see — `x-llm-router-cost-usd` on non-streamed answers (OpenAI and
//! Anthropic clients, native and translated), `cost_usd` in the log
//! record, `llm_router_cost_usd_total` for streamed answers too, and the
//! estimate a stream cut short is charged.

mod support;

use http::StatusCode;
use serde_json::{json, Value};
use support::log_records::{by_id, records, temp_dir};
use support::*;

const CLIENT_KEY: &str = "sk-test-client-0123456789abcdef";
const COST: &str = "x-llm-router-cost-usd";
/// A virtual key: its name is the cost metric's `key` label.
const TEAM_KEY: &str = "sk-test-team-a-0123456789abcdef";

/// A chat completion with this usage.
fn completion(model: &str, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage,
    })
}

/// The OpenAI-compatible upstream, answering by the model asked for.
async fn openai_upstream() -> MockUpstream {
    MockUpstream::with_handler("openai", |req| {
        let body = req.json();
        match (req.model().as_str(), body["stream"] == true) {
            // 600 uncached × $2.50 + 400 cached × $1.25 + 100 out × $10 per
            // million: $0.003.
            ("gpt-4o", false) => Reply::Json(
                StatusCode::OK,
                completion(
                    "gpt-4o",
                    json!({"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                        "prompt_tokens_details": {"cached_tokens": 400}}),
                ),
            ),
            // 2000 in × $2 + 500 out × $8: $0.008.
            ("gpt-4.1", true) => Reply::Script(vec![
                Step::Send(role_chunk("gpt-4.1")),
                Step::Send(chunk("gpt-4.1", "Hello", None)),
                Step::Send(chunk("gpt-4.1", "", Some("stop"))),
                Step::Send(data(&json!({
                    "id": "chatcmpl-script", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4.1", "choices": [],
                    "usage": {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500},
                }))),
                Step::Send(DONE.to_string()),
            ]),
            // No price for it.
            ("local-llama", false) => Reply::Json(
                StatusCode::OK,
                completion(
                    "local-llama",
                    json!({"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}),
                ),
            ),
            // Text, then nothing until the client has gone.
            ("gpt-4o-2024-08-06", true) => Reply::Script(vec![
                Step::Send(role_chunk("gpt-4o-2024-08-06")),
                Step::Send(chunk("gpt-4o-2024-08-06", &"abcdefgh".repeat(5), None)),
                Step::Hold,
            ]),
            _ => Reply::Json(StatusCode::NOT_FOUND, json!({"error": {"message": "no such model"}})),
        }
    })
    .await
}

/// The Anthropic upstream: 100 uncached in × $3 + 1000 cache reads × $0.30
/// + 2000 cache writes × $3.75 + 500 out × $15 per million: $0.0156.
async fn anthropic_upstream() -> MockUpstream {
    MockUpstream::with_handler("anthropic", |req| {
        Reply::Json(
            StatusCode::OK,
            json!({
                "id": "msg_01", "type": "message", "role": "assistant", "model": req.model(),
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 100, "output_tokens": 500,
                    "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 2000},
            }),
        )
    })
    .await
}

fn config(openai: &MockUpstream, anthropic: &MockUpstream) -> String {
    format!(
        r#"[stack]
order = ["log", "metrics", "auth", "failover"]

[auth]
keys = ["{CLIENT_KEY}"]

[[keys]]
name = "team-a"
key = "{TEAM_KEY}"

[log]
dir = "logs"

[[backends]]
name = "oai"
provider = "openai"
base_url = "{}"

[[backends]]
name = "claude"
provider = "anthropic"
base_url = "http://{}"
api_key = "sk-ant-backend"

[[models]]
name = "gpt-4o"
targets = [{{ backend = "oai", model = "gpt-4o" }}]

[[models]]
name = "streamed"
targets = [{{ backend = "oai", model = "gpt-4.1" }}]

[[models]]
name = "free"
targets = [{{ backend = "oai", model = "local-llama" }}]

[[models]]
name = "cut"
targets = [{{ backend = "oai", model = "gpt-4o-2024-08-06" }}]

[[models]]
name = "sonnet"
targets = [{{ backend = "claude", model = "claude-sonnet-4-20250514" }}]
"#,
        openai.base_url(),
        anthropic.addr()
    )
}

/// The value of `llm_router_cost_usd_total` for these labels, if any.
fn cost_metric(text: &str, model: &str, backend: &str, key: &str) -> Option<f64> {
    let series =
        format!(r#"llm_router_cost_usd_total{{model="{model}",backend="{backend}",key="{key}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map(|v| v.trim().parse().unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_its_cost() {
    let dir = temp_dir("every");
    let (openai, anthropic) = (openai_upstream().await, anthropic_upstream().await);
    let proxy = Proxy::start_with(
        &config(&openai, &anthropic),
        &dir.join("config.toml"),
        |_| None,
    )
    .await;
    let http = client();
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_string();

    // An OpenAI client, pass-through: the header on the answer's head.
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[COST], "0.003");
    let openai_id = id(&r);
    let v = json_of(r).await;
    assert_eq!(
        v["usage"]["prompt_tokens"], 1000,
        "the answer unchanged: {v}"
    );

    // An Anthropic client, pass-through: cache reads and writes priced apart.
    let r = http
        .post(proxy.at("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "sonnet", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[COST], "0.0156");
    let anthropic_id = id(&r);
    let v = json_of(r).await;
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 2000, "{v}");

    // An OpenAI client of the Anthropic backend: translated, same cost (the
    // cache writes cross the translation).
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("sonnet"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[COST], "0.0156");
    let v = json_of(r).await;
    assert_eq!(v["usage"]["prompt_tokens"], 3100, "{v}");
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cache_write_tokens"], 2000,
        "{v}"
    );

    // A model without a price: no header, no cost.
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("free"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(COST).is_none());
    let free_id = id(&r);
    let _ = json_of(r).await;

    // A streamed answer: no header; its cost in the log and the metrics.
    let mut body = stream_body("streamed");
    body["stream_options"] = json!({"include_usage": true});
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(COST).is_none());
    let streamed_id = id(&r);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"prompt_tokens\":2000"), "{text}");

    // A virtual key's spend is labelled with its name.
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(TEAM_KEY)
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[COST], "0.003");

    let metrics = http
        .get(proxy.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Keys are not named by the config: a verified client is "(other)",
    // never its key.
    assert!(!metrics.contains(CLIENT_KEY));
    assert!(!metrics.contains(TEAM_KEY));
    assert!(
        close(
            cost_metric(&metrics, "gpt-4o", "oai", "team-a").unwrap(),
            0.003
        ),
        "{metrics}"
    );
    let at = |model: &str, backend: &str| cost_metric(&metrics, model, backend, "(other)");
    assert!(close(at("gpt-4o", "oai").unwrap(), 0.003), "{metrics}");
    assert!(
        close(at("sonnet", "claude").unwrap(), 2.0 * 0.0156),
        "{metrics}"
    );
    assert!(close(at("streamed", "oai").unwrap(), 0.008), "{metrics}");
    assert_eq!(at("free", "oai"), None, "{metrics}");
    assert!(
        metrics.contains("# TYPE llm_router_cost_usd counter"),
        "{metrics}"
    );

    let mut proxy = proxy;
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let all = records(&dir.join("logs"), false);
    assert_eq!(by_id(&all, &openai_id)["cost_usd"], json!(0.003));
    assert_eq!(by_id(&all, &anthropic_id)["cost_usd"], json!(0.0156));
    assert_eq!(by_id(&all, &streamed_id)["cost_usd"], json!(0.008));
    assert_eq!(by_id(&all, &free_id)["cost_usd"], Value::Null);
    assert_eq!(by_id(&all, &free_id)["tokens_in"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_short_is_charged_what_was_delivered() {
    let dir = temp_dir("cut");
    let (openai, anthropic) = (openai_upstream().await, anthropic_upstream().await);
    let proxy = Proxy::start_with(
        &config(&openai, &anthropic),
        &dir.join("config.toml"),
        |_| None,
    )
    .await;
    let http = client();
    // 400 bytes of text in: 100 tokens.
    let body = json!({"model": "cut", "stream": true,
        "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let r = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cut_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut reader = SseReader::new(r);
    assert!(reader.next_event().await.is_some());
    drop(reader);
    drop(http);
    // The proxy drops the answer's body (recording its cost on the way)
    // before it lets go of the upstream's.
    openai
        .wait_for("the upstream to see its stream closed", |s| {
            s.streams_aborted == 1
        })
        .await;

    let metrics = client()
        .get(proxy.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Nothing reported: 100 tokens in × $2.50 + 40 bytes (10 tokens) out ×
    // $10 per million, at gpt-4o's price (the dated name's family).
    let charged = cost_metric(&metrics, "cut", "oai", "(other)").expect(&metrics);
    assert!(close(charged, 0.00035), "{metrics}");

    let mut proxy = proxy;
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let all = records(&dir.join("logs"), false);
    let r = by_id(&all, &cut_id);
    assert_eq!(
        (&r["tokens_in"], &r["tokens_out"]),
        (&json!(100), &json!(10))
    );
    assert_eq!(r["cost_usd"], json!(0.00035));
    assert_eq!(r["complete"], false);
}
