//! Editing answers in flight, shared by `transform` and `pii`.
//!
//! - [`JsonEdit`]: a JSON answer is collected (bounded by [`JSON_CAP`]; a
//!   larger one passes through unchanged), edited as a document, and sent as
//!   one frame.
//! - [`SseEdit`]: a streamed answer is edited event by event, never
//!   collected. The text deltas of each choice or content block — a
//!   [`Channel`] — go through an [`Editor`], which may hold a bounded tail
//!   back until the next event of that channel and must give it up when the
//!   channel ends (a `finish_reason`, `content_block_stop`, `[DONE]`,
//!   `message_stop`, an error event, or the end of the body).
//! - [`Holdback`]: a streaming find-and-replace that holds back at most `max`
//!   bytes, so a match split across two events is still found.
//!
//! Edited bodies have no `Content-Length` (the length changes).

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use serde_json::{json, Map, Value};

use crate::body::{BoxError, ProxyBody};
use crate::request::ClientFormat;
use crate::sse::{SseEvent, SseParser};

/// The largest JSON answer collected for editing (8 MiB).
pub(crate) const JSON_CAP: usize = 8 << 20;

/// The largest streamed event parsed: twice the upstream event cap
/// ([`MAX_EVENT_BYTES`](crate::upstream::limits::MAX_EVENT_BYTES)), so events
/// that passed the guard, translated, always parse here.
const EVENT_CAP: usize = 2 * crate::upstream::limits::MAX_EVENT_BYTES;

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
}

impl Channel {
    /// The choice or content block it belongs to.
    fn group(self) -> u64 {
        match self {
            Channel::Content(i)
            | Channel::Text(i)
            | Channel::ToolArgs(i, _)
            | Channel::BlockText(i)
            | Channel::BlockJson(i) => i,
        }
    }

