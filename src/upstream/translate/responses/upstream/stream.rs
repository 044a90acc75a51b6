//! Streams: Responses API events as `chat.completion.chunk` events. The
//! mapping is tabled in the [parent module](super).

// Upstream bytes pass through here: no unchecked indexing, slicing or
// arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;

use bytes::BytesMut;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::answer::{completion_id, created, failure_error, finish_reason, usage_to_openai};
use crate::sse::SseEvent;
use crate::upstream::limits::check_index;
use crate::upstream::translate::body::{write_event, EventTranscoder};
use crate::upstream::translate::convert::{self, upstream_name};

/// A function call of the answer.
#[derive(Clone, Copy, Debug)]
struct Call {
    /// Its `index` among the answer's tool calls.
    index: u64,
    /// Whether any of its arguments went out.
    arguments_sent: bool,
}

/// Where a piece of reasoning text comes from: output item, summary (0) or
/// content (1), part.
type ReasoningPart = (u64, u8, u64);

/// Responses API events as `chat.completion.chunk` events: the role first
/// (at `response.created`), text, refusal and reasoning deltas, function
/// calls (`index` on every delta; `id`, `type` and `name` on the first), the
/// finish reason (at `response.completed` / `response.incomplete`), the
/// usage chunk when asked for, then `data: [DONE]`. `response.failed` and
/// `error` events become the pivot's error event, which ends the stream.
///
/// The state is a few counters and one entry per function call (at most
/// [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX): one more ends the
/// stream with an error). Completeness is the stream guard's to judge: an
/// upstream that stops early just stops.
#[derive(Debug)]
pub struct ResponsesToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Function calls by `output_index`.
    calls: BTreeMap<u64, Call>,
    /// Where the last reasoning text came from: a new part is set apart
    /// from the one before by a blank line.
    reasoning_at: Option<ReasoningPart>,
    started: bool,
    done: bool,
}

impl ResponsesToOpenAiStream {
    /// A new transcoder; `include_usage` adds the usage-only chunk before
    /// `[DONE]`.
    pub fn new(include_usage: bool) -> Self {
        ResponsesToOpenAiStream {
            id: convert::completion_id(),
            model: String::new(),
            created: convert::now(),
            include_usage,
            calls: BTreeMap::new(),
            reasoning_at: None,
            started: false,
            done: false,
        }
    }

