//! One request's record: gathered on the request path as cheap raw parts
//! (clones of `Arc`s, a few strings), turned into its JSON line — redacted,
//! bodies capped — in the writer thread.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::capture::{cut_at_boundary, Captured, StreamText};
use super::redact::Redactor;
use crate::classify::AttemptRecord;
use crate::request::LlmRequest;
use crate::secret::mask_key;
use crate::usage::Usage;

/// Who sent the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    /// A key (always logged masked).
    Key(String),
    /// A verified identity that is not a key (a JWT's `sub`).
    Identity(String),
}

/// An error of the stack itself (not an answer): its code and message.
#[derive(Clone, Debug)]
pub(crate) struct StackError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// A 500 `internal_error`: also goes to `exceptions.json`.
    pub(crate) internal: bool,
}

/// The raw parts of one record.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) time: SystemTime,
    pub(crate) request_id: Option<String>,
    pub(crate) client: Option<Client>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) endpoint: Option<&'static str>,
    pub(crate) model: Option<String>,
    pub(crate) stream: bool,
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) status: u16,
    pub(crate) latency: Duration,
    pub(crate) ttfb: Duration,
    pub(crate) overhead: Duration,
    pub(crate) usage: Option<Usage>,
    pub(crate) stack_error: Option<StackError>,
    /// The answer's body error, if it broke.
    pub(crate) body_error: Option<String>,
    /// Whether the answer's body was sent to its end.
    pub(crate) complete: bool,
    /// The request, when `requests` is on.
    pub(crate) request: Option<LlmRequest>,
    /// Whether the response body is logged (`responses`); error bodies are
    /// always captured, for the `error` field.
    pub(crate) log_response: bool,
    pub(crate) response: Option<Captured>,
    /// The cap of each logged body, in bytes.
    pub(crate) max_body: usize,
}

/// A rendered record.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// The JSON line (no newline).
    pub(crate) line: Vec<u8>,
    /// Whether it also goes to the errors file.
    pub(crate) error: bool,
    /// What goes to `exceptions.json`, for an unhandled error.
    pub(crate) exception: Option<Value>,
}

