//! Tests of the stream guard: the commit point, failures before and after it,
//! usage, and the Responses API's numbering.

use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::*;
use crate::body::{BoxError, ProxyBody};
use crate::request::ClientFormat;

type Tx = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

fn channel_body() -> (Tx, ProxyBody) {
    let (tx, rx) = mpsc::channel(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, ProxyBody::new(StreamBody::new(stream)))
}

fn ev(s: &str) -> Result<Frame<Bytes>, BoxError> {
    Ok(Frame::data(Bytes::from(format!("data: {s}\n\n"))))
}

const ROLE: &str = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
const HI: &str = r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
const STOP: &str = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

async fn drain(guard: StreamGuard) -> String {
    String::from_utf8(guard.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn preamble_held_until_content() {
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    tx.send(ev(ROLE)).await.unwrap();
    {
        let wait = guard.wait_for_first_content(Duration::from_secs(5));
        tokio::pin!(wait);
        // Role-only: not committed yet.
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut wait)
            .await
            .is_err());
        tx.send(ev(HI)).await.unwrap();
        wait.await.unwrap();
    }
    tx.send(ev(STOP)).await.unwrap();
    tx.send(ev("[DONE]")).await.unwrap();
    drop(tx);
    let out = drain(guard).await;
    assert_eq!(
        out,
        format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
    );
}

#[tokio::test(start_paused = true)]
async fn first_byte_timeout() {
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    tx.send(ev(ROLE)).await.unwrap();
    let e = guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, StreamFailure::FirstByteTimeout(_)));
}

#[tokio::test]
async fn error_event_before_commit_fails() {
    let body = ProxyBody::full(format!(
        "data: {ROLE}\n\ndata: {{\"error\":{{\"message\":\"overloaded\"}}}}\n\n"
    ));
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    let e = guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, StreamFailure::ErrorEvent(m) if m == "overloaded"));
}

#[tokio::test]
async fn ended_before_content_fails() {
    let body = ProxyBody::full(format!("data: {ROLE}\n\n"));
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    let e = guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, StreamFailure::EndedEarly));
}

#[tokio::test]
async fn cut_after_commit_ends_with_error_event() {
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    tx.send(ev(HI)).await.unwrap();
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    tx.send(Err("connection reset".into())).await.unwrap();
    drop(tx);
    let out = drain(guard).await;
    assert!(out.starts_with(&format!("data: {HI}\n\n")));
    assert!(out.contains("upstream_stream_interrupted"), "{out}");
    assert!(!out.contains("[DONE]"));
}

/// An Anthropic content delta.
const DELTA: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";

/// A guard with a 3 s idle timeout, committed on one delta; the sender of
/// the rest of its upstream.
async fn committed_with_idle_timeout() -> (Tx, StreamGuard) {
    let (tx, body) = channel_body();
    let config = GuardConfig::new(ClientFormat::Anthropic).idle_timeout(Duration::from_secs(3));
    let mut guard = StreamGuard::new(body, config);
    tx.send(Ok(Frame::data(Bytes::from_static(DELTA))))
        .await
        .unwrap();
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    (tx, guard)
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_after_commit() {
    let (tx, guard) = committed_with_idle_timeout().await;
    let out = drain(guard).await;
    assert!(out.contains("event: error"), "{out}");
    assert!(out.contains("sent nothing for 3s"), "{out}");
    drop(tx);
}

/// The idle timer is not reset at each frame: a stream whose data keeps
/// coming within `idle_timeout` outlives the timer's first deadline.
#[tokio::test(start_paused = true)]
async fn data_within_the_idle_timeout_keeps_a_stream_alive() {
    let (tx, guard) = committed_with_idle_timeout().await;
    tokio::spawn(async move {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(DELTA))))
                .await
                .unwrap();
        }
        // Then quiet for longer than the timeout.
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tx);
    });
    let started = tokio::time::Instant::now();
    let out = drain(guard).await;
    assert_eq!(out.matches("content_block_delta\ndata").count(), 5, "{out}");
    assert!(out.contains("sent nothing for 3s"), "{out}");
    // Cut 3 s after the last data (at 8 s), not at the first deadline.
    assert_eq!(started.elapsed(), Duration::from_secs(11));
}

