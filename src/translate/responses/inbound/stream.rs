//! `chat.completion.chunk` events -> the Responses event stream.

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use super::answer::{
    logprobs_from_openai, message_item, reasoning_item, refusal_part, status_of, text_part,
    usage_from_openai, Echo, Parts,
};
use super::{hex_id, MAX_ACCUMULATED};
use crate::sse::SseEvent;
use crate::translate::body::{write_event, EventTranscoder};
use crate::translate::convert::{now, upstream_name};
use crate::upstream::limits::check_index;

/// What one output item costs against [`MAX_ACCUMULATED`] besides its text.
const ITEM_COST: usize = 256;

/// A streamed output item and what it has said so far.
#[derive(Debug)]
struct Item {
    id: String,
    status: &'static str,
    body: Body,
}

#[derive(Debug)]
enum Body {
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
struct Part {
    refusal: bool,
    text: String,
    logprobs: Vec<Value>,
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

    fn item_json(&self, item: &Item) -> Value {
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

    /// What the Response object says in this state.
    fn parts(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Parts<'_> {
        let in_progress = status == "in_progress";
        Parts {
            id: &self.id,
            created_at: self.created_at,
            status,
            model: self.model.as_deref().unwrap_or(&self.echo.model),
            output: if in_progress {
                Vec::new()
            } else {
                self.items.iter().map(|i| self.item_json(i)).collect()
            },
            usage: if in_progress {
                Value::Null
            } else {
                self.usage.clone()
            },
            incomplete,
            error,
            service_tier: self.service_tier.as_deref(),
        }
    }

    /// The Response object as JSON text (see [`Echo::write_response`]).
    fn response_json(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Vec<u8> {
        let mut json = Vec::with_capacity(1024);
        self.echo
            .write_response(&self.parts(status, incomplete, error), &mut json);
        json
    }

    /// A lifecycle event carrying the Response object (JSON text).
    fn emit_response(&mut self, out: &mut BytesMut, kind: &str, json: &[u8]) {
        // `kind` is one of the proxy's own `response.*` names: nothing in
        // it to escape.
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"response\":");
        out.extend_from_slice(json);
        out.extend_from_slice(b",\"sequence_number\":");
        out.extend_from_slice(self.sequence.to_string().as_bytes());
        out.extend_from_slice(b"}\n\n");
        self.sequence = self.sequence.saturating_add(1);
    }

    #[cfg(test)]
    fn response(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Value {
        self.echo.response(self.parts(status, incomplete, error))
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        // The same object twice: written once.
        let json = self.response_json("in_progress", None, Value::Null);
        self.emit_response(out, "response.created", &json);
        self.emit_response(out, "response.in_progress", &json);
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

    /// The open item: its index and a handle on it.
    fn open_item(&mut self) -> Option<(usize, &mut Item)> {
        if !self.open {
            return None;
        }
        let index = self.items.len().checked_sub(1)?;
        self.items.last_mut().map(|item| (index, item))
    }

    /// Close the open item, then open `body` as the next one.
    fn add(&mut self, out: &mut BytesMut, prefix: &str, body: Body) -> Result<usize, Failure> {
        self.close(out);
        self.keep(ITEM_COST)?;
        let index = self.items.len();
        self.items.push(Item {
            id: hex_id(prefix),
            status: "in_progress",
            body,
        });
        self.open = true;
        let item = self
            .items
            .last()
            .map(|i| self.item_json(i))
            .unwrap_or_default();
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        Ok(index)
    }

    fn reasoning(&mut self, out: &mut BytesMut, text: &str) -> Result<(), Failure> {
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

    fn text(
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

    /// `.done` events of part `content_index` of message `index`.
    fn close_part(&mut self, out: &mut BytesMut, index: usize, content_index: usize) {
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

    fn tool_call(&mut self, out: &mut BytesMut, call: &Value) -> Result<(), Failure> {
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

    /// Close the open item with its `.done` events.
    fn close(&mut self, out: &mut BytesMut) {
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
        let item = self
            .items
            .last()
            .map(|i| self.item_json(i))
            .unwrap_or_default();
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }

    /// The terminal `response.completed` / `response.incomplete`.
    fn complete(&mut self, out: &mut BytesMut) {
        self.start(out);
        self.close(out);
        let (status, incomplete) = status_of(self.finish);
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let json = self.response_json(status, incomplete, Value::Null);
        self.emit_response(out, kind, &json);
        self.done = true;
    }

    /// `error` then `response.failed`.
    fn fail(&mut self, out: &mut BytesMut, failure: Failure) {
        self.start(out);
        if self.open {
            self.open = false;
            if let Some(item) = self.items.last_mut() {
                if !matches!(item.body, Body::Call { .. }) {
                    item.status = "incomplete";
                }
            }
        }
        // The SDKs' models read the top-level fields, the API (and the AI SDK)
        // the nested `error`: both.
        self.emit(
            out,
            "error",
            json!({"code": failure.code, "message": failure.message, "param": failure.param,
                   "error": {"type": failure.kind, "code": failure.code, "message": failure.message,
                             "param": failure.param}}),
        );
        let json = self.response_json(
            "failed",
            None,
            // The upstream's code, as the API passes it (Codex acts on
            // `context_length_exceeded`, `insufficient_quota`, `rate_limit_exceeded`).
            json!({"code": failure.code, "message": failure.message}),
        );
        self.emit_response(out, "response.failed", &json);
        self.done = true;
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

/// A `chat.completion.chunk` of the common kind: one choice (index 0)
/// whose delta is a role, text or reasoning, no finish reason, logprobs,
/// usage or error. Anything else takes the general path (a `Value`).
#[derive(serde::Deserialize)]
struct PlainChunk<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<PlainChoice<'a>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    service_tier: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PlainChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<PlainDelta<'a>>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    logprobs: Option<serde::de::IgnoredAny>,
}

/// Only these fields: any other (tool calls, a refusal, audio) is not plain.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainDelta<'a> {
    /// Accepted (and not needed): the role is always the assistant's.
    #[serde(default)]
    #[allow(dead_code)]
    role: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<std::borrow::Cow<'a, str>>,
}

/// What a plain chunk says: reasoning and text (either may be empty).
#[derive(Clone, Copy)]
struct Plain<'c> {
    reasoning: &'c str,
    text: &'c str,
}

impl<'a> PlainChunk<'a> {
    fn plain(&self) -> Option<Plain<'_>> {
        if self.error.is_some() || self.usage.is_some() || self.service_tier.is_some() {
            return None;
        }
        let [choice] = self.choices.as_slice() else {
            return None;
        };
        if choice.index.unwrap_or(0) != 0
            || choice.finish_reason.is_some()
            || choice.logprobs.is_some()
        {
            return None;
        }
        let delta = choice.delta.as_ref()?;
        Some(Plain {
            reasoning: delta
                .reasoning_content
                .as_deref()
                .filter(|t| !t.is_empty())
                .or(delta.reasoning.as_deref())
                .unwrap_or(""),
            text: delta.content.as_deref().unwrap_or(""),
        })
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

#[cfg(test)]
mod written_response {
    use super::*;

    /// The Response object a stream writes as text is the one built as a
    /// document, field for field, in every state.
    #[test]
    fn written_like_built() {
        let request = json!({"model": "m", "instructions": "Be brief.", "temperature": 0.2,
            "service_tier": "flex", "tools": [{"type": "function", "name": "f", "parameters": {}}]});
        let mut stream = ResponsesStream::new(request.as_object().unwrap());
        let mut out = BytesMut::new();
        stream.start(&mut out);
        for (status, incomplete, error) in [
            ("in_progress", None, Value::Null),
            ("completed", None, Value::Null),
            ("incomplete", Some("max_output_tokens"), Value::Null),
            (
                "failed",
                None,
                json!({"code": "server_error", "message": "x"}),
            ),
        ] {
            let written: Value =
                serde_json::from_slice(&stream.response_json(status, incomplete, error.clone()))
                    .unwrap();
            let mut built = stream.response(status, incomplete, error);
            // Read at different instants.
            if let (Some(w), Some(b)) = (written.get("completed_at"), built.get_mut("completed_at"))
            {
                *b = w.clone();
            }
            assert_eq!(written, built, "{status}");
        }
    }
}
