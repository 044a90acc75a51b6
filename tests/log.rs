//! The `log` layer end to end: the real server, a mock upstream, and the
//! files it leaves in `[log] dir` — read after a graceful shutdown, which
//! waits for the writer.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use support::log_records::{by_id, files, records, temp_dir};
use support::*;

const CLIENT_KEY: &str = "sk-test-client-0123456789abcdef";
const ADMIN_KEY: &str = "sk-test-admin-9876543210fedcba";

/// An upstream answering by the model it is asked for.
async fn upstream() -> MockUpstream {
    MockUpstream::with_handler("up", |req| {
        let body = req.json();
        let stream = body["stream"] == true;
        match (req.model().as_str(), stream) {
            ("m-ok", false) => Reply::Chat,
            ("m-ok", true) => Reply::Sse {
                count: 3,
                interval: Duration::ZERO,
                hold_before: None,
                cut_after: None,
            },
            ("m-500", _) => Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"message": "upstream broke", "type": "server_error", "code": null}}),
            ),
            ("m-400", _) => Reply::Json(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": "bad input", "type": "invalid_request_error", "code": "bad_input"}}),
            ),
            // Answers that carry secrets and PII back.
            ("m-leak", false) => Reply::Json(
                StatusCode::OK,
                json!({
                    "id": "chatcmpl-leak", "object": "chat.completion", "created": 1, "model": "m-leak",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                        "content": "Sure: jane.doe@example.com, card 4111 1111 1111 1111, key sk-answer-0123456789abcdef"}}],
                }),
            ),
            ("m-leak", true) => Reply::Script(vec![
                Step::Send(role_chunk("m-leak")),
                Step::Send(chunk("m-leak", "Write to jane.do", None)),
                Step::Send(chunk("m-leak", "e@example.com with sk-stream-0123", None)),
                Step::Send(chunk("m-leak", "456789abcdef, card 4111 1111 ", None)),
                Step::Send(chunk("m-leak", "1111 1111.", Some("stop"))),
                Step::Send(DONE.to_string()),
            ]),
            _ => Reply::Json(StatusCode::NOT_FOUND, json!({"error": {"message": "no such model"}})),
        }
    })
    .await
}

fn config(up: &MockUpstream, extra: &str) -> String {
    let url = up.base_url();
    format!(
        r#"[stack]
order = ["log", "auth", "pii", "failover"]

[auth]
keys = ["{CLIENT_KEY}"]
admin_keys = ["{ADMIN_KEY}"]

[log]
dir = "logs"
{extra}

[[backends]]
name = "up"
provider = "openai"
base_url = "{url}"
api_key = "sk-backend-secret-0123456789"

[[backends]]
name = "up2"
provider = "openai"
base_url = "{url}"

[[models]]
name = "chat"
targets = [{{ backend = "up", model = "m-ok" }}]

[[models]]
name = "flaky"
targets = [{{ backend = "up", model = "m-500", priority = 1 }}, {{ backend = "up2", model = "m-ok", priority = 2 }}]

[[models]]
name = "rejects"
targets = [{{ backend = "up", model = "m-400" }}]

[[models]]
name = "leaky"
targets = [{{ backend = "up", model = "m-leak" }}]
"#
    )
}

async fn start(dir: &Path, text: &str) -> Proxy {
    Proxy::start_with(text, &dir.join("config.toml"), |_| None).await
}

/// POST `body` with the client key; the answer's status, request id and body.
async fn post(proxy: &Proxy, key: Option<&str>, body: Value) -> (u16, String, String) {
    let mut req = client().post(proxy.at("/v1/chat/completions")).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let answer = req.send().await.unwrap();
    let status = answer.status().as_u16();
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = answer.text().await.unwrap();
    (status, id, text)
}

/// Stop the proxy; its shutdown waits for the log writer.
async fn stop(mut proxy: Proxy) {
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
}

