//! OpenAI Chat Completions (the pivot) <-> Ollama's native `/api/chat`.
//!
//! **Requests** ([`request_to_ollama`]): messages keep their roles; text
//! parts are joined into `content` and `data:` URL images go, base64 only,
//! into `images` (Ollama takes no image URLs); assistant `tool_calls` carry
//! their arguments as JSON objects, and a `tool` message names its tool in
//! `tool_name`; `tools` pass as they are; `temperature`, `top_p`, `seed`,
//! the penalties, `max_tokens` / `max_completion_tokens` (`num_predict`) and
//! `stop` go into `options`; `response_format` `json_object` is
//! `format: "json"` and `json_schema` puts the schema in `format`. `stream` is
//! always sent, since Ollama streams unless told not to.
//!
//! | pivot | Ollama |
//! | --- | --- |
//! | `system` / `developer` messages, anywhere (an Anthropic client's mid-conversation system message included) | `system` messages at the same position; several text parts as paragraphs (`\n\n`) |
//! | other messages' text parts | one `content` string (joined as they are) |
//! | `reasoning_effort: "none"` | `think: false` |
//! | any other `reasoning_effort` (Anthropic clients' adaptive thinking included) | no `think`: a thinking-capable model thinks by default (Ollama 0.12+), and `think: true` is a 400 from a model that cannot think |
//!
//! **Answers** ([`answer_to_openai`], [`OllamaStream`]): `message.content`
//! and `message.tool_calls` (ids generated when Ollama gives none);
//! `done_reason` `length` is `length`, anything else `stop` — `tool_calls`
//! when the model called a tool; `prompt_eval_count` / `eval_count` are the
//! usage. Streamed answers are newline-delimited JSON, one object a line;
//! lines are re-joined across network chunks (bounded), and the last one
//! (`done: true`) ends the stream.
//!
//! **Errors** (`{"error": "..."}`) keep their status and message.
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::ollama::request_to_ollama;
//!
//! let pivot = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]});
//! let o = request_to_ollama(pivot.as_object().unwrap(), "llama3.2", false).unwrap();
//! assert_eq!(o["model"], "llama3.2");
//! assert_eq!(o["stream"], false);
//! assert_eq!(o["options"]["num_predict"], 5);
//! ```

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::convert::{self, ChunkBuilder, Convert, LineSplitter};
use crate::body::BoxError;
use crate::error::ProxyError;

fn bad(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("invalid_request", message)
}

// ---------------------------------------------------------------------------
// Requests

