//! Streams, event by event: Anthropic events <-> `chat.completion.chunk` events.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;

use bytes::BytesMut;
use serde_json::{json, Value};

use super::answer::{finish_reason_from_stop, stop_reason_from_finish, Tokens};
use super::{fresh_id, now};
use crate::sse::SseEvent;
use crate::upstream::limits::{check_index, IndexTooLarge};
use crate::upstream::translate::body::{write_event, EventTranscoder};
use crate::upstream::translate::convert::upstream_name;

// ---------------------------------------------------------------------------
// Anthropic events -> chat.completion.chunk

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Block {
    Text,
    Thinking,
    /// A tool call, with its OpenAI `index`.
    Tool(u64),
    Other,
}

/// Anthropic stream events as `chat.completion.chunk` events: the role first
/// (from `message_start`), text and reasoning deltas, tool calls (`index` on
/// every delta, `id`, `type` and `name` on the first), the finish reason
/// (from `message_delta`), a usage chunk when the client asked for one, then
/// `data: [DONE]` (from `message_stop`). An `error` event becomes an OpenAI
/// error event. Completeness is the stream guard's to judge.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    tokens: Tokens,
    /// Open and past blocks by Anthropic index (each below
    /// [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX)).
    pub(super) blocks: BTreeMap<u64, Block>,
    next_tool: u64,
    finished: bool,
    done: bool,
}

impl AnthropicToOpenAiStream {
    /// A new transcoder; `include_usage` adds the usage chunk.
    pub fn new(include_usage: bool) -> Self {
        AnthropicToOpenAiStream {
            id: String::new(),
            model: String::new(),
            created: now(),
            include_usage,
            tokens: Tokens::default(),
            blocks: BTreeMap::new(),
            next_tool: 0,
            finished: false,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        write_event(out, None, &chunk);
    }

    fn block(&self, index: u64) -> Block {
        self.blocks.get(&index).copied().unwrap_or(Block::Other)
    }

    /// End the stream with an OpenAI error event.
    fn fail(&mut self, out: &mut BytesMut, message: &str) {
        write_event(
            out,
            None,
            &json!({"error": {"message": message, "type": "server_error", "param": null, "code": "upstream_error"}}),
        );
        self.done = true;
    }

    fn handle(&mut self, v: &Value, out: &mut BytesMut) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        if kind == "content_block_start" {
            if let Err(e) = check_index(index, "content block") {
                return self.fail(out, &e.to_string());
            }
        }
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                // Repeated in every chunk: bounded.
                if let Some(id) = upstream_name(m.get("id")) {
                    self.id = id.to_string();
                }
                if let Some(model) = upstream_name(m.get("model")) {
                    self.model = model.to_string();
                }
                if let Some(u) = m.get("usage") {
                    self.tokens.absorb_anthropic(u);
                }
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            "content_block_start" => {
                let cb = v.get("content_block").unwrap_or(&Value::Null);
                let block = match cb.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => {
                        let text = cb.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.chunk(out, json!({"content": text}), None);
                        }
                        Block::Text
                    }
                    "thinking" => {
                        let text = cb.get("thinking").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.chunk(out, json!({"reasoning_content": text}), None);
                        }
                        Block::Thinking
                    }
                    "tool_use" => {
                        let k = self.next_tool;
                        self.next_tool = k.saturating_add(1);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{
                                "index": k,
                                "id": cb.get("id").cloned().unwrap_or(Value::Null),
                                "type": "function",
                                "function": {"name": cb.get("name").cloned().unwrap_or_default(), "arguments": ""},
                            }]}),
                            None,
                        );
                        if let Some(input) = cb
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            self.chunk(
                                out,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": input.to_string()}}]}),
                                None,
                            );
                        }
                        Block::Tool(k)
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| d.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
                match (d.get("type").and_then(Value::as_str), self.block(index)) {
                    (Some("text_delta"), _) => {
                        if let Some(t) = text("text") {
                            self.chunk(out, json!({"content": t}), None);
                        }
                    }
                    (Some("thinking_delta"), _) => {
                        if let Some(t) = text("thinking") {
                            self.chunk(out, json!({"reasoning_content": t}), None);
                        }
                    }
                    (Some("input_json_delta"), Block::Tool(k)) => {
                        if let Some(t) = text("partial_json") {
                            self.chunk(
                                out,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": t}}]}),
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.tokens.absorb_anthropic(u);
                }
                if let Some(stop) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.chunk(out, json!({}), Some(finish_reason_from_stop(stop)));
                    self.finished = true;
                }
            }
            "message_stop" => {
                if !self.finished {
                    self.chunk(out, json!({}), Some("stop"));
                    self.finished = true;
                }
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.tokens.to_openai(),
                    });
                    write_event(out, None, &chunk);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "error" => {
                let e = v.get("error").unwrap_or(&Value::Null);
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("The upstream reported an error");
                let openai_type = match kind {
                    "invalid_request_error" | "not_found_error" | "request_too_large" => {
                        "invalid_request_error"
                    }
                    "authentication_error" => "authentication_error",
                    "permission_error" => "permission_error",
                    "rate_limit_error" => "rate_limit_error",
                    _ => "server_error",
                };
                write_event(
                    out,
                    None,
                    &json!({"error": {"message": message, "type": openai_type, "param": null, "code": kind}}),
                );
                self.done = true;
            }
            // ping, content_block_stop and anything new: nothing to say.
            _ => {}
        }
    }
}