#[tokio::test]
async fn missing_done_after_finish_is_added_and_malformed_skipped() {
    let body = ProxyBody::full(format!("data: {HI}\n\ndata: not json\n\ndata: {STOP}\n\n"));
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    let out = drain(guard).await;
    assert_eq!(
        out,
        format!("data: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
    );
}

#[tokio::test]
async fn anthropic_usage_is_put_together_from_its_pieces() {
    let body = ProxyBody::full(concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":100}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    let slot = crate::usage::UsageSlot::default();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Anthropic))
        .with_usage(slot.clone(), true);
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    let out = drain(guard).await;
    assert!(
        out.ends_with("data: {\"type\":\"message_stop\"}\n\n"),
        "{out}"
    );
    assert!(out.contains("message_delta"), "nothing stripped: {out}");
    let usage = slot.get().unwrap();
    assert_eq!(usage.prompt_tokens, 125);
    assert_eq!(usage.cached_tokens, 100);
    assert_eq!(usage.completion_tokens, 15);
    assert_eq!(usage.total(), 140);
}

#[tokio::test]
async fn events_split_across_frames() {
    let whole = format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n");
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
    let feeder = tokio::spawn(async move {
        for b in whole.as_bytes().chunks(1) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(b))))
                .await
                .unwrap();
        }
    });
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    let out = drain(guard).await;
    feeder.await.unwrap();
    assert_eq!(
        out,
        format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
    );
}

fn rev(kind: &str, seq: u64, extra: &str) -> String {
    format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{extra}}}\n\n")
}

#[tokio::test(start_paused = true)]
async fn responses_preamble_commit_and_failure() {
    let head = r#","response":{"id":"resp_1","model":"m","created_at":5,"status":"in_progress"}"#;
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Responses));
    tx.send(Ok(Frame::data(Bytes::from(rev(
        "response.created",
        0,
        head,
    )))))
    .await
    .unwrap();
    tx.send(Ok(Frame::data(Bytes::from(rev(
        "response.in_progress",
        1,
        head,
    )))))
    .await
    .unwrap();
    {
        let wait = guard.wait_for_first_content(Duration::from_secs(5));
        tokio::pin!(wait);
        // Preamble only: not committed.
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut wait)
            .await
            .is_err());
        tx.send(Ok(Frame::data(Bytes::from(rev(
            "response.output_item.added",
            2,
            r#","output_index":0,"item":{"type":"message"}"#,
        )))))
        .await
        .unwrap();
        wait.await.unwrap();
    }
    // The upstream breaks after the commit.
    tx.send(Err("reset".into())).await.unwrap();
    drop(tx);
    let out = drain(guard).await;
    let events: Vec<serde_json::Value> = out
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "error",
            "response.failed"
        ]
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    let failed = &events[4]["response"];
    assert_eq!(failed["id"], "resp_1");
    assert_eq!(failed["status"], "failed");
    assert!(!out.contains("response.completed"));
}

#[tokio::test(start_paused = true)]
async fn responses_error_before_output_fails_over() {
    let (tx, body) = channel_body();
    let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Responses));
    tx.send(Ok(Frame::data(Bytes::from(rev("response.created", 0, "")))))
        .await
        .unwrap();
    tx.send(Ok(Frame::data(Bytes::from(rev(
        "response.failed",
        1,
        r#","response":{"error":{"code":"server_error","message":"overloaded"}}"#,
    )))))
    .await
    .unwrap();
    let e = guard
        .wait_for_first_content(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, StreamFailure::ErrorEvent(m) if m == "overloaded"));
}

