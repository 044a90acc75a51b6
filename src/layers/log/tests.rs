use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::request::Endpoint;
use record::LoggedRequest;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llm-router-log-unit-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every record in `dir` (files whose name ends with `suffix`).
fn records(dir: &Path, suffix: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(suffix) || (suffix == ".jsonl" && name.ends_with("_errors.jsonl")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

fn request(body: &str) -> Request<ProxyBody> {
    let llm = LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes()).unwrap();
    let mut req = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-client-0123456789abcdef")
        .body(ProxyBody::empty())
        .unwrap();
    req.extensions_mut().insert(llm);
    req
}

#[tokio::test]
async fn json_answer_record() {
    let dir = temp_dir("json");
    let layer = LogLayer::new(LogPolicy::new(&dir));
    let service = layer.layer(service_fn(|req: Request<ProxyBody>| async move {
        // Bodies keep their key order; the log sees the client's request.
        assert!(req.extensions().get::<RequestContext>().is_some());
        Ok::<_, ProxyError>(
            Response::builder()
                .header("content-type", "application/json")
                .body(ProxyBody::full(
                    r#"{"choices":[{"message":{"content":"mail me: jo@example.com"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
                ))
                .unwrap(),
        )
    }));
    let answer = service
        .oneshot(request(
            r#"{"model":"m","messages":[{"role":"user","content":"my key is sk-abcdefgh12345678wxyz"}]}"#,
        ))
        .await
        .unwrap();
    answer.into_body().collect().await.unwrap();
    assert!(layer.flush_handle().wait(Duration::from_secs(5)).await);
    let all = records(&dir, ".jsonl");
    assert_eq!(all.len(), 1, "{all:?}");
    let r = &all[0];
    assert_eq!(r["status"], 200);
    assert_eq!(r["client"], "sk-c...cdef");
    assert_eq!(r["model"], "m");
    assert_eq!(r["endpoint"], "chat_completions");
    assert_eq!(r["complete"], true);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(
        r["request"]["messages"][0]["content"],
        "my key is sk-a...xyz"
    );
    // No scrubber: PII stays (only keys are masked).
    assert_eq!(
        r["response"]["choices"][0]["message"]["content"],
        "mail me: jo@example.com"
    );
    assert!(r["time"].as_str().unwrap().ends_with('Z'));
    assert!(records(&dir, "_errors.jsonl").is_empty());
    // Gone, so no panic of another test writes here any more.
    drop(layer);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn errors_go_to_both_files_and_internal_ones_to_exceptions() {
    let dir = temp_dir("errors");
    let layer = LogLayer::builder(LogPolicy {
        responses: false,
        ..LogPolicy::new(&dir)
    })
    .scrubber(Some(Scrubber::default()))
    .build();
    let service = layer.layer(service_fn(|req: Request<ProxyBody>| async move {
        match req.uri().path() {
            "/internal" => Err(ProxyError::Internal("it broke for jo@example.com".into())),
            "/bad" => Ok(Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("content-type", "application/json")
                .body(ProxyBody::full(
                    r#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limited"}}"#,
                ))
                .unwrap()),
            _ => Ok(Response::new(ProxyBody::full("fine"))),
        }
    }));
    for path in ["/ok", "/bad", "/internal"] {
        let req = Request::post(path).body(ProxyBody::empty()).unwrap();
        if let Ok(answer) = service.clone().oneshot(req).await {
            answer.into_body().collect().await.unwrap();
        }
    }
    assert!(layer.flush_handle().wait(Duration::from_secs(5)).await);
    let all = records(&dir, ".jsonl");
    assert_eq!(all.len(), 3, "{all:?}");
    let errors = records(&dir, "_errors.jsonl");
    let paths: Vec<&str> = errors.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/bad", "/internal"]);
    assert_eq!(errors[0]["error"]["code"], "rate_limited");
    assert_eq!(errors[0]["error"]["message"], "slow down");
    // `responses = false`: the error is kept, the body is not logged.
    assert!(errors[0].get("response").is_none());
    assert_eq!(errors[1]["status"], 500);
    assert_eq!(errors[1]["error"]["code"], "internal_error");
    // Each line is written once whole: the errors file has it without
    // its bodies (they are in the session file's line).
    let bad = all.iter().find(|r| r["path"] == "/bad").unwrap();
    let mut without = bad.clone();
    without.as_object_mut().unwrap().remove("request");
    assert_eq!(errors[0], without);
    // (Panics of tests running beside this one may be there too.)
    let exceptions: Vec<Value> = records(&dir, "exceptions.json")
        .into_iter()
        .filter(|e| e["kind"] == "unhandled_error")
        .collect();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert!(
        exceptions[0]["message"]
            .as_str()
            .unwrap()
            .contains("[EMAIL]"),
        "{exceptions:?}"
    );
    // Gone, so no panic of another test writes here any more.
    drop((layer, service));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A layer whose writer is held back (nothing drains its channel), and
/// the channel's receiving end, to look at what was queued.
fn held(
    policy: LogPolicy,
    metrics: Option<Arc<Metrics>>,
) -> (LogLayer, mpsc::Receiver<Box<Record>>) {
    let mut builder = LogLayer::builder(policy);
    if let Some(m) = metrics {
        builder = builder.metrics(m);
    }
    let layer = builder.build();
    let starter = layer.shared.starter.lock().unwrap().take().unwrap();
    // Marked started, so the first record does not look for the starter.
    layer.shared.started.store(true, Ordering::Release);
    (layer, starter.rx)
}

async fn call_ok(layer: &LogLayer, req: Request<ProxyBody>) {
    let service = layer.layer(service_fn(|_req: Request<ProxyBody>| async {
        Ok::<_, ProxyError>(Response::new(ProxyBody::full("x")))
    }));
    let answer = service.oneshot(req).await.unwrap();
    answer.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn a_long_request_is_cut_before_it_is_queued() {
    let dir = temp_dir("cut");
    let cap = 4096;
    let (layer, mut rx) = held(
        LogPolicy {
            max_body_bytes: cap,
            ..LogPolicy::new(&dir)
        },
        None,
    );
    let words = "word ".repeat(1024 * 1024); // 5 MiB
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": words}]});
    // The client's bytes, and a request a layer before this one edited.
    let raw = request(&body.to_string());
    let mut edited = raw_request(LlmRequest::from_value(Endpoint::ChatCompletions, body).unwrap());
    edited
        .extensions_mut()
        .get_mut::<LlmRequest>()
        .unwrap()
        .body_mut()
        .insert("user".into(), "u".into());
    for req in [raw, edited] {
        call_ok(&layer, req).await;
        let record = rx.try_recv().unwrap();
        let Some(LoggedRequest::Cut(text)) = &record.request else {
            panic!(
                "not cut: {:?}",
                record.request.as_ref().map(LoggedRequest::len)
            );
        };
        assert!(text.len() <= cap && text.len() > cap - 16, "{}", text.len());
        assert!(text.starts_with(r#"{"model":"m","messages":[{"role":"user","content":"word word"#));
        assert!(text.ends_with("word "), "cut at a word boundary");
        // What waits for the writer is about the cap, not the body.
        assert!(record.weight < 2 * cap, "{}", record.weight);
    }
    // A model name as long as a body is cut like one.
    let long_model = format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(10 * cap));
    call_ok(&layer, request(&long_model)).await;
    let record = rx.try_recv().unwrap();
    assert_eq!(record.model.as_deref(), Some(&*"m".repeat(cap)));
    assert!(record.weight < 3 * cap, "{}", record.weight);
    // A short one is kept whole (the client's bytes, shared).
    call_ok(&layer, request(r#"{"model":"m","messages":[]}"#)).await;
    let record = rx.try_recv().unwrap();
    assert!(matches!(&record.request, Some(LoggedRequest::Whole(b)) if b.len() == 27));
}

fn raw_request(llm: LlmRequest) -> Request<ProxyBody> {
    let mut req = Request::post("/v1/chat/completions")
        .body(ProxyBody::empty())
        .unwrap();
    req.extensions_mut().insert(llm);
    req
}

#[tokio::test]
async fn the_queue_is_bounded_in_bytes() {
    let dir = temp_dir("bytes");
    let metrics = Arc::new(Metrics::new());
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(3000)
    );
    // Room for three such records (and many more in count).
    let (layer, mut rx) = held(LogPolicy::new(&dir), Some(metrics.clone()));
    call_ok(&layer, request(&body)).await;
    let weight = rx.try_recv().unwrap().weight;
    assert!(weight > 3000, "{weight}");
    let (layer, mut rx) = held(
        LogPolicy {
            queue_bytes: 3 * weight + weight / 2,
            ..LogPolicy::new(&dir)
        },
        Some(metrics.clone()),
    );
    for _ in 0..10 {
        call_ok(&layer, request(&body)).await;
    }
    assert_eq!(layer.dropped(), 7);
    assert_eq!(layer.shared.queued.load(Ordering::Relaxed), 3 * weight);
    assert!(metrics
        .encode(None)
        .contains("llm_router_log_records_dropped_total 7"));
    // Written and handed back (as the writer does): the room comes back.
    let garbage = layer.shared.garbage.lock().unwrap();
    drop(garbage);
    let (tx, back) = std::sync::mpsc::channel();
    *layer.shared.garbage.lock().unwrap() = back;
    while let Ok(record) = rx.try_recv() {
        tx.send(record).unwrap();
    }
    call_ok(&layer, request(&body)).await;
    assert_eq!(layer.dropped(), 7);
    assert_eq!(layer.shared.queued.load(Ordering::Relaxed), weight);
    assert!(!dir.exists());
}

#[tokio::test]
async fn an_unauthenticated_request_is_logged_without_its_body() {
    let dir = temp_dir("unauthenticated");
    let layer = LogLayer::builder(LogPolicy::new(&dir))
        .auth_inside(true)
        .build();
    let starter = layer.shared.starter.lock().unwrap().take().unwrap();
    layer.shared.started.store(true, Ordering::Release);
    let mut rx = starter.rx;
    // Stands for `auth` with the `IdentityTap` inside it: lets in a request
    // with a key, refuses one without.
    let service = layer.layer(service_fn(|req: Request<ProxyBody>| async move {
        if req.headers().contains_key("authorization") {
            let context = req.extensions().get::<RequestContext>().unwrap();
            context.note_identity("sk-client-0123456789abcdef");
            Ok::<_, ProxyError>(Response::new(ProxyBody::full("x")))
        } else {
            Ok(ProxyError::Unauthorized {
                message: "Missing API key".into(),
                code: "missing_api_key",
            }
            .to_response(crate::request::ClientFormat::OpenAi))
        }
    }));
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;
    let mut anonymous = request(body);
    anonymous.headers_mut().remove("authorization");
    for (req, logged) in [(request(body), true), (anonymous, false)] {
        let answer = service.clone().oneshot(req).await.unwrap();
        answer.into_body().collect().await.unwrap();
        let record = rx.try_recv().unwrap();
        assert_eq!(record.request.is_some(), logged, "{:?}", record.status);
    }
}

#[tokio::test]
async fn a_full_channel_drops_and_counts() {
    let dir = temp_dir("dropped");
    let metrics = Arc::new(Metrics::new());
    let layer = LogLayer::builder(LogPolicy {
        queue: 2,
        ..LogPolicy::new(&dir)
    })
    .metrics(metrics.clone())
    .build();
    // Hold the writer back: nothing drains the channel.
    let held = layer.shared.starter.lock().unwrap().take();
    assert!(held.is_some());
    let service = layer.layer(service_fn(|_req: Request<ProxyBody>| async {
        Ok::<_, ProxyError>(Response::new(ProxyBody::full("x")))
    }));
    for _ in 0..5 {
        let answer = service
            .clone()
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        answer.into_body().collect().await.unwrap();
    }
    assert_eq!(layer.dropped(), 3);
    assert!(metrics
        .encode(None)
        .contains("llm_router_log_records_dropped_total 3"));
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_client_that_goes_away_is_logged_incomplete() {
    let dir = temp_dir("gone");
    let layer = LogLayer::new(LogPolicy::new(&dir));
    let service = layer.layer(service_fn(|_req: Request<ProxyBody>| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        tokio::spawn(async move {
            let chunk = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial answer\"}}]}\n\n";
            let _ = tx.send(bytes::Bytes::from(chunk)).await;
            // Never ends (the sender stays alive).
            std::future::pending::<()>().await;
            drop(tx);
        });
        Ok::<_, ProxyError>(
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(ProxyBody::new(Chan(rx)))
                .unwrap(),
        )
    }));
    let answer = service
        .oneshot(request(r#"{"model":"m","stream":true,"messages":[]}"#))
        .await
        .unwrap();
    let mut body = answer.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    assert!(layer.flush_handle().wait(Duration::from_secs(5)).await);
    let all = records(&dir, ".jsonl");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["complete"], false);
    assert_eq!(all[0]["stream"], true);
    assert_eq!(all[0]["response"]["text"], "partial answer");
    // Gone, so no panic of another test writes here any more.
    drop(layer);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A body fed by a channel.
struct Chan(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for Chan {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[test]
fn panics_are_appended_to_exceptions_json() {
    let dir = temp_dir("panic");
    let layer = LogLayer::new(LogPolicy::new(&dir));
    super::install_panic_hook(&layer.flush_handle());
    let caught = std::panic::catch_unwind(|| {
        panic!("boom with sk-1234567890abcdef inside");
    });
    assert!(caught.is_err());
    let exceptions = records(&dir, "exceptions.json");
    let ours: Vec<&Value> = exceptions
        .iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with("boom")))
        .collect();
    assert_eq!(ours.len(), 1, "{exceptions:?}");
    assert_eq!(ours[0]["kind"], "panic");
    assert_eq!(ours[0]["message"], "boom with sk-...def inside");
    assert!(ours[0]["location"].as_str().unwrap().contains("tests.rs"));
    // Once the layer is gone, its directory gets no more panics.
    drop(layer);
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = std::panic::catch_unwind(|| panic!("boom again"));
    assert!(!dir.exists());
}

/// A writer that will never catch up: a record counted as handed over that
/// the writer never got (its thread is not even started).
fn behind(layer: &LogLayer) {
    layer.shared.progress.sent();
}

#[tokio::test(start_paused = true)]
async fn two_layers_do_not_wait_for_each_others_writers() {
    let slow = LogLayer::new(LogPolicy::new(temp_dir("flush-slow")));
    let fast = LogLayer::new(LogPolicy::new(temp_dir("flush-fast")));
    behind(&slow);
    let started = tokio::time::Instant::now();
    assert!(fast.flush_handle().wait(Duration::from_secs(5)).await);
    assert_eq!(started.elapsed(), Duration::ZERO);
    // The slow one's own handle waits for it, up to the timeout.
    assert!(!slow.flush_handle().wait(Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_gathered_handle_waits_for_a_replaced_layer_until_it_is_gone() {
    let old = LogLayer::new(LogPolicy::new(temp_dir("flush-old")));
    let new = LogLayer::new(LogPolicy::new(temp_dir("flush-new")));
    let all = LogFlush::default();
    all.include(&old.flush_handle());
    // A clone sees what is included later (a reload's stack).
    let seen_before = all.clone();
    all.include(&new.flush_handle());
    all.include(&new.flush_handle());
    assert_eq!(format!("{all:?}"), "LogFlush { writers: 2 }");
    // The replaced layer, still held by a request in flight, is behind.
    behind(&old);
    assert!(!seen_before.wait(Duration::from_secs(1)).await);
    // Gone (its writer never started): nothing left to wait for, and the
    // set forgets it at the next include.
    drop(old);
    assert!(seen_before.wait(Duration::from_secs(1)).await);
    all.include(&LogFlush::default());
    assert_eq!(format!("{all:?}"), "LogFlush { writers: 1 }");
}

#[tokio::test]
async fn a_gathered_handle_waits_for_records_written_after_the_layer_is_dropped() {
    let dir = temp_dir("flush-dropped");
    let layer = LogLayer::new(LogPolicy::new(&dir));
    let all = LogFlush::default();
    all.include(&layer.flush_handle());
    let service = layer.layer(service_fn(|_req: Request<ProxyBody>| async {
        Ok::<_, ProxyError>(Response::new(ProxyBody::full("fine")))
    }));
    let answer = service
        .oneshot(request(r#"{"model":"m","messages":[]}"#))
        .await
        .unwrap();
    answer.into_body().collect().await.unwrap();
    // The stack is gone (a reload replaced it); its writer finishes.
    drop(layer);
    assert!(all.wait(Duration::from_secs(5)).await);
    assert_eq!(records(&dir, ".jsonl").len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
