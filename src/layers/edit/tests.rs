//! Tests of the streamed and JSON editors, and helpers to build and check
//! Responses streams (used by the `transform` and `pii` tests too).

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;
use crate::body::BoxError;

struct Upper;
impl Editor for Upper {
    fn wants(&self, c: Channel) -> bool {
        c.is_prose()
    }
    fn text(&mut self, _: Channel, t: &str) -> String {
        t.to_uppercase()
    }
    fn flush(&mut self, _: Channel) -> String {
        String::new()
    }
    fn whole(&mut self, _: Channel, t: &str) -> String {
        t.to_uppercase()
    }
    fn document(&mut self, doc: &mut Value) -> bool {
        edit_strings(doc, &mut |s| Some(s.to_uppercase()))
    }
}

/// Holds every text until the channel ends.
#[derive(Default)]
struct Hold(std::collections::HashMap<Channel, String>);
impl Editor for Hold {
    fn wants(&self, _: Channel) -> bool {
        true
    }
    fn text(&mut self, c: Channel, t: &str) -> String {
        self.0.entry(c).or_default().push_str(t);
        String::new()
    }
    fn flush(&mut self, c: Channel) -> String {
        self.0.remove(&c).unwrap_or_default()
    }
    fn whole(&mut self, _: Channel, t: &str) -> String {
        t.to_string()
    }
    fn document(&mut self, _: &mut Value) -> bool {
        false
    }
}

