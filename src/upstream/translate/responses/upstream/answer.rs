//! Answers: a Response object as a `chat.completion` (or, when the
//! response did not finish, as an OpenAI error body). The mapping is tabled
//! in the [parent module](super).

// Upstream bytes pass through here: no unchecked indexing, slicing or
// arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::upstream::translate::convert::{self, upstream_name};

/// The chat completion id for a response id: `resp_X` is `chatcmpl-X`; a
/// fresh one when the response has none (or one too long to repeat).
pub(super) fn completion_id(response_id: Option<&Value>) -> String {
    match upstream_name(response_id) {
        Some(id) => format!("chatcmpl-{}", id.strip_prefix("resp_").unwrap_or(id)),
        None => convert::completion_id(),
    }
}

/// `created_at` (seconds, possibly fractional) as whole seconds.
pub(super) fn created(response: &Value) -> Option<u64> {
    let at = response.get("created_at")?;
    at.as_u64().or_else(|| {
        at.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // Saturating: a float beyond u64 becomes u64::MAX.
            .map(|f| f as u64)
    })
}

/// The `finish_reason` of a finished response: `incomplete` is `length`
/// (`max_output_tokens`, and any other reason) or `content_filter`;
/// otherwise `tool_calls` when the model called a function, else `stop`.
pub(super) fn finish_reason(response: &Value, called: bool) -> &'static str {
    if response.get("status").and_then(Value::as_str) == Some("incomplete") {
        let reason = response
            .get("incomplete_details")
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str);
        return match reason {
            Some("content_filter") => "content_filter",
            _ => "length",
        };
    }
    if called {
        "tool_calls"
    } else {
        "stop"
    }
}

/// Responses `usage` as Chat Completions `usage`.
pub(super) fn usage_to_openai(usage: &Value) -> Value {
    let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let input = get(usage, "input_tokens").unwrap_or(0);
    let output = get(usage, "output_tokens").unwrap_or(0);
    let total = get(usage, "total_tokens").unwrap_or_else(|| input.saturating_add(output));
    let mut out = Map::new();
    out.insert("prompt_tokens".into(), Value::from(input));
    out.insert("completion_tokens".into(), Value::from(output));
    out.insert("total_tokens".into(), Value::from(total));
    if let Some(cached) = usage
        .get("input_tokens_details")
        .and_then(|d| get(d, "cached_tokens"))
    {
        out.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cached}),
        );
    }
    if let Some(reasoning) = usage
        .get("output_tokens_details")
        .and_then(|d| get(d, "reasoning_tokens"))
    {
        out.insert(
            "completion_tokens_details".into(),
            json!({"reasoning_tokens": reasoning}),
        );
    }
    Value::Object(out)
}

/// The pivot's error body for a response that failed (or did not finish):
/// its `error.message` and `error.code`, type `server_error`.
pub(super) fn failure_error(response: &Value, status: &str) -> Value {
    let error = response.get("error").unwrap_or(&Value::Null);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!("The Responses API backend answered with a `{status}` response")
        });
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("response_{status}"));
    convert::openai_error(StatusCode::BAD_GATEWAY, &code, &message)
}

/// A Response object as a `chat.completion`; a response whose `status` is
/// neither `completed` nor `incomplete` (`failed`, `cancelled`, or still
/// `queued` / `in_progress`) as an OpenAI error body ([`super`] explains why
/// its HTTP status stays 200).
pub fn response_to_openai(response: &Value) -> Value {
    match response.get("status").and_then(Value::as_str) {
        None | Some("completed" | "incomplete") => {}
        Some(other) => return failure_error(response, other),
    }
    let mut text = String::new();
    let mut refusal = String::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut calls = Vec::new();
    let mut logprobs: Vec<Value> = Vec::new();
    let list = |v: &'_ Value, k: &str| -> Vec<Value> {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let output = response
        .get("output")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for item in output {
        match item.get("type").and_then(Value::as_str).unwrap_or("") {
            "message" => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    match part.get("type").and_then(Value::as_str).unwrap_or("") {
                        "output_text" => {
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                            logprobs.extend(list(part, "logprobs"));
                        }
                        "refusal" => refusal
                            .push_str(part.get("refusal").and_then(Value::as_str).unwrap_or("")),
                        _ => {}
                    }
                }
            }
            "function_call" => {
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                };
                calls.push(json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or_default(),
                        "arguments": arguments,
                    },
                }));
            }
            "reasoning" => {
                for key in ["summary", "content"] {
                    for part in item
                        .get(key)
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if let Some(t) = part
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            reasoning.push(t);
                        }
                    }
                }
            }
            // Hosted tool calls and anything newer: never asked for.
            _ => {}
        }
    }
    let called = !calls.is_empty();
    let content = if text.is_empty() && (called || !refusal.is_empty()) {
        Value::Null
    } else {
        Value::from(text)
    };
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert("content".into(), content);
    let refusal = if refusal.is_empty() {
        Value::Null
    } else {
        Value::from(refusal)
    };
    message.insert("refusal".into(), refusal);
    if called {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    if !reasoning.is_empty() {
        message.insert(
            "reasoning_content".into(),
            Value::from(reasoning.join("\n\n")),
        );
    }
    let logprobs = if logprobs.is_empty() {
        Value::Null
    } else {
        json!({"content": logprobs, "refusal": null})
    };
    let completion = json!({
        "id": completion_id(response.get("id")),
        "object": "chat.completion",
        "created": created(response).unwrap_or_else(convert::now),
        "model": response.get("model").cloned().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": finish_reason(response, called),
        }],
    });
    let mut completion = match completion {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(usage) = response.get("usage").filter(|u| u.is_object()) {
        completion.insert("usage".into(), usage_to_openai(usage));
    }
    if let Some(tier) = response.get("service_tier").filter(|t| t.is_string()) {
        completion.insert("service_tier".into(), tier.clone());
    }
    Value::Object(completion)
}
