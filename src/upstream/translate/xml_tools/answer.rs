//! The answer side of XML tool emulation: which answers are rewritten, and
//! the rewrite of a whole `chat.completion`.

use bytes::Bytes;
use http::{header, Response};
use serde_json::{json, Value};

use super::scanner::{parse_text, Piece, XmlCall};
use super::stream::XmlStream;
use crate::body::ProxyBody;
use crate::request::{Endpoint, LlmRequest};
use crate::upstream::translate::convert::{self, CollectJson};

pub(super) fn tool_call_json(index: usize, call: &XmlCall, with_index: bool) -> Value {
    let mut v = json!({
        "id": convert::call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    });
    if let (true, Some(m)) = (with_index, v.as_object_mut()) {
        m.insert("index".into(), json!(index));
    }
    v
}

/// Read tool calls out of the pivot answer to `request` (see the
/// [module docs](super)): `chat.completion` JSON, or a
/// `chat.completion.chunk` stream. Error answers, and answers to other
/// endpoints than chat, pass unchanged.
pub fn answer(response: Response<ProxyBody>, request: &LlmRequest) -> Response<ProxyBody> {
    let chat = matches!(
        request.endpoint(),
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses
    );
    if !response.status().is_success() || !chat {
        return response;
    }
    let stream = request.is_stream();
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && event_stream {
        convert::convert_response(response, "text/event-stream", XmlStream::default())
    } else if !stream {
        convert::convert_response(
            response,
            "application/json",
            CollectJson::new(|body: &[u8]| Ok(rewrite_answer(body))).or_pass_through(),
        )
    } else {
        response
    }
}

/// A `chat.completion` with tool calls read out of its text; unchanged
/// when it is not one or has none.
pub fn rewrite_answer(body: &[u8]) -> Bytes {
    let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let mut changed = false;
    if let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            let Some(text) = choice
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let pieces = parse_text(text);
            if !pieces.iter().any(|p| matches!(p, Piece::Call(_))) {
                continue;
            }
            changed = true;
            let mut rest = String::new();
            let mut calls = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => rest.push_str(&t),
                    Piece::Call(c) => calls.push(c),
                }
            }
            let message = &mut choice["message"];
            let rest = rest.trim();
            message["content"] = if rest.is_empty() {
                Value::Null
            } else {
                Value::String(rest.to_string())
            };
            let mut list = match message.get_mut("tool_calls").map(Value::take) {
                Some(Value::Array(existing)) => existing,
                _ => Vec::new(),
            };
            list.extend(calls.iter().map(|c| tool_call_json(0, c, false)));
            message["tool_calls"] = Value::Array(list);
            if matches!(
                choice.get("finish_reason").and_then(Value::as_str),
                Some("stop") | None
            ) {
                choice["finish_reason"] = json!("tool_calls");
            }
        }
    }
    if !changed {
        return Bytes::copy_from_slice(body);
    }
    Bytes::from(serde_json::to_vec(&answer).unwrap_or_else(|_| body.to_vec()))
}
