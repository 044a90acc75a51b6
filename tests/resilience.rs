//! Fault injection against the resilience layers: the real proxy on
//! 127.0.0.1:0 in front of mock upstreams that rate-limit, fail, reset, hang,
//! stall and cut their streams. Each test checks what the client got (a
//! complete answer or a contract error in OpenAI format, never a truncated
//! stream that looks complete), how many calls each upstream saw, and the
//! timing where it is part of the contract.
//!
//! Delays are configured small (tens to hundreds of milliseconds); timing
//! assertions are exact lower bounds (nothing may happen before its backoff,
//! `Retry-After`, `open_for` or timeout) with generous upper bounds.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use support::{
    assert_openai_error, bounded, chat_body, chunk, client, json_of, openai_backend, role_chunk,
    sse_body, sse_event, stream_body, usage_chunk, Gate, MockUpstream, Proxy, Reply, ResetUpstream,
    SseReader, Step, BOUND, DONE,
};

// ---------------------------------------------------------------------------
// Helpers

/// The resilience layers only, in their default order (no client rate limit:
/// the default one would count these requests).
const STACK: &str = "[stack]\norder = [\"failover\", \"circuit_breaker\", \"retry\"]\n\n";

/// The same with the client rate limit in front.
const STACK_WITH_LIMITS: &str =
    "[stack]\norder = [\"rate_limit\", \"failover\", \"circuit_breaker\", \"retry\"]\n\n";

/// `[retry]` without jitter, so backoffs are exact.
fn retry(max_retries: u32, initial_delay: &str) -> String {
    format!(
        "[retry]\nmax_retries = {max_retries}\ninitial_delay = \"{initial_delay}\"\n\
         backoff_factor = 2.0\nmax_delay = \"5s\"\njitter = false\n\n"
    )
}

/// A model whose targets are `(backend, upstream model, priority)`.
fn model_with(name: &str, targets: &[(&str, &str, u32)], extra: &str) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(backend, model, priority)| {
            format!("{{ backend = \"{backend}\", model = \"{model}\", priority = {priority} }}")
        })
        .collect();
    format!(
        "[[models]]\nname = \"{name}\"\ntargets = [{}]\n{extra}\n",
        list.join(", ")
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    bounded("the proxy's answer", http.post(url).json(body).send())
        .await
        .expect("request failed")
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = bounded("the admin answer", http.get(url).send())
        .await
        .expect("request failed");
    assert_eq!(response.status(), 200, "GET {url}");
    json_of(response).await
}

/// The `content` of a chat answer (asserting it is a 200 chat completion).
async fn content_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {answer}"))
        .to_string()
}

/// Every event of a streamed answer (panics on a transport error).
async fn events_of(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut reader = SseReader::new(response);
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().await {
        out.push(event);
    }
    out
}

/// The OpenAI error carried by an SSE error event; returns its code.
fn error_event_code(event: &str) -> String {
    let data = event
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("not a data event: {event:?}"))
        .trim_end();
    let value: Value =
        serde_json::from_str(data).unwrap_or_else(|e| panic!("not JSON ({e}): {data}"));
    assert_openai_error(&value)
}

/// The `/router/health` entry of one target (`backend/model`).
fn target_entry<'a>(health: &'a Value, key: &str) -> &'a Value {
    health["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["target"] == key)
        .unwrap_or_else(|| panic!("no target {key} in {health}"))
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

fn openai_error(kind: &str, code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn rate_limit_error() -> Value {
    openai_error(
        "rate_limit_error",
        "rate_limit_exceeded",
        "Rate limit reached for requests",
    )
}

fn server_error() -> Value {
    openai_error("server_error", "server_error", "The server had an error")
}

fn assert_within(what: &str, elapsed: Duration, at_least: Duration, at_most: Duration) {
    assert!(
        elapsed >= at_least,
        "{what}: after {elapsed:?}, before {at_least:?}"
    );
    assert!(
        elapsed <= at_most,
        "{what}: only after {elapsed:?} (bound {at_most:?})"
    );
}

// 1. 429 with Retry-After

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_for_within_max_delay_and_not_beyond() {
    // `a` answers its first request with a 429 and Retry-After: 1.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = MockUpstream::with_handler("a", move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::JsonWith(
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "1".into())],
                rate_limit_error(),
            )
        } else {
            Reply::Chat
        }
    })
    .await;
    // `long` asks for two minutes, more than max_delay (5s).
    let long = MockUpstream::start(
        "long",
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "120".into())],
            rate_limit_error(),
        ),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("long", &long.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("a", "a-model", 1)], ""),
        model_with("duo", &[("long", "long-model", 1), ("b", "b-model", 2)], ""),
        // initial_delay far from Retry-After, so the wait is the upstream's.
        retry(3, "50ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let started = Instant::now();
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(content_of(response).await, "from a");
    let elapsed = started.elapsed();
    let arrivals = a.arrivals();
    assert_eq!(arrivals.len(), 2, "one 429, one retry");
    assert_within(
        "the retry after Retry-After: 1",
        arrivals[1] - arrivals[0],
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    assert!(elapsed >= Duration::from_secs(1));

    // A 429 a retry cured starts no cooldown; the breaker saw no failure.
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(health["cooldowns"], json!([]), "{health}");
    let entry = target_entry(&health, "a/a-model");
    assert_eq!(entry["circuit"], "closed");
    assert_eq!(entry["consecutive_failures"], 0);
    assert_eq!(entry["cooldown_remaining_secs"], Value::Null);

    // Retry-After beyond max_delay: not waited for; the target cools down for
    // that long and the next target answers at once.
    let started = Instant::now();
    let response = post(&http, &url, &chat_body("duo")).await;
    assert_eq!(content_of(response).await, "from b");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?} for a Retry-After beyond max_delay",
        started.elapsed()
    );
    assert_eq!(long.requests().len(), 1, "no retry past max_delay");
    let health = get_json(&http, &proxy.at("/router/health")).await;
    let cooldown = target_entry(&health, "long/long-model")["cooldown_remaining_secs"]
        .as_f64()
        .expect("a cooldown");
    assert!((110.0..=120.0).contains(&cooldown), "cooldown {cooldown}");

    // While it cools down, requests go straight to the next target.
    let response = post(&http, &url, &chat_body("duo")).await;
    assert_eq!(content_of(response).await, "from b");
    assert_eq!(long.requests().len(), 1);
    assert_eq!(b.requests().len(), 2);
}

// 2. 429 without Retry-After: backoff, failover, cooldown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_target_is_backed_off_then_cools_down() {
    let limited = || Reply::Json(StatusCode::TOO_MANY_REQUESTS, rate_limit_error());
    let solo = MockUpstream::start("solo", limited()).await;
    let flaky = MockUpstream::start("flaky", limited()).await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("solo", &solo.base_url(), ""),
        openai_backend("flaky", &flaky.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("one", &[("solo", "solo-model", 1)], ""),
        model_with(
            "two",
            &[("flaky", "flaky-model", 1), ("b", "b-model", 2)],
            "",
        ),
        retry(3, "50ms"),
        "[failover]\ncooldown = \"30s\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // One target: 1 + max_retries calls, spaced by 50, 100, 200 ms; then the
    // upstream's own 429 comes back as it came.
    let started = Instant::now();
    let response = post(&http, &url, &chat_body("one")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(json_of(response).await, rate_limit_error());
    let arrivals = solo.arrivals();
    assert_eq!(arrivals.len(), 4, "1 + max_retries calls");
    for (i, backoff) in [50, 100, 200].into_iter().enumerate() {
        assert_within(
            &format!("retry {}", i + 1),
            arrivals[i + 1] - arrivals[i],
            ms(backoff),
            ms(backoff + 2000),
        );
    }
    assert_within(
        "the final 429",
        started.elapsed(),
        ms(350),
        Duration::from_secs(5),
    );

    // Given up on: it cools down for `cooldown` (a 429 is not a breaker failure).
    let health = get_json(&http, &proxy.at("/router/health")).await;
    let entry = target_entry(&health, "solo/solo-model");
    let left = entry["cooldown_remaining_secs"].as_f64().expect("cooldown");
    assert!((25.0..=30.0).contains(&left), "cooldown {left}");
    assert_eq!(entry["circuit"], "closed");
    assert_eq!(entry["consecutive_failures"], 0);
    assert!(
        health["cooldowns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["target"] == "solo/solo-model"),
        "{health}"
    );

    // Nothing else to try, only skipped for its cooldown: 429 with
    // Retry-After, the upstream not called.
    let response = post(&http, &url, &chat_body("one")).await;
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    assert!((25..=30).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "rate_limit_exceeded"
    );
    assert_eq!(solo.requests().len(), 4);

    // Two targets: backed off on the first, then failed over to the second.
    let started = Instant::now();
    let response = post(&http, &url, &chat_body("two")).await;
    assert_eq!(content_of(response).await, "from b");
    assert!(started.elapsed() >= ms(350));
    assert_eq!(flaky.requests().len(), 4);
    assert_eq!(b.requests().len(), 1);

    // The first now cools down: the next request goes straight to the second.
    let started = Instant::now();
    let response = post(&http, &url, &chat_body("two")).await;
    assert_eq!(content_of(response).await, "from b");
    assert!(started.elapsed() < ms(350), "{:?}", started.elapsed());
    assert_eq!(flaky.requests().len(), 4);
    assert_eq!(b.requests().len(), 2);
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert!(target_entry(&health, "flaky/flaky-model")["cooldown_remaining_secs"].is_f64());
    assert_eq!(
        target_entry(&health, "b/b-model")["cooldown_remaining_secs"],
        Value::Null
    );
}

// 3. 500 once, then 200

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_once_is_retried_on_the_same_target() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = MockUpstream::with_handler("a", move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error())
        } else {
            Reply::Chat
        }
    })
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("a", "a-model", 1), ("b", "b-model", 2)], ""),
        retry(3, "100ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = post(&http, &proxy.at("/v1/chat/completions"), &chat_body("m")).await;
    assert_eq!(content_of(response).await, "from a");
    let arrivals = a.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert_within("the retry", arrivals[1] - arrivals[0], ms(100), ms(2100));
    assert!(b.requests().is_empty(), "no failover for a cured error");
    let sent = a.requests();
    assert_eq!(
        sent[0].body, sent[1].body,
        "the retry replays the same request"
    );
    assert_eq!(sent[1].json()["model"], "a-model");
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(
        target_entry(&health, "a/a-model")["consecutive_failures"],
        0
    );
    assert_eq!(target_entry(&health, "a/a-model")["circuit"], "closed");
}