#[tokio::test]
async fn records_after_known_traffic() {
    let dir = temp_dir("traffic");
    let up = upstream().await;
    let proxy = start(&dir, &config(&up, "")).await;

    let (s, chat_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("chat")).await;
    assert_eq!(s, 200);
    let (s, stream_id, text) = post(&proxy, Some(CLIENT_KEY), stream_body("chat")).await;
    assert_eq!(s, 200);
    assert!(text.contains("tok2"), "{text}");
    let (s, flaky_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("flaky")).await;
    assert_eq!(s, 200);
    let (s, missing_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("nope")).await;
    assert_eq!(s, 404);
    let (s, rejected_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("rejects")).await;
    assert_eq!(s, 400);
    let (s, anonymous_id, _) = post(&proxy, None, chat_body("chat")).await;
    assert_eq!(s, 401);
    stop(proxy).await;

    let all = records(&dir.join("logs"), false);
    assert_eq!(all.len(), 6, "one record per request: {all:#?}");

    let r = by_id(&all, &chat_id);
    assert_eq!(r["status"], 200);
    assert_eq!(r["client"], "sk-t...cdef");
    assert_eq!(r["client_ip"], "127.0.0.1");
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/v1/chat/completions");
    assert_eq!(r["endpoint"], "chat_completions");
    assert_eq!((&r["model"], &r["stream"]), (&json!("chat"), &json!(false)));
    assert_eq!(
        (&r["backend"], &r["target_model"]),
        (&json!("up"), &json!("m-ok"))
    );
    assert_eq!(r["attempts"], 1);
    assert_eq!((&r["tokens_in"], &r["tokens_out"]), (&json!(1), &json!(2)));
    assert_eq!(r["complete"], true);
    assert_eq!(r["error"], Value::Null);
    let (latency, ttfb, overhead) = (
        r["latency_ms"].as_f64().unwrap(),
        r["ttfb_ms"].as_f64().unwrap(),
        r["overhead_ms"].as_f64().unwrap(),
    );
    assert!(
        latency >= ttfb && ttfb >= overhead && overhead >= 0.0,
        "{r}"
    );
    assert_eq!(r["request"]["messages"][0]["content"], "hello there");
    assert_eq!(r["response"]["choices"][0]["message"]["content"], "from up");
    let time = r["time"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
        "{time}"
    );

    let r = by_id(&all, &stream_id);
    assert_eq!((&r["stream"], &r["status"]), (&json!(true), &json!(200)));
    assert_eq!(r["response"]["text"], "tok0 tok1 tok2 ");
    assert_eq!(r["complete"], true);
    assert!(r.get("response_truncated").is_none());

    let r = by_id(&all, &flaky_id);
    assert_eq!(r["status"], 200);
    assert_eq!(r["attempts"], 2);
    assert_eq!(
        (&r["backend"], &r["target_model"]),
        (&json!("up2"), &json!("m-ok"))
    );
    assert_eq!(r["upstream"][0]["backend"], "up");
    assert_eq!(r["upstream"][0]["status"], 500);
    assert_eq!(r["upstream"][0]["error"], "status_5xx");
    assert_eq!(r["upstream"][1]["error"], Value::Null);

    let r = by_id(&all, &missing_id);
    assert_eq!(r["status"], 404);
    assert_eq!(r["error"]["code"], "model_not_found");
    assert_eq!((&r["attempts"], &r["backend"]), (&json!(0), &Value::Null));

    let r = by_id(&all, &rejected_id);
    assert_eq!(r["status"], 400);
    assert_eq!(
        r["error"],
        json!({"code": "bad_input", "message": "bad input"})
    );

    let r = by_id(&all, &anonymous_id);
    assert_eq!(r["status"], 401);
    assert_eq!(r["client"], Value::Null);
    assert_eq!(r["error"]["code"], "missing_api_key");
    // Not authenticated: logged without its body.
    assert!(r.get("request").is_none(), "{r}");

    // The errors file holds exactly the errors.
    let errors = records(&dir.join("logs"), true);
    let mut ids: Vec<&str> = errors
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![
        missing_id.as_str(),
        rejected_id.as_str(),
        anonymous_id.as_str(),
    ];
    want.sort();
    assert_eq!(ids, want);
    for e in &errors {
        assert!(e["status"].as_u64().unwrap() >= 400, "{e}");
        // The same line, without its bodies (written once, in the session file).
        let mut whole = by_id(&all, e["request_id"].as_str().unwrap()).clone();
        for field in [
            "request",
            "request_truncated",
            "response",
            "response_truncated",
        ] {
            whole.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(e, &whole);
    }
    // The rejected request's body is in the session file.
    assert_eq!(
        by_id(&all, &rejected_id)["request"]["messages"][0]["content"],
        "hello there"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bodies_can_be_left_out() {
    let dir = temp_dir("no-bodies");
    let up = upstream().await;
    let proxy = start(&dir, &config(&up, "requests = false\nresponses = false")).await;
    let (_, ok_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("chat")).await;
    let (_, bad_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("rejects")).await;
    stop(proxy).await;
    let all = records(&dir.join("logs"), false);
    let ok = by_id(&all, &ok_id);
    assert!(
        ok.get("request").is_none() && ok.get("response").is_none(),
        "{ok}"
    );
    assert_eq!(ok["tokens_out"], 2);
    // An error still says what it was.
    let bad = by_id(&all, &bad_id);
    assert_eq!(bad["error"]["message"], "bad input");
    assert!(bad.get("response").is_none(), "{bad}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn no_key_or_pii_reaches_any_file() {
    let dir = temp_dir("secrets");
    let up = upstream().await;
    let proxy = start(&dir, &config(&up, "[pii]\naction = \"redact\"\n")).await;

    let secrets = [
        CLIENT_KEY,
        ADMIN_KEY,
        "sk-backend-secret-0123456789",
        "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3",
        "sk-ant-api03-AbCdEfGh12345678IjKl",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZw",
        "sk-answer-0123456789abcdef",
        "sk-stream-0123456789abcdef",
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "4111111111111111",
        "+44 20 7946 0958",
    ];
    let text = format!(
        "My keys: {CLIENT_KEY}, {ADMIN_KEY}, sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3 and \
         sk-ant-api03-AbCdEfGh12345678IjKl; AWS AKIAIOSFODNN7EXAMPLE; GitHub \
         ghp_abcdefghijklmnopqrstuvwxyz0123456789; a token \
         eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZw. Mail \
         jane.doe@example.com, card 4111 1111 1111 1111 (4111111111111111), call +44 20 7946 0958. \
         The backend key is sk-backend-secret-0123456789."
    );
    let message = |model: &str, stream: bool| {
        json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
            "metadata": {"note": format!("Authorization: Bearer {CLIENT_KEY}")},
        })
    };
    // Keys in headers (Bearer, x-api-key) and in the text; PII both ways.
    let (s, _, _) = post(&proxy, Some(CLIENT_KEY), message("leaky", false)).await;
    assert_eq!(s, 200);
    let (s, _, body) = post(&proxy, Some(ADMIN_KEY), message("leaky", true)).await;
    assert_eq!(s, 200);
    assert!(
        body.contains("jane.do"),
        "the client gets the answer as it is: {body}"
    );
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .header("x-api-key", CLIENT_KEY)
        .json(&message("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A wrong key (refused), and a key as the model name (in the error message).
    let (s, _, _) = post(
        &proxy,
        Some("sk-wrong-key-0123456789abcdef"),
        message("chat", false),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = post(&proxy, Some(CLIENT_KEY), message(CLIENT_KEY, false)).await;
    assert_eq!(s, 404);
    stop(proxy).await;

    let logs = dir.join("logs");
    let all = files(&logs);
    assert!(all.len() >= 2, "{all:?}");
    for path in &all {
        let content = std::fs::read_to_string(path).unwrap();
        for secret in secrets
            .iter()
            .chain(["sk-wrong-key-0123456789abcdef"].iter())
        {
            assert!(
                !content.contains(secret),
                "{} holds `{secret}`:\n{content}",
                path.display()
            );
        }
    }
    let records = records(&logs, false);
    assert_eq!(records.len(), 5);
    // What is there instead.
    let line = serde_json::to_string(&records).unwrap();
    for masked in [
        "sk-t...cdef",
        "sk-t...dcba",
        "AKI...PLE",
        "[EMAIL]",
        "[CREDIT_CARD]",
        "[PHONE]",
    ] {
        assert!(line.contains(masked), "no `{masked}` in {line}");
    }
    let streamed = records.iter().find(|r| r["stream"] == true).unwrap();
    let reassembled = streamed["response"]["text"].as_str().unwrap();
    assert!(
        reassembled.starts_with("Write to [EMAIL] with sk-s...cdef, card [CREDIT_CARD]"),
        "{reassembled}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_records_and_counts_them() {
    use http_body_util::BodyExt;
    use llm_router::{App, ProxyBody};
    use tower::ServiceExt;

    let dir = temp_dir("dropped");
    // A one-record queue: the writer either falls behind (it scrubs PII out
    // of big bodies) or, when it has caught up, sleeps 10 ms before its next
    // drain — both drop records during a burst.
    let text =
        "[stack]\norder = [\"log\", \"pii\"]\n\n[pii]\n\n[log]\ndir = \"logs\"\nqueue = 1\n\n\
                [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
                [[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";
    let config = llm_router::Config::parse(text, &dir.join("config.toml"), &|_| None).unwrap();
    let app = App::from_config(&config).unwrap();
    let words = "mail jane.doe@example.com or call +44 20 7946 0958 today; ".repeat(300);
    let body =
        json!({"model": "echo", "messages": [{"role": "user", "content": words}]}).to_string();
    let n = 400;
    for _ in 0..n {
        let req = http::Request::post("/v1/chat/completions")
            .body(ProxyBody::full(body.clone()))
            .unwrap();
        let answer = app.clone().oneshot(req).await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.into_body().collect().await.unwrap();
    }
    assert!(app.log_flush().wait(Duration::from_secs(30)).await);
    let metrics = app
        .clone()
        .oneshot(
            http::Request::get("/metrics")
                .body(ProxyBody::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let metrics = String::from_utf8(
        metrics
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let dropped: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("llm_router_log_records_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped counter in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    let written = records(&dir.join("logs"), false).len();
    assert!(
        dropped > 0,
        "the writer kept up with {n} requests: raise them"
    );
    assert_eq!(written + dropped, n, "written {written}, dropped {dropped}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_jwt_client_is_logged_by_its_subject() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let secret = "log-test-jwt-secret-0123456789abcdefghij";
    let dir = temp_dir("jwt");
    let up = upstream().await;
    let text = config(&up, "").replace(
        "[auth]\n",
        &format!("[auth]\njwt = {{ secret = \"{secret}\" }}\n"),
    );
    let proxy = start(&dir, &text).await;
    let now = jsonwebtoken::get_current_timestamp();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "jane", "iat": now, "exp": now + 600}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let (s, jwt_id, _) = post(&proxy, Some(&token), chat_body("chat")).await;
    assert_eq!(s, 200);
    let (s, key_id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("chat")).await;
    assert_eq!(s, 200);
    stop(proxy).await;

    let all = records(&dir.join("logs"), false);
    assert_eq!(by_id(&all, &jwt_id)["client"], "jwt:jane");
    assert_eq!(by_id(&all, &key_id)["client"], "sk-t...cdef");
    for path in files(&dir.join("logs")) {
        let content = std::fs::read_to_string(&path).unwrap();
        assert!(!content.contains(&token), "{}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A request body larger than `max_body_bytes` is logged cut to it (taken
/// on the request path: the queue never holds the whole body).
#[tokio::test]
async fn a_5_mib_request_is_logged_cut_to_max_body_bytes() {
    let dir = temp_dir("cut");
    let up = upstream().await;
    let proxy = start(&dir, &config(&up, "max_body_bytes = 4096")).await;
    let words = "word ".repeat(1024 * 1024);
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": words}]});
    assert!(body.to_string().len() > 5 * 1024 * 1024);
    let (s, id, _) = post(&proxy, Some(CLIENT_KEY), body).await;
    assert_eq!(s, 200);
    stop(proxy).await;
    let all = records(&dir.join("logs"), false);
    let r = by_id(&all, &id);
    let logged = r["request"].as_str().expect("the cut text, as a string");
    assert!(
        logged.len() <= 4096 && logged.len() > 4000,
        "{}",
        logged.len()
    );
    assert!(
        logged.starts_with(r#"{"model":"chat","messages":[{"role":"user","content":"word word"#),
        "{}",
        &logged[..200]
    );
    assert_eq!(r["request_truncated"], true);
    let size = std::fs::metadata(
        files(&dir.join("logs"))
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".jsonl"))
            .unwrap(),
    )
    .unwrap()
    .len();
    assert!(size < 8192, "the line is about the cap: {size}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The value of `llm_router_log_records_dropped_total` at `/metrics`.
async fn dropped_records(proxy: &Proxy) -> u64 {
    let text = client()
        .get(proxy.at("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("llm_router_log_records_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped counter in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Records that would take the queue past `queue_bytes` are dropped and
/// counted, however few they are.
#[tokio::test]
async fn a_queue_over_queue_bytes_drops_and_counts() {
    let dir = temp_dir("queue-bytes");
    let up = upstream().await;
    // Room for a few small records; one with a 16 KiB body never fits.
    let proxy = start(&dir, &config(&up, "queue_bytes = 8192")).await;
    let big =
        json!({"model": "chat", "messages": [{"role": "user", "content": "x ".repeat(8192)}]});
    let n_big: u64 = 5;
    let n_small: u64 = 5;
    let mut small_ids = Vec::new();
    for _ in 0..n_big {
        let (s, _, _) = post(&proxy, Some(CLIENT_KEY), big.clone()).await;
        assert_eq!(s, 200);
    }
    for _ in 0..n_small {
        let (s, id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("chat")).await;
        assert_eq!(s, 200);
        small_ids.push(id);
    }
    assert!(proxy.flush_logs(Duration::from_secs(10)).await);
    let dropped = dropped_records(&proxy).await;
    stop(proxy).await;
    let written = records(&dir.join("logs"), false);
    // Every big record dropped, each counted; nothing lost uncounted.
    assert!(dropped >= n_big, "dropped {dropped}");
    assert_eq!(written.len() as u64 + dropped, n_big + n_small);
    assert!(written
        .iter()
        .all(|r| r["request"]["messages"][0]["content"] == "hello there"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files rotate past `max_file_bytes` (renamed `<name>.1`, `.2`...), no
/// record lost, and every file the log writes is readable by its owner only.
#[tokio::test]
async fn log_files_rotate_by_size_and_are_private() {
    let dir = temp_dir("rotate");
    let up = upstream().await;
    let proxy = start(&dir, &config(&up, "max_file_bytes = 3000")).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (s, id, _) = post(&proxy, Some(CLIENT_KEY), chat_body("chat")).await;
        assert_eq!(s, 200);
        ids.push(id);
    }
    let (s, _, _) = post(&proxy, Some(CLIENT_KEY), chat_body("rejects")).await;
    assert_eq!(s, 400);
    stop(proxy).await;
    let logs = dir.join("logs");
    let all = files(&logs);
    let live: Vec<&PathBuf> = all
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".jsonl") && !name.ends_with("_errors.jsonl")
        })
        .collect();
    assert_eq!(live.len(), 1, "{all:?}");
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", live[0].display()));
    assert!(rotated(1).exists(), "no second file: {all:?}");
    // Every record once, across the live file and the rotated ones; none
    // of them over the size.
    let mut seen = Vec::new();
    for path in std::iter::once(live[0].clone()).chain((1..=5).map(rotated)) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        assert!(text.len() <= 3000, "{}: {}", path.display(), text.len());
        for line in text.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            seen.push(r["request_id"].as_str().unwrap().to_string());
        }
    }
    for id in &ids {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id}");
    }
    assert!(all
        .iter()
        .any(|p| p.to_string_lossy().ends_with("_errors.jsonl")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in &all {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
