use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::request::Endpoint;

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
        assert!(req.extensions().get::<AttemptLog>().is_some());
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
    assert!(flush(Duration::from_secs(5)).await);
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
    assert!(flush(Duration::from_secs(5)).await);
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
    assert!(flush(Duration::from_secs(5)).await);
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
