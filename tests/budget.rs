//! The `budget` layer end to end: the real server in front of a mock
//! upstream that reports known usage, both on 127.0.0.1:0. A token budget
//! lets requests through until it is used, then answers 429
//! `budget_exceeded` with `Retry-After` in both client formats; many
//! concurrent requests never get past it; streamed answers are settled from
//! their usage, cancelled ones by the delivered rule; spend survives a
//! restart (the spend file next to the config); `/v1/key/info` and
//! `/admin/keys` show it. With `redis-server` on PATH, two servers sharing
//! one Redis share one budget (in tokens, and $1.00 under 50 concurrent
//! streams), and spend one made while Redis was away reaches Redis when it
//! is back.

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::path::{Path, PathBuf};

use http::StatusCode;
use serde_json::{json, Value};

use llm_router::layers::budget::input_tokens;
use llm_router::Endpoint;
use support::binary::WorkDir;
use support::config::{BackendToml, ModelToml, TestConfig};
use support::{
    bounded, client, data, json_of, role_chunk, usage_chunk, MockUpstream, Proxy, Recorded, Reply,
    SseReader, Step, DONE,
};

const ADMIN: &str = "sk-admin-key-0123456789";
const TEAM: &str = "sk-team-key-0123456789";
const OTHER: &str = "sk-other-key-0123456789";

/// The chat body of these tests: "hello there", at most `max` tokens out.
fn chat_body(max: u64, stream: bool) -> Value {
    json!({"model": "m", "max_tokens": max, "stream": stream,
           "messages": [{"role": "user", "content": "hello there"}]})
}

/// The proxy's input estimate of a chat body (the same tokenizer).
fn input_of(body: &Value) -> u64 {
    input_tokens(Endpoint::ChatCompletions, body.as_object().unwrap())
}

/// An upstream whose answers report exactly the proxy's estimate: the
/// request's input estimate in, its `max_tokens` out.
async fn exact_upstream() -> MockUpstream {
    MockUpstream::with_handler("up", |r: &Recorded| {
        let body = r.json();
        let prompt = input_of(&body);
        let completion = body["max_tokens"].as_u64().unwrap_or(0);
        Reply::Json(
            StatusCode::OK,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            }),
        )
    })
    .await
}

/// `auth` then `budget`; the key `team-a` has `budget` (a TOML inline
/// table), the key `other` none.
fn config(up: &MockUpstream, budget: &str, extra: &str) -> String {
    TestConfig::new()
        .stack(&["auth", "budget", "failover"])
        .section("auth", &[("admin_keys", &format!("[\"{ADMIN}\"]"))])
        .backend(BackendToml::openai("up", &up.base_url()))
        .model(ModelToml::new("m").passthrough_target("up"))
        .raw(&format!(
            "[[keys]]\nname = \"team-a\"\nkey = \"{TEAM}\"\nbudget = {budget}\n\n\
             [[keys]]\nname = \"other\"\nkey = \"{OTHER}\"\n\n{extra}"
        ))
        .toml()
}

/// A proxy reading `text` as `dir/config.toml` (its spend file goes there).
async fn start_in(dir: &Path, text: &str) -> Proxy {
    Proxy::start_with(text, &dir.join("config.toml"), |_| None).await
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    bounded("the proxy's answer", request.send())
        .await
        .expect("request failed")
}

