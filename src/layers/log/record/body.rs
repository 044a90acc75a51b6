//! The bodies of a record's line: the request and the answer, copied
//! redacted and capped; a stream's reassembled answer; the `error` field of
//! an error answer.

use serde_json::{json, Map, Value};

use super::render::redacted;
use crate::layers::log::capture::{cut_at_boundary, StreamText};
use crate::layers::log::copier::{copy, write_str, Invalid};
use crate::layers::log::redact::Redactor;

/// What a body is logged from.
pub(super) enum Body<'a> {
    /// JSON text (logged as the string it is when it is not JSON).
    Json(&'a [u8]),
    /// Text, logged as a string.
    Text(&'a str),
}

/// Append `,"name":<body>` to a JSON object's text, redacted: a JSON body
/// copied compactly (see [`copy`]), with every value string over `cap`
/// cut; a body that is not JSON, and text, as a string, cut to `cap` too
/// (the escapes of the string do not count). A JSON document (other than
/// a string) whose copy comes out longer than `cap` goes in as that text
/// cut to `cap` bytes (at a word boundary), as a string. Whether anything
/// was cut.
pub(super) fn append_body(
    line: &mut Vec<u8>,
    name: &str,
    body: Body<'_>,
    redactor: &mut Redactor,
    cap: usize,
) -> bool {
    line.extend_from_slice(b",\"");
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b"\":");
    let start = line.len();
    match body {
        Body::Json(bytes) => match copy(bytes, line, redactor, cap) {
            Ok(mut cut) => {
                // (A top-level string was cut as any string is.)
                if line.len() - start > cap && line.get(start) != Some(&b'"') {
                    let text = line.split_off(start);
                    let text = String::from_utf8_lossy(&text);
                    write_str(line, cut_at_boundary(&text, cap));
                    cut = true;
                }
                cut
            }
            Err(Invalid) => string_value(line, &String::from_utf8_lossy(bytes), redactor, cap),
        },
        // Its text is cut to `cap`; the escapes of its JSON string do not
        // count (counting them would make it a string of a string).
        Body::Text(text) => string_value(line, text, redactor, cap),
    }
}

/// A body logged as a string: cut to `cap` (at a word boundary), redacted.
/// Whether it was cut.
fn string_value(out: &mut Vec<u8>, text: &str, redactor: &mut Redactor, cap: usize) -> bool {
    let cut = text.len() > cap;
    let text = if cut {
        cut_at_boundary(text, cap)
    } else {
        text
    };
    redacted(out, redactor, text);
    cut
}

/// A captured body as a value: the JSON document when it is whole JSON,
/// else its text (cut at a word boundary when truncated, so no half key is
/// left at its end). For the `error` of an error answer.
pub(super) fn body_value(bytes: &[u8], truncated: bool, cap: usize) -> Value {
    if !truncated {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            return v;
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let text = if truncated {
        cut_at_boundary(&text, cap)
    } else {
        &text[..]
    };
    Value::String(text.to_string())
}

/// The reassembled answer of a stream (its text already capped).
pub(super) fn stream_value(text: &StreamText) -> Value {
    let mut out = Map::new();
    let texts = &text.texts;
    match texts.len() {
        0 => {
            out.insert("text".into(), json!(""));
        }
        1 => {
            out.insert("text".into(), json!(texts[0]));
        }
        _ => {
            out.insert("choices".into(), json!(texts));
        }
    }
    if !text.tool_calls.is_empty() {
        out.insert(
            "tool_calls".into(),
            Value::Array(
                text.tool_calls
                    .iter()
                    .map(|t| json!({"id": t.id, "name": t.name, "arguments": t.arguments}))
                    .collect(),
            ),
        );
    }
    out.insert("finish_reason".into(), json!(text.finish_reason));
    if let Some(e) = &text.error {
        out.insert("error".into(), e.clone());
    }
    Value::Object(out)
}

/// The `error` field of an error answer: its message and code, whatever
/// the format (OpenAI `{"error":{"message","type","code"}}`, Anthropic
/// `{"type":"error","error":{"type","message"}}`), or its text.
pub(super) fn error_of(body: &Value) -> Value {
    let inner = body.get("error").unwrap_or(body);
    let message = inner
        .get("message")
        .cloned()
        .or_else(|| body.as_str().map(|s| json!(s)))
        .unwrap_or_else(|| {
            if inner.is_string() {
                inner.clone()
            } else {
                Value::Null
            }
        });
    let code = inner
        .get("code")
        .filter(|c| !c.is_null())
        .or_else(|| inner.get("type"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({"code": code, "message": message})
}