/// The `/api/chat` body for a pivot request sent to `model`.
pub fn request_to_ollama(
    pivot: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Value, ProxyError> {
    let empty = Vec::new();
    let messages = match pivot.get("messages") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(bad("`messages` must be an array")),
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out_messages = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let role = match role {
            "developer" => "system",
            "function" => "tool",
            "system" | "user" | "assistant" | "tool" => role,
            other => {
                return Err(bad(format!(
                    "messages[{i}]: unknown role `{other}` (expected system, developer, user, assistant or tool)"
                )))
            }
        };
        let mut m = Map::new();
        m.insert("role".into(), json!(role));
        let text = match (role, message.get("content")) {
            // Separate system blocks stay separate paragraphs.
            ("system", Some(Value::Array(parts))) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n"),
            (_, content) => convert::content_text(content),
        };
        m.insert("content".into(), json!(text));
        let mut images = Vec::new();
        for part in message
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match part.get("type").and_then(Value::as_str) {
                Some("text") | None => {}
                Some("image_url") => {
                    let url = part
                        .get("image_url")
                        .and_then(|u| u.get("url").or(Some(u)))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let (_, data) = convert::parse_data_url(url).ok_or_else(|| {
                        bad(format!(
                            "messages[{i}]: Ollama takes images only as base64 `data:` URLs"
                        ))
                    })?;
                    images.push(json!(data));
                }
                Some(other) => {
                    return Err(bad(format!(
                        "messages[{i}]: content part type `{other}` cannot be sent to Ollama"
                    )))
                }
            }
        }
        if !images.is_empty() {
            m.insert("images".into(), Value::Array(images));
        }
        if role == "assistant" {
            let mut calls = Vec::new();
            for call in message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(message.get("function_call"))
            {
                let f = call.get("function").unwrap_or(call);
                let name = f
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("messages[{i}]: a tool call has no name")))?;
                let arguments = convert::arguments_object(f.get("arguments"))
                    .map_err(|e| bad(format!("messages[{i}]: {e}")))?;
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    names.insert(id.to_string(), name.to_string());
                }
                calls.push(json!({"function": {"name": name, "arguments": arguments}}));
            }
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
        }
        if role == "tool" {
            let name = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .and_then(|id| names.get(id).cloned())
                .or_else(|| {
                    message
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            if let Some(name) = name {
                m.insert("tool_name".into(), json!(name));
            }
        }
        out_messages.push(Value::Object(m));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(out_messages));
    out.insert("stream".into(), json!(stream));
    let tools: Vec<Value> = pivot
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .cloned()
        .chain(
            pivot
                .get("functions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|f| json!({"type": "function", "function": f})),
        )
        .collect();
    // `tool_choice: "none"` means: offer no tools.
    let none = pivot.get("tool_choice").and_then(Value::as_str) == Some("none");
    if !tools.is_empty() && !none {
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut options = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
    ] {
        if let Some(v) = pivot.get(from).filter(|v| !v.is_null()) {
            options.insert(to.into(), v.clone());
        }
    }
    match pivot.get("stop") {
        Some(Value::String(s)) => {
            options.insert("stop".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            options.insert("stop".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    if let Some(format) = pivot.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                out.insert("format".into(), json!("json"));
            }
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .ok_or_else(|| bad("response_format.json_schema.schema is missing"))?;
                out.insert("format".into(), schema.clone());
            }
            _ => {}
        }
    }
    // `think: true` is a 400 from a model that cannot think, and a
    // thinking-capable model thinks by default (Ollama 0.12+): only "no
    // reasoning" is said out loud.
    if pivot.get("reasoning_effort").and_then(Value::as_str) == Some("none") {
        out.insert("think".into(), json!(false));
    }
    Ok(Value::Object(out))
}

/// The reverse mapping: an `/api/chat` body as a pivot (OpenAI) request.
/// Tool call ids are generated (`call_0`, ...) and tool results matched to
/// the calls by `tool_name`, in order.
pub fn request_from_ollama(ollama: &Value) -> Value {
    let mut messages = Vec::new();
    let mut next_id = 0;
    let mut open_calls: Vec<(String, String)> = Vec::new();
    for m in ollama
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = m.get("content").and_then(Value::as_str).unwrap_or("");
        let images: Vec<Value> = m
            .get("images")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|d| json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{d}")}}))
            .collect();
        let content = if images.is_empty() {
            json!(text)
        } else {
            let mut parts = Vec::new();
            if !text.is_empty() {
                parts.push(json!({"type": "text", "text": text}));
            }
            parts.extend(images);
            Value::Array(parts)
        };
        let mut out = json!({"role": role, "content": content});
        if role == "assistant" {
            let calls: Vec<Value> = m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let f = c.get("function").unwrap_or(c);
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    let id = format!("call_{next_id}");
                    next_id += 1;
                    open_calls.push((name.to_string(), id.clone()));
                    json!({"id": id, "type": "function", "function": {
                        "name": name,
                        "arguments": f.get("arguments").cloned().unwrap_or(json!({})).to_string()}})
                })
                .collect();
            if !calls.is_empty() {
                if text.is_empty() {
                    out["content"] = Value::Null;
                }
                out["tool_calls"] = Value::Array(calls);
            }
        }
        if role == "tool" {
            let name = m.get("tool_name").and_then(Value::as_str).unwrap_or("");
            let id = open_calls
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| open_calls.remove(i).1)
                .unwrap_or_default();
            out["tool_call_id"] = json!(id);
        }
        messages.push(out);
    }
    let mut out = json!({
        "model": ollama.get("model").cloned().unwrap_or_default(),
        "messages": messages,
        "stream": ollama.get("stream").cloned().unwrap_or(json!(true)),
    });
    if let Some(tools) = ollama.get("tools") {
        out["tools"] = tools.clone();
    }
    if let Some(Value::Object(options)) = ollama.get("options") {
        for (from, to) in [
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
            ("num_predict", "max_tokens"),
            ("stop", "stop"),
        ] {
            if let Some(v) = options.get(from) {
                out[to] = v.clone();
            }
        }
    }
    match ollama.get("format") {
        Some(Value::String(s)) if s == "json" => {
            out["response_format"] = json!({"type": "json_object"});
        }
        Some(schema @ Value::Object(_)) => {
            out["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}});
        }
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------
// Answers

/// The OpenAI `finish_reason` for an Ollama `done_reason`.
pub fn finish_reason(reason: Option<&str>, called_tools: bool) -> &'static str {
    match reason {
        Some("length") => "length",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI `usage` from an Ollama final object, if it has the counts.
pub fn usage(answer: &Value) -> Option<Value> {
    let prompt = answer.get("prompt_eval_count").and_then(Value::as_u64);
    let completion = answer.get("eval_count").and_then(Value::as_u64);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    Some(json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    }))
}

fn tool_call(call: &Value, index: Option<usize>) -> Value {
    let f = call.get("function").unwrap_or(call);
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(convert::call_id, str::to_string);
    let arguments = match f.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "{}".into(),
    };
    let mut v = json!({
        "id": id,
        "type": "function",
        "function": {
            "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
            "arguments": arguments,
        }
    });
    if let Some(i) = index {
        v["index"] = json!(i);
    }
    v
}