#[tokio::test(start_paused = true)]
async fn responses_completed_carries_usage() {
    let slot = crate::usage::UsageSlot::default();
    let stream = format!(
        "{}{}{}",
        rev("response.created", 0, ""),
        rev("response.output_text.delta", 1, r#","delta":"Hi""#),
        rev(
            "response.completed",
            2,
            r#","response":{"usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":2},"output_tokens":3,"total_tokens":10}}"#
        ),
    );
    let mut guard = StreamGuard::new(
        ProxyBody::full(stream.clone()),
        GuardConfig::new(ClientFormat::Responses),
    )
    .with_usage(slot.clone(), false);
    guard
        .wait_for_first_content(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(drain(guard).await, stream);
    let usage = slot.get().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens
        ),
        (7, 3, 2)
    );
}

/// A guard with a stream slot (input estimate: 50 tokens).
fn tallied(body: ProxyBody, format: ClientFormat) -> (StreamGuard, crate::usage::UsageSlot) {
    let slot = crate::usage::UsageSlot::default();
    slot.begin_stream(50);
    let guard = StreamGuard::new(body, GuardConfig::new(format)).with_usage(slot.clone(), false);
    (guard, slot)
}

#[tokio::test]
async fn a_stream_cut_short_is_charged_its_delivered_text() {
    // OpenAI: text and a tool call's arguments, then the client goes away.
    let (tx, body) = channel_body();
    let (mut guard, slot) = tallied(body, ClientFormat::OpenAi);
    tx.send(ev(ROLE)).await.unwrap();
    tx.send(ev(
        r#"{"choices":[{"index":0,"delta":{"content":"12345678"}}]}"#,
    ))
    .await
    .unwrap();
    tx.send(ev(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#))
        .await
        .unwrap();
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    let first = guard.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    // Let the guard read the third event.
    let _ = guard.frame().await;
    let _ = guard.frame().await;
    drop(guard);
    drop(tx);
    let u = slot.get().unwrap();
    assert!(slot.is_estimate());
    // 8 bytes of text + 7 of arguments: 4 tokens; the request's 50 in.
    assert_eq!((u.prompt_tokens, u.completion_tokens), (50, 4));

    // Anthropic: its first event reports the input; the output is what was delivered.
    let (tx, body) = channel_body();
    let (mut guard, slot) = tallied(body, ClientFormat::Anthropic);
    for e in [
        r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":300,"output_tokens":1}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"0123456789abcdef"}}"#,
    ] {
        tx.send(ev(e)).await.unwrap();
    }
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    drop(guard);
    let u = slot.get().unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (300, 4));
}

#[tokio::test]
async fn a_complete_stream_is_as_reported() {
    // The usage chunk settles it.
    let body = ProxyBody::full(format!(
        "data: {HI}\n\ndata: {STOP}\n\ndata: {}\n\ndata: [DONE]\n\n",
        r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#
    ));
    let (mut guard, slot) = tallied(body, ClientFormat::OpenAi);
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    drain(guard).await;
    assert!(!slot.is_estimate());
    assert_eq!(slot.get().unwrap().total(), 10);
    // Complete without usage (no `include_usage`): none.
    let body = ProxyBody::full(format!("data: {HI}\n\ndata: {STOP}\n\n"));
    let (mut guard, slot) = tallied(body, ClientFormat::OpenAi);
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    assert!(drain(guard).await.ends_with("data: [DONE]\n\n"));
    assert_eq!(slot.get(), None);
    // Responses: deltas read without parsing; `response.completed` settles.
    let body = ProxyBody::full(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abcdefgh\",\"sequence_number\":1}\n\n",
    );
    let (mut guard, slot) = tallied(body, ClientFormat::Responses);
    guard
        .wait_for_first_content(Duration::from_secs(2))
        .await
        .unwrap();
    drop(guard);
    assert_eq!(slot.get().unwrap().completion_tokens, 2);
}
