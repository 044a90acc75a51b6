//! OpenAI Responses streams in [`SseEdit`](super::SseEdit) ([`EventEdit`]): channels per output item and
//! part, held text given up in added `.delta` events (sequence numbers
//! renumbered on), and the full texts of `.done` events, items and the final
//! `response` edited whole. See the [module docs](super).

use std::collections::VecDeque;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::sse::{event_type, EventEdit};
use super::{render, Channel, Editor};
use crate::sse::SseEvent;

/// The delta event type of a Responses channel.
fn delta_type(channel: Channel) -> &'static str {
    match channel {
        Channel::CallArgs(_) => "response.function_call_arguments.delta",
        Channel::Summary(..) => "response.reasoning_summary_text.delta",
        _ => "response.output_text.delta",
    }
}

impl<E: Editor> EventEdit<E> {
    pub(super) fn on_responses(
        &mut self,
        event: SseEvent,
        mut doc: Map<String, Value>,
        out: &mut VecDeque<Bytes>,
    ) {
        let kind = event_type(&doc);
        let index = |key: &str| doc.get(key).and_then(Value::as_u64).unwrap_or(0);
        let (output, content, summary) = (
            index("output_index"),
            index("content_index"),
            index("summary_index"),
        );
        let mut changed = false;
        match kind.as_str() {
            "response.output_text.delta" => {
                changed |= self.responses_delta(Channel::OutputText(output, content), &mut doc);
            }
            "response.function_call_arguments.delta" => {
                changed |= self.responses_delta(Channel::CallArgs(output), &mut doc);
            }
            "response.reasoning_summary_text.delta" => {
                changed |= self.responses_delta(Channel::Summary(output, summary), &mut doc);
            }
            "response.output_text.done" => {
                changed |=
                    self.end_channel(Channel::OutputText(output, content), &mut doc, "text", out);
            }
            "response.function_call_arguments.done" => {
                changed |= self.end_channel(Channel::CallArgs(output), &mut doc, "arguments", out);
            }
            "response.reasoning_summary_text.done" => {
                changed |=
                    self.end_channel(Channel::Summary(output, summary), &mut doc, "text", out);
            }
            "response.content_part.done" => {
                let channel = Channel::OutputText(output, content);
                self.flush_where(|c| c == channel, out);
                if let Some(part) = doc.get_mut("part") {
                    changed |= self.edit_part(channel, "output_text", part);
                }
            }
            "response.reasoning_summary_part.done" => {
                let channel = Channel::Summary(output, summary);
                self.flush_where(|c| c == channel, out);
                if let Some(part) = doc.get_mut("part") {
                    changed |= self.edit_part(channel, "summary_text", part);
                }
            }
            "response.output_item.done" => {
                self.flush_where(|c| c.is_responses() && c.group() == output, out);
                if let Some(item) = doc.get_mut("item") {
                    changed |= self.edit_item(output, item);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.flush_all(out);
                let output = doc.get_mut("response").and_then(|r| r.get_mut("output"));
                if let Some(Value::Array(items)) = output {
                    for (o, item) in (0u64..).zip(items.iter_mut()) {
                        changed |= self.edit_item(o, item);
                    }
                }
            }
            "error" => self.flush_all(out),
            _ => {}
        }
        let mut doc = Value::Object(doc);
        changed |= self.editor.event(&mut doc);
        changed |= self.renumber(&mut doc);
        out.push_back(if changed {
            render(event.event.as_deref(), &doc)
        } else {
            event.raw
        });
    }

    /// A delta of `channel`: edited; the event kept as the channel's template.
    fn responses_delta(&mut self, channel: Channel, doc: &mut Map<String, Value>) -> bool {
        let Some(Value::String(delta)) = doc.get_mut("delta") else {
            return false;
        };
        let mut text = std::mem::take(delta);
        let changed = self.edit_text(channel, &mut text);
        doc.insert("delta".into(), Value::String(text));
        if self.editor.wants(channel) && !self.templates.contains_key(&channel) {
            let mut template = doc.clone();
            // Per-token fields do not belong to an added delta.
            template.remove("obfuscation");
            if let Some(logprobs) = template.get_mut("logprobs") {
                *logprobs = Value::Array(Vec::new());
            }
            self.templates.insert(channel, template);
        }
        changed
    }

    /// `channel` ends with this event: what it holds goes out first, in a
    /// delta of its own; the full text at `field` is edited whole.
    fn end_channel(
        &mut self,
        channel: Channel,
        doc: &mut Map<String, Value>,
        field: &str,
        out: &mut VecDeque<Bytes>,
    ) -> bool {
        self.flush_where(|c| c == channel, out);
        self.edit_whole(channel, doc.get_mut(field))
    }

    /// The whole text at `value` (a string) through the editor.
    fn edit_whole(&mut self, channel: Channel, value: Option<&mut Value>) -> bool {
        let Some(Value::String(text)) = value else {
            return false;
        };
        if !self.editor.wants(channel) {
            return false;
        }
        let new = self.editor.whole(channel, text);
        if new == *text {
            return false;
        }
        *text = new;
        true
    }

    /// A content or summary part whose `type` is `kind`: its `text`.
    fn edit_part(&mut self, channel: Channel, kind: &str, part: &mut Value) -> bool {
        if part.get("type").and_then(Value::as_str) != Some(kind) {
            return false;
        }
        self.edit_whole(channel, part.get_mut("text"))
    }

    /// Output item `output`: the texts of a `message`'s `output_text` parts,
    /// a `function_call`'s `arguments`, a `reasoning` item's summary parts.
    fn edit_item(&mut self, output: u64, item: &mut Value) -> bool {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let mut changed = false;
        match kind {
            "message" => {
                if let Some(Value::Array(parts)) = item.get_mut("content") {
                    for (c, part) in (0u64..).zip(parts.iter_mut()) {
                        changed |=
                            self.edit_part(Channel::OutputText(output, c), "output_text", part);
                    }
                }
            }
            "function_call" => {
                changed |= self.edit_whole(Channel::CallArgs(output), item.get_mut("arguments"));
            }
            "reasoning" => {
                if let Some(Value::Array(parts)) = item.get_mut("summary") {
                    for (s, part) in (0u64..).zip(parts.iter_mut()) {
                        changed |=
                            self.edit_part(Channel::Summary(output, s), "summary_text", part);
                    }
                }
            }
            _ => {}
        }
        changed
    }

    /// The sequence number of an event from upstream, raised by the count of
    /// events added before it; whether it changed.
    fn renumber(&mut self, doc: &mut Value) -> bool {
        let Some(slot) = doc.get_mut("sequence_number") else {
            return false;
        };
        let Some(seq) = slot.as_u64() else {
            return false;
        };
        let new = seq.saturating_add(self.seq_offset);
        self.last_seq = Some(new);
        if new == seq {
            return false;
        }
        *slot = Value::from(new);
        true
    }

    /// The delta event given up held text `rest` of `channel` at its end:
    /// the channel's first delta event (`template`) with `rest` as its delta
    /// and the next sequence number.
    pub(super) fn responses_added_delta(
        &mut self,
        channel: Channel,
        template: Option<Map<String, Value>>,
        rest: String,
    ) -> Bytes {
        let kind = delta_type(channel);
        let mut doc = template.unwrap_or_else(|| {
            let mut doc = Map::new();
            doc.insert("type".into(), kind.into());
            doc.insert("item_id".into(), "".into());
            doc.insert("output_index".into(), channel.group().into());
            match channel {
                Channel::OutputText(_, c) => {
                    doc.insert("content_index".into(), c.into());
                }
                Channel::Summary(_, s) => {
                    doc.insert("summary_index".into(), s.into());
                }
                _ => {}
            }
            doc
        });
        let seq = self.last_seq.map_or(0, |s| s.saturating_add(1));
        self.last_seq = Some(seq);
        self.seq_offset = self.seq_offset.saturating_add(1);
        doc.insert("delta".into(), Value::String(rest));
        doc.insert("sequence_number".into(), seq.into());
        render(Some(kind), &Value::Object(doc))
    }
}
