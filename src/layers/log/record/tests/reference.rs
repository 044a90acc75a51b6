//! The rendering `Record::render` replaced (from a parsed value, through
//! serde), kept as the reference the differential tests compare against.

use std::cell::Cell;
use std::time::Duration;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::super::body::{body_value, error_of, stream_value};
use super::super::{Client, LoggedRequest, Record, Rendered};
use crate::layers::log::capture::{cut_at_boundary, Captured};
use crate::layers::log::redact::Redactor;
use crate::secret::mask_key;

/// A body to serialize redacted (the old way: from a parsed value).
#[derive(Clone, Copy)]
pub(super) enum OldBody<'a> {
    Map(&'a Map<String, Value>),
    Value(&'a Value),
}

struct Redacted<'a> {
    body: OldBody<'a>,
    redactor: &'a Redactor,
    cap: usize,
    cut: &'a Cell<bool>,
}

impl Redacted<'_> {
    fn with<'b>(&'b self, value: &'b Value) -> Redacted<'b> {
        Redacted {
            body: OldBody::Value(value),
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
            out.serialize_entry(&*self.redactor.redact_uncached(k), &self.with(v))?;
        }
        out.end()
    }
}

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.body {
            OldBody::Map(map) | OldBody::Value(Value::Object(map)) => self.map(map, serializer),
            OldBody::Value(Value::Array(items)) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&self.with(v))?;
                }
                out.end()
            }
            OldBody::Value(Value::String(s)) => {
                let s = if s.len() > self.cap {
                    self.cut.set(true);
                    cut_at_boundary(s, self.cap)
                } else {
                    s
                };
                serializer.serialize_str(&self.redactor.redact_uncached(s))
            }
            OldBody::Value(other) => other.serialize(serializer),
        }
    }
}

pub(super) fn old_append_field(
    line: &mut Vec<u8>,
    name: &str,
    body: OldBody<'_>,
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
    if text.len() <= cap || matches!(body, OldBody::Value(Value::String(_))) {
        line.extend_from_slice(&text);
        return cut.get();
    }
    let text = String::from_utf8_lossy(&text);
    let _ = serde_json::to_writer(&mut *line, cut_at_boundary(&text, cap));
    true
}

fn old_ms(d: Duration) -> Value {
    json!((d.as_secs_f64() * 1e6).round() / 1e3)
}

pub(super) fn old_render(r: &Record, redactor: &mut Redactor) -> Rendered {
    let mut out = Map::new();
    out.insert(
        "time".into(),
        json!(crate::layers::log::writer::rfc3339(r.time)),
    );
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
                        "ms": old_ms(a.elapsed),
                    })
                })
                .collect(),
        ),
    );
    out.insert("status".into(), json!(r.status));
    out.insert("latency_ms".into(), old_ms(r.latency));
    out.insert("ttfb_ms".into(), old_ms(r.ttfb));
    out.insert("overhead_ms".into(), old_ms(r.overhead));
    out.insert("tokens_in".into(), json!(r.usage.map(|u| u.prompt_tokens)));
    out.insert(
        "tokens_out".into(),
        json!(r.usage.map(|u| u.completion_tokens)),
    );
    out.insert("cost_usd".into(), json!(r.cost.map(|c| c.usd())));
    out.insert("complete".into(), json!(r.complete));
    redactor.refresh();
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
    let mut meta = Value::Object(out);
    redactor.walk(&mut meta);
    let redactor: &Redactor = redactor;
    let mut line = serde_json::to_vec(&meta).unwrap_or_default();
    line.pop();
    let head = line.len();
    if let Some(LoggedRequest::Whole(bytes)) = &r.request {
        let map: Map<String, Value> = serde_json::from_slice(bytes).unwrap();
        let body = OldBody::Map(&map);
        if old_append_field(&mut line, "request", body, redactor, cap) {
            line.extend_from_slice(b",\"request_truncated\":true");
        }
    }
    if let (true, Some(value)) = (r.log_response, &response) {
        let body = OldBody::Value(value);
        if old_append_field(&mut line, "response", body, redactor, cap) || response_truncated {
            line.extend_from_slice(b",\"response_truncated\":true");
        }
    }
    line.push(b'}');
    Rendered {
        line,
        error: is_error,
        head,
        exception,
    }
}
