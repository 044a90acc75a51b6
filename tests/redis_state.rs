//! `[state] store = "redis"`: two in-process proxies sharing one real
//! `redis-server` (started per test on a free loopback port) behave as two
//! replicas of one proxy — client limits, backend cooldowns and circuits are
//! shared — and keep serving on local state while Redis is away.
//!
//! Propagation is awaited on explicit conditions (`/health`,
//! `/router/health`, a key in Redis), each bounded by `support::BOUND`; nothing
//! sleeps for luck. They need `redis-server` on PATH: without it (see
//! `build.rs`) they are reported as ignored, with the reason; CI installs it
//! and sets `LLM_ROUTER_REQUIRE_REDIS=1`, which makes its absence a build
//! error there.

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use redis_server::RedisServer;
use support::{bounded, chat_body, client, model, openai_backend, MockUpstream, Proxy, Reply};

// ---------------------------------------------------------------------------
// Helpers

/// The resilience layers with the client limit in front, no retry (so each
/// failure is one upstream call).
const STACK: &str = "[stack]\norder = [\"rate_limit\", \"failover\", \"circuit_breaker\"]\n\n";

fn state(redis: &RedisServer, prefix: &str) -> String {
    format!(
        "[state]\nstore = \"redis\"\nredis_url = \"{}\"\nprefix = \"{prefix}\"\ntimeout = \"100ms\"\n\n",
        redis.url()
    )
}

fn limit(requests: u64, extra: &str) -> String {
    format!("[rate_limit]\nrequests = {requests}\nwindow = \"60s\"\nkey = \"api_key\"\n{extra}\n")
}

/// A model whose targets are `(backend, upstream model, priority)`.
fn model_with(name: &str, targets: &[(&str, &str, u32)]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(b, m, p)| format!("{{ backend = \"{b}\", model = \"{m}\", priority = {p} }}"))
        .collect();
    format!(
        "[[models]]\nname = \"{name}\"\ntargets = [{}]\n\n",
        list.join(", ")
    )
}

async fn chat(http: &reqwest::Client, proxy: &Proxy, model: &str, key: &str) -> reqwest::Response {
    bounded(
        "the proxy's answer",
        http.post(proxy.at("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model))
            .send(),
    )
    .await
    .expect("request failed")
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = bounded("a GET answer", http.get(url).send())
        .await
        .expect("request failed");
    assert_eq!(response.status(), 200, "GET {url}");
    bounded("a GET body", response.json())
        .await
        .expect("JSON body")
}

/// Wait (bounded) until `cond` holds of the JSON at `path`; returns it.
async fn wait_json(
    http: &reqwest::Client,
    proxy: &Proxy,
    path: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    bounded(what, async {
        loop {
            let v = get_json(http, &proxy.at(path)).await;
            if cond(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn wait_store(http: &reqwest::Client, proxy: &Proxy, want: &str) {
    wait_json(
        http,
        proxy,
        "/health",
        &format!("state_store {want}"),
        |h| h["state_store"] == want,
    )
    .await;
}

/// The `/router/health` entry of one target (`backend/model`).
fn target<'a>(health: &'a Value, key: &str) -> &'a Value {
    health["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["target"] == key)
        .unwrap_or_else(|| panic!("no target {key} in {health}"))
}

/// Send `n` requests as `key`, alternating between the replicas; the
/// statuses in order.
async fn alternate(http: &reqwest::Client, replicas: [&Proxy; 2], n: usize, key: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            chat(http, replicas[i % 2], "m", key)
                .await
                .status()
                .as_u16(),
        );
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// A synchronous connection to the test's Redis, to look at what the
/// proxies wrote.
fn redis_conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .expect("redis url")
        .get_connection()
        .expect("connect to the test's redis")
}

fn keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis_conn(redis))
        .expect("KEYS");
    keys.sort();
    keys
}

// Everything the proxies log goes here (one subscriber for the whole test
// binary); tests pick their own lines by their Redis port.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(sink.clone()))
            .try_init()
            .expect("install the log capture");
        buf
    });
}

/// Log lines of `level` that mention this Redis and contain `text`.
fn log_lines(redis: &RedisServer, level: &str, text: &str) -> Vec<String> {
    let logs = LOGS.get().expect("capture_logs() first").lock().unwrap();
    let port = format!("127.0.0.1:{}", redis.port());
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(level) && l.contains(text) && l.contains(&port))
        .map(str::to_string)
        .collect()
}