async fn chat(http: &reqwest::Client, proxy: &Proxy, key: &str, body: &Value) -> reqwest::Response {
    send(
        http.post(proxy.at("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body),
    )
    .await
}

async fn messages(http: &reqwest::Client, proxy: &Proxy, key: &str, max: u64) -> reqwest::Response {
    send(
        http.post(proxy.at("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "m", "max_tokens": max,
                          "messages": [{"role": "user", "content": "hello there"}]})),
    )
    .await
}

/// The status of a chat request, once its whole answer was read (so that
/// the proxy has settled it: the settlement happens as the last byte goes
/// out).
async fn chat_status(http: &reqwest::Client, proxy: &Proxy, key: &str, body: &Value) -> StatusCode {
    let response = chat(http, proxy, key, body).await;
    let status = response.status();
    bounded("the answer's body", response.bytes())
        .await
        .expect("the answer's body");
    status
}

/// The `spend` of `/v1/key/info` for `key`.
async fn spend(http: &reqwest::Client, proxy: &Proxy, key: &str) -> Value {
    let info = json_of(send(http.get(proxy.at("/v1/key/info")).bearer_auth(key)).await).await;
    info["spend"].clone()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// What one of many concurrent chat requests got, its answer read to the
/// end.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// `x-llm-router-cost-usd`.
    cost: Option<f64>,
    /// The whole body: a JSON document, or a stream's events.
    text: String,
}

/// Send `n` copies of the chat `body` with `key` at once, the i-th to
/// `urls[i % urls.len()]`, and read each answer to its end: their outcomes.
async fn fire(urls: &[String], key: &'static str, body: &Value, n: usize) -> Vec<Outcome> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, body) = (urls[i % urls.len()].clone(), body.clone());
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .expect("a concurrent request");
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().parse().unwrap())
                };
                let (retry_after, cost) = (header("retry-after"), header("x-llm-router-cost-usd"));
                Outcome {
                    status: r.status(),
                    retry_after: retry_after.map(|s: f64| s as u64),
                    cost,
                    text: r.text().await.expect("a concurrent answer's body"),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(bounded("a concurrent request", t).await.unwrap());
    }
    out
}