async fn run<E: Editor>(format: ClientFormat, editor: E, input: &str) -> String {
    let body = SseEdit::new(ProxyBody::full(input.to_string()), format, editor);
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn openai_events_are_edited_and_flushed_at_finish() {
    let input = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    let out = run(ClientFormat::OpenAi, Upper, input).await;
    assert!(out.starts_with("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"AB\"}}]}\n\n: keep-alive\n\n"), "{out}");
    assert!(
        out.contains(r#""arguments":"{\"a\"""#),
        "tool args are not prose: {out}"
    );

    let out = run(ClientFormat::OpenAi, Hold::default(), input).await;
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 5, "{out}");
    assert_eq!(
        events[3],
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":\"stop\"}]}"
    );
    assert_eq!(events[4], "data: [DONE]");
}

#[tokio::test]
async fn held_text_without_finish_is_sent_before_done_or_the_end() {
    let input = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"hi\"}],\"usage\":null}\n\ndata: [DONE]\n\n";
    let out = run(ClientFormat::OpenAi, Hold::default(), input).await;
    assert_eq!(out, "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"\"}],\"usage\":null}\n\ndata: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"hi\",\"finish_reason\":null}]}\n\ndata: [DONE]\n\n");
    let cut = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    let out = run(ClientFormat::OpenAi, Hold::default(), cut).await;
    assert!(out.ends_with("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"), "{out}");
}

#[tokio::test]
async fn anthropic_blocks_flush_before_their_stop() {
    let input = concat!(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    let out = run(ClientFormat::Anthropic, Hold::default(), input).await;
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 4, "{out}");
    assert_eq!(events[2], "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}");
    assert!(events[3].starts_with("event: content_block_stop"));
}

#[tokio::test]
async fn json_answers_are_edited_whole_and_capped() {
    let body = JsonEdit::new(
        ProxyBody::full(r#"{"a":["x",{"b":"y"}],"n":1}"#),
        Upper,
        1024,
    );
    let out = body.collect().await.unwrap().to_bytes();
    assert_eq!(&out[..], br#"{"a":["X",{"b":"Y"}],"n":1}"#);
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
    let body = JsonEdit::new(ProxyBody::full(big.clone()), Upper, 10);
    let out = body.collect().await.unwrap().to_bytes();
    assert_eq!(&out[..], big.as_bytes());
    let body = JsonEdit::new(ProxyBody::full("not json"), Upper, 1024);
    assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"not json");
}

// ---------------------------------------------------------------------------
// Responses streams

/// One Responses event, numbered.
fn event(seq: &mut u64, mut doc: Value) -> String {
    doc["sequence_number"] = json!(*seq);
    *seq += 1;
    format!("event: {}\ndata: {doc}\n\n", doc["type"].as_str().unwrap())
}

/// A realistic Responses stream: a reasoning item with a summary, a message
/// whose text arrives in `text` pieces, and a function call whose arguments
/// arrive in `args` pieces, then `response.completed` repeating it all.
pub(crate) fn responses_stream(summary: &[&str], text: &[&str], args: &[&str]) -> String {
    let mut seq = 0;
    let mut out = String::new();
    let head = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress",
        "model": "m", "output": [], "instructions": null});
    out += &event(
        &mut seq,
        json!({"type": "response.created", "response": head}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.in_progress", "response": head}),
    );
    // Reasoning.
    let summary_all: String = summary.concat();
    let reasoning = json!({"id": "rs_1", "type": "reasoning", "summary": [
        {"type": "summary_text", "text": summary_all}]});
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"id": "rs_1", "type": "reasoning", "summary": []}}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1",
        "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
    );
    for d in summary {
        out += &event(
            &mut seq,
            json!({"type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": d}),
        );
    }
    out += &event(
        &mut seq,
        json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1",
        "output_index": 0, "summary_index": 0, "text": summary_all}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.reasoning_summary_part.done", "item_id": "rs_1",
        "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": summary_all}}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.done", "output_index": 0,
        "item": reasoning}),
    );
    // Message.
    let text_all: String = text.concat();
    let part = json!({"type": "output_text", "text": text_all, "annotations": [], "logprobs": []});
    let message = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
        "content": [part]});
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.added", "output_index": 1,
        "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
                 "content": []}}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.content_part.added", "item_id": "msg_1",
        "output_index": 1, "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for d in text {
        out += &event(
            &mut seq,
            json!({"type": "response.output_text.delta", "item_id": "msg_1",
            "output_index": 1, "content_index": 0, "delta": d, "logprobs": [],
            "obfuscation": "xyz"}),
        );
    }
    out += &event(
        &mut seq,
        json!({"type": "response.output_text.done", "item_id": "msg_1",
        "output_index": 1, "content_index": 0, "text": text_all, "logprobs": []}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.content_part.done", "item_id": "msg_1",
        "output_index": 1, "content_index": 0, "part": part}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.done", "output_index": 1,
        "item": message}),
    );
    // Function call.
    let args_all: String = args.concat();
    let call = json!({"id": "fc_1", "type": "function_call", "status": "completed",
        "call_id": "call_1", "name": "send", "arguments": args_all});
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.added", "output_index": 2,
        "item": {"id": "fc_1", "type": "function_call", "status": "in_progress",
                 "call_id": "call_1", "name": "send", "arguments": ""}}),
    );
    for d in args {
        out += &event(
            &mut seq,
            json!({"type": "response.function_call_arguments.delta",
            "item_id": "fc_1", "output_index": 2, "delta": d}),
        );
    }
    out += &event(
        &mut seq,
        json!({"type": "response.function_call_arguments.done",
        "item_id": "fc_1", "output_index": 2, "arguments": args_all}),
    );
    out += &event(
        &mut seq,
        json!({"type": "response.output_item.done", "output_index": 2,
        "item": call}),
    );
    let mut done = head.clone();
    done["status"] = json!("completed");
    done["output"] = json!([reasoning, message, call]);
    done["usage"] = json!({"input_tokens": 5, "output_tokens": 9, "total_tokens": 14});
    out += &event(
        &mut seq,
        json!({"type": "response.completed", "response": done}),
    );
    out
}

