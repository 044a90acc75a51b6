//! Observability and operations, end to end: `/metrics` (text parsed with a
//! real OpenMetrics parser, and the JSON form) after known traffic, the admin
//! endpoints and their auth, `x-request-id` and `x-llm-router-overhead-ms` on
//! every kind of answer, and hot reload (`POST /admin/reload`): valid,
//! invalid, and under load with a stream in flight.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::{json, Value};
use support::{
    assert_openai_error, bounded, chat_body, chunk, client, json_of, model, openai_backend,
    role_chunk, stream_body, usage_chunk, MockUpstream, Proxy, Reply, SseReader, Step, DONE,
};

const CLIENT: &str = "sk-obs-client-000000000000";
const ADMIN: &str = "sk-obs-admin-0000000000000";
const BACKEND_KEY: &str = "sk-obs-backend-secret-0000";

// ---------------------------------------------------------------------------
// Helpers

async fn get(url: String, key: Option<&str>) -> reqwest::Response {
    let mut req = client().get(url);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.expect("send")
}

async fn chat_as(proxy: &Proxy, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("send")
}

/// The parsed `/metrics` text (panics unless it is valid OpenMetrics).
async fn scrape(proxy: &Proxy) -> (String, MetricsExposition<OpenMetricsType, OpenMetricsValue>) {
    let r = get(proxy.at("/metrics"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = r.text().await.unwrap();
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("/metrics is not valid OpenMetrics: {e:?}\n{text}"));
    (text, parsed)
}

/// The value of one sample: family `family` (without `_total`), with
/// exactly these labels.
fn sample(
    parsed: &MetricsExposition<OpenMetricsType, OpenMetricsValue>,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let fam = parsed.families.get(family)?;
    let names = fam.get_label_names();
    if names.len() != labels.len() {
        return None;
    }
    let values: Option<Vec<String>> = names
        .iter()
        .map(|n| {
            labels
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_string())
        })
        .collect();
    let s = fam.get_sample_by_label_values(&values?)?;
    match &s.value {
        OpenMetricsValue::Counter(c) => Some(c.value.as_f64()),
        OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => Some(n.as_f64()),
        OpenMetricsValue::Histogram(h) => Some(h.count.unwrap_or(0) as f64),
        _ => None,
    }
}

/// A fresh directory for config files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "llm-router-observability-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replace `path` as an operator should: write aside, then rename.
fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// Write `text` (with a `[server]` on 127.0.0.1:0) as the config file and
/// start the proxy from it; a reload reads the same file.
async fn start_from_file(dir: &TempDir, text: &str) -> Proxy {
    let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{text}");
    write_atomically(&dir.config(), &text);
    Proxy::start_with(&text, &dir.config(), |_| None).await
}

fn rewrite(dir: &TempDir, text: &str) {
    write_atomically(
        &dir.config(),
        &format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{text}"),
    );
}

async fn reload(proxy: &Proxy, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().post(proxy.at("/admin/reload"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, json_of(r).await)
}

async fn router_stats(proxy: &Proxy) -> Value {
    json_of(get(proxy.at("/router/stats"), None).await).await
}

async fn circuits(proxy: &Proxy) -> Vec<Value> {
    let health = json_of(get(proxy.at("/router/health"), None).await).await;
    health["circuits"].as_array().unwrap().clone()
}

fn circuit<'a>(circuits: &'a [Value], target: &str) -> Option<&'a Value> {
    circuits.iter().find(|c| c["target"] == target)
}

/// A streamed answer with a usage chunk (5 in, 7 out).
fn streamed_with_usage(model: &str) -> Reply {
    Reply::Script(vec![
        Step::Send(role_chunk(model)),
        Step::Send(chunk(model, "streamed", None)),
        Step::Send(chunk(model, "", Some("stop"))),
        Step::Send(usage_chunk(model, 5, 7)),
        Step::Send(DONE.to_string()),
    ])
}

// ---------------------------------------------------------------------------
// 1. Metrics after known traffic

fn traffic_config(good: &MockUpstream, flaky: &MockUpstream) -> String {
    format!(
        r#"[stack]
order = ["metrics", "rate_limit", "failover", "circuit_breaker", "retry"]

[rate_limit]
requests = 2
window = "60s"
key = "api_key"

[retry]
max_retries = 1
initial_delay = "10ms"
jitter = false

[circuit_breaker]
# Each failed attempt counts, retries included: 2 requests x (try + retry).
failure_threshold = 4
open_for = "60s"

{good}{flaky}{m}{rl}
[[models]]
name = "fo"
targets = [
  {{ backend = "flaky", model = "f1", priority = 1 }},
  {{ backend = "good", priority = 2 }},
]
"#,
        good = openai_backend("good", &good.base_url(), ""),
        flaky = openai_backend("flaky", &flaky.base_url(), ""),
        m = model("m", "good", None),
        rl = model("rl", "good", None),
    )
}