/// How many outcomes are 200s, after checking that every other one is a
/// clear refusal: 429 `budget_exceeded` in the OpenAI format, with
/// `Retry-After`.
fn passed(outcomes: &[Outcome]) -> u64 {
    let mut passed = 0;
    for o in outcomes {
        if o.status == StatusCode::OK {
            passed += 1;
            continue;
        }
        assert_eq!(o.status, StatusCode::TOO_MANY_REQUESTS, "{}", o.text);
        let v: Value = serde_json::from_str(&o.text).expect("a JSON refusal");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
        assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Budget exceeded for key:team-a"), "{v}");
        assert!(o.retry_after.is_some_and(|s| s >= 1), "{o:?}");
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_budget_is_spent_then_refused_in_both_formats() {
    let up = exact_upstream().await;
    let dir = WorkDir::new("budget-refused");
    let body = chat_body(10, false);
    let each = input_of(&body) + 10;
    // Room for three such requests, not four.
    let limit = 3 * each + each / 2;
    let proxy = start_in(
        dir.path(),
        &config(
            &up,
            &format!("{{ tokens = {limit}, period = \"day\" }}"),
            "",
        ),
    )
    .await;
    let http = client();
    for _ in 0..3 {
        assert_eq!(
            chat_status(&http, &proxy, TEAM, &body).await,
            StatusCode::OK
        );
    }
    let refused = chat(&http, &proxy, TEAM, &body).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Until the day ends (UTC).
    let wait = retry_after(&refused);
    assert!((1..=86_400).contains(&wait), "Retry-After {wait}");
    let v = json_of(refused).await;
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("key:team-a"), "{message}");
    assert!(
        message.contains(&format!("{} tokens spent", 3 * each)),
        "{message}"
    );

    let refused = messages(&http, &proxy, TEAM, 10).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused) >= 1);
    let v = json_of(refused).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Budget exceeded"));

    // Nothing refused reached the upstream; a key without a budget is not held.
    assert_eq!(up.stats().requests, 3);
    assert_eq!(
        chat_status(&http, &proxy, OTHER, &body).await,
        StatusCode::OK
    );

    // The key sees its spend; the admin sees every key's.
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["budget"], "key:team-a");
    assert_eq!(s["unit"], "tokens");
    assert_eq!(s["period"], "day");
    assert_eq!(s["limit"], limit);
    assert_eq!(s["spent"], 3 * each);
    assert_eq!(s["reserved"], 0);
    assert_eq!(s["in_flight"], 0);
    assert_eq!(s["remaining"], limit - 3 * each);
    assert!(
        s["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"),
        "{s}"
    );
    assert_eq!(spend(&http, &proxy, OTHER).await, Value::Null);
    let all = json_of(send(http.get(proxy.at("/admin/keys")).bearer_auth(ADMIN)).await).await;
    let team = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "team-a")
        .unwrap();
    assert_eq!(team["spend"]["spent"], 3 * each, "{all}");
    assert!(!all.to_string().contains(TEAM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_pass_the_budget() {
    let up = exact_upstream().await;
    let dir = WorkDir::new("budget-concurrent");
    let body = chat_body(20, false);
    let each = input_of(&body) + 20;
    let k = 7;
    let proxy = start_in(
        dir.path(),
        &config(
            &up,
            &format!("{{ tokens = {}, period = \"week\" }}", k * each),
            "",
        ),
    )
    .await;
    let outcomes = fire(&[proxy.at("/v1/chat/completions")], TEAM, &body, 50).await;
    let passed = passed(&outcomes);
    // Each answer costs exactly its estimate: exactly k fit.
    assert_eq!(passed, k);
    assert_eq!(up.stats().requests, k as usize);
    let s = spend(&client(), &proxy, TEAM).await;
    assert_eq!(s["spent"], k * each, "{s}");
    assert_eq!(s["remaining"], 0);
}

/// A dollar budget, priced by the `[pricing]` catalog: 50 concurrent
/// requests against a budget of k requests and a half let exactly k through,
/// and the recorded spend is k answers' cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_pass_a_dollar_budget() {
    let up = exact_upstream().await;
    let dir = WorkDir::new("budget-dollars");
    let body = chat_body(20, false);
    let each = input_of(&body) + 20;
    let k = 7;
    // $1,000 per million tokens in and out: $0.001 (1,000,000 nano-USD) a token.
    let nanos_each = each * 1_000_000;
    let usd = (k * nanos_each + nanos_each / 2) as f64 / 1e9;
    let proxy = start_in(
        dir.path(),
        &config(
            &up,
            &format!("{{ usd = {usd}, period = \"month\" }}"),
            "[pricing]\n\"m\" = { input = 1000.0, output = 1000.0 }\n",
        ),
    )
    .await;
    let outcomes = fire(&[proxy.at("/v1/chat/completions")], TEAM, &body, 50).await;
    let passed = passed(&outcomes);
    for o in outcomes.iter().filter(|o| o.status == StatusCode::OK) {
        let cost = o.cost.expect("a priced answer carries its cost");
        assert!((cost - nanos_each as f64 / 1e9).abs() < 1e-12, "{cost}");
    }
    assert_eq!(passed, k);
    assert_eq!(up.stats().requests, k as usize);
    let s = spend(&client(), &proxy, TEAM).await;
    assert_eq!(s["unit"], "usd", "{s}");
    assert_eq!(s["reserved"].as_f64(), Some(0.0), "{s}");
    let spent = s["spent"].as_f64().unwrap();
    assert!((spent - (k * nanos_each) as f64 / 1e9).abs() < 1e-9, "{s}");
}

/// A streamed answer: a role chunk, `n` content chunks, and, when the
/// request asks for it (the proxy does), its usage.
fn stream_steps(n: usize, prompt: u64, completion: u64, hold_after: Option<usize>) -> Vec<Step> {
    let mut steps = vec![Step::Send(role_chunk("m"))];
    for i in 0..n {
        if hold_after == Some(i) {
            steps.push(Step::Hold);
        }
        steps.push(Step::Send(data(&json!({
            "id": "chatcmpl-script", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}, "finish_reason": null}],
        }))));
    }
    steps.push(Step::Send(usage_chunk("m", prompt, completion)));
    steps.push(Step::Send(DONE.to_string()));
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_settled_from_its_usage() {
    let up = MockUpstream::with_handler("up", |r: &Recorded| {
        // The proxy asked for the stream's usage on the client's behalf.
        assert_eq!(r.json()["stream_options"]["include_usage"], true);
        Reply::Script(stream_steps(3, 123, 45, None))
    })
    .await;
    let dir = WorkDir::new("budget-stream");
    let proxy = start_in(
        dir.path(),
        &config(&up, "{ tokens = 100000, period = \"month\" }", ""),
    )
    .await;
    let http = client();
    let response = chat(&http, &proxy, TEAM, &chat_body(500, true)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = SseReader::new(response).rest().await;
    assert!(text.contains("word2"), "{text}");
    // The usage chunk the client did not ask for is kept from it.
    assert!(!text.contains("\"usage\""), "{text}");
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["spent"], 123 + 45, "{s}");
    assert_eq!(s["reserved"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_stream_is_charged_its_input_and_what_was_delivered() {
    // The stream holds after its first content chunk until released: the
    // client reads that much, then goes away.
    let up = MockUpstream::start("up", Reply::Script(stream_steps(3, 999, 999, Some(1)))).await;
    let dir = WorkDir::new("budget-cancel");
    let proxy = start_in(
        dir.path(),
        &config(&up, "{ tokens = 100000, period = \"month\" }", ""),
    )
    .await;
    let http = client();
    let body = chat_body(5, true);
    let response = chat(&http, &proxy, TEAM, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    let first = reader.next_event().await.unwrap();
    assert!(
        first.contains("word0") || first.contains("assistant"),
        "{first}"
    );
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["in_flight"], 1, "{s}");
    assert_eq!(s["reserved"], input_of(&body) + 5);
    drop(reader);
    // The proxy dropped the upstream stream: the answer was settled by then.
    up.wait_for("the upstream stream to be dropped", |s| {
        s.streams_aborted == 1
    })
    .await;
    // No usage reported: the input estimate, and the output delivered (more
    // than 5 tokens' worth of bytes went out: capped at max_tokens).
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["spent"], input_of(&body) + 5, "{s}");
    assert_eq!(
        (s["reserved"].clone(), s["in_flight"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_survives_a_restart() {
    let up = exact_upstream().await;
    let dir = WorkDir::new("budget-restart");
    let text = config(&up, "{ tokens = 100000, period = \"30d\" }", "");
    let body = chat_body(30, false);
    let each = input_of(&body) + 30;
    let http = client();
    let mut proxy = start_in(dir.path(), &text).await;
    for _ in 0..2 {
        assert_eq!(
            chat_status(&http, &proxy, TEAM, &body).await,
            StatusCode::OK
        );
    }
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let file: PathBuf = dir.path().join("llm-router-spend.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        saved["budgets"][0]["budget"],
        json!({"key": "team-a"}),
        "{saved}"
    );

    let proxy = start_in(dir.path(), &text).await;
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["spent"], 2 * each, "{s}");
    assert_eq!(s["period"], "30d");
    assert_eq!(
        chat_status(&http, &proxy, TEAM, &body).await,
        StatusCode::OK
    );
    assert_eq!(spend(&http, &proxy, TEAM).await["spent"], 3 * each);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_one_budget_and_an_unpriced_model_is_refused() {
    let up = exact_upstream().await;
    let dir = WorkDir::new("budget-group");
    let body = chat_body(10, false);
    let each = input_of(&body) + 10;
    let text = TestConfig::new()
        .stack(&["auth", "budget", "failover"])
        .section("auth", &[("admin_keys", &format!("[\"{ADMIN}\"]"))])
        .backend(BackendToml::openai("up", &up.base_url()))
        .model(ModelToml::new("m").passthrough_target("up"))
        .raw(&format!(
            "[[keys]]\nname = \"a\"\nkey = \"{TEAM}\"\nbudget = {{ tokens = {}, period = \"day\" }}\n\
             metadata = {{ team = \"platform\" }}\nbudget_group = \"team\"\n\n\
             [[keys]]\nname = \"b\"\nkey = \"{OTHER}\"\nmetadata = {{ team = \"platform\" }}\nbudget_group = \"team\"\n\n\
             [[keys]]\nname = \"dollars\"\nkey = \"sk-dollar-key-0123456789\"\nbudget = {{ usd = 5.0, period = \"month\" }}\n",
            2 * each
        ))
        .toml();
    let proxy = start_in(dir.path(), &text).await;
    let http = client();
    assert_eq!(
        chat_status(&http, &proxy, TEAM, &body).await,
        StatusCode::OK
    );
    assert_eq!(
        chat_status(&http, &proxy, OTHER, &body).await,
        StatusCode::OK
    );
    // The group's budget is used up by its two keys together.
    assert_eq!(
        chat_status(&http, &proxy, OTHER, &body).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["budget"], "group:team=platform");
    assert_eq!(s["spent"], 2 * each);
    let b = spend(&http, &proxy, OTHER).await;
    assert_eq!((&b["budget"], &b["spent"]), (&s["budget"], &s["spent"]));
    // No price catalog: a dollar budget cannot count this model's cost.
    let r = chat(&http, &proxy, "sk-dollar-key-0123456789", &body).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"]["code"], "model_not_priced");
    assert_eq!(up.stats().requests, 2);
}

/// `[state] store = "redis"` at `redis`.
fn redis_state(redis: &redis_server::RedisServer) -> String {
    format!(
        "[state]\nstore = \"redis\"\nredis_url = \"{}\"\nprefix = \"budget-test\"\ntimeout = \"500ms\"\n",
        redis.url()
    )
}

/// Wait (bounded) until `cond` holds of `path`'s JSON (as `key`).
async fn wait_for(
    proxy: &Proxy,
    path: &str,
    key: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    bounded(what, async {
        loop {
            let v = json_of(send(client().get(proxy.at(path)).bearer_auth(key)).await).await;
            if cond(&v) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Two replicas of the config `text` (which shares a Redis), each in its
/// own directory, once both are connected to Redis.
struct Replicas {
    a: Proxy,
    b: Proxy,
    _dirs: (WorkDir, WorkDir),
}

impl Replicas {
    async fn start(name: &str, text: &str) -> Replicas {
        let dirs = (
            WorkDir::new(&format!("{name}-a")),
            WorkDir::new(&format!("{name}-b")),
        );
        let a = start_in(dirs.0.path(), text).await;
        let b = start_in(dirs.1.path(), text).await;
        for p in [&a, &b] {
            wait_for(p, "/health", ADMIN, "the Redis store", |h| {
                h["state_store"] == "ok"
            })
            .await;
        }
        Replicas { a, b, _dirs: dirs }
    }

    /// Their chat endpoints.
    fn chat_urls(&self) -> [String; 2] {
        [
            self.a.at("/v1/chat/completions"),
            self.b.at("/v1/chat/completions"),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn two_replicas_sharing_redis_never_pass_one_budget() {
    let redis = redis_server::RedisServer::start();
    // Streams whose usage is exactly the proxy's estimate.
    let up = MockUpstream::with_handler("up", |r: &Recorded| {
        let body = r.json();
        let prompt = input_of(&body);
        let completion = body["max_tokens"].as_u64().unwrap_or(0);
        Reply::Script(stream_steps(2, prompt, completion, None))
    })
    .await;
    let body = chat_body(25, true);
    let each = input_of(&body) + 25;
    let k = 9;
    let text = config(
        &up,
        &format!("{{ tokens = {}, period = \"month\" }}", k * each),
        &redis_state(&redis),
    );
    let replicas = Replicas::start("budget-redis", &text).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let outcomes = fire(&replicas.chat_urls(), TEAM, &body, 50).await;
    let passed = passed(&outcomes);
    for o in outcomes.iter().filter(|o| o.status == StatusCode::OK) {
        assert!(o.text.contains("[DONE]"), "{}", o.text);
    }
    // One budget for both: exactly k answers in all.
    assert_eq!(passed, k);
    assert_eq!(up.stats().requests, k as usize);
    // Both replicas see the shared spend once every settlement is in.
    for p in [a, b] {
        let info = wait_for(p, "/v1/key/info", TEAM, "the settlements", |v| {
            v["spend"]["in_flight"] == 0
        })
        .await;
        assert_eq!(info["spend"]["spent"], k * each, "{info}");
        assert_eq!(info["spend"]["remaining"], 0);
    }
}

/// A request to model "m" whose first target ("down") answers 500 with
/// `down_body`, failed over to an exact upstream: the proxy (its stack
/// `stack`, `extra` appended to its config) after that one request, with
/// the requests each target saw checked.
async fn failed_over(
    name: &str,
    down_body: Value,
    stack: &[&str],
    extra: &str,
) -> (reqwest::Client, Proxy, WorkDir, Value) {
    let down = MockUpstream::start(
        "down",
        Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, down_body),
    )
    .await;
    let up = exact_upstream().await;
    let dir = WorkDir::new(name);
    let text = TestConfig::new()
        .stack(stack)
        .section("auth", &[("admin_keys", &format!("[\"{ADMIN}\"]"))])
        .backend(BackendToml::openai("down", &down.base_url()))
        .backend(BackendToml::openai("up", &up.base_url()))
        .model(ModelToml::new("m").target("down", "m", 1).target("up", "m", 2))
        .raw(&format!(
            "[[keys]]\nname = \"team-a\"\nkey = \"{TEAM}\"\nbudget = {{ tokens = 100000, period = \"day\" }}\n{extra}"
        ))
        .toml();
    let proxy = start_in(dir.path(), &text).await;
    let http = client();
    let body = chat_body(40, false);
    assert_eq!(
        chat_status(&http, &proxy, TEAM, &body).await,
        StatusCode::OK
    );
    assert_eq!((down.stats().requests, up.stats().requests), (1, 1));
    (http, proxy, dir, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_over_request_is_charged_for_the_target_that_answered() {
    let (http, proxy, _dir, body) = failed_over(
        "budget-failover",
        json!({"error": {"message": "boom"}}),
        &["auth", "budget", "failover"],
        "",
    )
    .await;
    // The failed attempt reported no usage: only the answer is charged.
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["spent"], input_of(&body) + 40, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_charged_the_usage_it_reported() {
    // The first target's error answer reports what it used.
    let (http, proxy, _dir, body) = failed_over(
        "budget-failed-usage",
        json!({"error": {"message": "boom"},
               "usage": {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}}),
        &["metrics", "auth", "budget", "failover"],
        "\n[pricing]\n\"m\" = { input = 1.0, output = 2.0 }\n",
    )
    .await;
    // The answer, and the 20 tokens the failed attempt reported.
    let s = spend(&http, &proxy, TEAM).await;
    assert_eq!(s["spent"], input_of(&body) + 40 + 20, "{s}");
    assert_eq!(s["reserved"], 0, "{s}");
    // Its cost is counted at its backend: 17 in × $1 + 3 out × $2 per million.
    let metrics = send(http.get(proxy.at("/metrics")))
        .await
        .text()
        .await
        .unwrap();
    let line = r#"llm_router_cost_usd_total{model="m",backend="down",key="team-a"} "#;
    let cost: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!((cost - 0.000023).abs() < 1e-12, "{metrics}");
    // And its tokens, at its backend.
    for (direction, n) in [("in", 17), ("out", 3)] {
        let line = format!(
            r#"llm_router_tokens_total{{model="m",backend="down",direction="{direction}"}} {n}"#
        );
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

/// The spend Redis holds under `prefix` for the one budget there: spent
/// (its buckets' sum), reserved, and the reservations in flight.
fn redis_spend(redis: &redis_server::RedisServer, prefix: &str) -> (u64, u64, usize) {
    let mut conn = redis::Client::open(redis.url())
        .expect("redis url")
        .get_connection()
        .expect("connect to the test's redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:budget:*:spend"))
        .query(&mut conn)
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "one budget in Redis: {keys:?}");
    let fields: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(&keys[0])
        .query(&mut conn)
        .expect("HGETALL");
    let reserved = fields.iter().find(|(f, _)| f == "r").map_or(0, |(_, a)| *a);
    let spent = fields
        .iter()
        .filter(|(f, _)| f != "r")
        .map(|(_, a)| a)
        .sum();
    let holds: usize = redis::cmd("HLEN")
        .arg(keys[0].replace(":spend", ":holds"))
        .query(&mut conn)
        .expect("HLEN");
    (spent, reserved, holds)
}

/// $1.00 on one key, two replicas sharing one Redis, 50 concurrent streamed
/// requests split over them: each streams a complete answer or gets a clear
/// 429, some of each, and the spend both replicas and Redis record stays
/// within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn fifty_streams_over_two_replicas_stay_within_one_dollar() {
    const MAX_TOKENS: u64 = 40;
    // The upstream counts 3 input tokens more than the proxy's estimate, and
    // its answers stop at 30 output tokens.
    const MORE_INPUT: u64 = 3;
    const ANSWERED: u64 = 30;
    let redis = redis_server::RedisServer::start();
    let up = MockUpstream::with_handler("up", |r: &Recorded| {
        let prompt = input_of(&r.json()) + MORE_INPUT;
        Reply::Script(stream_steps(3, prompt, ANSWERED, None))
    })
    .await;
    let body = chat_body(MAX_TOKENS, true);
    let input = input_of(&body);
    // `[pricing]`: $1,000 per million input tokens and $2,000 per million
    // output tokens, i.e. 1,000,000 and 2,000,000 nano-dollars a token.
    let (per_input, per_output) = (1_000_000, 2_000_000);
    let limit: u64 = 1_000_000_000;
    let estimate = input * per_input + MAX_TOKENS * per_output;
    let cost = (input + MORE_INPUT) * per_input + ANSWERED * per_output;
    // Sized so that some fit and, even one after another, not all 50.
    assert!(estimate <= limit && 50 * cost > limit, "{estimate} {cost}");
    // The bound. Admission reserves each request's estimate and only admits
    // while spent + reserved + estimate <= $1.00, so spend can pass $1.00
    // only by what answers cost beyond their estimates: the estimate error,
    // cost - estimate when positive. Here the 3 input tokens the estimate
    // missed ($0.003) are less than the 10 output tokens reserved and not
    // used ($0.02): the error is 0 and the bound $1.00 exactly.
    let error = cost.saturating_sub(estimate);
    let bound = limit + error;

    let text = config(
        &up,
        "{ usd = 1.0, period = \"month\" }",
        &format!(
            "{}\n[pricing]\n\"m\" = {{ input = 1000.0, output = 2000.0 }}\n",
            redis_state(&redis)
        ),
    );
    let replicas = Replicas::start("budget-dollar", &text).await;
    let (a, b) = (&replicas.a, &replicas.b);

    let outcomes = fire(&replicas.chat_urls(), TEAM, &body, 50).await;
    // Every refusal is a 429 budget_exceeded with Retry-After (`passed`);
    // every answer streamed whole.
    let passed = passed(&outcomes);
    for o in outcomes.iter().filter(|o| o.status == StatusCode::OK) {
        assert!(
            o.text.contains("word2") && o.text.ends_with("data: [DONE]\n\n"),
            "{}",
            o.text
        );
        assert!(!o.text.contains("\"error\""), "{}", o.text);
    }
    // Some of each; at least as many as fit at their estimates.
    assert!(passed >= limit / estimate, "{passed} passed");
    assert!(passed < 50, "{passed} passed");
    assert_eq!(up.stats().requests, passed as usize);

    // Every settlement is in: both replicas, the admin view and Redis agree
    // on the spend of the answers, within the bound.
    let spent = passed * cost;
    assert!(spent <= bound, "{spent} > {bound}");
    let usd = |nanos: u64| nanos as f64 / 1e9;
    for p in [a, b] {
        let info = wait_for(p, "/v1/key/info", TEAM, "the settlements", |v| {
            v["spend"]["in_flight"] == 0
        })
        .await;
        let s = &info["spend"];
        assert_eq!(s["unit"], "usd", "{info}");
        assert!(
            (s["spent"].as_f64().unwrap() - usd(spent)).abs() < 1e-9,
            "{info}"
        );
        assert_eq!(s["reserved"].as_f64(), Some(0.0), "{info}");
    }
    let all = json_of(send(client().get(b.at("/admin/keys")).bearer_auth(ADMIN)).await).await;
    let team = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "team-a")
        .unwrap();
    assert!(
        (team["spend"]["spent"].as_f64().unwrap() - usd(spent)).abs() < 1e-9,
        "{all}"
    );
    assert_eq!(redis_spend(&redis, "budget-test"), (spent, 0, 0));
}

/// Spend a replica decides alone while Redis is frozen is written back when
/// Redis answers again: the other replica, and Redis, then count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn spend_made_while_redis_is_away_reaches_the_other_replica() {
    let redis = redis_server::RedisServer::start();
    let up = exact_upstream().await;
    let body = chat_body(15, false);
    let each = input_of(&body) + 15;
    let text = config(
        &up,
        "{ tokens = 100000, period = \"month\" }",
        &redis_state(&redis),
    );
    let replicas = Replicas::start("budget-away", &text).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let http = client();
    assert_eq!(chat_status(&http, a, TEAM, &body).await, StatusCode::OK);
    wait_for(b, "/v1/key/info", TEAM, "the first answer's spend", |v| {
        v["spend"]["spent"] == each
    })
    .await;

    // Frozen: replica a waits out `[state] timeout` once, then decides alone.
    redis.pause();
    for _ in 0..2 {
        assert_eq!(chat_status(&http, a, TEAM, &body).await, StatusCode::OK);
    }
    let health = json_of(send(http.get(a.at("/health"))).await).await;
    assert_eq!(health["state_store"], "degraded", "{health}");

    // Back: a reconnects and writes what it spent meanwhile.
    redis.resume();
    for p in [b, a] {
        let info = wait_for(p, "/v1/key/info", TEAM, "the spend written back", |v| {
            v["spend"]["spent"] == 3 * each && v["spend"]["in_flight"] == 0
        })
        .await;
        assert_eq!(info["spend"]["reserved"], 0, "{info}");
    }
    assert_eq!(redis_spend(&redis, "budget-test"), (3 * each, 0, 0));
}
