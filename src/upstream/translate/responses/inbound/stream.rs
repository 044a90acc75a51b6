//! `chat.completion.chunk` events -> the Responses event stream.//!
//! The transcoder [`ResponsesStream`] lives here with its event writing and
//! the dispatch of each chunk; its output items are in `item`, their deltas
//! in `delta`, the Response object and lifecycle events in `response`, and
//! the fast read of plain text chunks in `plain`.

mod delta;
mod item;
mod plain;
mod response;

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use self::item::Item;
use self::plain::{Plain, PlainChunk};
use super::answer::{logprobs_from_openai, usage_from_openai, Echo};
use super::{hex_id, MAX_ACCUMULATED};
use crate::sse::SseEvent;
use crate::upstream::translate::body::{write_event, EventTranscoder};
use crate::upstream::translate::convert::{now, upstream_name};

/// Why the stream ends in `response.failed`.
struct Failure {
    kind: String,
    code: String,
    message: String,
    param: Option<String>,
}

impl Failure {
    fn new(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: "server_error".to_string(),
            code: code.to_string(),
            message: message.into(),
            param: None,
        }
    }
}

/// `chat.completion.chunk` events as the Responses event stream (see the
/// [module docs](super)): `response.created` and `response.in_progress` at
/// the first event; per output item `response.output_item.added`, its
/// deltas, their `.done` events and `response.output_item.done`; then
/// `response.completed` or `response.incomplete` with the whole Response
/// object at `[DONE]` (or at a clean end after a finish reason). An upstream
/// error event becomes `error` and `response.failed`.
#[derive(Debug)]
pub struct ResponsesStream {
    echo: Echo,
    id: String,
    created_at: u64,
    model: Option<String>,
    service_tier: Option<String>,
    sequence: u64,
    started: bool,
    items: Vec<Item>,
    /// The last item is still open.
    open: bool,
    /// Tool call indexes seen (each below 128: one bit each).
    seen_calls: u128,
    finish: Option<&'static str>,
    usage: Value,
    /// Bytes kept for the `.done` events and the terminal event.
    kept: usize,
    done: bool,
}

impl ResponsesStream {
    /// A transcoder for the answer to `request` (the client's Responses
    /// request body).
    pub fn new(request: &Map<String, Value>) -> Self {
        Self::with_echo(Echo::new(request))
    }

    pub(super) fn with_echo(echo: Echo) -> Self {
        ResponsesStream {
            echo,
            id: hex_id("resp"),
            created_at: now(),
            model: None,
            service_tier: None,
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: false,
            seen_calls: 0,
            finish: None,
            usage: usage_from_openai(&json!({})),
            kept: 0,
            done: false,
        }
    }

    /// One event: `type`, the fields, `sequence_number`.
    fn emit(&mut self, out: &mut BytesMut, kind: &str, fields: Value) {
        let mut data = Map::new();
        data.insert("type".into(), Value::from(kind));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        data.insert("sequence_number".into(), Value::from(self.sequence));
        self.sequence = self.sequence.saturating_add(1);
        write_event(out, Some(kind), &Value::Object(data));
    }

    /// One event written from a typed value (its fields in order, the
    /// `sequence_number` it is given last).
    fn emit_typed<T: serde::Serialize>(
        &mut self,
        out: &mut BytesMut,
        kind: &str,
        event: impl FnOnce(u64) -> T,
    ) {
        let data = event(self.sequence);
        self.sequence = self.sequence.saturating_add(1);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let mut buf = Vec::with_capacity(128);
        // Writing JSON into memory cannot fail.
        let _ = serde_json::to_writer(&mut buf, &data);
        out.extend_from_slice(&buf);
        out.extend_from_slice(b"\n\n");
    }

    /// Count `n` more bytes kept.
    fn keep(&mut self, n: usize) -> Result<(), Failure> {
        self.kept = self.kept.saturating_add(n);
        if self.kept > MAX_ACCUMULATED {
            return Err(Failure::new(
                "response_too_large",
                format!("the answer is larger than {MAX_ACCUMULATED} bytes and cannot be translated into a Response"),
            ));
        }
        Ok(())
    }

    /// The events of a plain chunk (see [`PlainChunk`]), like
    /// [`handle`](Self::handle) would write them.
    fn write_plain(&mut self, out: &mut BytesMut, plain: Plain<'_>) {
        self.start(out);
        let result = (|| {
            if !plain.reasoning.is_empty() {
                self.reasoning(out, plain.reasoning)?;
            }
            if !plain.text.is_empty() {
                self.text(out, false, plain.text, Vec::new())?;
            }
            Ok(())
        })();
        if let Err(failure) = result {
            self.fail(out, failure);
        }
    }

    fn handle(&mut self, v: &Value, out: &mut BytesMut) -> Result<(), Failure> {
        if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
            let text = |k: &str| error.get(k).and_then(Value::as_str);
            return Err(Failure {
                kind: text("type").unwrap_or("server_error").to_string(),
                code: text("code")
                    .or_else(|| text("type"))
                    .unwrap_or("server_error")
                    .to_string(),
                message: text("message")
                    .map(str::to_string)
                    .unwrap_or_else(|| error.to_string()),
                param: text("param").map(str::to_string),
            });
        }
        if self.model.is_none() {
            self.model = upstream_name(v.get("model")).map(str::to_string);
        }
        if let Some(tier) = upstream_name(v.get("service_tier")) {
            self.service_tier = Some(tier.to_string());
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = usage_from_openai(usage);
        }
        self.start(out);
        let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return Ok(());
        };
        if let Some(delta) = choice.get("delta") {
            let text = |k: &str| {
                delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
            };
            if let Some(t) = text("reasoning_content").or_else(|| text("reasoning")) {
                self.reasoning(out, t)?;
            }
            if let Some(t) = text("content") {
                let logprobs = logprobs_from_openai(
                    choice
                        .get("logprobs")
                        .and_then(|l| l.get("content"))
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                );
                self.text(out, false, t, logprobs)?;
            }
            if let Some(t) = text("refusal") {
                self.text(out, true, t, Vec::new())?;
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_call(out, call)?;
                }
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(match finish {
                "length" => "length",
                "content_filter" => "content_filter",
                _ => "stop",
            });
            self.close(out);
        }
        Ok(())
    }
}

impl EventTranscoder for ResponsesStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() {
            return;
        }
        if event.is_done() {
            self.complete(out);
            return;
        }
        // Most chunks carry one choice's text (or reasoning) and nothing
        // else: read those without building a document.
        if let Ok(chunk) = serde_json::from_slice::<PlainChunk<'_>>(&event.data) {
            if let Some(plain) = chunk.plain() {
                if self.model.is_none() {
                    self.model = chunk
                        .model
                        .as_deref()
                        .and_then(|m| upstream_name(Some(&Value::from(m))).map(str::to_string));
                }
                self.write_plain(out, plain);
                return;
            }
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => {
                if let Err(failure) = self.handle(&v, out) {
                    self.fail(out, failure);
                }
            }
            Err(_) => tracing::warn!("skipping a malformed event from an OpenAI-format upstream"),
        }
    }

    /// An upstream that finished its answer but left out `[DONE]` still
    /// gets its terminal event; one that did not finish gets nothing more
    /// (the stream guard reports it as incomplete).
    fn finish(&mut self, out: &mut BytesMut) {
        if !self.done && self.finish.is_some() {
            self.complete(out);
        }
    }
}
