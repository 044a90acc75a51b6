//! Legacy completions: the echo of the prompt, whole or streamed.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::sse::{include_usage, sse_response};
use super::words::{count_tokens, max_tokens, truncate_words, words_with_spaces};
use super::{next_id, now, usage};
use crate::body::ProxyBody;
use crate::error::json_response;
use crate::request::LlmRequest;

pub(super) fn completion(request: &LlmRequest, model: &str) -> Response<ProxyBody> {
    let body = request.body();
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    let prompt_tokens = count_tokens(&prompt);
    let (echo, cut) = truncate_words(&prompt, max_tokens(body));
    let finish = if cut { "length" } else { "stop" };
    let completion_tokens = count_tokens(&echo);
    let id = next_id("cmpl");
    let created = now();
    if !request.is_stream() {
        return json_response(
            StatusCode::OK,
            &json!({
                "id": id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": echo, "index": 0, "logprobs": null, "finish_reason": finish}],
                "usage": usage(prompt_tokens, completion_tokens),
            }),
        );
    }
    let chunk = |text: &str, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut events: Vec<Value> = words_with_spaces(&echo)
        .map(|piece| chunk(piece, None))
        .collect();
    events.push(chunk("", Some(finish)));
    if include_usage(body) {
        events.push(json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage(prompt_tokens, completion_tokens),
        }));
    }
    sse_response(events)
}