fn ms(d: Duration) -> Value {
    // Microsecond precision, as a number of milliseconds.
    json!((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Record {
    /// The JSON line, redacted. The record is only read: the writer hands
    /// it back to be freed where it was allocated (see `Shared::send`).
    pub(crate) fn render(&self, redactor: &mut Redactor) -> Rendered {
        let r = self;
        let mut out = Map::new();
        out.insert("time".into(), json!(super::writer::rfc3339(r.time)));
        out.insert("request_id".into(), json!(r.request_id));
        out.insert(
            "client".into(),
            match &r.client {
                Some(Client::Key(k)) => json!(mask_key(k)),
                Some(Client::Identity(id)) => json!(id),
                None => Value::Null,
            },
        );
        out.insert(
            "client_ip".into(),
            json!(r.client_ip.map(|ip| ip.to_string())),
        );
        out.insert("method".into(), json!(r.method));
        out.insert("path".into(), json!(r.path));
        out.insert("endpoint".into(), json!(r.endpoint));
        out.insert("model".into(), json!(r.model));
        out.insert("stream".into(), json!(r.stream));
        let last = r.attempts.last();
        out.insert("backend".into(), json!(last.map(|a| a.backend.as_str())));
        out.insert("target_model".into(), json!(last.map(|a| a.model.as_str())));
        out.insert("attempts".into(), json!(r.attempts.len()));
        out.insert(
            "upstream".into(),
            Value::Array(
                r.attempts
                    .iter()
                    .map(|a| {
                        json!({
                            "backend": a.backend,
                            "model": a.model,
                            "status": a.status,
                            "error": (a.error_kind != "none").then_some(a.error_kind),
                            "ms": ms(a.elapsed),
                        })
                    })
                    .collect(),
            ),
        );
        out.insert("status".into(), json!(r.status));
        out.insert("latency_ms".into(), ms(r.latency));
        out.insert("ttfb_ms".into(), ms(r.ttfb));
        out.insert("overhead_ms".into(), ms(r.overhead));
        out.insert("tokens_in".into(), json!(r.usage.map(|u| u.prompt_tokens)));
        out.insert(
            "tokens_out".into(),
            json!(r.usage.map(|u| u.completion_tokens)),
        );
        out.insert("complete".into(), json!(r.complete));

        // The answer: a document, a string, or a stream's reassembled text.
        redactor.refresh();
        let redactor: &Redactor = redactor;
        let cap = r.max_body;
        let mut response: Option<Value> = None;
        let mut response_truncated = false;
        let mut answer_error: Option<Value> = None;
        match &r.response {
            Some(Captured::Bytes { bytes, truncated }) => {
                let value = body_value(bytes, *truncated, cap);
                if r.status >= 400 {
                    answer_error = Some(error_of(&value));
                }
                response = Some(value);
                response_truncated = *truncated;
            }
            Some(Captured::Stream(text)) => {
                response_truncated = text.truncated;
                let value = stream_value(text);
                answer_error = value.get("error").cloned();
                response = Some(value);
            }
            None => {}
        }
        let error = if let Some(e) = &r.stack_error {
            Some(json!({"code": e.code, "message": e.message}))
        } else if let Some(e) = &r.body_error {
            Some(json!({"code": "body_error", "message": e}))
        } else if let Some(e) = answer_error {
            Some(e)
        } else if r.status >= 400 {
            Some(json!({"code": Value::Null, "message": Value::Null}))
        } else {
            None
        };
        let is_error = error.is_some();
        out.insert("error".into(), error.unwrap_or(Value::Null));
        let mut exception = r.stack_error.as_ref().filter(|e| e.internal).map(|e| {
            json!({
                "time": out["time"],
                "kind": "unhandled_error",
                "request_id": out["request_id"],
                "path": out["path"],
                "model": out["model"],
                "code": e.code,
                "message": e.message,
            })
        });
        if let Some(e) = &mut exception {
            redactor.walk(e);
        }

        // Everything but the bodies, then the bodies, serialized redacted
        // (no copy of them is made) and capped.
        let mut meta = Value::Object(out);
        redactor.walk(&mut meta);
        let mut line = serde_json::to_vec(&meta).unwrap_or_default();
        line.pop(); // the closing brace
        if let Some(llm) = &r.request {
            let body = Body::Map(llm.body());
            if append_field(&mut line, "request", body, redactor, cap) {
                line.extend_from_slice(b",\"request_truncated\":true");
            }
        }
        if let (true, Some(value)) = (r.log_response, &response) {
            let body = Body::Value(value);
            if append_field(&mut line, "response", body, redactor, cap) || response_truncated {
                line.extend_from_slice(b",\"response_truncated\":true");
            }
        }
        line.push(b'}');
        Rendered {
            line,
            error: is_error,
            exception,
        }
    }
}

/// A body to serialize redacted.
#[derive(Clone, Copy)]
enum Body<'a> {
    Map(&'a Map<String, Value>),
    Value(&'a Value),
}

/// Serializes a body with every string and key redacted; a string longer
/// than `cap` is cut (at a word boundary) first, as it could not be logged
/// whole anyway, and so the redaction does not read all of it.
struct Redacted<'a> {
    body: Body<'a>,
    redactor: &'a Redactor,
    cap: usize,
    cut: &'a Cell<bool>,
}

impl Redacted<'_> {
    fn with<'b>(&'b self, value: &'b Value) -> Redacted<'b> {
        Redacted {
            body: Body::Value(value),
            redactor: self.redactor,
            cap: self.cap,
            cut: self.cut,
        }
    }

    fn map<S: Serializer>(
        &self,
        map: &Map<String, Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            out.serialize_entry(&*self.redactor.redact(k), &self.with(v))?;
        }
        out.end()
    }
}

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.body {
            Body::Map(map) | Body::Value(Value::Object(map)) => self.map(map, serializer),
            Body::Value(Value::Array(items)) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&self.with(v))?;
                }
                out.end()
            }
            Body::Value(Value::String(s)) => {
                let s = if s.len() > self.cap {
                    self.cut.set(true);
                    cut_at_boundary(s, self.cap)
                } else {
                    s
                };
                serializer.serialize_str(&self.redactor.redact(s))
            }
            Body::Value(other) => other.serialize(serializer),
        }
    }
}