/// The texts of a Responses stream a client reads, by channel: the
/// concatenated deltas, checked against every full copy (`.done` events,
/// parts, items, the terminal `response`). Also checks that every event is
/// named after its type and the sequence numbers run 0, 1, 2, ...
pub(crate) fn responses_texts(out: &str) -> BTreeMap<Channel, String> {
    let mut deltas: BTreeMap<Channel, String> = BTreeMap::new();
    let mut wholes: Vec<(Channel, String, String)> = Vec::new();
    let mut next_seq = 0;
    let check_item = |o: u64, item: &Value, wholes: &mut Vec<(Channel, String, String)>| match item
        ["type"]
        .as_str()
        .unwrap()
    {
        "message" => {
            for (c, part) in item["content"].as_array().unwrap().iter().enumerate() {
                let text = part["text"].as_str().unwrap().to_string();
                wholes.push((Channel::OutputText(o, c as u64), text, "item".into()));
            }
        }
        "function_call" => {
            let args = item["arguments"].as_str().unwrap().to_string();
            wholes.push((Channel::CallArgs(o), args, "item".into()));
        }
        "reasoning" => {
            for (s, part) in item["summary"].as_array().unwrap().iter().enumerate() {
                let text = part["text"].as_str().unwrap().to_string();
                wholes.push((Channel::Summary(o, s as u64), text, "item".into()));
            }
        }
        _ => {}
    };
    for raw in out.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let (name, data) = raw
            .strip_prefix("event: ")
            .and_then(|r| r.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not a named event: {raw}"));
        let doc: Value = serde_json::from_str(data).unwrap();
        let kind = doc["type"].as_str().unwrap();
        assert_eq!(name, kind);
        assert_eq!(doc["sequence_number"], json!(next_seq), "{out}");
        next_seq += 1;
        let o = doc["output_index"].as_u64().unwrap_or(0);
        let c = doc["content_index"].as_u64().unwrap_or(0);
        let s = doc["summary_index"].as_u64().unwrap_or(0);
        let text = |k: &str| doc[k].as_str().unwrap().to_string();
        match kind {
            "response.output_text.delta" => {
                deltas
                    .entry(Channel::OutputText(o, c))
                    .or_default()
                    .push_str(&text("delta"));
            }
            "response.function_call_arguments.delta" => {
                deltas
                    .entry(Channel::CallArgs(o))
                    .or_default()
                    .push_str(&text("delta"));
            }
            "response.reasoning_summary_text.delta" => {
                deltas
                    .entry(Channel::Summary(o, s))
                    .or_default()
                    .push_str(&text("delta"));
            }
            "response.output_text.done" => {
                wholes.push((Channel::OutputText(o, c), text("text"), kind.into()))
            }
            "response.function_call_arguments.done" => {
                wholes.push((Channel::CallArgs(o), text("arguments"), kind.into()))
            }
            "response.reasoning_summary_text.done" => {
                wholes.push((Channel::Summary(o, s), text("text"), kind.into()))
            }
            "response.content_part.done" => wholes.push((
                Channel::OutputText(o, c),
                doc["part"]["text"].as_str().unwrap().into(),
                kind.into(),
            )),
            "response.reasoning_summary_part.done" => wholes.push((
                Channel::Summary(o, s),
                doc["part"]["text"].as_str().unwrap().into(),
                kind.into(),
            )),
            "response.output_item.done" => check_item(o, &doc["item"], &mut wholes),
            "response.completed" | "response.incomplete" | "response.failed" => {
                for (o, item) in doc["response"]["output"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    check_item(o as u64, item, &mut wholes);
                }
            }
            _ => {}
        }
    }
    for (channel, text, from) in wholes {
        assert_eq!(
            deltas.get(&channel).map_or("", String::as_str),
            text,
            "{channel:?} in {from}: {out}"
        );
    }
    deltas
}

/// A body of `input` in frames cut at `cuts` (ascending byte offsets).
pub(crate) fn chunked(input: &str, cuts: &[usize]) -> ProxyBody {
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        frames.push(Ok::<_, BoxError>(http_body::Frame::data(
            Bytes::copy_from_slice(&input.as_bytes()[at..cut]),
        )));
        at = cut;
    }
    ProxyBody::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

/// `input`, a stream of [`responses_stream`], through `through`: its summary,
/// output text and tool-call arguments come out as `parts`, and the output
/// is the same when `input` is cut in two at every third byte.
pub(crate) async fn check_responses_stream<F, Fut>(input: &str, through: F, parts: [&str; 3])
where
    F: Fn(ProxyBody) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let whole = through(ProxyBody::full(input.to_string())).await;
    let texts = responses_texts(&whole);
    let channels = [
        Channel::Summary(0, 0),
        Channel::OutputText(1, 0),
        Channel::CallArgs(2),
    ];
    for (channel, part) in channels.iter().zip(parts) {
        assert_eq!(texts[channel], part, "{channel:?}");
    }
    for cut in (0..=input.len()).step_by(3) {
        assert_eq!(through(chunked(input, &[cut])).await, whole, "cut at {cut}");
    }
}

