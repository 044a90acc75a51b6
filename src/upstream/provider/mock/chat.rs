//! Chat completions: the echo of the last user message, or the tool call a
//! client forces, whole or streamed.

use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::sse::{include_usage, sse_response};
use super::words::{content_text, count_tokens, max_tokens, truncate_words, words_with_spaces};
use super::{next_id, now, usage};
use crate::body::ProxyBody;
use crate::error::json_response;
use crate::request::LlmRequest;

/// One chat answer's envelope: its id, time, model and prompt size.
struct ChatAnswer<'a> {
    id: String,
    created: u64,
    model: &'a str,
    prompt_tokens: u64,
}

impl ChatAnswer<'_> {
    /// The `chat.completion` with this message.
    fn completion(
        &self,
        message: Value,
        finish: &str,
        completion_tokens: u64,
    ) -> Response<ProxyBody> {
        json_response(
            StatusCode::OK,
            &json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "llm-router-mock",
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
                "usage": usage(self.prompt_tokens, completion_tokens),
            }),
        )
    }

    /// A `chat.completion.chunk` with this delta.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "llm-router-mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// These chunks as a stream, ending with the usage chunk when asked.
    fn stream(
        &self,
        mut events: Vec<Value>,
        body: &Map<String, Value>,
        completion_tokens: u64,
    ) -> Response<ProxyBody> {
        if include_usage(body) {
            events.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "llm-router-mock",
                "choices": [],
                "usage": usage(self.prompt_tokens, completion_tokens),
            }));
        }
        sse_response(events)
    }
}

pub(super) fn chat(request: &LlmRequest, model: &str) -> Response<ProxyBody> {
    let body = request.body();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| count_tokens(&content_text(m.get("content"))))
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let (echo, cut) = truncate_words(&last_user, max_tokens(body));
    let finish = if cut { "length" } else { "stop" };
    let completion_tokens = count_tokens(&echo);
    let answer = ChatAnswer {
        id: next_id("chatcmpl"),
        created: now(),
        model,
        prompt_tokens,
    };
    if let Some((name, arguments)) = forced_tool_call(body, messages) {
        return tool_call(request, &answer, &name, &arguments);
    }
    if !request.is_stream() {
        return answer.completion(
            json!({"role": "assistant", "content": echo, "refusal": null}),
            finish,
            completion_tokens,
        );
    }
    let mut events = vec![answer.chunk(json!({"role": "assistant", "content": ""}), None)];
    for piece in words_with_spaces(&echo) {
        events.push(answer.chunk(json!({"content": piece}), None));
    }
    events.push(answer.chunk(json!({}), Some(finish)));
    answer.stream(events, body, completion_tokens)
}

/// The call the mock makes when the client forces one (`tool_choice`
/// `"required"` or a named function) and the conversation does not end with
/// a tool result: the function named (else the first one), with arguments
/// made from its schema's required properties (`"echo"` for strings, 1 for
/// numbers, true for booleans, null otherwise).
fn forced_tool_call(body: &Map<String, Value>, messages: &[Value]) -> Option<(String, String)> {
    let named = match body.get("tool_choice")? {
        Value::String(s) if s == "required" => None,
        Value::Object(o) => Some(
            o.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?,
        ),
        _ => return None,
    };
    if messages.last()?.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let tools = body.get("tools")?.as_array()?;
    let function = tools
        .iter()
        .filter_map(|t| t.get("function"))
        .find(|f| named.is_none_or(|n| f.get("name").and_then(Value::as_str) == Some(n)))?;
    let name = function.get("name")?.as_str()?.to_string();
    let schema = function.get("parameters");
    let properties = schema.and_then(|s| s.get("properties"));
    let mut arguments = Map::new();
    for required in schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let kind = properties
            .and_then(|p| p.get(required))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        let value = match kind {
            Some("string") => json!("echo"),
            Some("number" | "integer") => json!(1),
            Some("boolean") => json!(true),
            _ => Value::Null,
        };
        arguments.insert(required.to_string(), value);
    }
    Some((name, Value::Object(arguments).to_string()))
}

/// The answer calling `name` with `arguments` (JSON text).
fn tool_call(
    request: &LlmRequest,
    answer: &ChatAnswer<'_>,
    name: &str,
    arguments: &str,
) -> Response<ProxyBody> {
    let call_id = next_id("call");
    let completion_tokens = count_tokens(arguments);
    if !request.is_stream() {
        return answer.completion(
            json!({"role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}]}),
            "tool_calls",
            completion_tokens,
        );
    }
    let events = vec![
        answer.chunk(json!({"role": "assistant", "content": null}), None),
        answer.chunk(
            json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        ),
        answer.chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            None,
        ),
        answer.chunk(json!({}), Some("tool_calls")),
    ];
    answer.stream(events, request.body(), completion_tokens)
}
