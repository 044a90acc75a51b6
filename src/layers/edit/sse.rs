//! [`SseEdit`]: a streamed answer edited event by event (OpenAI and
//! Anthropic here, Responses in [`super::responses`]), an [`EventEdit`]
//! driven by the body toolkit's [`SseEvents`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::{append, render, Channel, Editor};
use crate::body::{opaque_body, BoxError, MapBody, MapEvents, ProxyBody, SseEvents};
use crate::request::ClientFormat;
use crate::sse::{EventTooLarge, SseEvent};

/// The largest streamed event parsed: twice the upstream event cap
/// ([`MAX_EVENT_BYTES`](crate::upstream::limits::MAX_EVENT_BYTES)), so events
/// that passed the guard, translated, always parse here.
const EVENT_CAP: usize = 2 * crate::upstream::limits::MAX_EVENT_BYTES;

/// A streamed answer edited event by event. See the [module docs](super).
pub(crate) struct SseEdit<E>(MapBody<SseEvents<EventEdit<E>>>);

impl<E: Editor> SseEdit<E> {
    pub(crate) fn new(inner: ProxyBody, format: ClientFormat, editor: E) -> Self {
        let edit = EventEdit {
            format,
            editor,
            open: BTreeSet::new(),
            envelope: Map::new(),
            templates: BTreeMap::new(),
            seq_offset: 0,
            last_seq: None,
        };
        SseEdit(MapBody::new(inner, SseEvents::new(EVENT_CAP, edit)))
    }
}

opaque_body!(impl[E: Editor] SseEdit<E>);

/// The edit of one event at a time, behind [`SseEdit`]: the events each
/// upstream event becomes are appended to `out` (the event itself, edited
/// or as it came, and the held text of channels that end there).
pub(super) struct EventEdit<E> {
    format: ClientFormat,
    pub(super) editor: E,
    /// Channels that received text and were not flushed yet.
    open: BTreeSet<Channel>,
    /// The last OpenAI chunk's top-level fields (for events added at a flush).
    envelope: Map<String, Value>,
    /// Responses: the first delta event of each open channel, for the delta
    /// events added at a flush (`item_id`, indices).
    pub(super) templates: BTreeMap<Channel, Map<String, Value>>,
    /// Responses: events added so far, added to every later sequence number.
    pub(super) seq_offset: u64,
    /// Responses: the last sequence number sent.
    pub(super) last_seq: Option<u64>,
}

impl<E: Editor> MapEvents for EventEdit<E> {
    /// A frame whose events are all held back gives no frame: the stream
    /// guard, further in, has already timed the upstream.
    const EMPTY_WHEN_HELD: bool = false;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.on_event(event, out);
        Ok(())
    }

    /// Too large to edit: pass it as it is.
    fn too_large(
        &mut self,
        _error: EventTooLarge,
        rest: Option<SseEvent>,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), BoxError> {
        if let Some(event) = rest {
            out.push_back(event.raw);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.flush_all(out);
        Ok(())
    }

    fn trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        Some(trailers)
    }
}

impl<E: Editor> EventEdit<E> {
    pub(super) fn edit_text(&mut self, channel: Channel, text: &mut String) -> bool {
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

    /// One event: an OpenAI or Responses `[DONE]` gives up what is held
    /// first; an event that is not a JSON object passes as it is.
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) {
        if event.data.is_empty() {
            out.push_back(event.raw);
            return;
        }
        if self.format != ClientFormat::Anthropic && event.is_done() {
            self.flush_all(out);
            out.push_back(event.raw);
            return;
        }
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&event.data) else {
            out.push_back(event.raw);
            return;
        };
        match self.format {
            ClientFormat::OpenAi => self.on_openai(event, doc, out),
            ClientFormat::Anthropic => self.on_anthropic(event, doc, out),
            ClientFormat::Responses => self.on_responses(event, doc, out),
        }
    }

    fn on_openai(
        &mut self,
        event: SseEvent,
        mut doc: Map<String, Value>,
        out: &mut VecDeque<Bytes>,
    ) {
        if doc.contains_key("error") {
            self.flush_all(out);
            out.push_back(event.raw);
            return;
        }
        let mut changed = false;
        if let Some(Value::Array(choices)) = doc.get_mut("choices") {
            let mut choices = std::mem::take(choices);
            for (pos, choice) in (0u64..).zip(choices.iter_mut()) {
                changed |= self.openai_choice(pos, choice);
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
        out.push_back(if changed {
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
                for (j, call) in (0u64..).zip(calls.iter_mut()) {
                    let ti = call.get("index").and_then(Value::as_u64).unwrap_or(j);
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
                        append_tool_args(delta, ti, &rest);
                    }
                }
                _ => {}
            }
        }
        changed
    }

    fn on_anthropic(
        &mut self,
        event: SseEvent,
        doc: Map<String, Value>,
        out: &mut VecDeque<Bytes>,
    ) {
        let kind = event_type(&doc);
        let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_stop" => {
                self.flush_where(|c| c.group() == index && !c.is_responses(), out);
            }
            "message_delta" | "message_stop" | "error" => self.flush_all(out),
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
        out.push_back(if changed {
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
    pub(super) fn flush_where(
        &mut self,
        pred: impl Fn(Channel) -> bool,
        out: &mut VecDeque<Bytes>,
    ) {
        for channel in self.take_open(pred) {
            let rest = self.editor.flush(channel);
            let template = self.templates.remove(&channel);
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
                Channel::OutputText(..) | Channel::CallArgs(_) | Channel::Summary(..) => {
                    self.responses_added_delta(channel, template, rest)
                }
            };
            out.push_back(event);
        }
    }

    pub(super) fn flush_all(&mut self, out: &mut VecDeque<Bytes>) {
        self.flush_where(|_| true, out);
    }

    fn openai_chunk(&self, choice: Value) -> Bytes {
        let mut doc = self.envelope.clone();
        doc.insert("choices".into(), Value::Array(vec![choice]));
        render(None, &Value::Object(doc))
    }
}

/// The `type` of an Anthropic or Responses event (empty if it has none).
pub(super) fn event_type(doc: &Map<String, Value>) -> String {
    doc.get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Append `rest` to the arguments of tool call `ti` in an OpenAI `delta`.
fn append_tool_args(delta: &mut Map<String, Value>, ti: u64, rest: &str) {
    let Value::Array(calls) = delta.entry("tool_calls").or_insert_with(|| json!([])) else {
        return;
    };
    let existing = calls
        .iter_mut()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(ti));
    match existing {
        Some(Value::Object(call)) => {
            if let Value::Object(f) = call.entry("function").or_insert_with(|| json!({})) {
                append(f.entry("arguments"), rest);
            }
        }
        _ => calls.push(json!({"index": ti, "function": {"arguments": rest}})),
    }
}