/// Append `,"name":<body>` to a JSON object's text, redacted; a body whose
/// text is longer than `cap` goes in as that text cut to `cap` bytes (at a
/// word boundary), as a string. Whether anything was cut.
fn append_field(
    line: &mut Vec<u8>,
    name: &str,
    body: Body<'_>,
    redactor: &Redactor,
    cap: usize,
) -> bool {
    let cut = Cell::new(false);
    let text = serde_json::to_vec(&Redacted {
        body,
        redactor,
        cap,
        cut: &cut,
    })
    .unwrap_or_else(|_| b"null".to_vec());
    line.extend_from_slice(format!(",\"{name}\":").as_bytes());
    if text.len() <= cap {
        line.extend_from_slice(&text);
        return cut.get();
    }
    let text = String::from_utf8_lossy(&text);
    let _ = serde_json::to_writer(&mut *line, cut_at_boundary(&text, cap));
    true
}

/// A captured body as a value: the JSON document when it is whole JSON,
/// else its text (cut at a word boundary when truncated, so no half key is
/// left at its end). Redacted when serialized.
fn body_value(bytes: &[u8], truncated: bool, cap: usize) -> Value {
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
fn stream_value(text: &StreamText) -> Value {
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
fn error_of(body: &Value) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_both_formats() {
        let openai =
            json!({"error": {"message": "bad", "type": "invalid_request_error", "code": "x"}});
        assert_eq!(error_of(&openai), json!({"code": "x", "message": "bad"}));
        let anthropic =
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}});
        assert_eq!(
            error_of(&anthropic),
            json!({"code": "overloaded_error", "message": "busy"})
        );
        assert_eq!(
            error_of(&json!("upstream said no")),
            json!({"code": null, "message": "upstream said no"})
        );
    }

    fn render(body: &Value, cap: usize) -> (Value, bool) {
        let r = Redactor::new(true, None, None, Vec::new());
        let mut line = b"{\"a\":1".to_vec();
        let cut = append_field(&mut line, "body", Body::Value(body), &r, cap);
        line.push(b'}');
        let v: Value = serde_json::from_slice(&line).unwrap();
        (v["body"].clone(), cut)
    }

    #[test]
    fn bodies_are_redacted_and_capped() {
        assert_eq!(
            render(
                &json!({"sk-1234567890abcdef": ["key sk-abcdef0123456789"]}),
                100
            ),
            (json!({"sk-12345...cdef": ["key sk-abcde...6789"]}), false)
        );
        let (v, cut) = render(&json!({"a": "word ".repeat(100)}), 50);
        assert!(cut);
        let s = v.as_str().unwrap();
        assert!(s.len() <= 50 && s.starts_with(r#"{"a":"word word"#), "{s}");
        // A string over the cap is cut before anything else.
        let doc = json!({"a": ["x".repeat(10), format!("short {}", "y".repeat(300))]});
        assert_eq!(
            render(&doc, 100),
            (json!({"a": ["x".repeat(10), "short "]}), true)
        );
        assert_eq!(body_value(br#"{"a":"b"}"#, false, 100), json!({"a": "b"}));
        assert_eq!(body_value(b"plain text", false, 100), json!("plain text"));
        assert_eq!(body_value(b"plain text", true, 7), json!("plain "));
    }
}
