//! Streamed answers: exact event sequences, consistency of every event with
//! the items and the terminal Response object, the official SDK's required
//! fields, and arbitrary chunkings of the upstream bytes.

use std::collections::HashMap;

use bytes::BytesMut;
use http::Response;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::{obj, sdk};
use crate::sse::SseParser;
use crate::translate::body::EventTranscoder;
use crate::translate::responses::inbound::{answer_from_openai, ResponsesStream, MAX_ACCUMULATED};
use crate::ProxyBody;

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
/// [`SseTranscode`](crate::translate::body::SseTranscode) drives it.
fn transcode(request: &Value, input: &str, cuts: &[usize]) -> String {
    let mut t = ResponsesStream::new(&obj(request.clone()));
    let mut parser = SseParser::new(crate::translate::body::MAX_EVENT);
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

#[test]
fn golden_text_tool_call_and_usage() {
    let out = events(&transcode(&request(), &golden_input(), &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let n = normalized(&out);
    let created = &n[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["model"], "up-model");
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(n[1]["response"], *created);
    assert_eq!(
        n[2],
        json!({"type": "response.output_item.added", "output_index": 0, "item": {
            "id": "id1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"},
            "sequence_number": 2})
    );
    assert_eq!(
        n[3],
        json!({"type": "response.content_part.added", "item_id": "id1", "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}, "sequence_number": 3})
    );
    assert_eq!(
        n[4],
        json!({"type": "response.output_text.delta", "item_id": "id1", "output_index": 0, "content_index": 0,
               "delta": "Hel", "logprobs": [], "sequence_number": 4})
    );
    assert_eq!(
        n[6],
        json!({"type": "response.output_text.done", "item_id": "id1", "output_index": 0, "content_index": 0,
               "text": "Hello", "logprobs": [], "sequence_number": 6})
    );
    assert_eq!(
        n[9],
        json!({"type": "response.output_item.added", "output_index": 1, "item": {
            "id": "id2", "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": "id3", "name": "get_weather"}, "sequence_number": 9})
    );
    assert_eq!(out[9]["item"]["call_id"], "call_1");
    assert_eq!(
        n[12],
        json!({"type": "response.function_call_arguments.done", "item_id": "id2", "output_index": 1,
               "arguments": "{\"city\":\"Paris\"}", "name": "get_weather", "sequence_number": 12})
    );
    assert_eq!(n[13]["item"]["status"], "completed");
    let done = &n[14]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["incomplete_details"], Value::Null);
    assert_eq!(done["output"].as_array().unwrap().len(), 2);
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 16})
    );
    assert_eq!(done["tools"], request()["tools"]);
}

#[test]
fn any_chunking_gives_the_same_events() {
    let inputs = [
        golden_input(),
        [
            chunk(json!({"reasoning_content": "Let me"}), None),
            chunk(json!({"reasoning_content": " think"}), None),
            chunk(json!({"content": "Ok é ✓"}), None),
            chunk(json!({"refusal": "No"}), None),
            chunk(json!({}), Some("length")),
        ]
        .concat()
        .replace("\n\n", "\r\n\r\n"),
    ];
    for input in inputs {
        let expected = normalized(&events(&transcode(&request(), &input, &[])));
        // Size 1 cuts at every byte.
        for size in 1..=24 {
            let cuts: Vec<usize> = (size..input.len()).step_by(size).collect();
            let got = normalized(&events(&transcode(&request(), &input, &cuts)));
            assert_eq!(got, expected, "chunks of {size}");
        }
        // One cut anywhere (every byte of the first 600, then every 7th).
        let cuts = (1..input.len().min(600)).chain((600..input.len()).step_by(7));
        for cut in cuts {
            let got = normalized(&parse(&transcode(&request(), &input, &[cut])));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }
}

#[test]
fn reasoning_refusal_and_length() {
    let input = [
        chunk(
            json!({"role": "assistant", "reasoning_content": "Let me"}),
            None,
        ),
        chunk(json!({"reasoning": " think"}), None),
        chunk(json!({"content": "Ok"}), None),
        chunk(json!({"refusal": "No"}), None),
        chunk(json!({}), Some("length")),
        DONE.to_string(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(out[2]["item"]["type"], "reasoning");
    assert_eq!(out[2]["item"]["summary"], json!([]));
    assert_eq!(out[6]["text"], "Let me think");
    assert_eq!(
        out[8]["item"]["summary"],
        json!([{"type": "summary_text", "text": "Let me think"}])
    );
    assert_eq!(out[8]["item"]["status"], "completed");
    assert_eq!(out[14]["content_index"], 1);
    assert_eq!(out[14]["part"], json!({"type": "refusal", "refusal": ""}));
    assert_eq!(out[18]["item"]["status"], "incomplete");
    let r = &out[19]["response"];
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    // No usage from the backend: zeros (the AI SDK requires the object).
    assert_eq!(r["usage"]["total_tokens"], 0);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        r["output"][1]["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "Ok"},
               {"type": "refusal", "refusal": "No"}])
    );
    assert!(r.get("completed_at").is_none());

    // Cut inside a tool call: the call stays `completed`.
    let cut = [
        chunk(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}), None),
        chunk(json!({}), Some("length")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &cut, &[]));
    let last = out.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["output"][0]["status"], "completed");
    assert_eq!(last["response"]["output"][0]["arguments"], "{\"ci");

    let filtered = [
        chunk(json!({"content": "x"}), None),
        chunk(json!({}), Some("content_filter")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &filtered, &[]));
    let last = out.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
}