    fn write(&self, out: &mut BytesMut, choices: Value, usage: Option<Value>) {
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::from(self.id.as_str()));
        chunk.insert("object".into(), Value::from("chat.completion.chunk"));
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::from(self.model.as_str()));
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage);
        }
        write_event(out, None, &Value::Object(chunk));
    }

    /// One chunk with one choice; the role chunk first if it has not gone.
    fn chunk(&mut self, out: &mut BytesMut, delta: Value, finish: Option<&str>, logprobs: Value) {
        self.start(out);
        self.write(
            out,
            json!([{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]),
            None,
        );
    }

    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.write(
                out,
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                None,
            );
        }
    }

    /// End the stream with the pivot's error event (no `[DONE]` after it).
    fn fail(&mut self, out: &mut BytesMut, error: &Value) {
        write_event(out, None, error);
        self.done = true;
    }

    /// The answer's id, model and time, until the first chunk has gone.
    fn take_meta(&mut self, response: &Value) {
        if self.started {
            return;
        }
        // Repeated in every chunk: bounded.
        if upstream_name(response.get("id")).is_some() {
            self.id = completion_id(response.get("id"));
        }
        if let Some(model) = upstream_name(response.get("model")) {
            self.model = model.to_string();
        }
        if let Some(at) = created(response) {
            self.created = at;
        }
    }

    fn reasoning(&mut self, out: &mut BytesMut, at: ReasoningPart, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let text = match self.reasoning_at.replace(at) {
            Some(before) if before != at => format!("\n\n{delta}"),
            _ => delta.to_string(),
        };
        self.chunk(out, json!({"reasoning_content": text}), None, Value::Null);
    }

    /// The call at `output_index`, announced first (from `item`) if this is
    /// the first that is heard of it; `None` when `item` is no function
    /// call. Too many calls end the stream.
    fn call(&mut self, out: &mut BytesMut, output_index: u64, item: &Value) -> Option<Call> {
        if let Some(call) = self.calls.get(&output_index) {
            return Some(*call);
        }
        if item.get("type").and_then(Value::as_str) != Some("function_call") {
            return None;
        }
        let index = u64::try_from(self.calls.len()).unwrap_or(u64::MAX);
        if let Err(e) = check_index(index, "tool call") {
            let error =
                convert::openai_error(StatusCode::BAD_GATEWAY, "upstream_error", &e.to_string());
            self.fail(out, &error);
            return None;
        }
        let call = Call {
            index,
            arguments_sent: false,
        };
        self.calls.insert(output_index, call);
        self.chunk(
            out,
            json!({"tool_calls": [{
                "index": index,
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": item.get("name").cloned().unwrap_or_default(), "arguments": ""},
            }]}),
            None,
            Value::Null,
        );
        Some(call)
    }

    fn arguments(&mut self, out: &mut BytesMut, output_index: u64, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let Some(call) = self.calls.get_mut(&output_index) else {
            return;
        };
        call.arguments_sent = true;
        let index = call.index;
        self.chunk(
            out,
            json!({"tool_calls": [{"index": index, "function": {"arguments": delta}}]}),
            None,
            Value::Null,
        );
    }

    /// A call's whole arguments, sent only when no delta carried them.
    fn whole_arguments(
        &mut self,
        out: &mut BytesMut,
        output_index: u64,
        arguments: Option<&Value>,
    ) {
        let sent = self
            .calls
            .get(&output_index)
            .is_none_or(|c| c.arguments_sent);
        if let (false, Some(args)) = (sent, arguments.and_then(Value::as_str)) {
            self.arguments(out, output_index, args);
        }
    }

    fn finish_answer(&mut self, out: &mut BytesMut, response: &Value) {
        self.take_meta(response);
        let called = !self.calls.is_empty()
            || response
                .get("output")
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|i| i["type"] == "function_call"));
        let finish = finish_reason(response, called);
        self.chunk(out, json!({}), Some(finish), Value::Null);
        if self.include_usage {
            let usage = response
                .get("usage")
                .filter(|u| u.is_object())
                .map(usage_to_openai)
                .unwrap_or_else(
                    || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
                );
            self.write(out, json!([]), Some(usage));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn handle(&mut self, kind: &str, v: &Value, out: &mut BytesMut) {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        let number = |k: &str| v.get(k).and_then(Value::as_u64);
        let null = Value::Null;
        let response = v.get("response").unwrap_or(&null);
        let item = v.get("item").unwrap_or(&null);
        match kind {
            "response.created" => {
                self.take_meta(response);
                self.start(out);
            }
            "response.in_progress" | "response.queued" => self.take_meta(response),
            "response.output_text.delta" => {
                let delta = text("delta");
                if !delta.is_empty() {
                    let logprobs = match v.get("logprobs") {
                        Some(Value::Array(l)) if !l.is_empty() => {
                            json!({"content": l, "refusal": null})
                        }
                        _ => Value::Null,
                    };
                    self.chunk(out, json!({"content": delta}), None, logprobs);
                }
            }
            "response.refusal.delta" => {
                let delta = text("delta");
                if !delta.is_empty() {
                    self.chunk(out, json!({"refusal": delta}), None, Value::Null);
                }
            }
            "response.reasoning_summary_text.delta" => {
                let at = (
                    number("output_index").unwrap_or(0),
                    0,
                    number("summary_index").unwrap_or(0),
                );
                self.reasoning(out, at, text("delta"));
            }
            "response.reasoning_text.delta" => {
                let at = (
                    number("output_index").unwrap_or(0),
                    1,
                    number("content_index").unwrap_or(0),
                );
                self.reasoning(out, at, text("delta"));
            }
            "response.output_item.added" => {
                if let Some(at) = number("output_index") {
                    if let Some(call) = self.call(out, at, item) {
                        if !call.arguments_sent {
                            self.arguments(out, at, text_of(item.get("arguments")));
                        }
                    }
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(at) = number("output_index") {
                    self.arguments(out, at, text("delta"));
                }
            }
            "response.function_call_arguments.done" => {
                if let Some(at) = number("output_index") {
                    self.whole_arguments(out, at, v.get("arguments"));
                }
            }
            "response.output_item.done" => {
                if let Some(at) = number("output_index") {
                    if self.call(out, at, item).is_some() {
                        self.whole_arguments(out, at, item.get("arguments"));
                    }
                }
            }
            "response.completed" | "response.incomplete" => self.finish_answer(out, response),
            "response.failed" => {
                let error = failure_error(response, "failed");
                self.fail(out, &error);
            }
            "error" => {
                // The documented shape has the fields at the top; some
                // servers nest them under `error`.
                let e = v.get("error").filter(|e| e.is_object()).unwrap_or(v);
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("The Responses API backend reported an error");
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        e.get("type")
                            .and_then(Value::as_str)
                            .filter(|t| *t != "error")
                    })
                    .unwrap_or("upstream_error");
                let mut error = convert::openai_error(StatusCode::BAD_GATEWAY, code, message);
                if let (Some(param), Some(fields)) = (
                    e.get("param").filter(|p| p.is_string()),
                    error.get_mut("error").and_then(Value::as_object_mut),
                ) {
                    fields.insert("param".into(), param.clone());
                }
                self.fail(out, &error);
            }
            // in_progress, content_part.*, *.done, hosted tool progress,
            // annotations and anything newer: nothing to say.
            _ => {}
        }
    }
}

fn text_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

impl EventTranscoder for ResponsesToOpenAiStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() || event.is_done() {
            return;
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => {
                let kind = v
                    .get("type")
                    .and_then(Value::as_str)
                    .or(event.event.as_deref())
                    .unwrap_or("")
                    .to_string();
                self.handle(&kind, &v, out);
            }
            Err(_) => tracing::warn!("skipping a malformed event from a Responses API upstream"),
        }
    }

    fn finish(&mut self, _out: &mut BytesMut) {}
}