impl EventTranscoder for AnthropicToOpenAiStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() {
            return;
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => self.handle(&v, out),
            Err(_) => tracing::warn!("skipping a malformed event from an Anthropic upstream"),
        }
    }

    fn finish(&mut self, _out: &mut BytesMut) {}
}

// ---------------------------------------------------------------------------
// chat.completion.chunk -> Anthropic events

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text(u64),
    Thinking(u64),
    Tool { call: u64, index: u64 },
}

impl Open {
    fn index(self) -> u64 {
        match self {
            Open::Text(i) | Open::Thinking(i) | Open::Tool { index: i, .. } => i,
        }
    }
}

/// `chat.completion.chunk` events as the exact Anthropic event sequence:
/// `message_start` (before any block, even when the first chunk is a tool
/// call), then per block `content_block_start`, deltas (`text_delta`,
/// `thinking_delta`, `input_json_delta`) and `content_block_stop`, then
/// `message_delta` (stop reason, usage — held until the usage chunk or
/// `[DONE]`) and `message_stop`. An error event becomes `event: error`.
#[derive(Debug, Default)]
pub struct OpenAiToAnthropicStream {
    started: bool,
    id: String,
    model: String,
    open: Option<Open>,
    next_index: u64,
    /// OpenAI tool call index -> Anthropic block index.
    pub(super) tools: Vec<(u64, u64)>,
    /// The `id` of the open tool call.
    open_tool_id: Option<String>,
    stop_reason: Option<&'static str>,
    tokens: Option<Tokens>,
    done: bool,
}

