//! Fast fallback out of the box, and per-model retry: the real proxy on
//! 127.0.0.1:0 with the resilience sections of the shipped config.toml in
//! front of a failing primary and a healthy fallback.
//!
//! Users of the small routers expect a failing primary to hand over at once.
//! With the shipped `[retry] other_targets_first = true` (and without any
//! `[retry]` section), a 500 or a 429 with `Retry-After: 1` is not retried on
//! the primary while the fallback is left: the primary sees exactly one
//! request, and the client's answer does not wait out the one-second backoff
//! or the `Retry-After`. An explicit `[retry]` without the key keeps the
//! contract's retry-the-same-target-first behaviour, and a model's own
//! `retry = { ... }` overrides `[retry]` for its targets.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use support::config::{BackendToml, ModelToml, TestConfig};
use support::{bounded, chat_body, client, MockUpstream, Proxy, Reply};

/// The shipped config.toml up to its first backend: `[server]` (moved to
/// port 0), `[stack]`, `[retry]`, `[circuit_breaker]`, `[failover]` as a
/// user gets them.
fn shipped_resilience() -> String {
    let shipped = llm_router::EXAMPLE_CONFIG;
    let head = shipped
        .find("\n[[backends]]")
        .map_or(shipped, |at| &shipped[..at]);
    head.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
}

/// A primary `a` and a fallback `b` behind model `m`.
fn two_targets(a: &MockUpstream, b: &MockUpstream, model_extra: &str) -> String {
    let mut model = ModelToml::new("m")
        .target("a", "a-model", 1)
        .target("b", "b-model", 2);
    if let Some((key, value)) = model_extra.split_once(" = ") {
        model = model.set(key, value.trim());
    }
    TestConfig::new()
        .backend(BackendToml::openai("a", &a.base_url()))
        .backend(BackendToml::openai("b", &b.base_url()))
        .model(model)
        .toml()
}

fn server_error() -> Value {
    json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": "server_error"}})
}

async fn ask(proxy: &Proxy) -> (StatusCode, Value, Duration) {
    ask_for(proxy, "m").await
}

async fn ask_for(proxy: &Proxy, model: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = bounded(
        "the proxy's answer",
        client()
            .post(proxy.at("/v1/chat/completions"))
            .json(&chat_body(model))
            .send(),
    )
    .await
    .expect("request failed");
    let status = response.status();
    let body: Value = bounded("the answer body", response.json())
        .await
        .expect("JSON answer");
    (status, body, started.elapsed())
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_falls_back_at_once_on_a_500() {
    let a = MockUpstream::start(
        "a",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let proxy = Proxy::start(&(shipped_resilience() + &two_targets(&a, &b, ""))).await;

    let (status, answer, took) = ask(&proxy).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(content(&answer), "from b");
    assert_eq!(a.requests().len(), 1, "the primary is not retried first");
    assert_eq!(b.requests().len(), 1);
    // The shipped backoff would wait at least 1 s before a retry.
    assert!(
        took < Duration::from_secs(1),
        "fallback took {took:?} (no backoff expected)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_falls_back_at_once_on_a_429_with_retry_after() {
    let a = MockUpstream::start(
        "a",
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "1".to_string())],
            json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}),
        ),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let proxy = Proxy::start(&(shipped_resilience() + &two_targets(&a, &b, ""))).await;

    let (status, answer, took) = ask(&proxy).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(content(&answer), "from b");
    assert_eq!(a.requests().len(), 1, "Retry-After is not waited for");
    assert!(took < Duration::from_secs(1), "fallback took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_retry_section_the_fallback_also_comes_first_and_the_last_target_is_retried() {
    let a = MockUpstream::start(
        "a",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
    )
    .await;
    let b = MockUpstream::failing_once(
        "b",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
    )
    .await;
    // No [retry]: defaults, with other_targets_first on; the model shortens
    // the backoff so the last target's retry is quick.
    let config = TestConfig::new()
        .stack(&["failover", "circuit_breaker", "retry"])
        .toml()
        + &two_targets(
            &a,
            &b,
            "retry = { initial_delay = \"10ms\", jitter = false }",
        );
    let proxy = Proxy::start(&config).await;

    let (status, answer, _) = ask(&proxy).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(content(&answer), "from b");
    assert_eq!(a.requests().len(), 1, "the primary is left at once");
    assert_eq!(b.requests().len(), 2, "the last target left is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_retry_section_retries_the_same_target_first() {
    let a = MockUpstream::failing_once(
        "a",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        "[stack]\norder = [\"failover\", \"circuit_breaker\", \"retry\"]\n\n".to_string(),
        "[retry]\nmax_retries = 2\ninitial_delay = \"10ms\"\njitter = false\n\n".to_string(),
        two_targets(&a, &b, ""),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;

    let (status, answer, _) = ask(&proxy).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(content(&answer), "from a", "cured by a retry on a");
    assert_eq!(a.requests().len(), 2);
    assert!(b.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_retry_overrides_the_retry_section() {
    let failing = || async {
        MockUpstream::start(
            "a",
            Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
        )
        .await
    };
    let (a, other) = (failing().await, failing().await);
    let config = TestConfig::new()
        .stack(&["failover", "retry"])
        .section(
            "retry",
            &[
                ("max_retries", "3"),
                ("initial_delay", "\"1ms\""),
                ("jitter", "false"),
            ],
        )
        .backend(BackendToml::openai("a", &a.base_url()))
        .backend(BackendToml::openai("o", &other.base_url()))
        .model(
            ModelToml::new("m")
                .passthrough_target("a")
                .set("retry", "{ max_retries = 1 }"),
        )
        .model(ModelToml::new("n").passthrough_target("o"))
        .toml();
    let proxy = Proxy::start(&config).await;

    let (status, _, _) = ask(&proxy).await;
    assert_eq!(status, 500);
    assert_eq!(a.requests().len(), 2, "the model's max_retries = 1");

    let (status, _, _) = ask_for(&proxy, "n").await;
    assert_eq!(status, 500);
    assert_eq!(other.requests().len(), 4, "[retry] max_retries = 3");
}

/// The typed test config renders what the proxy reads.
#[test]
fn the_test_config_builder_renders_every_section() {
    let text = TestConfig::new()
        .server("port", "0")
        .stack(&["failover", "retry"])
        .section("retry", &[("max_retries", "0")])
        .backend(BackendToml::openai("a", "http://127.0.0.1:1/v1").set("timeout", "\"2s\""))
        .backend(BackendToml::mock("local"))
        .model(
            ModelToml::new("m")
                .target("a", "x", 1)
                .passthrough_target("local"),
        )
        .toml();
    let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(parsed["stack"]["order"][1].as_str(), Some("retry"));
    assert_eq!(parsed["backends"][0]["timeout"].as_str(), Some("2s"));
    assert_eq!(parsed["backends"][1]["provider"].as_str(), Some("mock"));
    assert_eq!(
        parsed["models"][0]["targets"][0]["priority"].as_integer(),
        Some(1)
    );
    assert_eq!(parsed["retry"]["max_retries"].as_integer(), Some(0));
}