/// The data of the events of an SSE text (comments and blank ones left out).
pub(crate) fn event_data(out: &str) -> Vec<&str> {
    out.split("\n\n")
        .filter_map(|e| e.split_once("data: ").map(|(_, d)| d))
        .collect()
}

/// `input` through `editor` in pieces cut at `cuts`.
async fn run_cut<E: Editor>(
    format: ClientFormat,
    editor: E,
    input: &str,
    cuts: &[usize],
) -> String {
    let body = SseEdit::new(chunked(input, cuts), format, editor);
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn responses_held_text_goes_out_in_added_deltas_numbered_on() {
    let input = responses_stream(
        &["Thinking ", "hard"],
        &["Hel", "lo ", "there"],
        &["{\"a\":", "1}"],
    );
    let out = run(ClientFormat::Responses, Hold::default(), &input).await;
    let texts = responses_texts(&out);
    assert_eq!(texts[&Channel::Summary(0, 0)], "Thinking hard");
    assert_eq!(texts[&Channel::OutputText(1, 0)], "Hello there");
    assert_eq!(texts[&Channel::CallArgs(2)], "{\"a\":1}");
    // Three channels each gave up their text in one added delta.
    let before = input.split("\n\n").filter(|e| !e.is_empty()).count();
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), before + 3);
    let added = events
        .iter()
        .position(|e| e.contains("\"delta\":\"Hello there\""))
        .unwrap();
    assert!(events[added].starts_with("event: response.output_text.delta\n"));
    let doc: Value = serde_json::from_str(events[added].split_once("data: ").unwrap().1).unwrap();
    assert_eq!(doc["item_id"], "msg_1");
    assert_eq!(doc["logprobs"], json!([]));
    assert!(doc.get("obfuscation").is_none());
    assert!(events[added + 1].starts_with("event: response.output_text.done\n"));

    // An editor that holds nothing adds nothing and renumbers nothing.
    let out = run(ClientFormat::Responses, Upper, &input).await;
    let texts = responses_texts(&out);
    assert_eq!(texts[&Channel::OutputText(1, 0)], "HELLO THERE");
    assert_eq!(texts[&Channel::Summary(0, 0)], "THINKING HARD");
    assert_eq!(texts[&Channel::CallArgs(2)], "{\"a\":1}", "not prose");
    assert_eq!(out.split("\n\n").filter(|e| !e.is_empty()).count(), before);
}

#[tokio::test]
async fn responses_streams_survive_any_chunking() {
    let input = responses_stream(&["ok"], &["Hi ", "you"], &["{}"]);
    let whole = run(ClientFormat::Responses, Hold::default(), &input).await;
    for cut in 0..=input.len() {
        let out = run_cut(ClientFormat::Responses, Hold::default(), &input, &[cut]).await;
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[tokio::test]
async fn responses_streams_cut_short_or_failing_still_give_up_held_text() {
    // Cut after the deltas: the held text is sent at the end, numbered on.
    let input = responses_stream(&[], &["Hel", "lo"], &[]);
    let cut = input.find("event: response.output_text.done").unwrap();
    let out = run(ClientFormat::Responses, Hold::default(), &input[..cut]).await;
    assert_eq!(responses_texts(&out)[&Channel::OutputText(1, 0)], "Hello");
    // An error event: the held text goes out first, the error numbered on.
    let error = "event: error\ndata: {\"type\":\"error\",\"code\":\"x\",\"message\":\"m\",\"sequence_number\":99}\n\n";
    let out = run(
        ClientFormat::Responses,
        Hold::default(),
        &format!("{}{error}", &input[..cut]),
    )
    .await;
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    let n = events.len();
    assert!(events[n - 2].contains("\"delta\":\"Hello\""), "{out}");
    assert!(events[n - 1].contains("\"sequence_number\":100"), "{out}");
    // Events without JSON, comments and `[DONE]` pass as they are.
    let out = run(
        ClientFormat::Responses,
        Hold::default(),
        ": hi\n\nevent: x\ndata: nope\n\ndata: [DONE]\n\n",
    )
    .await;
    assert_eq!(out, ": hi\n\nevent: x\ndata: nope\n\ndata: [DONE]\n\n");
}