impl OpenAiToAnthropicStream {
    /// A new transcoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(out: &mut BytesMut, data: &Value) {
        let name = data.get("type").and_then(Value::as_str);
        write_event(out, name, data);
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = fresh_id("msg");
        }
        let input = self.tokens.map_or(0, |t| t.input);
        Self::emit(
            out,
            &json!({"type": "message_start", "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 0},
            }}),
        );
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some(open) = self.open.take() {
            Self::emit(
                out,
                &json!({"type": "content_block_stop", "index": open.index()}),
            );
        }
    }

    /// Open a new block (closing the current one) and return its index.
    fn open_block(&mut self, out: &mut BytesMut, block: Value) -> u64 {
        self.close(out);
        let index = self.next_index;
        self.next_index = index.saturating_add(1);
        Self::emit(
            out,
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn text(&mut self, out: &mut BytesMut, text: &str) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.open_block(out, json!({"type": "text", "text": ""}));
                self.open = Some(Open::Text(i));
                i
            }
        };
        Self::emit(
            out,
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn thinking(&mut self, out: &mut BytesMut, text: &str) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                let i = self.open_block(
                    out,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        Self::emit(
            out,
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}}),
        );
    }

    fn tool_call(&mut self, out: &mut BytesMut, call: &Value) -> Result<(), IndexTooLarge> {
        let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        check_index(k, "tool call")?;
        let f = call.get("function").unwrap_or(&Value::Null);
        let known = self.tools.iter().find(|(c, _)| *c == k).map(|(_, i)| *i);
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        // Some servers repeat the id on every delta; a different id under
        // the same index is a new call.
        let same_call = id.is_none() || id == self.open_tool_id.as_deref();
        let index = match (self.open, known) {
            (Some(Open::Tool { call: open, index }), _) if open == k && same_call => index,
            (_, Some(index)) if id.is_none() => index,
            _ => {
                let id = id.map(str::to_string).unwrap_or_else(|| fresh_id("toolu"));
                let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                self.open_tool_id = Some(id.clone());
                let index = self.open_block(
                    out,
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
                self.open = Some(Open::Tool { call: k, index });
                self.tools.retain(|(c, _)| *c != k);
                self.tools.push((k, index));
                index
            }
        };
        if let Some(args) = f
            .get("arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            Self::emit(
                out,
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
            );
        }
        Ok(())
    }

    /// `message_delta` and `message_stop`.
    fn complete(&mut self, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.start(out);
        self.close(out);
        let tokens = self.tokens.unwrap_or_default();
        Self::emit(
            out,
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": tokens.to_anthropic(),
            }),
        );
        Self::emit(out, &json!({"type": "message_stop"}));
        self.done = true;
    }

    fn handle(&mut self, v: &Value, out: &mut BytesMut) {
        if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            let kind = match error.get("type").and_then(Value::as_str) {
                Some("invalid_request_error") => "invalid_request_error",
                Some("authentication_error") => "authentication_error",
                Some("permission_error") => "permission_error",
                Some("rate_limit_error") | Some("requests") | Some("tokens") => "rate_limit_error",
                _ => "api_error",
            };
            Self::emit(
                out,
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            );
            self.done = true;
            return;
        }
        if self.id.is_empty() {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                self.id = id.to_string();
            }
        }
        if self.model.is_empty() {
            if let Some(model) = v.get("model").and_then(Value::as_str) {
                self.model = model.to_string();
            }
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.tokens = Some(Tokens::from_openai(usage));
        }
        self.start(out);
        let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            let text = |k: &str| {
                delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
            };
            if let Some(t) = text("reasoning_content").or_else(|| text("reasoning")) {
                self.thinking(out, t);
            }
            if let Some(t) = text("content") {
                self.text(out, t);
            }
            if let Some(t) = text("refusal") {
                self.text(out, t);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    if let Err(e) = self.tool_call(out, call) {
                        Self::emit(
                            out,
                            &json!({"type": "error", "error": {"type": "api_error", "message": e.to_string()}}),
                        );
                        self.done = true;
                        return;
                    }
                }
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(stop_reason_from_finish(finish));
            self.close(out);
        }
    }
}

impl EventTranscoder for OpenAiToAnthropicStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() {
            return;
        }
        if event.is_done() {
            self.complete(out);
            return;
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => self.handle(&v, out),
            Err(_) => tracing::warn!("skipping a malformed event from an OpenAI-format upstream"),
        }
    }

    /// An upstream that finished its answer but left out `[DONE]` still
    /// gets a complete message; one that did not finish gets nothing more
    /// (the stream guard reports it as incomplete).
    fn finish(&mut self, out: &mut BytesMut) {
        if !self.done && self.stop_reason.is_some() {
            self.complete(out);
        }
    }
}