/// 3 answers to `m` (2 JSON, 1 streamed with usage), 2 to `fo` (the
/// primary fails twice each: one retry, then failover), and 3 to `rl` from
/// one key with a limit of 2 (the third is refused).
async fn known_traffic() -> (Proxy, MockUpstream, MockUpstream) {
    let good = MockUpstream::with_handler("good", |r| {
        if r.json()["stream"] == json!(true) {
            streamed_with_usage(&r.model())
        } else {
            Reply::Chat
        }
    })
    .await;
    let flaky = MockUpstream::start(
        "flaky",
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        ),
    )
    .await;
    let proxy = Proxy::start(&traffic_config(&good, &flaky)).await;
    for key in ["k1", "k2"] {
        let r = chat_as(&proxy, key, &chat_body("m")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    let r = chat_as(&proxy, "k3", &stream_body("m")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = SseReader::new(r).rest().await;
    assert!(rest.contains("streamed") && rest.ends_with(DONE), "{rest}");
    for key in ["k4", "k5"] {
        let r = chat_as(&proxy, key, &chat_body("fo")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            json_of(r).await["choices"][0]["message"]["content"],
            "from good"
        );
    }
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let r = chat_as(&proxy, "k-limited", &chat_body("rl")).await;
        assert_eq!(r.status(), expected);
        r.bytes().await.unwrap();
    }
    // A streamed answer's tokens are counted when its body ends in the
    // proxy, which may be just after the client read the last byte.
    bounded("the streamed answer's tokens to be counted", async {
        loop {
            let (_, parsed) = scrape(&proxy).await;
            let t = [("model", "m"), ("backend", "good"), ("direction", "in")];
            if sample(&parsed, "llm_router_tokens", &t) == Some(7.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    (proxy, good, flaky)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic_in_valid_openmetrics() {
    let (proxy, good, flaky) = known_traffic().await;
    assert_eq!(good.requests().len(), 2 + 1 + 2 + 2);
    assert_eq!(flaky.requests().len(), 4, "2 requests, each tried twice");
    let (text, m) = scrape(&proxy).await;
    assert!(text.ends_with("# EOF\n"), "{text}");

    // The declared types.
    for (family, ty) in [
        ("llm_router_requests", OpenMetricsType::Counter),
        ("llm_router_tokens", OpenMetricsType::Counter),
        ("llm_router_retries", OpenMetricsType::Counter),
        ("llm_router_failovers", OpenMetricsType::Counter),
        ("llm_router_rate_limit_rejections", OpenMetricsType::Counter),
        ("llm_router_circuit_state", OpenMetricsType::Gauge),
        (
            "llm_router_request_duration_seconds",
            OpenMetricsType::Histogram,
        ),
        (
            "llm_router_time_to_first_byte_seconds",
            OpenMetricsType::Histogram,
        ),
        ("llm_router_overhead_seconds", OpenMetricsType::Histogram),
    ] {
        let f = m
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no family {family} in\n{text}"));
        assert_eq!(f.family_type, ty, "{family}");
    }

    let requests = |model: &str, backend: &str, status: &str| {
        sample(
            &m,
            "llm_router_requests",
            &[("model", model), ("backend", backend), ("status", status)],
        )
    };
    assert_eq!(requests("m", "good", "200"), Some(3.0), "{text}");
    assert_eq!(requests("fo", "good", "200"), Some(2.0), "{text}");
    assert_eq!(requests("rl", "good", "200"), Some(2.0), "{text}");
    assert_eq!(requests("rl", "none", "429"), Some(1.0), "{text}");

    let tokens = |model: &str, direction: &str| {
        sample(
            &m,
            "llm_router_tokens",
            &[
                ("model", model),
                ("backend", "good"),
                ("direction", direction),
            ],
        )
    };
    // JSON answers: 1 in, 2 out each; the stream: 5 in, 7 out.
    assert_eq!(tokens("m", "in"), Some(7.0), "{text}");
    assert_eq!(tokens("m", "out"), Some(11.0), "{text}");
    assert_eq!(tokens("fo", "in"), Some(2.0), "{text}");
    assert_eq!(tokens("fo", "out"), Some(4.0), "{text}");

    assert_eq!(
        sample(&m, "llm_router_retries", &[("backend", "flaky")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&m, "llm_router_failovers", &[("model", "fo")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &m,
            "llm_router_upstream_errors",
            &[("backend", "flaky"), ("kind", "status_5xx")]
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&m, "llm_router_rate_limit_rejections", &[]),
        Some(1.0),
        "{text}"
    );
    // Two failed requests (each retried once) opened the primary's circuit.
    assert_eq!(
        sample(&m, "llm_router_circuit_state", &[("target", "flaky/f1")]),
        Some(2.0),
        "{text}"
    );
    // Every answered request has a latency.
    assert_eq!(
        sample(
            &m,
            "llm_router_request_duration_seconds",
            &[("model", "m"), ("backend", "good")]
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_json_has_the_per_backend_fields() {
    let (proxy, _good, _flaky) = known_traffic().await;
    let r = client()
        .get(proxy.at("/metrics"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v = json_of(r).await;
    let good = &v["backends"]["good"];
    assert_eq!(good["total_requests"], 7, "{v}");
    assert_eq!(good["success_rate"], 1.0, "{v}");
    assert!(good["avg_response_time"].as_f64().unwrap() >= 0.0, "{v}");
    assert_eq!(good["error_counts"], json!({}), "{v}");
    assert_eq!(good["tokens_in"], 1 + 1 + 5 + 2 + 2, "{v}");
    assert_eq!(good["tokens_out"], 2 + 2 + 7 + 4 + 4, "{v}");
    let flaky = &v["backends"]["flaky"];
    assert_eq!(flaky["total_requests"], 4, "{v}");
    assert_eq!(flaky["success_rate"], 0.0, "{v}");
    assert_eq!(flaky["error_counts"], json!({"http_500": 4}), "{v}");
    assert_eq!(
        v["flaky"], v["backends"]["flaky"],
        "per backend at the top level too"
    );
    assert_eq!(flaky["retries"], 2, "{v}");

    // The same traffic in /router/stats.
    let s = router_stats(&proxy).await;
    assert_eq!(s["requests"], 8, "{s}");
    assert_eq!(s["errors"], 1, "{s}");
    assert_eq!(s["retries"], 2, "{s}");
    assert_eq!(s["failovers"], 2, "{s}");
    assert_eq!(s["rate_limit_rejections"], 1, "{s}");
    assert_eq!(s["tokens"], json!({"in": 11, "out": 19}), "{s}");
    assert_eq!(s["models"]["m"]["requests"], 3, "{s}");
    assert_eq!(
        s["models"]["rl"]["statuses"],
        json!({"200": 2, "429": 1}),
        "{s}"
    );
    assert_eq!(s["models"]["fo"]["failovers"], 2, "{s}");
    assert_eq!(s["backends"]["flaky"]["attempts"], 4, "{s}");
    assert_eq!(s["backends"]["flaky"]["retries"], 2, "{s}");
    assert_eq!(s["circuits"]["open"], 1, "{s}");
}

// ---------------------------------------------------------------------------
// 2. Admin endpoints

fn admin_config(up: &MockUpstream) -> String {
    format!(
        r#"[stack]
order = ["metrics", "auth", "failover", "circuit_breaker", "retry"]

[auth]
keys = ["{CLIENT}"]
admin_keys = ["{ADMIN}"]

[retry]
max_retries = 1
initial_delay = "10ms"
jitter = false

[[backends]]
name = "up"
provider = "openai"
base_url = "{url}"
api_key = "{BACKEND_KEY}"
timeout = "45s"
first_byte_timeout = "5s"
rate_limit = {{ requests = 100, window = "60s" }}

[[backends]]
name = "local"
provider = "mock"
tools = "xml"

[[backends]]
name = "unused"
provider = "anthropic"
api_key = "passthrough"

[[models]]
name = "gpt"
targets = [
  {{ backend = "up", model = "gpt-4o", priority = 1 }},
  {{ backend = "local", priority = 2 }},
]

{echo}"#,
        url = up.base_url(),
        echo = model("echo", "local", None),
    )
}

const ADMIN_GETS: [&str; 3] = ["/providers", "/backend/info", "/router/stats"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_an_admin_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&admin_config(&up)).await;
    for path in ADMIN_GETS {
        let none = get(proxy.at(path), None).await;
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_openai_error(&json_of(none).await);
        let client_key = get(proxy.at(path), Some(CLIENT)).await;
        assert_eq!(client_key.status(), StatusCode::FORBIDDEN, "{path}");
        assert_openai_error(&json_of(client_key).await);
        assert_eq!(
            get(proxy.at(path), Some(ADMIN)).await.status(),
            StatusCode::OK
        );
    }
    let (status, _) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = reload(&proxy, Some(CLIENT)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An admin key: this proxy's config was never a file, so the reload
    // fails with the loader's own error, and changes nothing.
    let (status, v) = reload(&proxy, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(assert_openai_error(&v), "invalid_config");
    let expected = llm_router::config::Config::load(Path::new("test.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(v["error"]["message"], expected);
    // The wrong method on an admin path.
    let r = client()
        .post(proxy.at("/router/stats"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = get(proxy.at("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_describe_each_backend_without_its_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&admin_config(&up)).await;
    let r = get(proxy.at("/providers"), Some(ADMIN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains(BACKEND_KEY), "a raw key in {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let backends = v["backends"].as_array().unwrap();
    let names: Vec<&str> = backends
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["up", "local", "unused"], "config order: {v}");

    let b = &backends[0];
    assert_eq!(b["provider"], "openai");
    assert_eq!(b["base_url"], up.base_url());
    assert_eq!(b["credential"]["kind"], "key");
    let masked = b["credential"]["key"].as_str().unwrap();
    assert!(
        masked.starts_with("sk-") && masked.contains("..."),
        "{masked}"
    );
    assert_eq!(b["timeouts"]["timeout"], "45s");
    assert_eq!(b["timeouts"]["first_byte_timeout"], "5s");
    assert_eq!(b["timeouts"]["connect_timeout"], "10s");
    assert_eq!(b["timeouts"]["idle_timeout"], "30s");
    assert_eq!(b["tools"], "native");
    assert_eq!(b["tls_verify"], true);
    assert_eq!(b["rate_limit"], json!({"requests": 100, "window": "60s"}));
    assert_eq!(
        b["models"],
        json!([{"model": "gpt", "upstream_model": "gpt-4o", "priority": 1, "weight": 1}])
    );

    let local = &backends[1];
    assert_eq!(local["provider"], "mock");
    assert_eq!(local["base_url"], Value::Null);
    assert_eq!(local["credential"], json!({"kind": "none"}));
    assert_eq!(local["tools"], "xml");
    let served: HashSet<&str> = local["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(served, HashSet::from(["gpt", "echo"]));

    let unused = &backends[2];
    assert_eq!(unused["provider"], "anthropic");
    assert_eq!(unused["base_url"], "https://api.anthropic.com");
    assert_eq!(unused["credential"], json!({"kind": "passthrough"}));
    assert_eq!(unused["models"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_info_joins_config_stats_and_state() {
    let up = MockUpstream::start(
        "up",
        Reply::Json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": {"message": "down", "type": "server_error"}}),
        ),
    )
    .await;
    let proxy = Proxy::start(&admin_config(&up)).await;
    // `up` fails (503, retried once), `local` answers.
    let r = chat_as(&proxy, CLIENT, &chat_body("gpt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();
    let v = json_of(get(proxy.at("/backend/info"), Some(ADMIN)).await).await;
    let backends = v["backends"].as_array().unwrap();
    let up_info = backends.iter().find(|b| b["name"] == "up").unwrap();
    assert_eq!(up_info["provider"], "openai");
    assert_eq!(up_info["credential"]["kind"], "key");
    let stats = &up_info["stats"];
    assert_eq!(stats["total_requests"], up.requests().len(), "{v}");
    assert_eq!(stats["success_rate"], 0.0, "{v}");
    assert!(stats["error_counts"]["http_503"].as_u64() >= Some(1), "{v}");
    let circuits = up_info["state"]["circuits"].as_array().unwrap();
    assert_eq!(circuits.len(), 1, "{v}");
    assert_eq!(circuits[0]["target"], "up/gpt-4o");
    // The try and its retry: each failed attempt counts.
    assert_eq!(circuits[0]["consecutive_failures"], 2);
    assert_eq!(up_info["state"]["rate_limit"]["limit"], 100, "{v}");
    assert_eq!(up_info["state"]["available"], true, "{v}");
    let local = backends.iter().find(|b| b["name"] == "local").unwrap();
    assert_eq!(local["stats"]["total_requests"], 1, "{v}");
    assert_eq!(local["stats"]["success_rate"], 1.0, "{v}");
    let unused = backends.iter().find(|b| b["name"] == "unused").unwrap();
    assert_eq!(unused["stats"]["total_requests"], 0, "{v}");
    assert_eq!(unused["state"]["circuits"], json!([]), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_stats_shape() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&admin_config(&up)).await;
    let r = chat_as(&proxy, CLIENT, &chat_body("gpt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();
    let s = json_of(get(proxy.at("/router/stats"), Some(ADMIN)).await).await;
    assert_eq!(s["service"], "llm-router");
    assert!(s["uptime_secs"].is_u64(), "{s}");
    assert!(s["started_at"].as_u64().unwrap() > 1_600_000_000, "{s}");
    assert_eq!(s["config"]["path"], "test.toml", "{s}");
    assert!(s["config"]["loaded_at"].as_u64().unwrap() >= s["started_at"].as_u64().unwrap());
    assert_eq!(s["config"]["reloads"], 0);
    assert_eq!(s["config"]["failed_reloads"], 0);
    assert_eq!(s["config"]["last_reload_error"], Value::Null);
    assert_eq!(
        s["stack"],
        json!(["metrics", "auth", "failover", "circuit_breaker", "retry"])
    );
    assert_eq!(s["metrics_enabled"], true);
    assert_eq!(s["models_configured"], json!(["gpt", "echo"]));
    assert_eq!(s["requests"], 1, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["retries"], 0, "{s}");
    assert_eq!(s["failovers"], 0, "{s}");
    assert_eq!(s["rate_limit_rejections"], 0, "{s}");
    assert_eq!(s["tokens"], json!({"in": 1, "out": 2}), "{s}");
    assert_eq!(s["models"]["gpt"]["requests"], 1, "{s}");
    assert_eq!(s["backends"]["up"]["attempts"], 1, "{s}");
    assert_eq!(
        s["circuits"],
        // A closed circuit without failures is not kept.
        json!({"open": 0, "half_open": 0, "closed": 0}),
        "{s}"
    );
    assert_eq!(s["cooldowns"], 0, "{s}");
}

// ---------------------------------------------------------------------------
// 3. x-request-id and x-llm-router-overhead-ms on every answer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_answer_carries_the_id_and_overhead_headers() {
    let up = MockUpstream::with_handler("up", |r| {
        if r.model() == "boom" {
            Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"message": "upstream broke", "type": "server_error"}}),
            )
        } else if r.json()["stream"] == json!(true) {
            streamed_with_usage(&r.model())
        } else {
            Reply::Chat
        }
    })
    .await;
    let config = format!(
        "[stack]\norder = [\"metrics\", \"auth\", \"failover\"]\n\n[auth]\nkeys = [\"{CLIENT}\"]\nadmin_keys = [\"{ADMIN}\"]\n\n{}{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None),
        model("boom", "up", None),
    );
    let proxy = Proxy::start(&config).await;
    let c = client();
    let chat = |body: Value, key: Option<&str>| {
        let mut req = c.post(proxy.at("/v1/chat/completions")).json(&body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "JSON answer",
            chat(chat_body("m"), Some(CLIENT)),
            StatusCode::OK,
        ),
        (
            "streamed answer",
            chat(stream_body("m"), Some(CLIENT)),
            StatusCode::OK,
        ),
        (
            "proxy error: malformed JSON",
            c.post(proxy.at("/v1/chat/completions"))
                .bearer_auth(CLIENT)
                .body("{nope"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "proxy error: unknown model",
            chat(chat_body("nope"), Some(CLIENT)),
            StatusCode::NOT_FOUND,
        ),
        (
            "upstream error",
            chat(chat_body("boom"), Some(CLIENT)),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            "missing key",
            chat(chat_body("m"), None),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "Anthropic endpoint, missing key",
            c.post(proxy.at("/v1/messages")).json(&json!({
                "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]
            })),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown path",
            c.get(proxy.at("/no/such/path")),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            c.post(proxy.at("/health")),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("/health", c.get(proxy.at("/health")), StatusCode::OK),
        ("/", c.get(proxy.at("/")), StatusCode::OK),
        ("/metrics", c.get(proxy.at("/metrics")), StatusCode::OK),
        (
            "/metrics as JSON",
            c.get(proxy.at("/metrics"))
                .header("accept", "application/json"),
            StatusCode::OK,
        ),
        (
            "/v1/models",
            c.get(proxy.at("/v1/models")).bearer_auth(CLIENT),
            StatusCode::OK,
        ),
        (
            "admin",
            c.get(proxy.at("/router/stats")).bearer_auth(ADMIN),
            StatusCode::OK,
        ),
        (
            "admin, client key",
            c.get(proxy.at("/providers")).bearer_auth(CLIENT),
            StatusCode::FORBIDDEN,
        ),
        (
            "admin reload, invalid source",
            c.post(proxy.at("/admin/reload")).bearer_auth(ADMIN),
            StatusCode::BAD_REQUEST,
        ),
    ];
    let mut ids = HashSet::new();
    for (what, req, status) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{what}");
        let id = r
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no x-request-id"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(!id.is_empty(), "{what}");
        assert!(ids.insert(id), "{what}: a request id was reused");
        let overhead = r
            .headers()
            .get("x-llm-router-overhead-ms")
            .unwrap_or_else(|| panic!("{what}: no x-llm-router-overhead-ms"))
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{what}: overhead is not a number: {e}"));
        assert!((0.0..10_000.0).contains(&overhead), "{what}: {overhead}");
        r.bytes().await.unwrap();
    }
    // The client's own id comes back (and goes upstream).
    let r = chat(chat_body("m"), Some(CLIENT))
        .header("x-request-id", "my-trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-trace-123");
    r.bytes().await.unwrap();
    let last = up.requests().pop().unwrap();
    assert_eq!(last.header("x-request-id"), Some("my-trace-123"));
}

// ---------------------------------------------------------------------------
// 4. Hot reload

fn reload_v1(good: &MockUpstream, bad: &MockUpstream, gone: &MockUpstream) -> String {
    format!(
        "[stack]\norder = [\"metrics\", \"failover\", \"circuit_breaker\"]\n\n[circuit_breaker]\nfailure_threshold = 1\nopen_for = \"60s\"\n\n{}{}{}{}{}{}",
        openai_backend("good", &good.base_url(), ""),
        openai_backend("bad", &bad.base_url(), ""),
        openai_backend("gone", &gone.base_url(), ""),
        model("old", "good", None),
        model("keep", "bad", Some("x")),
        model("drop", "gone", Some("y")),
    )
}

fn reload_v2(good: &MockUpstream, bad: &MockUpstream) -> String {
    // The breaker policy changes too: the registry is rebuilt, and the
    // surviving target's open circuit comes over.
    format!(
        "[stack]\norder = [\"metrics\", \"failover\", \"circuit_breaker\"]\n\n[circuit_breaker]\nfailure_threshold = 3\nopen_for = \"60s\"\n\n{}{}{}{}",
        openai_backend("good", &good.base_url(), ""),
        openai_backend("bad", &bad.base_url(), ""),
        model("new", "good", None),
        model("keep", "bad", Some("x")),
    )
}

fn failing(name: &str) -> impl std::future::Future<Output = MockUpstream> + '_ {
    MockUpstream::start(
        name,
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "down", "type": "server_error"}}),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reload_swaps_models_and_keeps_surviving_circuits() {
    let good = MockUpstream::start("good", Reply::Chat).await;
    let bad = failing("bad").await;
    let gone = failing("gone").await;
    let dir = TempDir::new("valid");
    let proxy = start_from_file(&dir, &reload_v1(&good, &bad, &gone)).await;
    let c = client();
    let chat = |model: &str| {
        c.post(proxy.at("/v1/chat/completions"))
            .json(&chat_body(model))
    };

    assert_eq!(chat("old").send().await.unwrap().status(), StatusCode::OK);
    // One failure each opens these circuits (threshold 1).
    for m in ["keep", "drop"] {
        assert_eq!(
            chat(m).send().await.unwrap().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let before = circuits(&proxy).await;
    assert_eq!(
        circuit(&before, "bad/x").unwrap()["state"],
        "open",
        "{before:?}"
    );
    assert_eq!(
        circuit(&before, "gone/y").unwrap()["state"],
        "open",
        "{before:?}"
    );
    let (text, m) = scrape(&proxy).await;
    let gauge = |target: &str| sample(&m, "llm_router_circuit_state", &[("target", target)]);
    assert_eq!(gauge("gone/y"), Some(2.0), "{text}");
    let loaded_before = router_stats(&proxy).await["config"]["loaded_at"]
        .as_u64()
        .unwrap();

    rewrite(&dir, &reload_v2(&good, &bad));
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["reloaded"], true);
    assert_eq!(v["config"], dir.config().display().to_string());
    assert_eq!(v["reloads"], 1);
    assert_eq!(v["models"], json!(["new", "keep"]));
    assert_eq!(v["models_added"], json!(["new"]));
    let removed: HashSet<&str> = v["models_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(removed, HashSet::from(["old", "drop"]));
    assert_eq!(v["backends"], json!(["good", "bad"]));
    assert_eq!(v["notes"], json!([]), "{v}");

    // The new model is served, the old one is gone.
    let r = chat("new").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["model"], "new");
    let r = chat("old").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(assert_openai_error(&json_of(r).await), "model_not_found");
    let models = json_of(get(proxy.at("/v1/models"), None).await).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new", "keep"]);

    // The surviving target's circuit is still open: no upstream call.
    let after = circuits(&proxy).await;
    let kept = circuit(&after, "bad/x").unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!(kept["state"], "open", "{after:?}");
    assert_eq!(kept["consecutive_failures"], 1);
    assert!(
        circuit(&after, "gone/y").is_none(),
        "a removed target's circuit: {after:?}"
    );
    let calls = bad.requests().len();
    let r = chat("keep").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        bad.requests().len(),
        calls,
        "an open circuit calls no upstream"
    );
    let health = json_of(get(proxy.at("/router/health"), None).await).await;
    assert_eq!(
        health["circuit_breaker"]["failure_threshold"], 3,
        "{health}"
    );
    let (text, m) = scrape(&proxy).await;
    let state = |target: &str| sample(&m, "llm_router_circuit_state", &[("target", target)]);
    assert_eq!(state("bad/x"), Some(2.0), "{text}");
    assert_eq!(state("gone/y"), None, "a removed target's series: {text}");

    // Stats know the reload; counters went on across it.
    let s = router_stats(&proxy).await;
    assert_eq!(s["config"]["reloads"], 1, "{s}");
    assert_eq!(s["config"]["path"], dir.config().display().to_string());
    assert!(s["config"]["loaded_at"].as_u64().unwrap() >= loaded_before);
    assert_eq!(s["models_configured"], json!(["new", "keep"]));
    assert_eq!(s["models"]["old"]["statuses"], json!({"200": 1}), "{s}");
    // Once no route serves it, under "(unknown)" (labels come from the config).
    assert_eq!(
        s["models"]["(unknown)"]["statuses"],
        json!({"404": 1}),
        "{s}"
    );
    assert_eq!(s["models"]["new"]["requests"], 1, "{s}");

    // The same file again: the same policy, the same registry; still open.
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["reloads"], 2);
    assert_eq!(v["models_added"], json!([]));
    assert_eq!(
        circuit(&circuits(&proxy).await, "bad/x").unwrap()["state"],
        "open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_keeps_the_old_config_and_says_why() {
    let good = MockUpstream::start("good", Reply::Chat).await;
    let dir = TempDir::new("invalid");
    let v1 = format!(
        "{}{}",
        openai_backend("good", &good.base_url(), ""),
        model("m", "good", None)
    );
    let proxy = start_from_file(&dir, &v1).await;
    let c = client();
    let chat = |model: &str| {
        c.post(proxy.at("/v1/chat/completions"))
            .json(&chat_body(model))
    };

    // A typo on line 5 of the new file (after the 3 lines of `[server]`).
    let broken = format!(
        "[retry]\nmax_retires = 3\n\n{}{}",
        openai_backend("good", &good.base_url(), ""),
        model("other", "good", None)
    );
    rewrite(&dir, &broken);
    let expected = llm_router::config::Config::load(&dir.config())
        .unwrap_err()
        .to_string();
    assert!(
        expected.starts_with(&format!(
            "{}:5: retry.max_retires: ",
            dir.config().display()
        )),
        "{expected}"
    );
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(assert_openai_error(&v), "invalid_config");
    assert_eq!(v["error"]["message"], expected);

    // The old config still serves.
    assert_eq!(chat("m").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        chat("other").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let s = router_stats(&proxy).await;
    assert_eq!(s["config"]["reloads"], 0, "{s}");
    assert_eq!(s["config"]["failed_reloads"], 1, "{s}");
    assert_eq!(s["config"]["last_reload_error"], expected);

    // A file that parses but cannot be built is refused the same way.
    rewrite(
        &dir,
        &format!(
            "{}{}",
            openai_backend("good", &good.base_url(), ""),
            model("x", "nobody", None)
        ),
    );
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nobody"),
        "{v}"
    );
    assert_eq!(chat("m").send().await.unwrap().status(), StatusCode::OK);

    // A changed listen address is not applied, and the answer says so.
    let moved = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n\n{}{}",
        openai_backend("good", &good.base_url(), ""),
        model("other", "good", None)
    );
    write_atomically(&dir.config(), &moved);
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let notes = v["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{v}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("server.listen: `127.0.0.1:1` is not applied"),
        "{v}"
    );
    assert_eq!(chat("other").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        chat("m").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request() {
    let answer = |r: &support::Recorded| {
        if r.json()["stream"] == json!(true) {
            Reply::Sse {
                count: 3,
                interval: Duration::ZERO,
                hold_before: None,
                cut_after: None,
            }
        } else {
            Reply::Chat
        }
    };
    let a = MockUpstream::with_handler("a", answer).await;
    let b = MockUpstream::with_handler("b", answer).await;
    let config = |up: &MockUpstream, name: &str| {
        format!(
            "[stack]\norder = [\"metrics\", \"rate_limit\", \"failover\", \"circuit_breaker\", \"retry\"]\n\n[rate_limit]\nrequests = 100000\nwindow = \"60s\"\n\n{}{}",
            openai_backend(name, &up.base_url(), ""),
            model("m", name, None)
        )
    };
    let dir = TempDir::new("load");
    let proxy = Arc::new(start_from_file(&dir, &config(&a, "a")).await);
    let done = Arc::new(AtomicUsize::new(0));
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 40;
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (proxy, done) = (proxy.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            for i in 0..PER_WORKER {
                let body = if i % 5 == 0 {
                    stream_body("m")
                } else {
                    chat_body("m")
                };
                let r = c
                    .post(proxy.at("/v1/chat/completions"))
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        if let Err(e) = r.bytes().await {
                            failures.push(format!("worker {w} request {i}: body: {e}"));
                        }
                    }
                    Ok(r) => failures.push(format!(
                        "worker {w} request {i}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(format!("worker {w} request {i}: {e}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    // Reload back and forth between the two configs while they run.
    let mut reloads = 0;
    for round in 0..8 {
        let target = (round + 1) * WORKERS * PER_WORKER / 10;
        bounded("requests to progress", async {
            while done.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        if round % 2 == 0 {
            rewrite(&dir, &config(&b, "b"));
        } else {
            rewrite(&dir, &config(&a, "a"));
        }
        let (status, v) = reload(&proxy, None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        reloads += 1;
    }
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(bounded("a worker", w).await.unwrap());
    }
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert_eq!(done.load(Ordering::SeqCst), WORKERS * PER_WORKER);
    assert_eq!(router_stats(&proxy).await["config"]["reloads"], reloads);
    // Both configs served.
    assert!(!a.requests().is_empty() && !b.requests().is_empty());
    assert_eq!(
        a.requests().len() + b.requests().len(),
        WORKERS * PER_WORKER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_in_flight_finishes_on_the_old_config() {
    let streamer = MockUpstream::start(
        "streamer",
        Reply::Sse {
            count: 4,
            interval: Duration::ZERO,
            hold_before: Some(2),
            cut_after: None,
        },
    )
    .await;
    let other = MockUpstream::start("other", Reply::Chat).await;
    let dir = TempDir::new("stream");
    let v1 = format!(
        "{}{}",
        openai_backend("streamer", &streamer.base_url(), ""),
        model("s", "streamer", None)
    );
    let proxy = start_from_file(&dir, &v1).await;
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&stream_body("s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut events = SseReader::new(r);
    let first = events.next_event().await.unwrap();
    let second = events.next_event().await.unwrap();
    assert!(first.contains("chat.completion.chunk") && second.contains("chat.completion.chunk"));

    // The new config has neither the model nor its backend.
    rewrite(
        &dir,
        &format!(
            "{}{}",
            openai_backend("other", &other.base_url(), ""),
            model("o", "other", None)
        ),
    );
    let (status, v) = reload(&proxy, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&stream_body("s"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "new requests see the new config"
    );

    // The stream started before goes on to its end.
    streamer.release();
    let rest = bounded("the rest of the stream", events.rest()).await;
    assert_eq!(rest.matches("chat.completion.chunk").count(), 2, "{rest}");
    assert!(rest.ends_with(DONE), "{rest}");
    streamer
        .wait_for("the stream to complete", |s| s.streams_completed == 1)
        .await;
    assert_eq!(streamer.requests().len(), 1);
}