/// With a layer that edits requests below `retry`, each retry goes through it
/// again from `retry`'s own copy: the edit is made once per attempt, never
/// on top of the last one. (In the default order nothing sits below `retry`,
/// and the upstream hands the request back instead of `retry` copying it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_below_an_editing_layer_edits_each_attempt_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = MockUpstream::with_handler("a", move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Json(StatusCode::BAD_GATEWAY, server_error())
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        "[stack]\norder = [\"failover\", \"retry\", \"transform\"]\n\n".to_string(),
        "[[transforms]]\nname = \"x\"\ntype = \"regex_replace\"\npattern = \"hello\"\n\
         replacement = \"hello hello\"\non = \"request\"\n\n"
            .to_string(),
        openai_backend("a", &a.base_url(), ""),
        model_with("m", &[("a", "a-model", 1)], ""),
        retry(2, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    let response = post(&http, &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(content_of(response).await, "from a");
    let sent = a.requests();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(request.json()["messages"][0]["content"], "hello hello");
    }
}

// 4. 503 forever

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_target_fails_over_or_its_503_comes_back() {
    let unavailable = openai_error("server_error", "overloaded", "The engine is overloaded");
    let a = MockUpstream::start(
        "a",
        Reply::Json(StatusCode::SERVICE_UNAVAILABLE, unavailable.clone()),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("two", &[("a", "a-two", 1), ("b", "b-model", 2)], ""),
        model_with("one", &[("a", "a-one", 1)], ""),
        retry(2, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let started = Instant::now();
    let response = post(&http, &url, &chat_body("two")).await;
    assert_eq!(content_of(response).await, "from b");
    assert!(started.elapsed() >= ms(60), "backoffs 20 + 40 ms");
    assert_eq!(a.requests().len(), 3, "1 + max_retries on the first target");
    assert_eq!(b.requests().len(), 1);

    let started = Instant::now();
    let response = post(&http, &url, &chat_body("one")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        json_of(response).await,
        unavailable,
        "the upstream's own 503"
    );
    assert!(started.elapsed() >= ms(60));
    assert_eq!(a.requests().len(), 6);
    assert_eq!(b.requests().len(), 1);

    // Each failed attempt (retries included) counts for its circuit: a
    // retry below the breaker goes through it.
    let health = get_json(&http, &proxy.at("/router/health")).await;
    for key in ["a/a-two", "a/a-one"] {
        assert_eq!(
            target_entry(&health, key)["consecutive_failures"],
            3,
            "{key}"
        );
        assert_eq!(target_entry(&health, key)["circuit"], "closed", "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_with_a_long_retry_after_cools_the_target_down() {
    // Down for maintenance for two minutes: longer than max_delay (5s).
    let a = MockUpstream::start(
        "a",
        Reply::JsonWith(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "120".into())],
            openai_error("server_error", "maintenance", "Down for maintenance"),
        ),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("a", "a-model", 1), ("b", "b-model", 2)], ""),
        retry(3, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // Not waited for (nor retried): the next target answers at once...
    let started = Instant::now();
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from b"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(a.requests().len(), 1);
    // ...and the target cools down for its Retry-After.
    let health = get_json(&http, &proxy.at("/router/health")).await;
    let left = target_entry(&health, "a/a-model")["cooldown_remaining_secs"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cooldown in {health}"));
    assert!((110.0..=120.0).contains(&left), "cooldown {left}");
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from b"
    );
    assert_eq!(
        a.requests().len(),
        1,
        "called again while it asked to be left alone"
    );
}

// 5. Connection reset before the response head

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_is_retried_then_fails_over_or_is_502() {
    let reset = ResetUpstream::start().await;
    let b = MockUpstream::with_handler("b", |req| {
        if req.json()["stream"] == true {
            Reply::Sse {
                count: 2,
                interval: ms(1),
                hold_before: None,
                cut_after: None,
            }
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("reset", &reset.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("two", &[("reset", "r-model", 1), ("b", "b-model", 2)], ""),
        model_with("one", &[("reset", "r-model", 1)], ""),
        retry(2, "20ms"),
        // Each reset counts for the circuit: keep it closed for this test.
        "[circuit_breaker]\nfailure_threshold = 100\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post(&http, &url, &chat_body("two")).await;
    assert_eq!(content_of(response).await, "from b");
    assert_eq!(
        reset.wait_for_resets(3).await,
        3,
        "retried, then failed over"
    );
    assert_eq!(b.requests().len(), 1);

    // Streamed too: the head never came, so failover is invisible.
    let events = events_of(post(&http, &url, &stream_body("two")).await).await;
    assert_eq!(events.concat(), sse_body("b-model", 2));
    assert_eq!(reset.wait_for_resets(6).await, 6);

    let response = post(&http, &url, &chat_body("one")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "upstream_connection_error"
    );
    assert_eq!(reset.wait_for_resets(9).await, 9);
    assert_eq!(b.requests().len(), 2);
}

// 6. No answer at all

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_fails_over_at_once_but_is_retried_when_alone() {
    // Two targets: a timeout is not retried on the same target; the next
    // target is tried at once (a retry would wait initial_delay = 1s first).
    let hang = MockUpstream::start("hang", Reply::Hang).await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("hang", &hang.base_url(), "timeout = \"200ms\""),
        openai_backend("b", &b.base_url(), ""),
        model_with("two", &[("hang", "h-model", 1), ("b", "b-model", 2)], ""),
        retry(2, "1s"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let started = Instant::now();
    let response = post(&http, &proxy.at("/v1/chat/completions"), &chat_body("two")).await;
    assert_eq!(content_of(response).await, "from b");
    assert_within(
        "failover after the timeout",
        started.elapsed(),
        ms(200),
        ms(1000),
    );
    assert_eq!(
        hang.requests().len(),
        1,
        "a timeout is not retried while others are left"
    );
    assert_eq!(b.requests().len(), 1);

    // One target: retried (it is the last one), then 504.
    let hang = MockUpstream::start("hang", Reply::Hang).await;
    let config = [
        STACK.to_string(),
        openai_backend("hang", &hang.base_url(), "timeout = \"200ms\""),
        model_with("one", &[("hang", "h-model", 1)], ""),
        retry(2, "50ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let started = Instant::now();
    let response = post(&http, &proxy.at("/v1/chat/completions"), &chat_body("one")).await;
    assert_eq!(response.status(), 504);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "upstream_timeout"
    );
    // 3 × 200 ms of timeouts + 50 + 100 ms of backoff.
    assert_within(
        "the 504",
        started.elapsed(),
        ms(750),
        Duration::from_secs(5),
    );
    assert_eq!(hang.requests().len(), 3);
}

// 7. Slow first token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_first_token_fails_over_invisibly() {
    // `slow` sends its role preamble at once, then nothing for 5 s.
    let slow = MockUpstream::start(
        "slow",
        Reply::Script(vec![
            Step::Send(role_chunk("slow-model")),
            Step::Wait(Duration::from_secs(5)),
            Step::Send(chunk("slow-model", "late", None)),
            Step::Send(chunk("slow-model", "", Some("stop"))),
            Step::Send(DONE.into()),
        ]),
    )
    .await;
    let b = MockUpstream::start(
        "b",
        Reply::Sse {
            count: 3,
            interval: ms(10),
            hold_before: None,
            cut_after: None,
        },
    )
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("slow", &slow.base_url(), "first_byte_timeout = \"250ms\""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("slow", "slow-model", 1), ("b", "b-model", 2)], ""),
        retry(2, "1s"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();

    let started = Instant::now();
    let response = post(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    let events = events_of(response).await;
    assert_eq!(
        events.concat(),
        sse_body("b-model", 3),
        "the client must get b's stream whole and nothing of slow's"
    );
    assert_within(
        "the failover",
        started.elapsed(),
        ms(250),
        Duration::from_secs(2),
    );
    assert_eq!(
        slow.requests().len(),
        1,
        "a first-byte timeout is not retried"
    );
    assert_eq!(b.requests().len(), 1);
    // The abandoned upstream stream is closed, not left running.
    slow.wait_for("the slow stream to be closed", |s| s.streams_aborted == 1)
        .await;
    b.wait_for("b's stream to complete", |s| s.streams_completed == 1)
        .await;
    // A first-byte timeout is a breaker failure.
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(
        target_entry(&health, "slow/slow-model")["consecutive_failures"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_event_before_content_is_retried_then_fails_over_invisibly() {
    let broken = MockUpstream::start(
        "broken",
        Reply::Script(vec![
            Step::Send(role_chunk("broken-model")),
            Step::Send(support::data(&openai_error(
                "server_error",
                "overloaded",
                "The engine is currently overloaded",
            ))),
        ]),
    )
    .await;
    let b = MockUpstream::start(
        "b",
        Reply::Sse {
            count: 2,
            interval: ms(1),
            hold_before: None,
            cut_after: None,
        },
    )
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("broken", &broken.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with(
            "m",
            &[("broken", "broken-model", 1), ("b", "b-model", 2)],
            "",
        ),
        model_with("alone", &[("broken", "broken-model", 1)], ""),
        retry(1, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // Broken before its first content: retried like a connection error, then
    // failed over; the client sees only b's stream.
    let events = events_of(post(&http, &url, &stream_body("m")).await).await;
    assert_eq!(events.concat(), sse_body("b-model", 2));
    assert_eq!(broken.requests().len(), 2);
    assert_eq!(b.requests().len(), 1);

    // Alone: a 502 in the client's format, not a 200 with a broken stream.
    let response = post(&http, &url, &stream_body("alone")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "upstream_stream_error"
    );
    assert_eq!(broken.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_retried_when_the_other_targets_cannot_be_tried() {
    let hang = MockUpstream::start("hang", Reply::Hang).await;
    let b = MockUpstream::start(
        "b",
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "30".into())],
            rate_limit_error(),
        ),
    )
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("hang", &hang.base_url(), "timeout = \"200ms\""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("hang", "h-model", 1), ("b", "b-model", 2)], ""),
        // The same target as m's second one: its 429 cools b/b-model down.
        model_with("b-only", &[("b", "b-model", 1)], ""),
        retry(2, "50ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post(&http, &url, &chat_body("b-only")).await;
    assert_eq!(response.status(), 429);
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert!(target_entry(&health, "b/b-model")["cooldown_remaining_secs"].is_f64());

    // m's only other target is cooling down: none is left, so the timeout
    // is retried on the first one (as for a single target), then 504.
    let started = Instant::now();
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(response.status(), 504);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "upstream_timeout"
    );
    assert_within(
        "the 504",
        started.elapsed(),
        ms(750),
        Duration::from_secs(5),
    );
    assert_eq!(hang.requests().len(), 3);
    assert_eq!(b.requests().len(), 1);
}

// 8. Stream cut after it started

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cut_after_content_ends_with_an_error_event_without_failover() {
    let a = MockUpstream::start(
        "a",
        Reply::Sse {
            count: 10,
            interval: ms(5),
            hold_before: None,
            cut_after: Some(3),
        },
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("a", "a-model", 1), ("b", "b-model", 2)], ""),
        retry(2, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = post(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    let events = events_of(response).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        events[..3].concat(),
        (0..3).map(|i| sse_event("a-model", i)).collect::<String>()
    );
    assert_eq!(error_event_code(&events[3]), "upstream_stream_interrupted");
    assert!(!events.concat().contains("[DONE]"));
    // Committed: no retry, no failover (the client already has a's events).
    assert_eq!(a.requests().len(), 1);
    assert!(b.requests().is_empty());
}

// 9. Stream stalls after it started

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_ends_with_an_error_event_after_idle_timeout() {
    let a = MockUpstream::start(
        "a",
        Reply::Script(vec![
            Step::Send(chunk("a-model", "Hello", None)),
            Step::Stall,
        ]),
    )
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), "idle_timeout = \"200ms\""),
        openai_backend("b", &b.base_url(), ""),
        model_with("m", &[("a", "a-model", 1), ("b", "b-model", 2)], ""),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();

    let started = Instant::now();
    let response = post(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    let events = events_of(response).await;
    let elapsed = started.elapsed();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], chunk("a-model", "Hello", None));
    assert_eq!(error_event_code(&events[1]), "upstream_idle_timeout");
    assert_within("the idle timeout", elapsed, ms(200), Duration::from_secs(3));
    assert!(b.requests().is_empty());
    a.wait_for("the stalled upstream stream to be closed", |s| {
        s.streams_aborted == 1
    })
    .await;
}

// 10 + 11. Malformed events, missing [DONE]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_endings_are_repaired_or_flagged() {
    let up = MockUpstream::with_handler("up", |req| {
        let m = req.model();
        Reply::Script(match m.as_str() {
            "malformed" => vec![
                Step::Send(chunk(&m, "one ", None)),
                Step::Send("data: {\"choices\": [oops\n\n".into()),
                Step::Send("data: not json at all\n\n".into()),
                Step::Send(chunk(&m, "two", None)),
                Step::Send(chunk(&m, "", Some("stop"))),
                Step::Send(DONE.into()),
            ],
            "finished" => vec![
                Step::Send(chunk(&m, "all", None)),
                Step::Send(chunk(&m, "", Some("stop"))),
            ],
            _ => vec![
                Step::Send(chunk(&m, "half", None)),
                Step::Send(chunk(&m, " of it", None)),
            ],
        })
    })
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("*", &[("up", "*", 1)], ""),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // Malformed events are skipped; the rest arrives, [DONE] included.
    let events = events_of(post(&http, &url, &stream_body("malformed")).await).await;
    assert_eq!(
        events,
        [
            chunk("malformed", "one ", None),
            chunk("malformed", "two", None),
            chunk("malformed", "", Some("stop")),
            DONE.to_string(),
        ]
    );

    // Finished (finish_reason) but no [DONE]: the proxy adds it.
    let events = events_of(post(&http, &url, &stream_body("finished")).await).await;
    assert_eq!(
        events,
        [
            chunk("finished", "all", None),
            chunk("finished", "", Some("stop")),
            DONE.to_string(),
        ]
    );

    // Neither [DONE] nor a finish_reason: incomplete, flagged with an error event.
    let events = events_of(post(&http, &url, &stream_body("unfinished")).await).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], chunk("unfinished", "half", None));
    assert_eq!(events[1], chunk("unfinished", " of it", None));
    assert_eq!(error_event_code(&events[2]), "upstream_stream_incomplete");
    assert_eq!(up.requests().len(), 3, "nothing was retried");
}

// 12. Context length exceeded

fn context_exceeded() -> Value {
    json!({"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_length_exceeded_goes_to_the_context_fallback_only() {
    let small = MockUpstream::start(
        "small",
        Reply::Json(StatusCode::BAD_REQUEST, context_exceeded()),
    )
    .await;
    let other = MockUpstream::start("other", Reply::Chat).await;
    let long = MockUpstream::start("long", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("small", &small.base_url(), ""),
        openai_backend("other", &other.base_url(), ""),
        openai_backend("long", &long.base_url(), ""),
        model_with(
            "gpt-4",
            &[("small", "small-8k", 1), ("other", "other-8k", 2)],
            "context_fallback = \"gpt-4-long\"",
        ),
        model_with("gpt-4-long", &[("long", "long-128k", 1)], ""),
        model_with(
            "plain",
            &[("small", "small-8k", 1), ("other", "other-8k", 2)],
            "",
        ),
        retry(3, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // With a context fallback: the fallback model answers; not retried, and
    // the model's other target is not tried.
    let response = post(&http, &url, &chat_body("gpt-4")).await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "from long");
    assert_eq!(answer["model"], "long-128k");
    assert_eq!(small.requests().len(), 1);
    assert_eq!(long.only_request().model(), "long-128k");
    assert!(other.requests().is_empty());

    // Without one: the 400 comes back as it came, not retried, no failover.
    let response = post(&http, &url, &chat_body("plain")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await, context_exceeded());
    assert_eq!(small.requests().len(), 2);
    assert!(other.requests().is_empty());
    assert_eq!(long.requests().len(), 1);

    // A client error is not a breaker failure.
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(
        target_entry(&health, "small/small-8k")["consecutive_failures"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_fallback_without_target_model_asks_for_the_fallback_name() {
    let small = MockUpstream::start(
        "small",
        Reply::Json(StatusCode::BAD_REQUEST, context_exceeded()),
    )
    .await;
    let long = MockUpstream::start("long", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("small", &small.base_url(), ""),
        openai_backend("long", &long.base_url(), ""),
        model_with(
            "gpt-4",
            &[("small", "gpt-4", 1)],
            "context_fallback = \"gpt-4-32k\"",
        ),
        // No target model: the model's own name goes upstream.
        "[[models]]\nname = \"gpt-4-32k\"\ntargets = [{ backend = \"long\" }]\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = post(
        &http,
        &proxy.at("/v1/chat/completions"),
        &chat_body("gpt-4"),
    )
    .await;
    let answer = json_of(response).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "from long");
    assert_eq!(
        long.only_request().model(),
        "gpt-4-32k",
        "the fallback was asked for the model that did not fit"
    );
    assert_eq!(answer["model"], "gpt-4-32k");
    assert_eq!(small.requests().len(), 1);
}

// 13. Other 4xx: returned as they came

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_policy_and_other_client_errors_are_returned_as_they_came() {
    let policy = openai_error(
        "invalid_request_error",
        "content_policy_violation",
        "Your request was rejected as a result of our safety system.",
    );
    let unauthorized = openai_error(
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided",
    );
    let (p, u) = (policy.clone(), unauthorized.clone());
    let a = MockUpstream::with_handler("a", move |req| match req.model().as_str() {
        "a-policy" => Reply::Json(StatusCode::BAD_REQUEST, p.clone()),
        _ => Reply::Json(StatusCode::UNAUTHORIZED, u.clone()),
    })
    .await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model_with("policy", &[("a", "a-policy", 1), ("b", "b-model", 2)], ""),
        model_with("auth", &[("a", "a-auth", 1), ("b", "b-model", 2)], ""),
        retry(3, "20ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post(&http, &url, &chat_body("policy")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await, policy);
    let response = post(&http, &url, &stream_body("policy")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await, policy);
    let response = post(&http, &url, &chat_body("auth")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json_of(response).await, unauthorized);

    assert_eq!(a.requests().len(), 3, "never retried");
    assert!(b.requests().is_empty(), "never failed over");
}

// 14. A primary down for a while, then back

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_serves_the_fallback_then_probes_and_recovers() {
    const OPEN_FOR: Duration = Duration::from_millis(500);
    let down = Arc::new(AtomicBool::new(true));
    let d = down.clone();
    let primary = MockUpstream::with_handler("primary", move |_| {
        if d.load(Ordering::SeqCst) {
            Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error())
        } else {
            Reply::Chat
        }
    })
    .await;
    let fallback = MockUpstream::start("fallback", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("primary", &primary.base_url(), ""),
        openai_backend("fallback", &fallback.base_url(), ""),
        model_with("m", &[("primary", "p", 1), ("fallback", "f", 2)], ""),
        "[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"500ms\"\nhalf_open_requests = 1\n\n"
            .to_string(),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let health_url = proxy.at("/router/health");
    let (h, u) = (&http, &url);
    let ask = move || async move { content_of(post(h, u, &chat_body("m")).await).await };

    // Two failures: each request is served by the fallback; the second opens the circuit.
    assert_eq!(ask().await, "from fallback");
    let health = get_json(&http, &health_url).await;
    assert_eq!(target_entry(&health, "primary/p")["circuit"], "closed");
    assert_eq!(
        target_entry(&health, "primary/p")["consecutive_failures"],
        1
    );
    let before_open = Instant::now();
    assert_eq!(ask().await, "from fallback");
    let opened_by = Instant::now();
    assert_eq!(primary.requests().len(), 2);
    let health = get_json(&http, &health_url).await;
    let entry = target_entry(&health, "primary/p");
    assert_eq!(entry["circuit"], "open", "{health}");
    assert_eq!(entry["consecutive_failures"], 2);
    let circuit = health["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "primary/p")
        .expect("the primary's circuit");
    let retry_in = circuit["retry_in_secs"].as_f64().expect("retry_in_secs");
    assert!(
        retry_in > 0.0 && retry_in <= 0.5,
        "retry_in_secs {retry_in}"
    );

    // While open, the primary is not called at all.
    for _ in 0..3 {
        assert_eq!(ask().await, "from fallback");
    }
    assert!(
        before_open.elapsed() < OPEN_FOR,
        "the machine is too slow for this test's open_for"
    );
    assert_eq!(primary.requests().len(), 2);

    // After open_for, one probe goes to the primary; still down, it re-opens.
    tokio::time::sleep_until((opened_by + OPEN_FOR).into()).await;
    assert_eq!(ask().await, "from fallback");
    let reopened_by = Instant::now();
    assert_eq!(primary.requests().len(), 3, "one probe");
    let health = get_json(&http, &health_url).await;
    assert_eq!(target_entry(&health, "primary/p")["circuit"], "open");
    assert_eq!(ask().await, "from fallback");
    assert_eq!(primary.requests().len(), 3);

    // The primary recovers: the next probe succeeds and traffic is back on it.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep_until((reopened_by + OPEN_FOR).into()).await;
    assert_eq!(ask().await, "from primary");
    let health = get_json(&http, &health_url).await;
    assert_eq!(target_entry(&health, "primary/p")["circuit"], "closed");
    assert_eq!(
        target_entry(&health, "primary/p")["consecutive_failures"],
        0
    );
    for _ in 0..2 {
        assert_eq!(ask().await, "from primary");
    }
    assert_eq!(primary.requests().len(), 6);
    assert_eq!(fallback.requests().len(), 7);
}

// 15. Nothing can be tried

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_open_is_503_and_every_target_cooling_down_is_429_with_retry_after() {
    // Circuits: both targets fail once (threshold 1) -> both open.
    let down = Arc::new(AtomicBool::new(true));
    let failing = |name: &'static str, down: Arc<AtomicBool>| {
        MockUpstream::with_handler(name, move |_| {
            if down.load(Ordering::SeqCst) {
                Reply::Json(
                    StatusCode::BAD_GATEWAY,
                    openai_error("server_error", "bad_gateway", name),
                )
            } else {
                Reply::Chat
            }
        })
    };
    let a = failing("a", down.clone()).await;
    let b = failing("b", down.clone()).await;
    // Cooldowns: both answer 429 with a Retry-After beyond max_delay.
    let limited = || {
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "30".into())],
            rate_limit_error(),
        )
    };
    let c = MockUpstream::start("c", limited()).await;
    let d = MockUpstream::start("d", limited()).await;
    let config = [
        STACK.to_string(),
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        openai_backend("c", &c.base_url(), ""),
        openai_backend("d", &d.base_url(), ""),
        model_with("ab", &[("a", "a-model", 1), ("b", "b-model", 2)], ""),
        model_with("cd", &[("c", "c-model", 1), ("d", "d-model", 2)], ""),
        "[circuit_breaker]\nfailure_threshold = 1\nopen_for = \"300ms\"\n\n".to_string(),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // Every target failed: the last failure comes back (b's own 502).
    let response = post(&http, &url, &chat_body("ab")).await;
    let opened_by = Instant::now();
    assert_eq!(response.status(), 502);
    assert_eq!(json_of(response).await["error"]["message"], "b");
    // Both circuits open: nothing is tried.
    let response = post(&http, &url, &chat_body("ab")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(retry_after(&response), 1, "300 ms, rounded up");
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "no_target_available"
    );
    assert_eq!((a.requests().len(), b.requests().len()), (1, 1));
    // Once open_for has passed, a probe goes through again.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep_until((opened_by + ms(300)).into()).await;
    let response = post(&http, &url, &chat_body("ab")).await;
    assert_eq!(content_of(response).await, "from a");

    // Both cooling down after 429s: the last 429 comes back, then the
    // proxy's own 429 (every target skipped for a rate limit: contract).
    let response = post(&http, &url, &chat_body("cd")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(json_of(response).await, rate_limit_error());
    let response = post(&http, &url, &stream_body("cd")).await;
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    assert!((29..=30).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "rate_limit_exceeded"
    );
    assert_eq!((c.requests().len(), d.requests().len()), (1, 1));
}

// 16. Client rate limits

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_limit_answers_429_with_retry_after() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\nrequests = 3\nwindow = \"60s\"\nkey = \"api_key\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let send = |key: &'static str| {
        let request = http.post(&url).bearer_auth(key).json(&chat_body("m"));
        async move {
            bounded("the proxy's answer", request.send())
                .await
                .expect("request failed")
        }
    };

    for remaining in [2, 1, 0] {
        let response = send("client-one").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), "3");
        assert_eq!(
            header(&response, "x-ratelimit-remaining"),
            remaining.to_string()
        );
        let reset: u64 = header(&response, "x-ratelimit-reset").parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        content_of(response).await;
    }
    let response = send("client-one").await;
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    // Room again when this key's window (started by its first request,
    // moments ago) ends: never later than the window.
    assert!((59..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(header(&response, "x-ratelimit-reset"), wait.to_string());
    assert_eq!(header(&response, "x-ratelimit-limit"), "3");
    assert_eq!(header(&response, "x-ratelimit-remaining"), "0");
    let body = json_of(response).await;
    assert_eq!(assert_openai_error(&body), "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(up.requests().len(), 3, "the rejected request never left");

    // Another client has its own budget.
    let response = send("client-two").await;
    assert_eq!(header(&response, "x-ratelimit-remaining"), "2");
    assert_eq!(content_of(response).await, "from up");

    let limits = get_json(&http, &proxy.at("/router/rate-limits")).await;
    let requests = limits["clients"]["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 2, "{limits}");
    let mut remaining: Vec<u64> = requests
        .iter()
        .map(|v| v["remaining"].as_u64().unwrap())
        .collect();
    remaining.sort();
    assert_eq!(remaining, [0, 2]);
    for v in requests {
        assert_eq!(v["limit"], 3);
        let key = v["key"].as_str().unwrap();
        assert!(
            !key.contains("client-one") && !key.contains("client-two"),
            "unmasked key {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_concurrency_limit_holds_for_the_whole_stream() {
    let up = MockUpstream::with_handler("up", |req| {
        if req.json()["stream"] == true {
            Reply::Sse {
                count: 4,
                interval: ms(1),
                hold_before: Some(2),
                cut_after: None,
            }
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\nconcurrency = 1\nkey = \"global\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post(&http, &url, &stream_body("m")).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next_event().await.unwrap(), sse_event("up-model", 0));

    // The stream is held open upstream: a second request is over the limit.
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(response.status(), 429);
    assert!(retry_after(&response) >= 1);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "rate_limit_exceeded"
    );
    assert_eq!(up.requests().len(), 1);

    // Once the stream has ended, the slot is free again.
    up.release();
    let rest = reader.rest().await;
    assert!(rest.ends_with(DONE), "{rest}");
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(content_of(response).await, "from up");
    assert_eq!(up.requests().len(), 2);

    // A client that goes away mid-stream frees its slot too.
    let response = post(&http, &url, &stream_body("m")).await;
    let mut reader = SseReader::new(response);
    reader.next_event().await.unwrap();
    drop(reader);
    up.wait_for("the abandoned stream to close", |s| s.streams_aborted == 1)
        .await;
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(content_of(response).await, "from up");
    assert_eq!(up.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budget_counts_json_and_streamed_usage() {
    let up = MockUpstream::with_handler("up", |req| {
        let body = req.json();
        if body["stream"] == true {
            let m = req.model();
            let mut steps = vec![
                Step::Send(role_chunk(&m)),
                Step::Send(chunk(&m, "counted", None)),
                Step::Send(chunk(&m, "", Some("stop"))),
            ];
            // Like OpenAI: the usage chunk only when asked for.
            if body["stream_options"]["include_usage"] == true {
                steps.push(Step::Send(usage_chunk(&m, 4, 6)));
            }
            steps.push(Step::Send(DONE.into()));
            Reply::Script(steps)
        } else {
            Reply::Chat // usage: 3 tokens
        }
    })
    .await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\ntokens = 2\nwindow = \"60s\"\nkey = \"api_key\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let send = |key: &'static str, body: Value| {
        let request = http.post(&url).bearer_auth(key).json(&body);
        async move {
            bounded("the proxy's answer", request.send())
                .await
                .expect("request failed")
        }
    };

    // JSON: the first answer (3 tokens) uses up the budget of 2.
    assert_eq!(
        content_of(send("json-client", chat_body("m")).await).await,
        "from up"
    );
    let response = send("json-client", chat_body("m")).await;
    assert_eq!(response.status(), 429);
    assert!(retry_after(&response) >= 1);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "rate_limit_exceeded"
    );
    assert_eq!(up.requests().len(), 1);

    // Streamed, the client did not ask for usage: the proxy asks for it and
    // keeps the usage-only chunk from the client.
    let events = events_of(send("stream-client", stream_body("m")).await).await;
    assert_eq!(
        events,
        [
            role_chunk("up-model"),
            chunk("up-model", "counted", None),
            chunk("up-model", "", Some("stop")),
            DONE.to_string(),
        ]
    );
    let sent = up.requests().pop().unwrap().json();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    let response = send("stream-client", stream_body("m")).await;
    assert_eq!(response.status(), 429, "the streamed usage was counted");
    assert_eq!(up.requests().len(), 2);

    // A client that asked for usage gets its usage chunk.
    let mut body = stream_body("m");
    body["stream_options"] = json!({"include_usage": true});
    let events = events_of(send("usage-client", body.clone()).await).await;
    assert_eq!(events[3], usage_chunk("up-model", 4, 6));
    assert_eq!(events.len(), 5);
    assert_eq!(send("usage-client", body).await.status(), 429);

    let limits = get_json(&http, &proxy.at("/router/rate-limits")).await;
    let tokens = limits["clients"]["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 3, "{limits}");
    assert!(
        tokens
            .iter()
            .all(|t| t["remaining"] == 0 && t["limit"] == 2),
        "{limits}"
    );
}

// 17. A backend's own rate limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_backend_limit_skips_the_target() {
    let primary = MockUpstream::start("primary", Reply::Chat).await;
    let fallback = MockUpstream::start("fallback", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend(
            "primary",
            &primary.base_url(),
            "rate_limit = { requests = 1, window = \"60s\" }",
        ),
        openai_backend("fallback", &fallback.base_url(), ""),
        model_with("m", &[("primary", "p", 1), ("fallback", "f", 2)], ""),
        model_with("only-primary", &[("primary", "p", 1)], ""),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let limits = get_json(&http, &proxy.at("/router/rate-limits")).await;
    assert_eq!(
        limits["backends"],
        json!([{"key": "primary", "limit": 1, "remaining": 1, "reset_secs": 60.0}])
    );
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from primary"
    );
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fallback"
    );
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fallback"
    );
    assert_eq!(primary.requests().len(), 1);
    assert_eq!(fallback.requests().len(), 2);

    // No other target, skipped for its backend's limit: 429 with
    // Retry-After, nothing sent.
    let response = post(&http, &url, &chat_body("only-primary")).await;
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    // One request per window: room again when the backend's window ends,
    // never later than the window.
    assert!((59..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "rate_limit_exceeded"
    );
    assert_eq!(primary.requests().len(), 1);

    let limits = get_json(&http, &proxy.at("/router/rate-limits")).await;
    let backend = &limits["backends"][0];
    assert_eq!(backend["key"], "primary");
    assert_eq!(backend["remaining"], 0);
}

// 18. The admin views

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_health_and_rate_limits_show_the_state() {
    let broken = MockUpstream::start(
        "broken",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
    )
    .await;
    let limited = MockUpstream::start(
        "limited",
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "90".into())],
            rate_limit_error(),
        ),
    )
    .await;
    let fine = MockUpstream::start("fine", Reply::Chat).await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("broken", &broken.base_url(), ""),
        openai_backend("limited", &limited.base_url(), ""),
        openai_backend(
            "fine",
            &fine.base_url(),
            "rate_limit = { requests = 10, window = \"60s\" }",
        ),
        model_with(
            "m",
            &[("broken", "b", 1), ("limited", "l", 2), ("fine", "f", 3)],
            "",
        ),
        "[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"30s\"\n\n".to_string(),
        "[rate_limit]\nrequests = 5\nwindow = \"60s\"\nkey = \"ip\"\n\n".to_string(),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let health_url = proxy.at("/router/health");

    // Before any traffic: every target closed, no failures, no cooldown.
    let health = get_json(&http, &health_url).await;
    for key in ["broken/b", "limited/l", "fine/f"] {
        let t = target_entry(&health, key);
        assert_eq!(t["model"], "m");
        assert_eq!(t["circuit"], "closed");
        assert_eq!(t["consecutive_failures"], 0);
        assert_eq!(t["cooldown_remaining_secs"], Value::Null);
    }
    assert_eq!(target_entry(&health, "limited/l")["priority"], 2);
    assert_eq!(health["circuit_breaker"]["failure_threshold"], 2);
    assert_eq!(health["circuit_breaker"]["open_for_secs"], 30.0);

    // One request: broken fails (1 failure), limited cools down for 90 s, fine answers.
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fine"
    );
    let health = get_json(&http, &health_url).await;
    assert_eq!(target_entry(&health, "broken/b")["consecutive_failures"], 1);
    assert_eq!(target_entry(&health, "broken/b")["circuit"], "closed");
    let cooldown = target_entry(&health, "limited/l")["cooldown_remaining_secs"]
        .as_f64()
        .expect("a cooldown");
    assert!((80.0..=90.0).contains(&cooldown), "cooldown {cooldown}");
    assert_eq!(health["cooldowns"][0]["target"], "limited/l");

    // A second: broken's circuit opens.
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fine"
    );
    let health = get_json(&http, &health_url).await;
    let t = target_entry(&health, "broken/b");
    assert_eq!(t["circuit"], "open");
    assert_eq!(t["consecutive_failures"], 2);
    let circuit = &health["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "broken/b")
        .expect("broken's circuit")
        .clone();
    assert_eq!(circuit["state"], "open");
    let retry_in = circuit["retry_in_secs"].as_f64().unwrap();
    assert!(
        (20.0..=30.0).contains(&retry_in),
        "retry_in_secs {retry_in}"
    );

    // A third: nothing but fine is tried.
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fine"
    );
    assert_eq!(broken.requests().len(), 2);
    assert_eq!(limited.requests().len(), 1);
    assert_eq!(fine.requests().len(), 3);

    let limits = get_json(&http, &proxy.at("/router/rate-limits")).await;
    let client = &limits["clients"]["requests"][0];
    assert_eq!(client["key"], "ip:127.0.0.1", "{limits}");
    assert_eq!(client["limit"], 5);
    assert_eq!(client["remaining"], 2);
    assert_eq!(limits["clients"]["window_secs"], 60.0);
    let backend = &limits["backends"][0];
    assert_eq!(backend["key"], "fine");
    assert_eq!(backend["limit"], 10);
    assert_eq!(backend["remaining"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_circuit_sends_one_probe_and_a_vanished_probe_frees_it() {
    // 0: fail, 1: stream held before its first event, 2: answer.
    let mode = Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    let primary = MockUpstream::with_handler("primary", move |_| match m.load(Ordering::SeqCst) {
        0 => Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
        1 => Reply::Sse {
            count: 2,
            interval: ms(1),
            hold_before: Some(0),
            cut_after: None,
        },
        _ => Reply::Chat,
    })
    .await;
    let fallback = MockUpstream::start("fallback", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("primary", &primary.base_url(), ""),
        openai_backend("fallback", &fallback.base_url(), ""),
        model_with("m", &[("primary", "p", 1), ("fallback", "f", 2)], ""),
        "[circuit_breaker]\nfailure_threshold = 1\nopen_for = \"300ms\"\nhalf_open_requests = 1\n\n"
            .to_string(),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from fallback"
    );
    let opened_by = Instant::now();
    tokio::time::sleep_until((opened_by + ms(300)).into()).await;

    // The probe: held by the primary before its first content.
    mode.store(1, Ordering::SeqCst);
    let probe_client = client();
    let probe = {
        let request = probe_client.post(&url).json(&stream_body("m"));
        tokio::spawn(async move { request.send().await })
    };
    primary
        .wait_for("the probe to reach the primary", |s| s.requests == 2)
        .await;
    // Meanwhile the circuit is half-open with its one probe in flight:
    // other requests go to the fallback, not to the primary.
    for _ in 0..2 {
        assert_eq!(
            content_of(post(&http, &url, &chat_body("m")).await).await,
            "from fallback"
        );
    }
    assert_eq!(primary.requests().len(), 2);
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(target_entry(&health, "primary/p")["circuit"], "half_open");

    // The probe's client goes away: the proxy drops the probe, freeing its slot.
    probe.abort();
    let _ = probe.await;
    drop(probe_client);
    primary
        .wait_for("the probe's upstream stream to close", |s| {
            s.streams_aborted == 1
        })
        .await;
    mode.store(2, Ordering::SeqCst);
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from primary"
    );
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(target_entry(&health, "primary/p")["circuit"], "closed");
    assert_eq!(primary.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_concurrency_does_not_use_request_quota() {
    let up = MockUpstream::with_handler("up", |req| {
        if req.json()["stream"] == true {
            Reply::Sse {
                count: 3,
                interval: ms(1),
                hold_before: Some(1),
                cut_after: None,
            }
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\nrequests = 2\nconcurrency = 1\nwindow = \"60s\"\nkey = \"global\"\n\n"
            .to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post(&http, &url, &stream_body("m")).await;
    assert_eq!(header(&response, "x-ratelimit-remaining"), "1");
    let mut reader = SseReader::new(response);
    reader.next_event().await.unwrap();
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(response.status(), 429, "over the concurrency limit");
    up.release();
    assert!(reader.rest().await.ends_with(DONE));

    // One request of the two per window was served: one is left.
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(response.status(), 200, "the refused request used up quota");
    assert_eq!(header(&response, "x-ratelimit-remaining"), "0");
    assert_eq!(content_of(response).await, "from up");
    assert_eq!(post(&http, &url, &chat_body("m")).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_waits_its_retry_after_is_served() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\nrequests = 2\nwindow = \"1s\"\nkey = \"global\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    for _ in 0..2 {
        assert_eq!(
            content_of(post(&http, &url, &chat_body("m")).await).await,
            "from up"
        );
    }
    let response = post(&http, &url, &chat_body("m")).await;
    let refused_at = Instant::now();
    assert_eq!(response.status(), 429);
    let wait = Duration::from_secs(retry_after(&response));
    tokio::time::sleep_until((refused_at + wait).into()).await;
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(
        response.status(),
        200,
        "refused again after waiting the Retry-After of {wait:?}"
    );
    assert_eq!(up.requests().len(), 3);
}

// 19. Many concurrent requests against a flapping backend

/// Requests per round of the concurrency test.
const REQUESTS: usize = 200;

#[derive(Debug)]
enum Ending {
    Complete(&'static str),
    ContractError(u16, String),
}

/// Send `REQUESTS` requests at once (every other one streamed) and classify
/// how each ended; panics on a hang, a broken or altered answer.
async fn round(http: &reqwest::Client, url: &str, events: usize) -> Vec<Ending> {
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let http = http.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let stream = i % 2 == 0;
                let body = if stream {
                    stream_body("m")
                } else {
                    chat_body("m")
                };
                let response = http.post(&url).json(&body).send().await.expect("send");
                let status = response.status();
                if status != StatusCode::OK {
                    let body = json_of(response).await;
                    return Ending::ContractError(status.as_u16(), assert_openai_error(&body));
                }
                if stream {
                    let text = events_of(response).await.concat();
                    for (name, model) in [("flappy", "flappy-model"), ("steady", "steady-model")] {
                        if text == sse_body(model, events) {
                            return Ending::Complete(name);
                        }
                    }
                    panic!("request {i}: an incomplete or altered stream: {text:?}");
                }
                match content_of(response).await.as_str() {
                    "from flappy" => Ending::Complete("flappy"),
                    "from steady" => Ending::Complete("steady"),
                    other => panic!("request {i}: unexpected answer {other:?}"),
                }
            })
        })
        .collect();
    let mut endings = Vec::new();
    for task in tasks {
        endings.push(
            bounded("a concurrent request", task)
                .await
                .expect("task panicked"),
        );
    }
    endings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_against_a_flapping_backend_all_end_cleanly() {
    const EVENTS: usize = 5;
    // Each upstream counts the streams it starts, to check they all end.
    let stream_reply = || Reply::Sse {
        count: EVENTS,
        interval: ms(2),
        hold_before: None,
        cut_after: None,
    };
    let flap_calls = Arc::new(AtomicUsize::new(0));
    let flap_streams = Arc::new(AtomicUsize::new(0));
    let (calls, streams) = (flap_calls.clone(), flap_streams.clone());
    let flappy = MockUpstream::with_handler("flappy", move |req| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        match n % 4 {
            0 => Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, server_error()),
            2 => Reply::Close,
            _ if req.json()["stream"] == true => {
                streams.fetch_add(1, Ordering::SeqCst);
                stream_reply()
            }
            _ => Reply::Chat,
        }
    })
    .await;
    let steady_streams = Arc::new(AtomicUsize::new(0));
    let streams = steady_streams.clone();
    let steady = MockUpstream::with_handler("steady", move |req| {
        if req.json()["stream"] == true {
            streams.fetch_add(1, Ordering::SeqCst);
            stream_reply()
        } else {
            Reply::Chat
        }
    })
    .await;
    // Streams held open until the gate opens, to count free slots.
    let gate = Gate::default();
    let holder = MockUpstream::start(
        "holder",
        Reply::Script(vec![
            Step::Send(chunk("held-model", "held", None)),
            Step::Gate(gate.clone()),
            Step::Send(chunk("held-model", "", Some("stop"))),
            Step::Send(DONE.into()),
        ]),
    )
    .await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("flappy", &flappy.base_url(), ""),
        openai_backend("steady", &steady.base_url(), ""),
        openai_backend("holder", &holder.base_url(), ""),
        model_with("held", &[("holder", "held-model", 1)], ""),
        // Equal priority: both take a share of first attempts.
        model_with(
            "m",
            &[("flappy", "flappy-model", 1), ("steady", "steady-model", 1)],
            "",
        ),
        "[circuit_breaker]\nfailure_threshold = 3\nopen_for = \"100ms\"\n\n".to_string(),
        // Exactly as many slots as requests: a leaked slot shows below.
        format!("[rate_limit]\nconcurrency = {REQUESTS}\nkey = \"global\"\n\n"),
        retry(1, "5ms"),
    ]
    .concat();
    let mut proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let started = Instant::now();
    let endings = round(&http, &url, EVENTS).await;
    let errors: Vec<String> = endings
        .iter()
        .filter_map(|e| match e {
            Ending::ContractError(status, code) => Some(format!("{status} {code}")),
            Ending::Complete(_) => None,
        })
        .collect();
    // The steady backend is always there to fail over to: no request fails.
    assert!(
        errors.is_empty(),
        "{} requests failed: {errors:?}",
        errors.len()
    );
    let from_steady = endings
        .iter()
        .filter(|e| matches!(e, Ending::Complete("steady")))
        .count();
    assert!(
        from_steady > 0 && from_steady < REQUESTS,
        "answered by steady: {from_steady}"
    );
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());

    // No concurrency slot leaked: exactly REQUESTS streams can be held open
    // at once now, and one more is refused.
    let held: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let request = http.post(&url).json(&stream_body("held"));
            tokio::spawn(async move {
                let response = request.send().await.expect("send");
                assert_eq!(response.status(), 200, "a slot leaked");
                let mut reader = SseReader::new(response);
                let first = reader.next_event().await.expect("the first event");
                (first, reader)
            })
        })
        .collect();
    let mut readers = Vec::new();
    for task in held {
        let (first, reader) = bounded("a held stream", task).await.expect("task panicked");
        assert_eq!(first, chunk("held-model", "held", None));
        readers.push(reader);
    }
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(response.status(), 429, "the concurrency limit is not live");
    json_of(response).await;
    gate.open();
    for mut reader in readers {
        let rest = reader.rest().await;
        assert_eq!(rest, chunk("held-model", "", Some("stop")) + DONE);
    }

    // Every upstream stream ran to its end; nothing was left running.
    let issued = flap_streams.load(Ordering::SeqCst);
    flappy
        .wait_for("flappy's streams to complete", |s| {
            s.streams_completed == issued
        })
        .await;
    let issued = steady_streams.load(Ordering::SeqCst);
    steady
        .wait_for("steady's streams to complete", |s| {
            s.streams_completed == issued
        })
        .await;
    holder
        .wait_for("the held streams to complete", |s| {
            s.streams_completed == REQUESTS
        })
        .await;
    for up in [&flappy, &steady, &holder] {
        assert_eq!(up.stats().streams_aborted, 0);
    }

    // A graceful shutdown finishes (no connection left hanging), and then
    // every upstream connection is closed.
    drop(http);
    proxy.trigger_shutdown();
    proxy.join().await.expect("server ended with an error");
    for up in [&flappy, &steady, &holder] {
        up.wait_for("every upstream connection to close", |s| {
            s.connections_closed == s.connections_opened
        })
        .await;
    }
}

// 20. Correct windows, circuit discipline and tenant isolation (issue 15)

/// Regression (issue 15): with a 2 s window the 429 said `Retry-After: 3`.
/// Over HTTP, for a short window: the 429's `Retry-After` and
/// `x-ratelimit-reset` are within the window, and a client that waits them
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_within_a_short_window_and_kept() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = [
        STACK_WITH_LIMITS.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        "[rate_limit]\nrequests = 3\nwindow = \"2s\"\nkey = \"global\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    for _ in 0..3 {
        assert_eq!(
            content_of(post(&http, &url, &chat_body("m")).await).await,
            "from up"
        );
    }
    let response = post(&http, &url, &chat_body("m")).await;
    let refused_at = Instant::now();
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let reset: u64 = header(&response, "x-ratelimit-reset").parse().unwrap();
    assert!(reset <= 2, "x-ratelimit-reset {reset}");
    tokio::time::sleep_until((refused_at + Duration::from_secs(wait)).into()).await;
    let response = post(&http, &url, &chat_body("m")).await;
    assert_eq!(
        response.status(),
        200,
        "refused again after waiting the Retry-After of {wait} s"
    );
    assert_eq!(up.requests().len(), 4);
}

/// A window that is not whole seconds is a config error (Retry-After
/// counts seconds and must never exceed the window).
#[test]
fn rate_limit_windows_are_whole_seconds() {
    let base = "[[backends]]\nname = \"b\"\nprovider = \"mock\"\n\n[[models]]\nname = \"m\"\ntargets = [{ backend = \"b\" }]\n\n";
    for (section, key) in [
        (
            "[rate_limit]\nrequests = 3\nwindow = \"500ms\"\n",
            "rate_limit.window",
        ),
        (
            "[rate_limit]\nrequests = 3\nwindow = \"1500ms\"\n",
            "rate_limit.window",
        ),
    ] {
        let e = llm_router::config::Config::parse(
            &format!("{base}{section}"),
            std::path::Path::new("c.toml"),
            &|_| None,
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains("whole number of seconds"), "{e}");
    }
    let e = llm_router::config::Config::parse(
        "[[backends]]\nname = \"b\"\nprovider = \"mock\"\nrate_limit = { requests = 1, window = \"100ms\" }\n",
        std::path::Path::new("c.toml"),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        e.key.as_deref(),
        Some("backends[0].rate_limit.window"),
        "{e}"
    );
}

/// An in-process resilience stack (failover, circuit breaker, retry — the
/// default order) over a mock upstream service, for paused-time tests: no
/// sockets, so the paused clock moves only when every task waits on it.
mod in_process {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Request, Response, StatusCode};
    use llm_router::__private::classify::Outcome;
    use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers, CircuitBreakerLayer};
    use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
    use llm_router::layers::retry::{RetryLayer, RetryPolicy};
    use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
    use llm_router::upstream::provider::mock::Mock;
    use llm_router::{Endpoint, LlmRequest};
    use llm_router::{ProxyBody, ProxyError};
    use tower::{Layer, ServiceExt};

    pub type Stack =
        tower::util::BoxCloneSyncService<Request<ProxyBody>, Response<ProxyBody>, ProxyError>;

    fn target(backend: &str, model: &str, priority: u32) -> Target {
        let backend = Backend::builder(backend, Arc::new(Mock)).build().unwrap();
        Target::new(Arc::new(backend), Some(model)).priority(priority)
    }

    /// Model `m`: `primary` (priority 1), then `fallback`. The upstream
    /// answers `primary` with `primary_status()` and `fallback` with 200;
    /// each call is counted per backend.
    pub fn stack(
        breaker: BreakerPolicy,
        retry: RetryPolicy,
        primary_status: impl Fn() -> StatusCode + Send + Sync + 'static,
    ) -> (Stack, Arc<Breakers>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let table = RouteTable::new(vec![ModelRoute::new(
            "m",
            vec![target("primary", "p", 1), target("fallback", "f", 2)],
        )]);
        let (to_primary, to_fallback) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (p, f) = (to_primary.clone(), to_fallback.clone());
        let primary_status = Arc::new(primary_status);
        // The upstream edge: one service per target, as the split point makes them.
        let upstream = move |target: Target| {
            let (p, f, primary_status) = (p.clone(), f.clone(), primary_status.clone());
            tower::service_fn(move |_req: Request<ProxyBody>| {
                let status = if target.backend().name() == "primary" {
                    p.fetch_add(1, Ordering::SeqCst);
                    primary_status()
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                };
                async move {
                    let mut response = Response::new(ProxyBody::empty());
                    *response.status_mut() = status;
                    Ok::<_, ProxyError>(response)
                }
            })
        };
        let breakers = Arc::new(Breakers::new(breaker));
        let service = FailoverLayer::new(
            Arc::new(table),
            FailoverPolicy::default(),
            Arc::new(Cooldowns::default()),
        )
        .layer(
            CircuitBreakerLayer::new(breakers.clone())
                .layer(RetryLayer::new(retry).layer(upstream)),
        );
        (
            tower::util::BoxCloneSyncService::new(service),
            breakers,
            to_primary,
            to_fallback,
        )
    }

    /// One chat request for model `m`, as the stack above the split sees it.
    pub fn request() -> Request<ProxyBody> {
        let llm = LlmRequest::parse(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(llm);
        req
    }

    /// Send one request; its outcome.
    pub async fn send(stack: Stack) -> Outcome {
        Outcome::of(&stack.oneshot(request()).await)
    }
}

/// Regression (issue 15): during a flapping primary (503 for 6 s,
/// failure_threshold 2, open_for 2 s, a request every 0.5 s, the default
/// retry policy below the breaker) 8 of the 12 requests reached the failing
/// primary: retries below the breaker kept hitting it while the circuit was
/// (about to be) open. Only the two failures that open the circuit and one
/// half-open probe per `open_for` may reach it.
#[tokio::test(start_paused = true)]
async fn a_flapping_primary_sees_only_the_opening_failures_and_the_probes() {
    use llm_router::__private::classify::Outcome;
    use llm_router::layers::circuit_breaker::BreakerPolicy;
    use llm_router::layers::retry::RetryPolicy;

    for jitter in [false, true] {
        let base = tokio::time::Instant::now();
        let down_until = base + Duration::from_secs(6);
        let (stack, breakers, to_primary, to_fallback) = in_process::stack(
            BreakerPolicy {
                failure_threshold: 2,
                open_for: Duration::from_secs(2),
                half_open_requests: 1,
            },
            RetryPolicy::default().jitter(jitter),
            move || {
                if tokio::time::Instant::now() < down_until {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            },
        );
        let mut requests = Vec::new();
        for i in 0..12u32 {
            tokio::time::sleep_until(base + Duration::from_millis(500) * i).await;
            requests.push(tokio::spawn(in_process::send(stack.clone())));
        }
        for request in requests {
            assert_eq!(request.await.unwrap(), Outcome::Success);
        }
        // t = 0 and 0.5 s open the circuit (until 2.5 s); the probes at
        // 2.5 s and 4.5 s fail and re-open it; nothing else got through.
        assert_eq!(
            to_primary.load(Ordering::SeqCst),
            4,
            "calls reaching the failing primary (jitter {jitter})"
        );
        assert_eq!(to_fallback.load(Ordering::SeqCst), 12);
        assert!(breakers.is_open("primary/p"));

        // After the outage, the next probe (at 6.5 s) closes the circuit.
        tokio::time::sleep_until(base + Duration::from_millis(6500)).await;
        assert_eq!(in_process::send(stack.clone()).await, Outcome::Success);
        assert_eq!(to_primary.load(Ordering::SeqCst), 5);
        assert_eq!(to_fallback.load(Ordering::SeqCst), 12);
        assert!(!breakers.is_open("primary/p"));
        assert!(breakers.snapshot().iter().all(|c| c.state == "closed"));
    }
}

/// While a half-open probe is in flight, concurrent requests are not sent
/// to the target, and a failed probe is not retried: it re-opens the
/// circuit for `open_for`.
#[tokio::test(start_paused = true)]
async fn a_probe_is_alone_and_never_retried() {
    use llm_router::__private::classify::Outcome;
    use llm_router::layers::circuit_breaker::BreakerPolicy;
    use llm_router::layers::retry::RetryPolicy;

    let (stack, breakers, to_primary, _) = in_process::stack(
        BreakerPolicy {
            failure_threshold: 1,
            open_for: Duration::from_secs(2),
            half_open_requests: 1,
        },
        RetryPolicy::default()
            .jitter(false)
            .initial_delay(Duration::from_millis(100)),
        || StatusCode::BAD_GATEWAY,
    );
    // The first failure opens the circuit at once: not retried either.
    assert_eq!(in_process::send(stack.clone()).await, Outcome::Success);
    assert_eq!(to_primary.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    // Five requests at once: one probe, not retried; the others go to the fallback.
    let all = (0..5).map(|_| in_process::send(stack.clone()));
    for outcome in futures_util::future::join_all(all).await {
        assert_eq!(outcome, Outcome::Success);
    }
    assert_eq!(to_primary.load(Ordering::SeqCst), 2);
    let open = breakers.open_circuits();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1, Duration::from_secs(2), "re-opened for open_for");
}

/// Regression (issue 15): with `api_key = "passthrough"`, one tenant's own
/// 429 cooled the shared target down for every tenant. Cooldowns (and
/// circuits) are kept per client credential, hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_tenants_429_cools_the_target_down_for_that_tenant_only() {
    const A: &str = "sk-tenant-a-0000000001";
    const B: &str = "sk-tenant-b-0000000002";
    let up = MockUpstream::with_handler("up", |req| {
        if req.header("authorization") == Some(&format!("Bearer {A}")) {
            Reply::JsonWith(
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "30".to_string())],
                rate_limit_error(),
            )
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        "[stack]\norder = [\"auth\", \"failover\", \"circuit_breaker\", \"retry\"]\n\n".to_string(),
        format!("[auth]\nkeys = [\"{A}\", \"{B}\"]\nadmin_keys = [\"admin-key-000000009\"]\n\n"),
        openai_backend("up", &up.base_url(), "api_key = \"passthrough\""),
        model_with("m", &[("up", "up-model", 1)], ""),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let send = |key: &'static str| {
        let request = http.post(&url).bearer_auth(key).json(&chat_body("m"));
        async move {
            bounded("the proxy's answer", request.send())
                .await
                .expect("request failed")
        }
    };

    assert_eq!(send(A).await.status(), 429);
    assert_eq!(up.requests().len(), 1);
    // Tenant A sits out its own Retry-After (its only target is skipped) ...
    let status = send(A).await.status().as_u16();
    assert!(matches!(status, 429 | 503), "{status}");
    assert_eq!(up.requests().len(), 1, "tenant A's cooldown holds for A");
    // ... tenant B is not affected.
    for _ in 0..2 {
        assert_eq!(content_of(send(B).await).await, "from up");
    }
    assert_eq!(up.requests().len(), 3);

    // The cooldown is kept under a hash of A's key, never the key itself.
    let health = bounded(
        "the admin answer",
        http.get(proxy.at("/router/health"))
            .bearer_auth("admin-key-000000009")
            .send(),
    )
    .await
    .expect("request failed");
    assert_eq!(health.status(), 200);
    let health = json_of(health).await;
    let cooldowns = health["cooldowns"].as_array().expect("cooldowns");
    assert_eq!(cooldowns.len(), 1, "{health}");
    let key = cooldowns[0]["target"].as_str().unwrap();
    assert!(key.starts_with("up/up-model#"), "{key}");
    assert!(!health.to_string().contains("tenant"), "{health}");
}

/// Regression (issue 15): an upstream's Retry-After was capped only at
/// 1e9 s (31 years). `[failover] max_cooldown` caps every cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cooldown_outlasts_max_cooldown() {
    let up = MockUpstream::with_handler("up", |req| {
        if req.json()["messages"][0]["content"] == "limit me" {
            Reply::JsonWith(
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "999999999".to_string())],
                rate_limit_error(),
            )
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = [
        STACK.to_string(),
        openai_backend("up", &up.base_url(), ""),
        model_with("m", &[("up", "up-model", 1)], ""),
        retry(0, "10ms"),
        "[failover]\nmax_cooldown = \"1s\"\n\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let limited = json!({"model": "m", "messages": [{"role": "user", "content": "limit me"}]});
    let response = post(&http, &url, &limited).await;
    let cooled_at = Instant::now();
    assert_eq!(response.status(), 429);
    let health = get_json(&http, &proxy.at("/router/health")).await;
    let left = target_entry(&health, "up/up-model")["cooldown_remaining_secs"]
        .as_f64()
        .expect("a cooldown");
    assert!(left > 0.0 && left <= 1.0, "cooldown of {left} s");
    let response = post(&http, &url, &chat_body("m")).await;
    let status = response.status().as_u16();
    assert!(matches!(status, 429 | 503), "still cooling down: {status}");
    assert_eq!(retry_after(&response), 1);
    assert_eq!(up.requests().len(), 1);
    tokio::time::sleep_until((cooled_at + Duration::from_secs(1)).into()).await;
    assert_eq!(
        content_of(post(&http, &url, &chat_body("m")).await).await,
        "from up"
    );
}

/// Regression (issue 15): a `*` route kept one circuit entry per
/// client-chosen model name forever. Answers that succeed leave nothing
/// behind (and the tables are capped, see the unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_model_names_leave_no_state_behind() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = [
        STACK.to_string(),
        openai_backend("up", &up.base_url(), ""),
        "[[models]]\nname = \"*\"\ntargets = [{ backend = \"up\" }]\n\n".to_string(),
        retry(0, "10ms"),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    for i in 0..200 {
        let response = post(&http, &url, &chat_body(&format!("any-model-{i}"))).await;
        assert_eq!(content_of(response).await, "from up");
    }
    let health = get_json(&http, &proxy.at("/router/health")).await;
    assert_eq!(health["circuits"], json!([]), "{health}");
    assert_eq!(health["cooldowns"], json!([]), "{health}");
}