    /// Whether the text is JSON source (tool-call arguments).
    pub(crate) fn is_json(self) -> bool {
        matches!(self, Channel::ToolArgs(..) | Channel::BlockJson(_))
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

// ---------------------------------------------------------------------------
// JSON answers

enum JsonState {
    Collecting(BytesMut),
    Passing(Option<Bytes>),
    Done,
}

/// A JSON answer, collected (up to a cap) and edited as a document.
pub(crate) struct JsonEdit<E> {
    inner: ProxyBody,
    state: JsonState,
    editor: E,
    cap: usize,
}

impl<E: Editor> JsonEdit<E> {
    pub(crate) fn new(inner: ProxyBody, editor: E, cap: usize) -> Self {
        JsonEdit {
            inner,
            state: JsonState::Collecting(BytesMut::new()),
            editor,
            cap,
        }
    }

    fn edit(&mut self, bytes: Bytes) -> Bytes {
        let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
            return bytes;
        };
        if !self.editor.document(&mut doc) {
            return bytes;
        }
        serde_json::to_vec(&doc).map(Bytes::from).unwrap_or(bytes)
    }
}

impl<E: Editor> Body for JsonEdit<E> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                JsonState::Done => return Poll::Ready(None),
                JsonState::Passing(first) => {
                    if let Some(first) = first.take() {
                        return Poll::Ready(Some(Ok(Frame::data(first))));
                    }
                    return Pin::new(&mut this.inner).poll_frame(cx);
                }
                JsonState::Collecting(buf) => {
                    match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            if let Some(data) = frame.data_ref() {
                                buf.extend_from_slice(data);
                                if buf.len() > this.cap {
                                    tracing::warn!(
                                        cap = this.cap,
                                        "a JSON answer is too large to edit; it passes unchanged"
                                    );
                                    let first = std::mem::take(buf).freeze();
                                    this.state = JsonState::Passing(Some(first));
                                }
                            }
                        }
                        Some(Err(e)) => {
                            this.state = JsonState::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                        None => {
                            let bytes = std::mem::take(buf).freeze();
                            this.state = JsonState::Done;
                            let out = this.edit(bytes);
                            if out.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, JsonState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            JsonState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// Streamed answers

/// A streamed answer edited event by event. See the [module docs](self).
pub(crate) struct SseEdit<E> {
    inner: Option<ProxyBody>,
    parser: SseParser,
    out: VecDeque<Bytes>,
    format: ClientFormat,
    editor: E,
    /// Channels that received text and were not flushed yet.
    open: BTreeSet<Channel>,
    /// The last OpenAI chunk's top-level fields (for events added at a flush).
    envelope: Map<String, Value>,
}

impl<E: Editor> SseEdit<E> {
    pub(crate) fn new(inner: ProxyBody, format: ClientFormat, editor: E) -> Self {
        SseEdit {
            inner: Some(inner),
            parser: SseParser::new(EVENT_CAP),
            out: VecDeque::new(),
            format,
            editor,
            open: BTreeSet::new(),
            envelope: Map::new(),
        }
    }

    fn edit_text(&mut self, channel: Channel, text: &mut String) -> bool {
        if !self.editor.wants(channel) {
            return false;
        }
        self.open.insert(channel);
        let new = self.editor.text(channel, text);
        if new != *text {
            *text = new;
            true
        } else {
            false
        }
    }

    fn on_event(&mut self, event: SseEvent) {
        if event.data.is_empty() {
            self.out.push_back(event.raw);
            return;
        }
        match self.format {
            ClientFormat::OpenAi => self.on_openai(event),
            ClientFormat::Anthropic => self.on_anthropic(event),
            ClientFormat::Responses => self.out.push_back(event.raw),
        }
    }

    fn on_openai(&mut self, event: SseEvent) {
        if event.is_done() {
            self.flush_all();
            self.out.push_back(event.raw);
            return;
        }
        let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&event.data) else {
            self.out.push_back(event.raw);
            return;
        };
        if doc.contains_key("error") {
            self.flush_all();
            self.out.push_back(event.raw);
            return;
        }
        let mut changed = false;
        if let Some(Value::Array(choices)) = doc.get_mut("choices") {
            let mut choices = std::mem::take(choices);
            for (pos, choice) in choices.iter_mut().enumerate() {
                changed |= self.openai_choice(pos as u64, choice);
            }
            doc.insert("choices".into(), Value::Array(choices));
            self.envelope = doc
                .iter()
                .filter(|(k, _)| *k != "choices" && *k != "usage")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        let mut doc = Value::Object(doc);
        changed |= self.editor.event(&mut doc);
        self.out.push_back(if changed {
            render(event.event.as_deref(), &doc)
        } else {
            event.raw
        });
    }

    fn openai_choice(&mut self, pos: u64, choice: &mut Value) -> bool {
        let index = choice.get("index").and_then(Value::as_u64).unwrap_or(pos);
        let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
        let mut changed = false;
        if let Some(Value::Object(delta)) = choice.get_mut("delta") {
            if let Some(Value::String(text)) = delta.get_mut("content") {
                changed |= self.edit_text(Channel::Content(index), text);
            }
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for (j, call) in calls.iter_mut().enumerate() {
                    let ti = call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(j as u64);
                    if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                        changed |= self.edit_text(Channel::ToolArgs(index, ti), args);
                    }
                }
            }
        }
        if let Some(Value::String(text)) = choice.get_mut("text") {
            changed |= self.edit_text(Channel::Text(index), text);
        }
        if finished {
            changed |= self.flush_into_choice(index, choice);
        }
        changed
    }

    /// The choice finished: what its channels still hold goes into this event.
    fn flush_into_choice(&mut self, index: u64, choice: &mut Value) -> bool {
        let mut changed = false;
        for channel in self.take_open(|c| {
            c.group() == index
                && matches!(
                    c,
                    Channel::Content(_) | Channel::Text(_) | Channel::ToolArgs(..)
                )
        }) {
            let rest = self.editor.flush(channel);
            if rest.is_empty() {
                continue;
            }
            changed = true;
            let Value::Object(choice) = choice else {
                continue;
            };
            match channel {
                Channel::Text(_) => append(choice.entry("text"), &rest),
                Channel::Content(_) => {
                    if let Value::Object(delta) = choice.entry("delta").or_insert_with(|| json!({}))
                    {
                        append(delta.entry("content"), &rest);
                    }
                }
                Channel::ToolArgs(_, ti) => {
                    if let Value::Object(delta) = choice.entry("delta").or_insert_with(|| json!({}))
                    {
                        let calls = delta.entry("tool_calls").or_insert_with(|| json!([]));
                        if let Value::Array(calls) = calls {
                            let existing = calls
                                .iter_mut()
                                .find(|c| c.get("index").and_then(Value::as_u64) == Some(ti));
                            match existing {
                                Some(Value::Object(call)) => {
                                    if let Value::Object(f) =
                                        call.entry("function").or_insert_with(|| json!({}))
                                    {
                                        append(f.entry("arguments"), &rest);
                                    }
                                }
                                _ => calls
                                    .push(json!({"index": ti, "function": {"arguments": rest}})),
                            }
                        }
                    }
                }
                Channel::BlockText(_) | Channel::BlockJson(_) => {}
            }
        }
        changed
    }

    fn on_anthropic(&mut self, event: SseEvent) {
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&event.data) else {
            self.out.push_back(event.raw);
            return;
        };
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_stop" => self.flush_where(|c| c.group() == index),
            "message_delta" | "message_stop" | "error" => self.flush_all(),
            _ => {}
        }
        let mut doc = Value::Object(doc);
        let mut changed = false;
        if kind == "content_block_delta" {
            if let Some(Value::Object(delta)) = doc.get_mut("delta") {
                let (channel, field) = match delta.get("type").and_then(Value::as_str).unwrap_or("")
                {
                    "text_delta" => (Some(Channel::BlockText(index)), "text"),
                    "input_json_delta" => (Some(Channel::BlockJson(index)), "partial_json"),
                    _ => (None, ""),
                };
                if let (Some(channel), Some(Value::String(text))) = (channel, delta.get_mut(field))
                {
                    let mut text = std::mem::take(text);
                    changed |= self.edit_text(channel, &mut text);
                    delta.insert(field.into(), Value::String(text));
                }
            }
        }
        changed |= self.editor.event(&mut doc);
        self.out.push_back(if changed {
            render(event.event.as_deref(), &doc)
        } else {
            event.raw
        });
    }

    fn take_open(&mut self, pred: impl Fn(Channel) -> bool) -> Vec<Channel> {
        let taken: Vec<Channel> = self.open.iter().copied().filter(|c| pred(*c)).collect();
        for c in &taken {
            self.open.remove(c);
        }
        taken
    }

    /// Flush the channels matching `pred` as events of their own.
    fn flush_where(&mut self, pred: impl Fn(Channel) -> bool) {
        for channel in self.take_open(pred) {
            let rest = self.editor.flush(channel);
            if rest.is_empty() {
                continue;
            }
            let event = match channel {
                Channel::BlockText(i) => render(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": i,
                            "delta": {"type": "text_delta", "text": rest}}),
                ),
                Channel::BlockJson(i) => render(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": i,
                            "delta": {"type": "input_json_delta", "partial_json": rest}}),
                ),
                Channel::Content(i) => self.openai_chunk(
                    json!({"index": i, "delta": {"content": rest}, "finish_reason": null}),
                ),
                Channel::Text(i) => {
                    self.openai_chunk(json!({"index": i, "text": rest, "finish_reason": null}))
                }
                Channel::ToolArgs(i, ti) => self.openai_chunk(json!({"index": i,
                    "delta": {"tool_calls": [{"index": ti, "function": {"arguments": rest}}]},
                    "finish_reason": null})),
            };
            self.out.push_back(event);
        }
    }

    fn flush_all(&mut self) {
        self.flush_where(|_| true);
    }

    fn openai_chunk(&self, choice: Value) -> Bytes {
        let mut doc = self.envelope.clone();
        doc.insert("choices".into(), Value::Array(vec![choice]));
        render(None, &Value::Object(doc))
    }
}

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

