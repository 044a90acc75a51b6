//! Editing answers in flight, shared by `transform` and `pii`.
//!
//! - [`JsonEdit`]: a JSON answer is collected (bounded by [`JSON_CAP`]; a
//!   larger one passes through unchanged), edited as a document, and sent as
//!   one frame.
//! - [`SseEdit`]: a streamed answer is edited event by event, never
//!   collected. The text deltas of each choice, content block or output item
//!   — a [`Channel`] — go through an [`Editor`], which may hold a bounded
//!   tail back until the next event of that channel and must give it up when
//!   the channel ends.
//! - [`Holdback`]: a streaming find-and-replace that holds back only the
//!   tail of the text from which a match could still begin ([`Prefixes`]),
//!   at most `max` bytes, so a match split across two events is still found
//!   and text that cannot be part of one goes out at once.
//!
//! Streamed, per client format:
//!
//! | format | channels | held text is sent | full texts re-edited |
//! | --- | --- | --- | --- |
//! | OpenAI chat / completions | `choices[i].delta.content`, `choices[i].text`, `choices[i].delta.tool_calls[j].function.arguments` | in the choice's `finish_reason` event; else a chunk of its own before `[DONE]`, an error event, or the end | — |
//! | Anthropic | `text_delta`s, `input_json_delta`s of block `i` | a `content_block_delta` of its own before the block's `content_block_stop` (or `message_delta`, `message_stop`, `error`, the end) | — |
//! | OpenAI Responses | `response.output_text.delta` per (`output_index`, `content_index`), `response.function_call_arguments.delta` per `output_index`, `response.reasoning_summary_text.delta` per (`output_index`, `summary_index`) | an added `.delta` event of that channel before its `.done`, `content_part.done`, `reasoning_summary_part.done`, `output_item.done`, `response.completed`/`incomplete`/`failed`, `error`, or the end | `output_text.done` `text`, `function_call_arguments.done` `arguments`, `reasoning_summary_text.done` `text`, the `part` of `content_part.done`/`reasoning_summary_part.done`, the `item` of `output_item.done`, the `output` items of the terminal events' `response` |
//!
//! **Responses streams** number their events (`sequence_number`). An event
//! the editor adds (held text given up at a channel's end) takes the number
//! after the last one sent, and every later event's number is raised by the
//! count of events added so far, so the numbers stay consecutive. The full
//! texts the `.done` events, `output_item.done` and the terminal `response`
//! repeat get the editor's whole-text edit ([`Editor::whole`]), the same edit
//! the deltas got streamed, so each equals the concatenation of its edited
//! deltas; the other fields of those objects (ids, `type`, `status`) are left
//! alone (as in every other event; `transform`'s JSONPath rules still apply
//! to each event's document). Reasoning summaries are edited like text;
//! refusals, raw reasoning text and custom tool inputs are not.
//!
//! An event larger than twice the upstream event cap passes unedited.
//! Edited bodies have no `Content-Length` (the length changes).

// Parts of this file are the `content` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "content"), allow(unused_imports, dead_code))]
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod future;
mod holdback;
mod json;
mod responses;
mod sse;
#[cfg(test)]
pub(crate) mod tests;

use bytes::Bytes;
use http::Response;
use serde_json::Value;

use crate::body::ProxyBody;
use crate::request::ClientFormat;

pub use future::{AnswerEdit, EditFuture};
pub(crate) use holdback::{Finder, Holdback, Prefixes, RegexFinder};
pub(crate) use json::JsonEdit;
pub(crate) use sse::SseEdit;

/// The largest JSON answer collected for editing (8 MiB).
pub(crate) const JSON_CAP: usize = 8 << 20;