const UNAVAILABLE: &str = "Redis state store unavailable";

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_client_limit_of_n_allows_exactly_n_across_two_replicas() {
    let redis = RedisServer::start();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(5, ""),
        state(&redis, "shared-limit"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    // Alternating between the replicas, the remaining count goes down
    // across both, and the sixth request (on either) is refused.
    let mut remaining = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let response = chat(&http, replica, "m", "sk-client-one-0001").await;
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::OK {
            remaining.push(
                response.headers()["x-ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            assert_eq!(response.status(), 429);
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // When a sixth fits: when the key's window (started by its
            // first request, moments ago) ends — never later than 60 s.
            assert!(
                (58..=60).contains(&retry_after),
                "Retry-After {retry_after}"
            );
        }
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(count(&statuses, 429), 7, "{statuses:?}");
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    assert_eq!(up.stats().requests, 5);

    // Another client has a budget of its own, and the count is atomic:
    // 20 requests at once, 10 on each replica, and exactly 5 get through.
    let burst = (0..20).map(|i| {
        let http = http.clone();
        let url = if i % 2 == 0 {
            a.at("/v1/chat/completions")
        } else {
            b.at("/v1/chat/completions")
        };
        async move {
            let response = http
                .post(url)
                .bearer_auth("sk-client-two-0002")
                .json(&chat_body("m"))
                .send()
                .await
                .expect("request failed");
            response.status().as_u16()
        }
    });
    let statuses = bounded("the burst", futures_util::future::join_all(burst)).await;
    assert_eq!(count(&statuses, 200), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    assert_eq!(up.stats().requests, 10);

    // Keys are namespaced, carry no raw key, and expire with their window
    // (but the budget epoch, which tells Redis that lost its data apart).
    let all = keys(&redis, "*");
    assert!(!all.is_empty());
    let mut conn = redis_conn(&redis);
    for key in &all {
        assert!(key.starts_with("shared-limit:"), "{key}");
        assert!(
            !key.contains("sk-client"),
            "a raw client key in Redis: {key}"
        );
        if key == "shared-limit:budget:epoch" {
            continue;
        }
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{key} expires in {ttl} ms");
    }

    // The memory store (the default) says nothing about a state store.
    let memory = Proxy::start(
        &[
            openai_backend("up", &up.base_url(), ""),
            model("m", "up", None),
        ]
        .concat(),
    )
    .await;
    let health = get_json(&http, &memory.at("/health")).await;
    assert!(health.get("state_store").is_none(), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_token_budget_used_on_one_replica_counts_on_the_other() {
    let redis = RedisServer::start();
    // Every answer reports 3 tokens.
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(100, "tokens = 3\n"),
        state(&redis, "shared-tokens"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    let response = chat(&http, &a, "m", "sk-token-client-0001").await;
    assert_eq!(response.status(), 200);
    let _ = bounded("the body", response.bytes()).await.unwrap();
    // The usage is counted in Redis once the answer ended (in the background).
    bounded("the tokens to reach Redis", async {
        loop {
            let found = keys(&redis, "shared-tokens:limit:client:*:tokens");
            if let Some(key) = found.first() {
                let used: Option<u64> = redis::cmd("HGET")
                    .arg(key)
                    .arg("c")
                    .query(&mut redis_conn(&redis))
                    .unwrap();
                if used == Some(3) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let refused = chat(&http, &b, "m", "sk-token-client-0001").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token budget"),
        "{body}"
    );
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_backend_that_answered_429_on_one_replica_is_skipped_by_the_other() {
    let redis = RedisServer::start();
    let limited = MockUpstream::start(
        "limited",
        Reply::JsonWith(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "30".into())],
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
        ),
    )
    .await;
    let spare = MockUpstream::start("spare", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(1000, ""),
        state(&redis, "shared-cooldown"),
        openai_backend("limited", &limited.base_url(), ""),
        openai_backend("spare", &spare.base_url(), ""),
        model_with("m", &[("limited", "m1", 1), ("spare", "m2", 2)]),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    // Replica A: the 429 starts the cooldown, the spare answers.
    let answer: Value = chat(&http, &a, "m", "sk-x").await.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "from spare");
    assert_eq!(limited.stats().requests, 1);

    // Replica B learns it (pub/sub) ...
    let health = wait_json(&http, &b, "/router/health", "B to see the cooldown", |h| {
        target(h, "limited/m1")["cooldown_remaining_secs"].is_number()
    })
    .await;
    let left = target(&health, "limited/m1")["cooldown_remaining_secs"]
        .as_f64()
        .unwrap();
    assert!(left > 25.0 && left <= 30.0, "{left}");
    assert_eq!(
        keys(&redis, "shared-cooldown:cooldown:*"),
        ["shared-cooldown:cooldown:limited/m1"]
    );

    // ... and skips the target without calling it.
    for _ in 0..3 {
        let answer: Value = chat(&http, &b, "m", "sk-x").await.json().await.unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "from spare");
    }
    assert_eq!(limited.stats().requests, 1);
    assert_eq!(spare.stats().requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_circuit_opened_on_one_replica_is_open_on_the_other_and_closes_there_too() {
    let redis = RedisServer::start();
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let flaky = MockUpstream::with_handler("flaky", move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"message": "boom", "type": "server_error", "code": "server_error"}}),
            )
        } else {
            Reply::Chat
        }
    })
    .await;
    let spare = MockUpstream::start("spare", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(1000, ""),
        state(&redis, "shared-circuit"),
        "[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"2s\"\nhalf_open_requests = 1\n\n"
            .to_string(),
        openai_backend("flaky", &flaky.base_url(), ""),
        openai_backend("spare", &spare.base_url(), ""),
        model_with("m", &[("flaky", "m1", 1), ("spare", "m2", 2)]),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    // Two failures on A open its circuit (each request fails over).
    for _ in 0..2 {
        let answer: Value = chat(&http, &a, "m", "sk-x").await.json().await.unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "from spare");
    }
    assert_eq!(flaky.stats().requests, 2);
    let opened = Instant::now();
    let health = get_json(&http, &a.at("/router/health")).await;
    assert_eq!(target(&health, "flaky/m1")["circuit"], "open");

    // B sees it open (it never called the target itself) and skips it.
    wait_json(
        &http,
        &b,
        "/router/health",
        "B to see the open circuit",
        |h| target(h, "flaky/m1")["circuit"] == "open",
    )
    .await;
    let answer: Value = chat(&http, &b, "m", "sk-x").await.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "from spare");
    assert_eq!(flaky.stats().requests, 2);
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "too slow to test the open circuit"
    );

    // The target recovers; once A's open period is over, A's probe closes
    // the circuit, and B closes it too without probing.
    failing.store(false, Ordering::SeqCst);
    wait_json(
        &http,
        &a,
        "/router/health",
        "A's circuit to be due for a probe",
        |h| target(h, "flaky/m1")["circuit"] == "half_open",
    )
    .await;
    let answer: Value = chat(&http, &a, "m", "sk-x").await.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "from flaky");
    wait_json(
        &http,
        &b,
        "/router/health",
        "B to see the circuit closed",
        |h| target(h, "flaky/m1")["circuit"] == "closed",
    )
    .await;
    assert_eq!(flaky.stats().requests, 3);
    assert!(keys(&redis, "shared-circuit:circuit:*").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn losing_redis_degrades_to_local_state_then_sharing_resumes() {
    capture_logs();
    let mut redis = RedisServer::start();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(3, ""),
        state(&redis, "outage"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    // Shared: 3 across both.
    let statuses = alternate(&http, [&a, &b], 8, "sk-before-outage-01").await;
    assert_eq!(count(&statuses, 200), 3, "{statuses:?}");

    // Redis dies: both replicas notice, without a request.
    redis.kill();
    wait_store(&http, &a, "degraded").await;
    wait_store(&http, &b, "degraded").await;

    // Both keep serving, each on its own counters (3 each), and no request
    // waits on Redis.
    for replica in [&a, &b] {
        for _ in 0..3 {
            let started = Instant::now();
            let response = chat(&http, replica, "m", "sk-during-outage-1").await;
            assert_eq!(response.status(), 200);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            chat(&http, replica, "m", "sk-during-outage-1")
                .await
                .status(),
            429
        );
    }
    // The admin endpoints and /health answer too.
    let health = get_json(&http, &a.at("/health")).await;
    assert_eq!(health["status"], "healthy");
    // One warning per replica for the whole outage, not one per request.
    assert_eq!(
        log_lines(&redis, "WARN", UNAVAILABLE).len(),
        2,
        "{:#?}",
        log_lines(&redis, "", "")
    );

    // Redis comes back (empty) on the same port: both reconnect and the
    // limit is shared again.
    redis.restart();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;
    let statuses = alternate(&http, [&a, &b], 8, "sk-after-outage-001").await;
    assert_eq!(count(&statuses, 200), 3, "{statuses:?}");
    assert_eq!(log_lines(&redis, "WARN", UNAVAILABLE).len(), 2);
    assert_eq!(log_lines(&redis, "INFO", "reconnected").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn redis_down_at_start_serves_locally_then_connects() {
    capture_logs();
    let mut redis = RedisServer::not_started();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(2, ""),
        state(&redis, "late"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "degraded").await;
    let statuses = alternate(&http, [&a, &a], 4, "sk-early-client-001").await;
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(log_lines(&redis, "WARN", UNAVAILABLE).len(), 1);

    redis.restart();
    wait_store(&http, &a, "ok").await;
    // Decided in Redis now: the counters are there.
    assert_eq!(
        chat(&http, &a, "m", "sk-late-client-0001").await.status(),
        200
    );
    assert_eq!(keys(&redis, "late:limit:client:*:requests").len(), 1);
    assert_eq!(log_lines(&redis, "WARN", UNAVAILABLE).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_frozen_redis_costs_a_request_at_most_the_timeout() {
    capture_logs();
    let redis = RedisServer::start();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(100, ""),
        state(&redis, "frozen"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    assert_eq!(
        chat(&http, &a, "m", "sk-frozen-client-01").await.status(),
        200
    );

    // Connections stay open but nothing answers: the first request waits
    // for `timeout` (100ms), then is decided locally; the next ones do not
    // wait at all.
    redis.pause();
    let started = Instant::now();
    assert_eq!(
        chat(&http, &a, "m", "sk-frozen-client-01").await.status(),
        200
    );
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(first < Duration::from_secs(1), "{first:?}");
    wait_store(&http, &a, "degraded").await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            chat(&http, &a, "m", "sk-frozen-client-01").await.status(),
            200
        );
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(log_lines(&redis, "WARN", UNAVAILABLE).len(), 1);

    redis.resume();
    wait_store(&http, &a, "ok").await;
    assert_eq!(
        chat(&http, &a, "m", "sk-frozen-client-02").await.status(),
        200
    );
    assert_eq!(keys(&redis, "frozen:limit:client:*:requests").len(), 2);
    assert_eq!(log_lines(&redis, "WARN", UNAVAILABLE).len(), 1);
}

// ---------------------------------------------------------------------------
// Issue 15: correct windows, validated transitions, TLS

/// Regression (issue 15): with the Redis store too, a 429's `Retry-After`
/// and `x-ratelimit-reset` never exceed the window (a 2 s window said 3),
/// and a client that waits `Retry-After` is admitted — on either replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_client_that_waits_its_retry_after_is_admitted_across_replicas() {
    let redis = RedisServer::start();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        "[rate_limit]\nrequests = 3\nwindow = \"2s\"\nkey = \"api_key\"\n\n".to_string(),
        state(&redis, "shared-window"),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;

    for round in 0..2 {
        let statuses = alternate(&http, [&a, &b], 3, "sk-window-client-01").await;
        assert_eq!(statuses, [200; 3], "round {round}");
        let response = chat(&http, &b, "m", "sk-window-client-01").await;
        let refused_at = Instant::now();
        assert_eq!(response.status(), 429, "round {round}");
        let header =
            |name: &str| -> u64 { response.headers()[name].to_str().unwrap().parse().unwrap() };
        let wait = header("retry-after");
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        assert!(header("x-ratelimit-reset") <= 2);
        // Waiting exactly what it was told is enough, on the other replica.
        tokio::time::sleep_until((refused_at + Duration::from_secs(wait)).into()).await;
        let response = chat(&http, &a, "m", "sk-window-client-01").await;
        assert_eq!(
            response.status(),
            200,
            "round {round}: refused after waiting Retry-After {wait}"
        );
        // Spend the fresh window's rest, so the next round starts full.
        let statuses = alternate(&http, [&a, &b], 2, "sk-window-client-01").await;
        assert_eq!(statuses, [200; 2]);
        let response = chat(&http, &a, "m", "sk-window-client-01").await;
        assert_eq!(response.status(), 429);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// Regression (issue 15): any Redis client could publish a 31-year open
/// circuit (or cooldown). What arrives on the channel is validated: unknown
/// fields are rejected, durations are capped by `open_for` and
/// `max_cooldown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn published_transitions_are_validated_and_capped() {
    let redis = RedisServer::start();
    let up = MockUpstream::start("up", Reply::Chat).await;
    let spare = MockUpstream::start("spare", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(1000, ""),
        state(&redis, "validate"),
        "[circuit_breaker]\nopen_for = \"2s\"\n\n".to_string(),
        "[failover]\nmax_cooldown = \"3s\"\n\n".to_string(),
        openai_backend("up", &up.base_url(), ""),
        openai_backend("spare", &spare.base_url(), ""),
        model_with("m", &[("up", "m1", 1), ("spare", "m2", 2)]),
    ]
    .concat();
    let proxy = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &proxy, "ok").await;

    let years: u64 = 31 * 365 * 24 * 3600 * 1000;
    let publish = |payload: String| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("validate:events")
            .arg(payload)
            .query(&mut redis_conn(&redis))
            .expect("PUBLISH");
    };
    // Rejected: an unknown field, an unknown kind.
    publish(format!(
        r#"{{"from":"intruder","kind":"open","target":"spare/m2","ms":{years},"admin":true}}"#
    ));
    publish(r#"{"from":"intruder","kind":"explode","target":"spare/m2","ms":1}"#.to_string());
    // Accepted, but capped.
    publish(format!(
        r#"{{"from":"intruder","kind":"open","target":"up/m1","ms":{years}}}"#
    ));
    publish(format!(
        r#"{{"from":"intruder","kind":"cooldown","target":"spare/m2","ms":{years}}}"#
    ));
    let health = wait_json(
        &http,
        &proxy,
        "/router/health",
        "the published transitions to be applied",
        |h| {
            target(h, "up/m1")["circuit"] == "open"
                && target(h, "spare/m2")["cooldown_remaining_secs"].is_number()
        },
    )
    .await;
    let circuit = health["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "up/m1")
        .expect("the circuit");
    let retry_in = circuit["retry_in_secs"].as_f64().unwrap();
    assert!(retry_in <= 2.0, "open for {retry_in} s");
    let cooldown = target(&health, "spare/m2")["cooldown_remaining_secs"]
        .as_f64()
        .unwrap();
    assert!(cooldown <= 3.0, "cooling down for {cooldown} s");
    // The rejected ones changed nothing: spare's circuit is closed.
    assert_eq!(target(&health, "spare/m2")["circuit"], "closed");
}

/// `rediss://`: the store talks TLS to Redis (the server's certificate is
/// verified against the trust store, here the test's own CA through
/// `SSL_CERT_FILE`), and limits are shared over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn rediss_talks_tls_to_redis() {
    let dir = std::env::temp_dir().join(format!(
        "llm-router-redis-tls-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    // Only this test uses TLS in this binary; rustls-native-certs reads it
    // at each TLS connection.
    std::env::set_var("SSL_CERT_FILE", &cert);

    let redis = RedisServer::start_tls(cert.to_str().unwrap(), key.to_str().unwrap());
    let up = MockUpstream::start("up", Reply::Chat).await;
    let text = [
        STACK.to_string(),
        limit(2, ""),
        format!(
            "[state]\nstore = \"redis\"\nredis_url = \"{}\"\nprefix = \"tls\"\ntimeout = \"500ms\"\n\n",
            redis.tls_url()
        ),
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
    ]
    .concat();
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let http = client();
    wait_store(&http, &a, "ok").await;
    wait_store(&http, &b, "ok").await;
    let statuses = alternate(&http, [&a, &b], 3, "sk-tls-client-0001").await;
    assert_eq!(statuses, [200, 200, 429]);
    // The count lives in Redis (read here over the plain port).
    assert_eq!(keys(&redis, "tls:limit:*").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
