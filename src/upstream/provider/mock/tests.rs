//! Tests of the mock provider: every endpoint's answer, through
//! [`Provider::prepare`].

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;

use super::embeddings::embed;
use super::words::words_with_spaces;
use super::*;
use crate::upstream::{Backend, Target};

async fn run(endpoint: Endpoint, body: &str) -> (Response<()>, Bytes) {
    let target = Target::new(
        Arc::new(Backend::builder("m", Arc::new(Mock)).build().unwrap()),
        None,
    );
    let request = LlmRequest::parse(endpoint, body.as_bytes()).unwrap();
    let headers = http::HeaderMap::new();
    let call = Call {
        request: &request,
        target: &target,
        headers: &headers,
        client_credential: None,
    };
    let Outbound::Local(r) = Mock.prepare(&call).unwrap() else {
        panic!("mock went upstream")
    };
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

#[tokio::test]
async fn every_answer_is_marked() {
    for (endpoint, body) in [
        (
            Endpoint::ChatCompletions,
            r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"echo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            Endpoint::Messages,
            r#"{"model":"echo","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (Endpoint::Responses, r#"{"model":"echo","input":"hi"}"#),
        (Endpoint::Completions, r#"{"model":"echo","prompt":"hi"}"#),
        (Endpoint::Embeddings, r#"{"model":"echo","input":"hi"}"#),
        (
            Endpoint::CountTokens,
            r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ] {
        let (r, _) = run(endpoint, body).await;
        assert_eq!(r.headers()[MOCK_HEADER], "true", "{body}");
    }
}

#[tokio::test]
async fn chat_echoes_last_user_message() {
    let (_, b) = run(
        Endpoint::ChatCompletions,
        r#"{"model":"echo","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"world"}]}]}"#,
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "echo");
    assert_eq!(v["choices"][0]["message"]["content"], "hello world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["usage"]["total_tokens"], 8);
}

#[tokio::test]
async fn chat_stream_word_by_word_with_usage() {
    let (r, b) = run(
        Endpoint::ChatCompletions,
        r#"{"model":"echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two  three"}]}"#,
    )
    .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = String::from_utf8(b.to_vec()).unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = parsed
        .iter()
        .filter_map(|e| e["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, "one two  three");
    let usage = parsed.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(
        parsed[parsed.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn max_tokens_cuts_with_length() {
    let (_, b) = run(
        Endpoint::ChatCompletions,
        r#"{"model":"echo","max_tokens":2,"messages":[{"role":"user","content":"a b c d"}]}"#,
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "a b");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn completions_echo_prompt() {
    let (_, b) = run(
        Endpoint::Completions,
        r#"{"model":"m","prompt":"say this"}"#,
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "say this");
}

#[tokio::test]
async fn embeddings_shape_float_and_base64() {
    let (_, b) = run(
        Endpoint::Embeddings,
        r#"{"model":"e","input":["a","b"],"dimensions":4}"#,
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    let emb = v["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(emb.len(), 4);
    let norm: f64 = emb.iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
    assert!((norm - 1.0).abs() < 1e-3);

    let (_, b) = run(
        Endpoint::Embeddings,
        r#"{"model":"e","input":"a","encoding_format":"base64"}"#,
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw.len(), DEFAULT_EMBEDDING_DIMENSIONS * 4);
    // Same input, same vector.
    let first = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    assert_eq!(first, embed("a", DEFAULT_EMBEDDING_DIMENSIONS)[0]);
}

#[test]
fn pieces_rejoin() {
    let t = "  lead and   gaps ";
    assert_eq!(words_with_spaces(t).collect::<String>(), t);
}