/// One growing text of a streamed answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Channel {
    /// OpenAI chat: `choices[i].delta.content`.
    Content(u64),
    /// OpenAI completions: `choices[i].text`.
    Text(u64),
    /// OpenAI: `choices[i].delta.tool_calls[j].function.arguments`.
    ToolArgs(u64, u64),
    /// Anthropic: the `text_delta`s of content block `i`.
    BlockText(u64),
    /// Anthropic: the `input_json_delta`s of content block `i`.
    BlockJson(u64),
    /// Responses: the `output_text` of output item `i`, content part `j`.
    OutputText(u64, u64),
    /// Responses: the `arguments` of function call output item `i`.
    CallArgs(u64),
    /// Responses: the reasoning summary part `j` of output item `i`.
    Summary(u64, u64),
}

impl Channel {
    /// The choice, content block or output item it belongs to.
    fn group(self) -> u64 {
        match self {
            Channel::Content(i)
            | Channel::Text(i)
            | Channel::ToolArgs(i, _)
            | Channel::BlockText(i)
            | Channel::BlockJson(i)
            | Channel::OutputText(i, _)
            | Channel::CallArgs(i)
            | Channel::Summary(i, _) => i,
        }
    }

    /// Whether it is a channel of a Responses stream.
    fn is_responses(self) -> bool {
        matches!(
            self,
            Channel::OutputText(..) | Channel::CallArgs(_) | Channel::Summary(..)
        )
    }

    /// Whether the text is JSON source (tool-call arguments).
    pub(crate) fn is_json(self) -> bool {
        matches!(
            self,
            Channel::ToolArgs(..) | Channel::BlockJson(_) | Channel::CallArgs(_)
        )
    }

    /// Whether the text is what the model says (not tool-call arguments).
    pub(crate) fn is_prose(self) -> bool {
        !self.is_json()
    }
}

/// What a layer does to an answer.
pub(crate) trait Editor: Send + Unpin + 'static {
    /// Whether the text of `channel` is edited at all.
    fn wants(&self, channel: Channel) -> bool;
    /// Text of `channel` arrived: the text to send now.
    fn text(&mut self, channel: Channel, text: &str) -> String;
    /// `channel` ended: the text still held back.
    fn flush(&mut self, channel: Channel) -> String;
    /// A complete text of `channel` at once (Responses streams repeat each
    /// text whole when it ends): the same edit its pieces get through
    /// [`text`](Self::text) and [`flush`](Self::flush), without touching the
    /// channel's streaming state.
    fn whole(&mut self, channel: Channel, text: &str) -> String;
    /// Edit one streamed event's JSON document (after its text); whether
    /// anything changed.
    fn event(&mut self, _doc: &mut Value) -> bool {
        false
    }
    /// Edit a whole JSON answer; whether anything changed.
    fn document(&mut self, doc: &mut Value) -> bool;
}

/// Wrap the body of `response` in the editor: SSE answers event by event,
/// JSON answers as a document; other answers are left alone.
pub(crate) fn edit_answer<E: Editor>(
    response: Response<ProxyBody>,
    format: ClientFormat,
    editor: E,
) -> Response<ProxyBody> {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (mut parts, body) = response.into_parts();
    let body = if content_type.starts_with("text/event-stream") {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        ProxyBody::new(SseEdit::new(body, format, editor))
    } else if content_type.contains("json") {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        ProxyBody::new(JsonEdit::new(body, editor, JSON_CAP))
    } else {
        body
    };
    Response::from_parts(parts, body)
}

/// Every string value of `doc` (keys untouched) through `f`; whether any changed.
pub(crate) fn edit_strings(doc: &mut Value, f: &mut dyn FnMut(&str) -> Option<String>) -> bool {
    match doc {
        Value::String(s) => match f(s) {
            Some(new) if new != *s => {
                *s = new;
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| edit_strings(v, f) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| edit_strings(v, f) | changed),
        _ => false,
    }
}

/// Append `rest` to the string at `entry` (made one if it is not).
fn append(entry: serde_json::map::Entry<'_>, rest: &str) {
    match entry.or_insert_with(|| Value::String(String::new())) {
        Value::String(s) => s.push_str(rest),
        other => *other = Value::String(rest.to_string()),
    }
}

/// One event: `event:` line when named, then the data line.
fn render(event: Option<&str>, doc: &Value) -> Bytes {
    let mut out = Vec::with_capacity(128);
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serializing a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, doc);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