impl<E: Editor> Body for SseEdit<E> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match std::task::ready!(Pin::new(inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.parser.push(&data);
                        loop {
                            match this.parser.next_event() {
                                Ok(Some(event)) => this.on_event(event),
                                Ok(None) => break,
                                Err(_) => {
                                    // Too large to edit: pass it as it is.
                                    if let Some(event) = this.parser.finish() {
                                        this.out.push_back(event.raw);
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => {
                    this.inner = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.inner = None;
                    if let Some(event) = this.parser.finish() {
                        this.on_event(event);
                    }
                    this.flush_all();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none() && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

// ---------------------------------------------------------------------------
// Streaming find-and-replace

/// Finds what to replace in a text.
pub(crate) trait Finder: Send + Unpin + 'static {
    /// Replacements `(start, end, with)` in `hay[from..]`, in order and not
    /// overlapping; `hay[..from]` is already-sent text, there only as
    /// context (word boundaries, look-behind checks).
    fn find(&mut self, hay: &str, from: usize, out: &mut Vec<(usize, usize, String)>);
}

/// Bytes of already-sent text kept as context for the next search.
const CONTEXT: usize = 16;

/// A streaming find-and-replace with bounded look-ahead.
///
/// Each push sends everything except the last `max` bytes, which are held
/// back because a match could start there and continue in the next piece of
/// text. A match that starts before that point is replaced whole (even when
/// it reaches into the held part); a match longer than `max` that is split
/// across pieces may be missed. [`finish`](Self::finish) sends the rest.
pub(crate) struct Holdback<F> {
    finder: F,
    max: usize,
    buf: String,
    ctx: usize,
    /// The last match ended where the sent text ends: an empty match right
    /// there is skipped, as `replace_all` does.
    skip_empty_at_ctx: bool,
    found: Vec<(usize, usize, String)>,
}

impl<F: Finder> Holdback<F> {
    pub(crate) fn new(finder: F, max: usize) -> Self {
        Holdback {
            finder,
            max,
            buf: String::new(),
            ctx: 0,
            skip_empty_at_ctx: false,
            found: Vec::new(),
        }
    }

    /// More text: what can be sent now.
    pub(crate) fn push(&mut self, text: &str) -> String {
        self.run(text, false)
    }

    /// The last text: everything left.
    pub(crate) fn finish(&mut self, text: &str) -> String {
        self.run(text, true)
    }

    fn run(&mut self, text: &str, end_of_text: bool) -> String {
        self.buf.push_str(text);
        let len = self.buf.len();
        let limit = if end_of_text {
            len
        } else {
            floor_char(&self.buf, len.saturating_sub(self.max)).max(self.ctx)
        };
        self.found.clear();
        self.finder.find(&self.buf, self.ctx, &mut self.found);
        let mut out = String::with_capacity(limit - self.ctx);
        let mut pos = self.ctx;
        let mut last_end = None;
        for (start, end, with) in self.found.drain(..) {
            if start < pos || self.skip_empty_at_ctx && start == self.ctx && end == start {
                continue;
            }
            if !end_of_text && start >= limit {
                break;
            }
            out.push_str(&self.buf[pos..start]);
            out.push_str(&with);
            pos = end;
            last_end = Some(end);
        }
        let sent = limit.max(pos);
        out.push_str(&self.buf[pos..sent]);
        if end_of_text {
            self.buf.clear();
            self.ctx = 0;
            self.skip_empty_at_ctx = false;
        } else {
            let keep = floor_char(&self.buf, sent.saturating_sub(CONTEXT));
            self.buf.drain(..keep);
            self.ctx = sent - keep;
            self.skip_empty_at_ctx = last_end == Some(sent);
        }
        out
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// [`Finder`] for a regular expression and a replacement template
/// (`$1`, `${name}`), with `replace_all`'s rules for empty matches.
#[derive(Clone, Debug)]
pub(crate) struct RegexFinder {
    pub(crate) regex: regex::Regex,
    pub(crate) replacement: String,
}

impl Finder for RegexFinder {
    fn find(&mut self, hay: &str, from: usize, out: &mut Vec<(usize, usize, String)>) {
        let mut at = from;
        let mut last_end = None;
        while at <= hay.len() {
            let Some(caps) = self.regex.captures_at(hay, at) else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            if m.is_empty() && last_end == Some(m.start()) {
                at = next_char(hay, m.start());
                continue;
            }
            let mut with = String::new();
            caps.expand(&self.replacement, &mut with);
            out.push((m.start(), m.end(), with));
            last_end = Some(m.end());
            at = if m.is_empty() {
                next_char(hay, m.end())
            } else {
                m.end()
            };
        }
    }
}

fn next_char(s: &str, i: usize) -> usize {
    i + s[i..].chars().next().map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn finder(pattern: &str, with: &str) -> RegexFinder {
        RegexFinder {
            regex: regex::Regex::new(pattern).unwrap(),
            replacement: with.into(),
        }
    }

    /// Feed `pieces` through a holdback stage; the concatenated output.
    fn stream(pattern: &str, with: &str, max: usize, pieces: &[&str]) -> String {
        let mut h = Holdback::new(finder(pattern, with), max);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&h.push(p));
        }
        out.push_str(&h.finish(""));
        out
    }

    #[test]
    fn holdback_matches_across_pieces_like_replace_all() {
        let cases: &[(&str, &str, &[&str])] = &[
            (r"secret", "[X]", &["my sec", "ret is", " secret"]),
            (r"\bfoo\b", "F", &["xfo", "o foo", " fo", "o"]),
            (r"a+", "A", &["baaa", "aac", "a"]),
            (r"x*", "-", &["abc", "d"]),
            (r"a*", "-", &["baa", "aac", "dddddddddddddd", "ddddddddd"]),
            (
                r"(\w+)@(\w+)\.com",
                "$2 at $1",
                &["mail jo", "e@exam", "ple.com now"],
            ),
            (r"é+", "E", &["café", "éé!"]),
            (r"$", "!", &["end", "s"]),
        ];
        for (pattern, with, pieces) in cases {
            let whole: String = pieces.concat();
            let expected = regex::Regex::new(pattern)
                .unwrap()
                .replace_all(&whole, *with)
                .into_owned();
            for max in [8, 64] {
                assert_eq!(
                    stream(pattern, with, max, pieces),
                    expected,
                    "{pattern} {max}"
                );
            }
        }
    }

    #[test]
    fn holdback_sends_all_but_the_tail() {
        let mut h = Holdback::new(finder("zzz", "Z"), 4);
        assert_eq!(h.push("hello world"), "hello w");
        assert_eq!(h.push("!"), "o");
        assert_eq!(h.finish(""), "rld!");
    }

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
        let cut =
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
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
}