#[test]
fn upstream_errors_end_with_response_failed() {
    let error = r#"data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":"upstream_error"}}"#;
    let input = [
        chunk(json!({"content": "Hi"}), None),
        format!("{error}\n\n"),
        chunk(json!({"content": "more"}), None),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "error",
            "response.failed",
        ]
    );
    assert_eq!(out[5]["code"], "upstream_error");
    assert_eq!(out[5]["message"], "overloaded");
    assert_eq!(out[5]["param"], Value::Null);
    assert_eq!(
        out[5]["error"],
        json!({"type": "server_error", "code": "upstream_error", "message": "overloaded", "param": null})
    );
    let r = &out[6]["response"];
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r["error"],
        json!({"code": "upstream_error", "message": "overloaded"})
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["output"][0]["content"][0]["text"], "Hi");

    // First thing, and a rate limit.
    let error = r#"data: {"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded","param":"x"}}"#;
    let out = events(&transcode(&request(), &format!("{error}\n\n"), &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert_eq!(out[2]["param"], "x");
    assert_eq!(out[2]["error"]["type"], "rate_limit_error");
    assert_eq!(out[3]["response"]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(out[3]["response"]["model"], "req-model");
}

#[test]
fn ends_with_and_without_done() {
    // A finish reason and a clean end: completed (usage taken if it came).
    let input = [
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.completed");
    assert_eq!(out.last().unwrap()["response"]["usage"]["total_tokens"], 16);
    // No finish reason, no [DONE]: the item is left open, nothing terminal.
    let input = chunk(json!({"content": "Hi"}), None);
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.output_text.delta");
    // [DONE] alone still completes; malformed events are skipped.
    let input = [
        "data: {not json\n\n".to_string(),
        chunk(json!({"content": "Hi"}), None),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.completed");
    assert_eq!(
        out.last().unwrap()["response"]["output"][0]["content"][0]["text"],
        "Hi"
    );
    // An empty stream: the whole sequence, no output.
    let out = events(&transcode(&request(), DONE, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert_eq!(out[2]["response"]["output"], json!([]));
}

#[test]
fn tool_calls_namespaces_ids_and_indexes() {
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let input = [
        call(0, Some("call_a"), Some("ns__g"), "{\"x\""),
        // The id repeated on every delta: the same call.
        call(0, Some("call_a"), None, ":1}"),
        // Reused index, new id: a new call. Two calls in one delta.
        chunk(json!({"tool_calls": [
            {"index": 0, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"index": 1, "function": {"name": "get_weather", "arguments": "{\"c\":2}"}},
        ]}), None),
        chunk(json!({}), Some("tool_calls")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    let r = &out.last().unwrap()["response"];
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "{r}");
    assert_eq!(output[0]["name"], "g");
    assert_eq!(output[0]["namespace"], "ns");
    assert_eq!(output[0]["call_id"], "call_a");
    assert_eq!(output[0]["arguments"], "{\"x\":1}");
    assert_eq!(output[1]["call_id"], "call_b");
    assert_eq!(output[1]["arguments"], "{}");
    assert!(output[2]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(output[2]["arguments"], "{\"c\":2}");
    let done = out
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["name"], "g");
    let added = out
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["namespace"], "ns");

    // A delta for a call already closed: failed, not a silently cut call.
    let input = [
        call(0, Some("a"), Some("f"), "{"),
        call(1, Some("b"), Some("f"), "{}"),
        call(0, None, None, "}"),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out[out.len() - 2]["type"], "error");
    assert!(out[out.len() - 2]["message"]
        .as_str()
        .unwrap()
        .contains("interleaved"));
    assert_eq!(out.last().unwrap()["type"], "response.failed");

    // An index beyond the limit.
    let out = events(&transcode(
        &request(),
        &call(500, Some("a"), Some("f"), "{}"),
        &[],
    ));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert!(out[2]["message"].as_str().unwrap().contains("500"));
}

#[test]
fn stream_logprobs() {
    let mut c: Value = serde_json::from_str(
        chunk(json!({"content": "Hi"}), None)
            .trim_start_matches("data: ")
            .trim(),
    )
    .unwrap();
    c["choices"][0]["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]}]});
    let input = format!("data: {c}\n\n{DONE}");
    let out = events(&transcode(&request(), &input, &[]));
    let delta = out
        .iter()
        .find(|e| e["type"] == "response.output_text.delta")
        .unwrap();
    let expected = json!([{"token": "Hi", "bytes": [72, 105], "logprob": -0.5,
                           "top_logprobs": [{"token": "Hi", "bytes": [72, 105], "logprob": -0.5}]}]);
    assert_eq!(delta["logprobs"], expected);
    let done = out
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["logprobs"], expected);
}

#[test]
fn kept_text_is_bounded() {
    let big = "x".repeat(MAX_ACCUMULATED / 2 + 1);
    let input = [
        chunk(json!({"content": big}), None),
        chunk(json!({"content": big}), None),
        DONE.into(),
    ]
    .concat();
    let text = transcode(&request(), &input, &[]);
    let out = events(&text);
    let failed = out.last().unwrap();
    assert_eq!(failed["type"], "response.failed");
    assert_eq!(out[out.len() - 2]["code"], "response_too_large");
    // The failed response does not repeat what went beyond the cap.
    assert!(text.len() < 3 * MAX_ACCUMULATED, "{}", text.len());
}

#[tokio::test]
async fn answer_from_openai_streams_event_streams() {
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .header("content-length", "999")
        .body(ProxyBody::full(golden_input()))
        .unwrap();
    let response = answer_from_openai(&obj(request()), response);
    assert!(response.headers().get("content-length").is_none());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let out = events(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(out.len(), 15);
    assert_eq!(out[14]["type"], "response.completed");
}

mod properties {
    //! Arbitrary upstream event sequences, cut anywhere: the output is
    //! always a well-formed Responses stream.

    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::json;

    use super::{chunk, consistent, parse, request, transcode, usage_chunk, DONE};

    fn piece() -> impl Strategy<Value = String> {
        let text = prop::sample::select(vec!["a", "é€", "{\"", "}", " ", ""]);
        let finish = prop::sample::select(vec!["stop", "length", "tool_calls", "content_filter"]);
        let id = prop::option::of(prop::sample::select(vec!["call_1", "call_2"]));
        let name = prop::option::of(prop::sample::select(vec!["get_weather", "ns__g", ""]));
        prop_oneof![
            3 => text.clone().prop_map(|t| chunk(json!({"content": t}), None)),
            2 => text.clone().prop_map(|t| chunk(json!({"reasoning_content": t}), None)),
            1 => text.clone().prop_map(|t| chunk(json!({"refusal": t}), None)),
            3 => (0u64..3, id, name, text).prop_map(|(index, id, name, args)| {
                let mut call = json!({"index": index, "function": {"arguments": args}});
                if let Some(id) = id {
                    call["id"] = json!(id);
                }
                if let Some(name) = name {
                    call["function"]["name"] = json!(name);
                }
                chunk(json!({"tool_calls": [call]}), None)
            }),
            1 => finish.prop_map(|f| chunk(json!({}), Some(f))),
            1 => Just(usage_chunk()),
            1 => Just("data: {\"error\":{\"message\":\"m\",\"type\":\"t\"}}\n\n".to_string()),
            1 => Just(DONE.to_string()),
            1 => Just(": ping\n\ndata: {nope\n\n".to_string()),
            1 => Just(chunk(json!({"tool_calls": [{"index": 999}]}), None)),
        ]
    }

    proptest! {
        #![proptest_config(crate::translate::responses::inbound::tests::config(64))]

        #[test]
        fn any_upstream_gives_a_well_formed_stream(
            pieces in prop::collection::vec(piece(), 0..24),
            cuts in prop::collection::vec(any::<Index>(), 0..6),
        ) {
            let input = pieces.concat();
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            at.sort_unstable();
            at.dedup();
            let whole = parse(&transcode(&request(), &input, &[]));
            let events = parse(&transcode(&request(), &input, &at));
            prop_assert_eq!(super::normalized(&events), super::normalized(&whole));
            events.iter().for_each(super::sdk::check_event);
            consistent(&events);
            // At most one terminal event, and it is the last.
            let terminal = |e: &serde_json::Value| {
                matches!(e["type"].as_str(), Some("response.completed" | "response.incomplete" | "response.failed"))
            };
            let count = events.iter().filter(|e| terminal(e)).count();
            prop_assert!(count <= 1);
            if count == 1 {
                prop_assert!(terminal(events.last().unwrap()));
            }
            // Something upstream: the stream starts properly.
            if let Some(first) = events.first() {
                prop_assert_eq!(&first["type"], "response.created");
                prop_assert_eq!(&events[1]["type"], "response.in_progress");
            }
        }
    }
}
