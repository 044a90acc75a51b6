//! Streamed answers: exact event sequences, consistency of every event with
//! the items and the terminal Response object, the official SDK's required
//! fields, and arbitrary chunkings of the upstream bytes. The event
//! sequences of each kind of content are in [`sequences`], tool calls in
//! [`tool_calls`], how a stream ends in [`endings`], arbitrary upstreams in
//! [`properties`]; the helpers they share are here.

mod endings;
mod properties;
mod sequences;
mod tool_calls;

use std::collections::HashMap;

use bytes::BytesMut;
use serde_json::{json, Value};

use super::{obj, sdk};
use crate::sse::SseParser;
use crate::upstream::translate::body::EventTranscoder;
use crate::upstream::translate::responses::inbound::ResponsesStream;

/// A chunk event of the upstream.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up-model",
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

fn usage_chunk() -> String {
    let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up-model",
                   "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16,
                                            "completion_tokens_details": {"reasoning_tokens": 3}}});
    format!("data: {c}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

/// The upstream bytes cut at `cuts`, through the transcoder as
/// [`SseTranscode`](crate::upstream::translate::body::SseTranscode) drives it.
fn transcode(request: &Value, input: &str, cuts: &[usize]) -> String {
    let mut t = ResponsesStream::new(&obj(request.clone()));
    let mut parser = SseParser::new(crate::upstream::translate::body::MAX_EVENT);
    let mut out = BytesMut::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        parser.push(&input.as_bytes()[from..cut]);
        from = cut;
        while let Some(e) = parser.next_event().unwrap() {
            t.event(&e, &mut out);
        }
    }
    if let Some(e) = parser.finish() {
        t.event(&e, &mut out);
    }
    t.finish(&mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

/// The events of a Responses stream, each checked: `event:` names its
/// `type`, sequence numbers count from 0, the SDK's fields are there.
fn events(text: &str) -> Vec<Value> {
    let out = parse(text);
    out.iter().for_each(sdk::check_event);
    consistent(&out);
    out
}

/// The events of a Responses stream (`event:` and `sequence_number` checked).
fn parse(text: &str) -> Vec<Value> {
    let mut parser = SseParser::new(1 << 30);
    parser.push(text.as_bytes());
    let mut out = Vec::new();
    while let Some(e) = parser.next_event().unwrap() {
        let data: Value = serde_json::from_slice(&e.data).unwrap();
        assert_eq!(e.event.as_deref(), data["type"].as_str(), "{data}");
        assert_eq!(data["sequence_number"], out.len(), "{data}");
        out.push(data);
    }
    assert!(parser.finish().is_none());
    out
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// What each item's events say adds up: the same ids, deltas joined equal
/// the `.done` texts, and the terminal response's output is the items as
/// `output_item.done` gave them.
fn consistent(events: &[Value]) {
    let mut ids: HashMap<u64, String> = HashMap::new();
    let mut deltas: HashMap<(u64, u64, &str), String> = HashMap::new();
    let mut done_items: Vec<Value> = Vec::new();
    let response_id = events.first().map(|e| e["response"]["id"].clone());
    for e in events {
        if let Some(r) = e.get("response") {
            assert_eq!(Some(r["id"].clone()), response_id, "one response id");
        }
        let Some(index) = e["output_index"].as_u64() else {
            continue;
        };
        let kind = e["type"].as_str().unwrap();
        if kind == "response.output_item.added" {
            assert_eq!(index as usize, ids.len(), "output indexes in order");
            assert!(ids
                .insert(index, e["item"]["id"].as_str().unwrap().into())
                .is_none());
            continue;
        }
        let id = &ids[&index];
        if let Some(item_id) = e.get("item_id") {
            assert_eq!(item_id, id.as_str(), "{e}");
        }
        let sub = e["content_index"]
            .as_u64()
            .or(e["summary_index"].as_u64())
            .unwrap_or(0);
        let key = |k: &'static str| (index, sub, k);
        match kind {
            "response.output_text.delta" => deltas
                .entry(key("text"))
                .or_default()
                .push_str(e["delta"].as_str().unwrap()),
            "response.refusal.delta" => deltas
                .entry(key("refusal"))
                .or_default()
                .push_str(e["delta"].as_str().unwrap()),
            "response.reasoning_summary_text.delta" => deltas
                .entry(key("summary"))
                .or_default()
                .push_str(e["delta"].as_str().unwrap()),
            "response.function_call_arguments.delta" => deltas
                .entry(key("args"))
                .or_default()
                .push_str(e["delta"].as_str().unwrap()),
            "response.output_text.done" => {
                assert_eq!(deltas.get(&key("text")).map_or("", |s| s), e["text"])
            }
            "response.refusal.done" => {
                assert_eq!(deltas.get(&key("refusal")).map_or("", |s| s), e["refusal"])
            }
            "response.reasoning_summary_text.done" => {
                assert_eq!(deltas.get(&key("summary")).map_or("", |s| s), e["text"])
            }
            "response.function_call_arguments.done" => {
                assert_eq!(deltas.get(&key("args")).map_or("", |s| s), e["arguments"])
            }
            "response.output_item.done" => {
                assert_eq!(e["item"]["id"], id.as_str());
                assert_eq!(index as usize, done_items.len(), "items closed in order");
                done_items.push(e["item"].clone());
            }
            _ => {}
        }
    }
    if let Some(last) = events.last() {
        let kind = last["type"].as_str().unwrap();
        if kind == "response.completed" || kind == "response.incomplete" {
            assert_eq!(last["response"]["output"], Value::Array(done_items));
        }
    }
}

/// Ids and clocks replaced by stable placeholders (ids are random).
fn normalized(events: &[Value]) -> Vec<Value> {
    fn walk(v: &mut Value, ids: &mut HashMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), &*x) {
                        ("created_at" | "completed_at", _) => *x = json!(0),
                        ("id" | "item_id" | "call_id", Value::String(s)) => {
                            let n = ids.len();
                            let s = s.clone();
                            *x = Value::from(
                                ids.entry(s).or_insert_with(|| format!("id{n}")).clone(),
                            );
                        }
                        _ => walk(x, ids),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, ids)),
            _ => {}
        }
    }
    let mut ids = HashMap::new();
    let mut out = events.to_vec();
    out.iter_mut().for_each(|e| walk(e, &mut ids));
    out
}

fn request() -> Value {
    json!({"model": "req-model", "input": "Weather?", "stream": true, "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
        {"type": "namespace", "name": "ns", "description": "", "tools": [{"type": "function", "name": "g"}]},
    ]})
}

fn golden_input() -> String {
    [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                      "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        ": keep-alive\n\n".to_string(),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
        DONE.to_string(),
    ]
    .concat()
}
