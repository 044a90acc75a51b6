//! Answers and errors, whole: Anthropic `message` <-> `chat.completion`.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
use super::{fresh_id, now, set, text_block};
use crate::body::ProxyBody;
use crate::error::{anthropic_error_type, openai_error_type};
use crate::upstream::translate::body::{is_event_stream, map_json, map_sse};

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason_from_stop(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as an Anthropic `stop_reason`.
pub fn stop_reason_from_finish(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Token counts in Anthropic's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tokens {
    pub(super) input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl Tokens {
    /// Take the fields an Anthropic `usage` object carries (a later event
    /// repeats or completes the earlier ones).
    pub(super) fn absorb_anthropic(&mut self, usage: &Value) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens").filter(|n| *n > 0) {
            self.input = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
        if let Some(n) = get("cache_read_input_tokens").filter(|n| *n > 0) {
            self.cache_read = n;
        }
        if let Some(n) = get("cache_creation_input_tokens").filter(|n| *n > 0) {
            self.cache_creation = n;
        }
    }

    pub(super) fn from_openai(usage: &Value) -> Tokens {
        let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let prompt = get(usage, "prompt_tokens");
        let details = usage.get("prompt_tokens_details");
        let cached = details.map_or(0, |d| get(d, "cached_tokens")).min(prompt);
        let written = details
            .map_or(0, |d| get(d, "cache_write_tokens"))
            .min(prompt.saturating_sub(cached));
        Tokens {
            input: prompt.saturating_sub(cached).saturating_sub(written),
            output: get(usage, "completion_tokens"),
            cache_read: cached,
            cache_creation: written,
        }
    }

    pub(super) fn to_openai(self) -> Value {
        // Counts come from the upstream: saturating, never overflowing.
        let prompt = self
            .input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation);
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt.saturating_add(self.output),
        });
        if self.cache_read > 0 || self.cache_creation > 0 {
            // Cache writes in OpenAI's shape, as OpenRouter reports them.
            let details = if self.cache_creation > 0 {
                json!({"cached_tokens": self.cache_read, "cache_write_tokens": self.cache_creation})
            } else {
                json!({"cached_tokens": self.cache_read})
            };
            set(&mut usage, "prompt_tokens_details", details);
        }
        usage
    }

    pub(super) fn to_anthropic(self) -> Value {
        json!({
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
        })
    }
}

/// An Anthropic `message` as an OpenAI `chat.completion`.
pub fn response_to_openai(message: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in message
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "thinking" => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            "tool_use" => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut msg = json!({"role": "assistant", "content": text, "refusal": null});
    if !calls.is_empty() {
        if text.is_empty() {
            set(&mut msg, "content", Value::Null);
        }
        set(&mut msg, "tool_calls", Value::Array(calls));
    }
    if !reasoning.is_empty() {
        set(&mut msg, "reasoning_content", Value::from(reasoning));
    }
    let stop = message
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut tokens = Tokens::default();
    if let Some(u) = message.get("usage") {
        tokens.absorb_anthropic(u);
    }
    json!({
        "id": message.get("id").cloned().unwrap_or_else(|| Value::from(fresh_id("chatcmpl"))),
        "object": "chat.completion",
        "created": now(),
        "model": message.get("model").cloned().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason_from_stop(stop),
        }],
        "usage": tokens.to_openai(),
    })
}

/// An OpenAI `chat.completion` as an Anthropic `message` (first choice).
pub fn response_from_openai(completion: &Value) -> Value {
    let choice = completion
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let reasoning = message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let text = match message.get("refusal").and_then(Value::as_str) {
        Some(r) if text.is_empty() => r.to_string(),
        _ => text,
    };
    if !text.is_empty() {
        content.push(text_block(&text));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let f = call.get("function").unwrap_or(&Value::Null);
        let input = match f.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            Some(v @ Value::Object(_)) => v.clone(),
            _ => json!({}),
        };
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| fresh_id("toolu")),
            "name": f.get("name").cloned().unwrap_or_default(),
            "input": input,
        }));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let tokens = completion
        .get("usage")
        .map(Tokens::from_openai)
        .unwrap_or_default();
    json!({
        "id": completion.get("id").cloned().unwrap_or_else(|| Value::from(fresh_id("msg"))),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason_from_finish(finish),
        "stop_sequence": null,
        "usage": tokens.to_anthropic(),
    })
}

/// The message of an error body in either format (or its raw text).
fn error_message(body: &[u8]) -> (String, Option<String>) {
    let raw = || {
        let text = String::from_utf8_lossy(body.get(..2000).unwrap_or(body))
            .trim()
            .to_string();
        if text.is_empty() {
            "The upstream answered with an error and no message".to_string()
        } else {
            text
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (raw(), None);
    };
    let error = v.get("error").unwrap_or(&v);
    let kind = error
        .get("type")
        .or_else(|| error.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = match error {
        Value::String(s) => s.clone(),
        _ => error
            .get("message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(raw),
    };
    (message, kind)
}

/// An Anthropic error body as an OpenAI error body (same status).
pub fn error_to_openai(status: StatusCode, body: &[u8]) -> Value {
    let (message, kind) = error_message(body);
    json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": null,
        "code": kind.unwrap_or_else(|| anthropic_error_type(status).to_string()),
    }})
}

/// An OpenAI error body as an Anthropic error body (same status).
pub fn error_from_openai(status: StatusCode, body: &[u8]) -> Value {
    let (message, _) = error_message(body);
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// An Anthropic upstream's answer (message, event stream or error) in the
/// pivot format. `include_usage`: the client asked for a usage chunk.
pub fn answer_to_openai(response: Response<ProxyBody>, include_usage: bool) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return map_json(response, |status, body| {
            to_bytes(&error_to_openai(status, &body))
        });
    }
    if is_event_stream(response.headers()) {
        return map_sse(response, AnthropicToOpenAiStream::new(include_usage));
    }
    map_json(response, |_, body| match serde_json::from_slice(&body) {
        Ok(message) => to_bytes(&response_to_openai(&message)),
        Err(_) => body,
    })
}

/// A pivot answer (completion, chunk stream or error) in Anthropic's format.
pub fn answer_from_openai(response: Response<ProxyBody>) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return map_json(response, |status, body| {
            to_bytes(&error_from_openai(status, &body))
        });
    }
    if is_event_stream(response.headers()) {
        return map_sse(response, OpenAiToAnthropicStream::new());
    }
    map_json(response, |_, body| match serde_json::from_slice(&body) {
        Ok(completion) => to_bytes(&response_from_openai(&completion)),
        Err(_) => body,
    })
}