/// An Ollama `/api/chat` answer (`stream: false`) as an OpenAI `chat.completion`.
pub fn answer_to_openai(answer: &Value, model: &str) -> Value {
    let model = answer.get("model").and_then(Value::as_str).unwrap_or(model);
    let message = answer.get("message").unwrap_or(&Value::Null);
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let calls: Vec<Value> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| tool_call(c, None))
        .collect();
    let called = !calls.is_empty();
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && called { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if let Some(thinking) = message
        .get("thinking")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        msg["reasoning_content"] = json!(thinking);
    }
    if called {
        msg["tool_calls"] = Value::Array(calls);
    }
    let mut out = json!({
        "id": convert::completion_id(),
        "object": "chat.completion",
        "created": convert::now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason(answer.get("done_reason").and_then(Value::as_str), called),
        }],
    });
    if let Some(u) = usage(answer) {
        out["usage"] = u;
    }
    out
}

/// An Ollama error answer (`{"error": "..."}`) as an OpenAI error body.
pub fn error_to_openai(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| {
            e.as_str()
                .or_else(|| e.get("message").and_then(Value::as_str))
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = convert::snippet(body);
            if text.is_empty() {
                format!("Ollama answered {status}")
            } else {
                text
            }
        });
    let code = match status.as_u16() {
        404 => "model_not_found",
        400 => "invalid_request",
        _ => "upstream_error",
    };
    convert::openai_error(status, code, &message)
}

/// Ollama's NDJSON stream in, OpenAI `chat.completion.chunk` events out:
/// the role first, text deltas, tool calls as tool call deltas, the finish
/// reason and — when asked for — the usage chunk at the `done` line, then
/// `[DONE]`. A stream that ends before its `done` line gets no `[DONE]`, so
/// the stream guard reports it incomplete.
pub struct OllamaStream {
    lines: LineSplitter,
    chunks: ChunkBuilder,
    include_usage: bool,
    started: bool,
    calls: usize,
    done: bool,
}

impl std::fmt::Debug for OllamaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OllamaStream")
            .field("model", &self.chunks.model)
            .finish_non_exhaustive()
    }
}

impl OllamaStream {
    /// A converter for an answer from `model`.
    pub fn new(model: &str, include_usage: bool) -> Self {
        OllamaStream {
            lines: LineSplitter::new(convert::MAX_EVENT),
            chunks: ChunkBuilder::new(model),
            include_usage,
            started: false,
            calls: 0,
            done: false,
        }
    }

    fn line(&mut self, line: &[u8], out: &mut VecDeque<Bytes>) {
        if self.done || line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            tracing::warn!("skipping an Ollama stream line that is not JSON");
            return;
        };
        if let Some(error) = v.get("error") {
            let message = error
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            out.push_back(convert::sse_data(&convert::openai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upstream_error",
                &message,
            )));
            self.done = true;
            return;
        }
        if !self.started {
            self.started = true;
            // Repeated in every chunk: bounded.
            if let Some(m) = convert::upstream_name(v.get("model")) {
                self.chunks.model = m.to_string();
            }
            out.push_back(
                self.chunks
                    .chunk(0, json!({"role": "assistant", "content": ""}), None),
            );
        }
        let message = v.get("message").unwrap_or(&Value::Null);
        if let Some(t) = message
            .get("thinking")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push_back(self.chunks.chunk(0, json!({"reasoning_content": t}), None));
        }
        if let Some(t) = message
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push_back(self.chunks.chunk(0, json!({"content": t}), None));
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let c = tool_call(call, Some(self.calls));
            self.calls += 1;
            out.push_back(self.chunks.chunk(0, json!({"tool_calls": [c]}), None));
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let finish =
                finish_reason(v.get("done_reason").and_then(Value::as_str), self.calls > 0);
            out.push_back(self.chunks.chunk(0, json!({}), Some(finish)));
            if let (true, Some(u)) = (self.include_usage, usage(&v)) {
                out.push_back(self.chunks.usage(&u));
            }
            out.push_back(convert::sse_done());
        }
    }
}

impl Convert for OllamaStream {
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.lines.push(chunk);
        while let Some(line) = self.lines.next_line()? {
            self.line(&line, out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(line) = self.lines.finish() {
            self.line(&line, out);
        }
        Ok(())
    }
}

/// Convert a non-streamed Ollama answer body (success) into a `chat.completion` body.
pub(crate) fn convert_answer_body(body: &[u8], model: &str) -> Result<Bytes, BoxError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "Ollama's answer is not JSON ({e}): {}",
            convert::snippet(body)
        )
    })?;
    Ok(Bytes::from(answer_to_openai(&answer, model).to_string()))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
