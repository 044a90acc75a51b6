//! The streamed answer side of XML tool emulation: a
//! `chat.completion.chunk` stream in, the same with tool calls out.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::answer::tool_call_json;
use super::scanner::{push_text, Piece, XmlScanner};
use crate::body::BoxError;
use crate::sse::SseParser;
use crate::upstream::limits::check_index;
use crate::upstream::translate::convert::{self, Convert};

#[derive(Default)]
pub(super) struct ChoiceState {
    scanner: XmlScanner,
    /// Tool calls sent for this choice (the next call's `index`).
    calls: usize,
    finished: bool,
}

/// The streamed side: a `chat.completion.chunk` stream in, the same with
/// tool calls out.
pub(super) struct XmlStream {
    parser: SseParser,
    /// By choice index, each below [`MAX_INDEX`].
    pub(super) choices: BTreeMap<usize, ChoiceState>,
    /// The last chunk seen, minus its choices: the envelope of flushed text.
    envelope: Option<Map<String, Value>>,
}

impl Default for XmlStream {
    fn default() -> Self {
        XmlStream {
            parser: SseParser::new(convert::MAX_EVENT),
            choices: BTreeMap::new(),
            envelope: None,
        }
    }
}

impl XmlStream {
    /// The state of choice `index` (checked below
    /// [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX)).
    fn state(&mut self, index: usize) -> &mut ChoiceState {
        self.choices.entry(index).or_default()
    }

    fn event(
        &mut self,
        event: crate::sse::SseEvent,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), BoxError> {
        if event.data.is_empty() {
            out.push_back(event.raw);
            return Ok(());
        }
        if event.is_done() {
            self.flush(out);
            out.push_back(event.raw);
            return Ok(());
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(&event.data) else {
            out.push_back(event.raw);
            return Ok(());
        };
        let choices = match chunk.remove("choices") {
            Some(Value::Array(c)) if !c.is_empty() => c,
            other => {
                if let Some(c) = other {
                    chunk.insert("choices".into(), c);
                }
                out.push_back(event.raw);
                return Ok(());
            }
        };
        // Fields other than the choices (usage, ...) ride on the last event;
        // the envelope, repeated on every event, only when small.
        let mut envelope = Map::new();
        let mut extra = Map::new();
        for (k, v) in chunk {
            let small = match &v {
                Value::String(_) => convert::upstream_name(Some(&v)).is_some(),
                Value::Number(_) | Value::Bool(_) | Value::Null => true,
                Value::Array(_) | Value::Object(_) => false,
            };
            if small
                && matches!(
                    k.as_str(),
                    "id" | "object" | "created" | "model" | "system_fingerprint"
                )
            {
                envelope.insert(k, v);
            } else {
                extra.insert(k, v);
            }
        }
        let mut events: Vec<Value> = Vec::new();
        for (position, mut choice) in choices.into_iter().enumerate() {
            let index = match choice.get("index").and_then(Value::as_u64) {
                Some(i) => check_index(i, "choice")?,
                None => check_index(u64::try_from(position).unwrap_or(u64::MAX), "choice")?,
            };
            let mut delta = match choice.get_mut("delta").map(Value::take) {
                Some(Value::Object(d)) => d,
                _ => Map::new(),
            };
            let content = match delta.remove("content") {
                Some(Value::String(s)) => Some(s),
                Some(Value::Null) | None => None,
                Some(other) => {
                    delta.insert("content".into(), other);
                    None
                }
            };
            let finish = choice
                .get("finish_reason")
                .filter(|f| !f.is_null())
                .cloned();
            let state = self.state(index);
            let mut pieces = match &content {
                Some(text) if !text.is_empty() => state.scanner.push(text),
                _ => Vec::new(),
            };
            if finish.is_some() {
                for piece in state.scanner.finish() {
                    match piece {
                        Piece::Text(t) => push_text(&mut pieces, t),
                        call => pieces.push(call),
                    }
                }
                state.finished = true;
            }
            let mut deltas: Vec<Map<String, Value>> = Vec::new();
            for piece in pieces {
                let mut d = Map::new();
                match piece {
                    Piece::Text(t) => {
                        d.insert("content".into(), Value::String(t));
                    }
                    Piece::Call(call) => {
                        d.insert(
                            "tool_calls".into(),
                            json!([tool_call_json(state.calls, &call, true)]),
                        );
                        state.calls = state.calls.saturating_add(1);
                    }
                }
                deltas.push(d);
            }
            // Other delta fields (role, refusal, ...) go with the first piece.
            if !delta.is_empty() || (deltas.is_empty() && content.as_deref() == Some("")) {
                if content.as_deref() == Some("") && deltas.is_empty() {
                    delta.insert("content".into(), json!(""));
                }
                match deltas.first_mut() {
                    Some(first) => {
                        for (k, v) in delta {
                            first.entry(k).or_insert(v);
                        }
                    }
                    None => deltas.push(delta),
                }
            }
            let finish = finish.map(|f| {
                if state.calls > 0 && f.as_str() == Some("stop") {
                    json!("tool_calls")
                } else {
                    f
                }
            });
            if finish.is_some() && deltas.is_empty() {
                deltas.push(Map::new());
            }
            let last = deltas.len().saturating_sub(1);
            for (i, d) in deltas.into_iter().enumerate() {
                // The choice's other fields (logprobs, ...) go with its
                // first event only: not copied once per tool call.
                let mut c = match std::mem::take(&mut choice) {
                    Value::Object(c) => c,
                    _ => Map::new(),
                };
                c.insert("index".into(), json!(index));
                c.insert("delta".into(), Value::Object(d));
                let finish_reason = if i == last {
                    finish.clone().unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                c.insert("finish_reason".into(), finish_reason);
                let mut e = envelope.clone();
                e.insert("choices".into(), json!([c]));
                events.push(Value::Object(e));
            }
        }
        if let Some(last) = events.last_mut().and_then(Value::as_object_mut) {
            last.extend(extra);
        } else if !extra.is_empty() {
            let mut e = envelope.clone();
            e.insert("choices".into(), json!([]));
            e.extend(extra);
            events.push(Value::Object(e));
        }
        self.envelope = Some(envelope);
        for e in events {
            out.push_back(convert::sse_data(&e));
        }
        Ok(())
    }

    /// Held text of unfinished choices goes out (the stream ends).
    fn flush(&mut self, out: &mut VecDeque<Bytes>) {
        let Some(envelope) = self.envelope.clone() else {
            return;
        };
        for (&index, state) in self.choices.iter_mut() {
            if state.finished {
                continue;
            }
            state.finished = true;
            for piece in state.scanner.finish() {
                let delta = match piece {
                    Piece::Text(t) => json!({"content": t}),
                    Piece::Call(call) => {
                        let d = json!({"tool_calls": [tool_call_json(state.calls, &call, true)]});
                        state.calls = state.calls.saturating_add(1);
                        d
                    }
                };
                let mut e = envelope.clone();
                e.insert(
                    "choices".into(),
                    json!([{"index": index, "delta": delta, "finish_reason": null}]),
                );
                out.push_back(convert::sse_data(&Value::Object(e)));
            }
        }
    }
}

impl Convert for XmlStream {
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event()? {
            self.event(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(event) = self.parser.finish() {
            self.event(event, out)?;
        }
        self.flush(out);
        Ok(())
    }
}
