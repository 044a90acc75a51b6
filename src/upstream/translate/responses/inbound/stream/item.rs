//! The output items of a streamed Response: what each has said so far, and
//! the events that open and close them.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::super::answer::{message_item, reasoning_item, refusal_part, status_of, text_part};
use super::super::hex_id;
use super::{Failure, ResponsesStream};

/// What one output item costs against
/// [`MAX_ACCUMULATED`](super::super::MAX_ACCUMULATED) besides its text.
const ITEM_COST: usize = 256;

/// A streamed output item and what it has said so far.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) id: String,
    pub(super) status: &'static str,
    pub(super) body: Body,
}

#[derive(Debug)]
pub(super) enum Body {
    Reasoning(String),
    Message(Vec<Part>),
    Call {
        /// The upstream's tool call `index`.
        index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug)]
pub(super) struct Part {
    pub(super) refusal: bool,
    pub(super) text: String,
    pub(super) logprobs: Vec<Value>,
}

impl Part {
    fn json(&self) -> Value {
        if self.refusal {
            refusal_part(&self.text)
        } else {
            text_part(&self.text, self.logprobs.clone())
        }
    }
}

impl ResponsesStream {
    pub(super) fn item_json(&self, item: &Item) -> Value {
        match &item.body {
            Body::Reasoning(text) => reasoning_item(&item.id, item.status, text),
            Body::Message(parts) => message_item(
                &item.id,
                item.status,
                parts.iter().map(Part::json).collect(),
            ),
            Body::Call {
                call_id,
                name,
                arguments,
                ..
            } => self
                .echo
                .call_item(&item.id, item.status, arguments, call_id, name),
        }
    }

    /// The open item: its index and a handle on it.
    pub(super) fn open_item(&mut self) -> Option<(usize, &mut Item)> {
        if !self.open {
            return None;
        }
        let index = self.items.len().checked_sub(1)?;
        self.items.last_mut().map(|item| (index, item))
    }

    /// Close the open item, then open `body` as the next one.
    pub(super) fn add(
        &mut self,
        out: &mut BytesMut,
        prefix: &str,
        body: Body,
    ) -> Result<usize, Failure> {
        self.close(out);
        self.keep(ITEM_COST)?;
        let index = self.items.len();
        self.items.push(Item {
            id: hex_id(prefix),
            status: "in_progress",
            body,
        });
        self.open = true;
        self.emit_last_item(out, "response.output_item.added", index);
        Ok(index)
    }

    /// `.done` events of part `content_index` of message `index`.
    pub(super) fn close_part(&mut self, out: &mut BytesMut, index: usize, content_index: usize) {
        let Some(item) = self.items.get(index) else {
            return;
        };
        let Body::Message(parts) = &item.body else {
            return;
        };
        let Some(part) = parts.get(content_index) else {
            return;
        };
        let id = item.id.clone();
        let json = part.json();
        let (kind, fields) = if part.refusal {
            (
                "response.refusal.done",
                json!({"item_id": id, "output_index": index, "content_index": content_index, "refusal": part.text}),
            )
        } else {
            (
                "response.output_text.done",
                json!({"item_id": id, "output_index": index, "content_index": content_index,
                       "text": part.text, "logprobs": part.logprobs}),
            )
        };
        self.emit(out, kind, fields);
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": content_index, "part": json}),
        );
    }

    /// Close the open item with its `.done` events.
    pub(super) fn close(&mut self, out: &mut BytesMut) {
        if !self.open {
            return;
        }
        self.open = false;
        let Some(index) = self.items.len().checked_sub(1) else {
            return;
        };
        let cut = status_of(self.finish).1.is_some();
        let mut parts = 0;
        if let Some(item) = self.items.last_mut() {
            // A cut answer leaves its last text incomplete; a call is
            // `completed` (the AI SDK reads no other status of a call).
            item.status = match item.body {
                Body::Reasoning(_) | Body::Message(_) if cut => "incomplete",
                _ => "completed",
            };
            if let Body::Message(p) = &item.body {
                parts = p.len();
            }
        }
        let Some(item) = self.items.last() else {
            return;
        };
        let id = item.id.clone();
        match &item.body {
            Body::Reasoning(text) => {
                let text = text.clone();
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": text}}),
                );
            }
            Body::Message(_) => {
                if let Some(last) = parts.checked_sub(1) {
                    self.close_part(out, index, last);
                }
            }
            Body::Call {
                name, arguments, ..
            } => {
                let name = self.echo.split_name(name).0.to_string();
                let arguments = arguments.clone();
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments, "name": name}),
                );
            }
        }
        self.emit_last_item(out, "response.output_item.done", index);
    }

    /// `kind` (`response.output_item.added` or `.done`) with the last item,
    /// at `index`, as it is now.
    fn emit_last_item(&mut self, out: &mut BytesMut, kind: &str, index: usize) {
        let item = self
            .items
            .last()
            .map(|i| self.item_json(i))
            .unwrap_or_default();
        self.emit(out, kind, json!({"output_index": index, "item": item}));
    }
}
