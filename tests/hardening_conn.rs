//! Issue 15, connections and bodies: `[server] header_read_timeout`,
//! `idle_timeout`, `max_connections` and `body_read_timeout`, and the key
//! checked before the body is read. The real server on 127.0.0.1:0, spoken
//! to over raw TCP where the test needs to control every byte; the timeouts
//! are configured tiny, and every wait is bounded.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "sk-hardening-client-0123456789";

/// A config with the given `[server]` lines, `auth` on and the `mock` model
/// `echo`; `extra` is appended.
fn config(server: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n[auth]\nkeys = [\"{KEY}\"]\n\n\
         [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
         [[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n\n{extra}"
    )
}

/// One HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The head's header lines, lower-cased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// Read one answer (with a `content-length`) from `stream`.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read the answer");
        assert!(
            n > 0,
            "the connection closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "the connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Answer { status, head, body }
}

/// Wait (bounded) until the server closes `stream`; how long it took.
async fn closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    bounded("the server to close the connection", async {
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    })
    .await;
    started.elapsed()
}

/// Whether `stream` stays open (no byte, no close) for `window`: for the
/// assertions that something does NOT happen (correct code never fails them).
async fn stays_open(stream: &mut TcpStream, window: Duration) -> bool {
    let mut chunk = [0u8; 1];
    tokio::time::timeout(window, stream.read(&mut chunk))
        .await
        .is_err()
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: proxy\r\n\r\n";

async fn health(stream: &mut TcpStream) {
    stream.write_all(HEALTH).await.unwrap();
    let answer = read_answer(stream).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

// header_read_timeout -------------------------------------------------------

#[tokio::test]
async fn a_silent_connection_is_closed_after_header_read_timeout() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"200ms\"\nidle_timeout = \"1h\"",
        "",
    ))
    .await;
    let mut silent = TcpStream::connect(proxy.addr()).await.unwrap();
    let took = closed(&mut silent).await;
    assert!(took >= Duration::from_millis(150), "closed after {took:?}");
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_after_header_read_timeout() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"200ms\"\nidle_timeout = \"1h\"",
        "",
    ))
    .await;
    let mut partial = TcpStream::connect(proxy.addr()).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let took = closed(&mut partial).await;
    assert!(took >= Duration::from_millis(100), "closed after {took:?}");
}

