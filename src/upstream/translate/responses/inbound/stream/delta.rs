//! The deltas of a streamed Response's open item: reasoning, text or
//! refusal, and tool call arguments.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::super::answer::{refusal_part, text_part};
use super::super::hex_id;
use super::item::{Body, Item, Part};
use super::{Failure, ResponsesStream};
use crate::upstream::limits::check_index;

impl ResponsesStream {
    pub(super) fn reasoning(&mut self, out: &mut BytesMut, text: &str) -> Result<(), Failure> {
        self.keep(text.len())?;
        let (index, id) = match self.open_item() {
            Some((index, item)) if matches!(item.body, Body::Reasoning(_)) => {
                (index, item.id.clone())
            }
            _ => {
                let index = self.add(out, "rs", Body::Reasoning(String::new()))?;
                let id = self.items.last().map(|i| i.id.clone()).unwrap_or_default();
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": ""}}),
                );
                (index, id)
            }
        };
        if let Some((
            _,
            Item {
                body: Body::Reasoning(all),
                ..
            },
        )) = self.open_item()
        {
            all.push_str(text);
        }
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": text}),
        );
        Ok(())
    }

    pub(super) fn text(
        &mut self,
        out: &mut BytesMut,
        refusal: bool,
        text: &str,
        logprobs: Vec<Value>,
    ) -> Result<(), Failure> {
        let extra = if logprobs.is_empty() {
            0
        } else {
            Value::Array(logprobs.clone()).to_string().len()
        };
        self.keep(text.len().saturating_add(extra))?;
        let (index, id, part) = match self.open_item() {
            Some((index, item)) => match &mut item.body {
                Body::Message(parts) => {
                    let same = parts.last().is_some_and(|p| p.refusal == refusal);
                    let id = item.id.clone();
                    if !same {
                        parts.push(Part {
                            refusal,
                            text: String::new(),
                            logprobs: Vec::new(),
                        });
                    }
                    (index, id, (!same).then(|| parts.len().saturating_sub(1)))
                }
                _ => self.new_message(out, refusal)?,
            },
            None => self.new_message(out, refusal)?,
        };
        if let Some(content_index) = part {
            // A new part in the open message: close the one before it.
            if let Some(before) = content_index.checked_sub(1) {
                self.close_part(out, index, before);
            }
            let part = if refusal {
                refusal_part("")
            } else {
                text_part("", Vec::new())
            };
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": content_index, "part": part}),
            );
        }
        let mut content_index = 0;
        if let Some((
            _,
            Item {
                body: Body::Message(parts),
                ..
            },
        )) = self.open_item()
        {
            content_index = parts.len().saturating_sub(1);
            if let Some(p) = parts.last_mut() {
                p.text.push_str(text);
                p.logprobs.extend(logprobs.iter().cloned());
            }
        }
        if refusal {
            self.emit(
                out,
                "response.refusal.delta",
                json!({"item_id": id, "output_index": index, "content_index": content_index, "delta": text}),
            );
        } else {
            // The most frequent event: written without building a document.
            self.emit_typed(out, "response.output_text.delta", |sequence_number| {
                TextDelta {
                    kind: "response.output_text.delta",
                    item_id: &id,
                    output_index: index,
                    content_index,
                    delta: text,
                    logprobs: &logprobs,
                    sequence_number,
                }
            });
        }
        Ok(())
    }

    /// Open a message item whose first part comes next.
    fn new_message(
        &mut self,
        out: &mut BytesMut,
        refusal: bool,
    ) -> Result<(usize, String, Option<usize>), Failure> {
        let index = self.add(out, "msg", Body::Message(Vec::new()))?;
        let mut id = String::new();
        if let Some((_, item)) = self.open_item() {
            id = item.id.clone();
            if let Body::Message(parts) = &mut item.body {
                parts.push(Part {
                    refusal,
                    text: String::new(),
                    logprobs: Vec::new(),
                });
            }
        }
        Ok((index, id, Some(0)))
    }

    pub(super) fn tool_call(&mut self, out: &mut BytesMut, call: &Value) -> Result<(), Failure> {
        let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let bit =
            check_index(k, "tool call").map_err(|e| Failure::new("server_error", e.to_string()))?;
        let f = call.get("function").unwrap_or(&Value::Null);
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let arguments = match f.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        };
        let continues = matches!(
            self.open_item(),
            Some((_, Item { body: Body::Call { index, call_id, .. }, .. }))
                if *index == k && id.is_none_or(|id| id == call_id)
        );
        let seen = 1u128
            .checked_shl(u32::try_from(bit).unwrap_or(u32::MAX))
            .unwrap_or(0);
        if !continues {
            if id.is_none() && self.seen_calls & seen != 0 {
                return Err(Failure::new(
                    "server_error",
                    format!("the upstream interleaved the deltas of its tool calls (tool call {k} continued after the next item began)"),
                ));
            }
            self.seen_calls |= seen;
            let name = name.unwrap_or("");
            self.keep(name.len())?;
            self.add(
                out,
                "fc",
                Body::Call {
                    index: k,
                    call_id: id.map_or_else(|| hex_id("call"), str::to_string),
                    name: name.to_string(),
                    arguments: String::new(),
                },
            )?;
        } else if let Some(late) = name {
            // A name after the first delta: the `.done` events carry it.
            self.keep(late.len())?;
            if let Some((
                _,
                Item {
                    body: Body::Call { name, .. },
                    ..
                },
            )) = self.open_item()
            {
                if name.is_empty() {
                    *name = late.to_string();
                }
            }
        }
        if arguments.is_empty() {
            return Ok(());
        }
        self.keep(arguments.len())?;
        let mut target = None;
        if let Some((index, item)) = self.open_item() {
            if let Body::Call { arguments: all, .. } = &mut item.body {
                all.push_str(&arguments);
                target = Some((index, item.id.clone()));
            }
        }
        if let Some((index, id)) = target {
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index, "delta": arguments}),
            );
        }
        Ok(())
    }
}

/// `response.output_text.delta`.
#[derive(serde::Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    logprobs: &'a [Value],
    sequence_number: u64,
}
