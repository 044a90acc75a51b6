//! A fast stand-in for an LLM provider, for load benchmarks (`benches/load.sh`).
//!
//! Answers `POST …/chat/completions` with a fixed OpenAI `chat.completion`, or
//! — when the body has `"stream": true` — a short stream of chunks; answers
//! `POST …/v1/messages` the same way in Anthropic's format. With
//! `SLOW_STREAM_MS=n` each streamed event waits `n` ms (slow streams for the
//! memory test); with `FAIL_STATUS=503` every answer is that status with an
//! OpenAI error body (a failing provider, for `benches/soak.sh`). With
//! `STAMP_CONTENT=1` the first content event of a stream carries, as its
//! text, the wall-clock time at which it was made (`t=<ns since the Unix
//! epoch>;`): `examples/stream_client.rs` reads it to measure the time to
//! first content through a proxy.
//!
//! ```sh
//! cargo run --release --example fast_upstream -- 127.0.0.1:9001
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use llm_router::ProxyBody;

const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Here are three short points: revenue grew, costs fell, and the outlook is stable."},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":18,"total_tokens":60}}"#;

const MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"Here are three short points: revenue grew, costs fell, and the outlook is stable."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":42,"output_tokens":18}}"#;

fn chat_events() -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")];
    for word in ["Here ", "are ", "three ", "short ", "points."] {
        out.push(Bytes::from(format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n")));
    }
    out.push(Bytes::from_static(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

fn message_events() -> Vec<Bytes> {
    let mut out = vec![
        Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"bench\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":42,\"output_tokens\":1}}}\n\n"),
        Bytes::from_static(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"),
    ];
    for word in ["Here ", "are ", "three ", "short ", "points."] {
        out.push(Bytes::from(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{word}\"}}}}\n\n")));
    }
    out.push(Bytes::from_static(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    ));
    out.push(Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":18}}\n\n"));
    out.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    out
}

/// Nanoseconds since the Unix epoch (a clock every process on the machine
/// shares).
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The first content event of a chat stream, stamped now.
fn stamped_chat_event() -> Bytes {
    Bytes::from(format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t={};\"}},\"finish_reason\":null}}]}}\n\n", now_ns()))
}

/// The first content event of a Messages stream, stamped now.
fn stamped_message_event() -> Bytes {
    Bytes::from(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"t={};\"}}}}\n\n", now_ns()))
}

async fn handle(
    req: Request<Incoming>,
    slow: Duration,
    fail: Option<http::StatusCode>,
    stamp: bool,
) -> Result<Response<ProxyBody>, Infallible> {
    if let Some(status) = fail {
        let mut r = Response::new(ProxyBody::full(
            r#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#,
        ));
        *r.status_mut() = status;
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    let anthropic = req.uri().path().ends_with("/messages");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let stream = memchr::memmem::find(&body, b"\"stream\":true").is_some();
    if !stream {
        let json = if anthropic { MESSAGE } else { CHAT };
        let mut r = Response::new(ProxyBody::new(Full::new(Bytes::from_static(
            json.as_bytes(),
        ))));
        r.headers_mut().insert(
            "content-type",
            "application/json"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("application/json")),
        );
        return Ok(r);
    }
    let events = if anthropic {
        message_events()
    } else {
        chat_events()
    };
    // The index of the first content event (after the preamble).
    let first_content = if anthropic { 2 } else { 1 };
    let stream =
        futures_util::stream::unfold(events.into_iter().enumerate(), move |mut it| async move {
            let (i, mut next) = it.next()?;
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            if stamp && i == first_content {
                // Stamped when made, after any wait: as close to the write
                // as this server gets.
                next = if anthropic {
                    stamped_message_event()
                } else {
                    stamped_chat_event()
                };
            }
            Some((Ok::<_, Infallible>(Frame::data(next)), it))
        });
    let mut r = Response::new(ProxyBody::new(StreamBody::new(Box::pin(stream))));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    Ok(r)
}

#[tokio::main]
async fn main() -> Result<(), llm_router::BoxError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let slow = Duration::from_millis(
        std::env::var("SLOW_STREAM_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let fail = std::env::var("FAIL_STATUS")
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|v| http::StatusCode::from_u16(v).ok());
    let stamp = std::env::var("STAMP_CONTENT").is_ok_and(|v| v == "1");
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("fast upstream on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, slow, fail, stamp));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