#[tokio::test]
async fn a_partial_head_is_closed_after_header_read_timeout_even_on_a_used_connection() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"1h\"",
        "",
    ))
    .await;
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    first
        .write_all(b"GET /health HTTP/1.1\r\nhost: proxy\r\n")
        .await
        .unwrap();
    closed(&mut first).await;

    // After a request: the next head's first byte starts the clock.
    let mut used = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut used).await;
    used.write_all(b"GET /health HT").await.unwrap();
    let took = closed(&mut used).await;
    assert!(took >= Duration::from_millis(200), "closed after {took:?}");
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_header_read_timeout() {
    let dir = temp_dir("tls-stall");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let proxy = Proxy::start(&config(
        &format!(
            "header_read_timeout = \"200ms\"\nidle_timeout = \"1h\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
        "",
    ))
    .await;
    // The first bytes of a TLS record header (a ClientHello), then nothing.
    let mut stalled = TcpStream::connect(proxy.addr()).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let took = closed(&mut stalled).await;
    assert!(took >= Duration::from_millis(150), "closed after {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// idle_timeout -----------------------------------------------------------------

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"1h\"\nidle_timeout = \"300ms\"",
        "",
    ))
    .await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut conn).await;
    health(&mut conn).await;
    let took = closed(&mut conn).await;
    assert!(took >= Duration::from_millis(200), "closed after {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_header_read_timeout() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"100ms\"\nidle_timeout = \"1h\"",
        "",
    ))
    .await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut conn).await;
    // Idle is not "reading a head": hyper's own header timer would have
    // closed it after 100 ms.
    assert!(stays_open(&mut conn, Duration::from_millis(500)).await);
    health(&mut conn).await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_idle_timeout() {
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"1h\"\nidle_timeout = \"300ms\"",
        "",
    ))
    .await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get(format!("http://{}/health", proxy.addr()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = sender.send_request(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    drop(answer);
    // The server says GOAWAY and closes: the client's connection task ends.
    let started = Instant::now();
    bounded("the HTTP/2 connection to end", conn)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// An upstream streaming 8 events 100 ms apart (longer than the idle and
/// header timeouts of the proxy in front of it).
async fn slow_stream_proxy() -> (MockUpstream, Proxy) {
    let up = MockUpstream::start(
        "up",
        Reply::Sse {
            count: 8,
            interval: Duration::from_millis(100),
            hold_before: None,
            cut_after: None,
        },
    )
    .await;
    let extra = openai_backend("up", &up.base_url(), "") + &model("slow", "up", None);
    let proxy = Proxy::start(&config(
        "header_read_timeout = \"200ms\"\nidle_timeout = \"200ms\"",
        &extra,
    ))
    .await;
    (up, proxy)
}

async fn whole_stream(http: &reqwest::Client, proxy: &Proxy) -> (String, Duration) {
    let started = Instant::now();
    let answer = http
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&stream_body("slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.expect("the whole stream");
    (text, started.elapsed())
}

#[tokio::test]
async fn a_stream_in_flight_longer_than_idle_timeout_is_not_cut() {
    let (_up, proxy) = slow_stream_proxy().await;
    for http in [client(), h2_client()] {
        let (text, took) = whole_stream(&http, &proxy).await;
        assert!(took >= Duration::from_millis(600), "{took:?}");
        assert!(text.contains("tok7"), "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
}

// max_connections -----------------------------------------------------------

#[tokio::test]
async fn beyond_max_connections_a_connection_waits_until_one_ends() {
    let proxy = Proxy::start(&config("max_connections = 2", "")).await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut a).await;
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut b).await;

    // The third connects (the kernel's backlog) but is not served...
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(HEALTH).await.unwrap();
    assert!(stays_open(&mut c, Duration::from_millis(500)).await);
    // ...while the two others are.
    health(&mut b).await;

    // One ends: the third is accepted and answered.
    drop(a);
    let answer = bounded("the third connection's answer", read_answer(&mut c)).await;
    assert_eq!(answer.status, 200);
    health(&mut b).await;
}

// body_read_timeout ---------------------------------------------------------

/// A request head for `path` announcing `length` body bytes, with `key`.
fn upload_head(path: &str, length: usize, key: Option<&str>) -> Vec<u8> {
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n{auth}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_stalled_authenticated_upload_gets_408_in_the_clients_format() {
    let proxy = Proxy::start(&config("body_read_timeout = \"300ms\"", "")).await;
    for (path, anthropic) in [("/v1/chat/completions", false), ("/v1/messages", true)] {
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        conn.write_all(&upload_head(path, 100, Some(KEY)))
            .await
            .unwrap();
        conn.write_all(br#"{"model":"#).await.unwrap();
        let started = Instant::now();
        let answer = bounded("the 408", read_answer(&mut conn)).await;
        let took = started.elapsed();
        assert_eq!(answer.status, 408, "{answer:?}");
        assert!(took >= Duration::from_millis(250), "408 after {took:?}");
        assert_eq!(answer.header("connection"), Some("close"));
        let body = answer.json();
        if anthropic {
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], "invalid_request_error");
        } else {
            assert_eq!(body["error"]["code"], "request_timeout");
        }
        closed(&mut conn).await;
    }
}

#[tokio::test]
async fn a_slow_upload_that_never_stalls_long_is_read() {
    let proxy = Proxy::start(&config("body_read_timeout = \"400ms\"", "")).await;
    let body = serde_json::to_vec(&chat_body("echo")).unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(&upload_head("/v1/chat/completions", body.len(), Some(KEY)))
        .await
        .unwrap();
    // Four pieces, 150 ms apart: 450 ms in all, no gap of 400 ms.
    for piece in body.chunks(body.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        conn.write_all(piece).await.unwrap();
    }
    let answer = bounded("the answer", read_answer(&mut conn)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

// Authentication before the body ----------------------------------------------

#[tokio::test]
async fn a_keyless_upload_is_refused_at_once_without_waiting_for_its_body() {
    // A body that would take the whole test to time out.
    let proxy = Proxy::start(&config("body_read_timeout = \"1h\"", "")).await;
    for (path, key, code) in [
        ("/v1/chat/completions", None, "missing_api_key"),
        (
            "/v1/messages",
            Some("sk-wrong-0123456789"),
            "invalid_api_key",
        ),
    ] {
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        conn.write_all(&upload_head(path, 10_000_000, key))
            .await
            .unwrap();
        let answer = bounded("the 401", read_answer(&mut conn)).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.header("connection"), Some("close"));
        let body = answer.json();
        if path == "/v1/messages" {
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], "authentication_error");
        } else {
            assert_eq!(body["error"]["code"], code);
        }
        // The body is not waited for: the connection ends.
        closed(&mut conn).await;
    }
}

#[tokio::test]
async fn fifty_stalled_keyless_uploads_are_each_refused_and_closed() {
    let proxy = Proxy::start(&config("body_read_timeout = \"1h\"", "")).await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut start = upload_head("/v1/chat/completions", 5_000_000, None);
        // The start of a large body, then nothing more.
        start.extend_from_slice(br#"{"model":"echo","messages":[{"role":"user","content":""#);
        start.extend(std::iter::repeat_n(b'x', 1024));
        conn.write_all(&start).await.unwrap();
        conns.push(conn);
    }
    for conn in &mut conns {
        let answer = bounded("a 401", read_answer(conn)).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        closed(conn).await;
    }
    // The proxy serves on.
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// A client that sends its whole body before it reads (Python's http.client,
/// requests, httpx) gets the 401, not a reset connection: the refused body
/// is read and thrown away (never kept), then the connection ends.
#[tokio::test]
async fn a_keyless_client_that_sends_its_whole_body_first_gets_the_401() {
    let proxy = Proxy::start(&config("", "")).await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let length = 8 << 20;
    let mut request = upload_head("/v1/chat/completions", length, None);
    request.extend(std::iter::repeat_n(b'x', length));
    // 8 MiB is far more than the socket buffers hold: it is all written
    // only if the proxy goes on reading after its answer.
    bounded("the whole body to be taken", conn.write_all(&request))
        .await
        .unwrap();
    let answer = bounded("a 401", read_answer(&mut conn)).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    closed(&mut conn).await;
}

#[tokio::test]
async fn a_keyless_request_with_a_complete_body_keeps_its_connection() {
    let proxy = Proxy::start(&config("", "")).await;
    let body = serde_json::to_vec(&chat_body("echo")).unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut request = upload_head("/v1/chat/completions", body.len(), None);
    request.extend_from_slice(&body);
    conn.write_all(&request).await.unwrap();
    let answer = read_answer(&mut conn).await;
    assert_eq!(answer.status, 401);
    // hyper may close it (the body was never read) or keep it; either
    // way a new request on a new connection works, with the key.
    let mut request = upload_head("/v1/chat/completions", body.len(), Some(KEY));
    request.extend_from_slice(&body);
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    fresh.write_all(&request).await.unwrap();
    assert_eq!(read_answer(&mut fresh).await.status, 200);
}

/// A fresh directory for one test's config and logs.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llm-router-hardening-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every record of the session files under `dir`.
fn log_records(dir: &Path) -> (Vec<Value>, String) {
    let mut records = Vec::new();
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        all.push_str(&text);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("router_") && !name.ends_with("_errors.jsonl") {
            for line in text.lines() {
                records.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    (records, all)
}

#[tokio::test]
async fn a_refused_request_is_logged_and_counted_without_its_body() {
    let dir = temp_dir("refused-log");
    let text = config(
        "",
        "[stack]\norder = [\"log\", \"metrics\", \"auth\", \"failover\"]\n\n[log]\ndir = \"logs\"\n",
    );
    let mut proxy = Proxy::start_with(&text, &dir.join("config.toml"), |_| None).await;

    // A keyless request whose body is all there, and one whose body never comes.
    let marker = "unread-body-marker-3141592";
    let mut body = chat_body("echo");
    body["messages"][0]["content"] = marker.into();
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .header("x-request-id", "refused-complete")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut head = upload_head("/v1/messages", 1_000_000, None);
    head.splice(
        head.len() - 2..head.len() - 2,
        b"x-request-id: refused-stalled\r\n".iter().copied(),
    );
    conn.write_all(&head).await.unwrap();
    assert_eq!(read_answer(&mut conn).await.status, 401);
    // And one let in, to compare.
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .header("x-request-id", "accepted")
        .bearer_auth(KEY)
        .json(&chat_body("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    let metrics = client()
        .get(proxy.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("llm_router_requests_total") && l.contains("status=\"401\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 2.0, "{metrics}");

    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    let (records, files) = log_records(&dir.join("logs"));
    assert!(!files.contains(marker), "an unread body reached the log");
    // (An Anthropic error has no code: its type is logged.)
    for (id, code) in [
        ("refused-complete", "missing_api_key"),
        ("refused-stalled", "authentication_error"),
    ] {
        let r = records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no record of {id}: {records:#?}"));
        assert_eq!(r["status"], 401, "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
        assert!(r.get("request").is_none_or(Value::is_null), "{r}");
        assert!(r["model"].is_null(), "{r}");
    }
    let r = records
        .iter()
        .find(|r| r["request_id"] == "accepted")
        .unwrap();
    assert_eq!(r["status"], 200);
    assert_eq!(r["model"], "echo");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refusal_before_the_body_is_counted_once() {
    const ADMIN: &str = "sk-hardening-admin-0123456789";
    let text = config("", "").replace(
        &format!("keys = [\"{KEY}\"]"),
        &format!("keys = [\"{KEY}\"]\nadmin_keys = [\"{ADMIN}\"]"),
    );
    let proxy = Proxy::start(&text).await;
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth("sk-wrong-0123456789")
        .json(&chat_body("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let metrics: Value = client()
        .get(proxy.at("/auth/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metrics["rejected"]["missing_key"], 1, "{metrics}");
    assert_eq!(metrics["rejected"]["invalid_key"], 1, "{metrics}");
}

#[tokio::test]
async fn a_shutdown_is_not_held_up_by_connections_without_a_request() {
    let mut proxy = Proxy::start(&config(
        "header_read_timeout = \"1h\"\nidle_timeout = \"1h\"\nshutdown_timeout = \"1h\"",
        "",
    ))
    .await;
    // Silent, halfway through a head, idle after a request, idle HTTP/2.
    let mut silent = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut partial = TcpStream::connect(proxy.addr()).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(proxy.addr()).await.unwrap();
    health(&mut idle).await;
    let h2 = h2_client();
    let answer = h2.get(proxy.at("/health")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    proxy.trigger_shutdown();
    proxy.join().await.unwrap();
    for conn in [&mut silent, &mut partial, &mut idle] {
        closed(conn).await;
    }
}

#[tokio::test]
async fn auth_below_the_split_point_also_refuses_before_the_body() {
    let proxy = Proxy::start(&config(
        "body_read_timeout = \"1h\"",
        "[stack]\norder = [\"failover\", \"auth\"]\n",
    ))
    .await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(&upload_head("/v1/chat/completions", 1_000_000, None))
        .await
        .unwrap();
    let answer = bounded("the 401", read_answer(&mut conn)).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], "missing_api_key");
    closed(&mut conn).await;
    let answer = client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
