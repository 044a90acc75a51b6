//! A record's JSON line, written in the writer thread.
//!
//! The line is written field by field, in a fixed order, with no map or
//! `serde_json::Value` built for it: the fields the proxy formats (time,
//! numbers, booleans, the endpoint, error codes) as they are, the strings
//! that can carry what a client or upstream sent redacted one by one. The
//! bodies are copied from their JSON text by the redacting
//! [copier](crate::layers::log::copier) — the request's bytes as the client sent them
//! (never parsed for the log), the answer's captured bytes — and a stream's
//! reassembled answer is serialized and copied the same way, so every body
//! takes one redaction path. An answer is parsed only when it is an error
//! (status ≥ 400), for the `error` field.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::body::{append_body, body_value, error_of, stream_value, Body};
use super::{Client, LoggedRequest, Record, Rendered};
use crate::layers::log::capture::{cut_at_boundary, Captured};
use crate::layers::log::copier::{copy, write_str};
use crate::layers::log::redact::Redactor;
use crate::secret::mask_key;

/// A duration as milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `error` field, before it is written.
enum ErrorField<'a> {
    /// The proxy's own error (a code of its own, a message to redact).
    Own {
        code: &'static str,
        message: &'a str,
    },
    /// The one the answer carried.
    Answer(Value),
    /// An error status whose answer said nothing usable.
    Unknown,
}

impl Record {
    /// The JSON line, redacted. The record is only read: the writer hands
    /// it back to be freed where it was allocated (see `Shared::send`).
    ///
    /// The fields the proxy formats itself (the time, numbers, booleans,
    /// the endpoint, error codes and kinds) are written as they are; every
    /// string that can carry what a client or upstream sent (the request
    /// id, the client, its address, method, path, model, backend and model
    /// names, error messages, the bodies) is redacted.
    pub(crate) fn render(&self, redactor: &mut Redactor) -> Rendered {
        let r = self;
        redactor.refresh();
        let cap = r.max_body;

        // The answer's error: an error answer is parsed for it (only then).
        let mut response_truncated = false;
        let mut answer_error: Option<Value> = None;
        match &r.response {
            Some(Captured::Bytes { bytes, truncated }) => {
                response_truncated = *truncated;
                if r.status >= 400 {
                    answer_error = Some(error_of(&body_value(bytes, *truncated, cap)));
                }
            }
            Some(Captured::Stream(text)) => {
                response_truncated = text.truncated;
                answer_error = text.error.clone();
            }
            None => {}
        }
        let error = if let Some(e) = &r.stack_error {
            Some(ErrorField::Own {
                code: e.code,
                message: &e.message,
            })
        } else if let Some(e) = &r.body_error {
            Some(ErrorField::Own {
                code: "body_error",
                message: e,
            })
        } else if let Some(e) = answer_error {
            Some(ErrorField::Answer(e))
        } else if r.status >= 400 {
            Some(ErrorField::Unknown)
        } else {
            None
        };
        let is_error = error.is_some();

        let bodies = r.request.as_ref().map_or(0, LoggedRequest::len)
            + match &r.response {
                Some(Captured::Bytes { bytes, .. }) if r.log_response => bytes.len(),
                _ => 0,
            };
        let mut line = Vec::with_capacity(768 + bodies.min(2 * cap));
        let out = &mut line;
        out.extend_from_slice(b"{\"time\":\"");
        crate::layers::log::writer::write_rfc3339(out, r.time);
        out.push(b'"');
        out.extend_from_slice(b",\"request_id\":");
        redacted_opt(out, redactor, r.request_id.as_deref());
        out.extend_from_slice(b",\"client\":");
        match &r.client {
            Some(Client::Key(k)) => redacted(out, redactor, &mask_key(k)),
            Some(Client::Identity(id)) => redacted(out, redactor, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"client_ip\":");
        match r.client_ip {
            Some(IpAddr::V4(ip)) => redacted(out, redactor, ipv4(ip, &mut [0; 15])),
            Some(ip) => redacted(out, redactor, &ip.to_string()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"method\":");
        redacted(out, redactor, &r.method);
        out.extend_from_slice(b",\"path\":");
        redacted(out, redactor, &r.path);
        out.extend_from_slice(b",\"endpoint\":");
        plain_opt(out, r.endpoint);
        out.extend_from_slice(b",\"model\":");
        redacted_opt(out, redactor, r.model.as_deref());
        out.extend_from_slice(b",\"stream\":");
        number(out, r.stream);
        let last = r.attempts.last();
        out.extend_from_slice(b",\"backend\":");
        redacted_opt(out, redactor, last.map(|a| a.backend.as_str()));
        out.extend_from_slice(b",\"target_model\":");
        redacted_opt(out, redactor, last.map(|a| a.model.as_str()));
        out.extend_from_slice(b",\"attempts\":");
        number(out, r.attempts.len());
        out.extend_from_slice(b",\"upstream\":[");
        for (n, a) in r.attempts.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"backend\":");
            redacted(out, redactor, &a.backend);
            out.extend_from_slice(b",\"model\":");
            redacted(out, redactor, &a.model);
            out.extend_from_slice(b",\"status\":");
            number(out, a.status);
            out.extend_from_slice(b",\"error\":");
            plain_opt(out, (a.error_kind != "none").then_some(a.error_kind));
            out.extend_from_slice(b",\"ms\":");
            number(out, ms(a.elapsed));
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"status\":");
        number(out, r.status);
        out.extend_from_slice(b",\"latency_ms\":");
        number(out, ms(r.latency));
        out.extend_from_slice(b",\"ttfb_ms\":");
        number(out, ms(r.ttfb));
        out.extend_from_slice(b",\"overhead_ms\":");
        number(out, ms(r.overhead));
        out.extend_from_slice(b",\"tokens_in\":");
        number(out, r.usage.map(|u| u.prompt_tokens));
        out.extend_from_slice(b",\"tokens_out\":");
        number(out, r.usage.map(|u| u.completion_tokens));
        out.extend_from_slice(b",\"cost_usd\":");
        match r.cost {
            // Exact decimal USD, a JSON number.
            Some(cost) => out.extend_from_slice(cost.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"complete\":");
        number(out, r.complete);
        out.extend_from_slice(b",\"error\":");
        match error {
            Some(ErrorField::Own { code, message }) => {
                out.extend_from_slice(b"{\"code\":");
                write_str(out, code);
                out.extend_from_slice(b",\"message\":");
                redacted(out, redactor, message);
                out.push(b'}');
            }
            Some(ErrorField::Answer(value)) => {
                let text = serde_json::to_vec(&value).unwrap_or_default();
                if copy(&text, out, redactor, usize::MAX).is_err() {
                    // Deeper than a document can be read back: redacted
                    // in place instead.
                    let mut value = value;
                    redactor.walk(&mut value);
                    let _ = serde_json::to_writer(&mut *out, &value);
                }
            }
            Some(ErrorField::Unknown) => {
                out.extend_from_slice(b"{\"code\":null,\"message\":null}");
            }
            None => out.extend_from_slice(b"null"),
        }

        let mut exception = r.stack_error.as_ref().filter(|e| e.internal).map(|e| {
            json!({
                "time": crate::layers::log::writer::rfc3339(r.time),
                "kind": "unhandled_error",
                "request_id": r.request_id,
                "path": r.path,
                "model": r.model,
                "code": e.code,
                "message": e.message,
            })
        });
        if let Some(e) = &mut exception {
            redactor.walk(e);
        }

        // The bodies, redacted and capped (the request was cut to the cap
        // on the request path: nothing longer is read here).
        let head = out.len();
        if let Some(request) = &r.request {
            let (body, cut) = match request {
                LoggedRequest::Whole(bytes) => (Body::Json(bytes), false),
                LoggedRequest::Cut(text) => (Body::Text(text), true),
            };
            if append_body(out, "request", body, redactor, cap) || cut {
                out.extend_from_slice(b",\"request_truncated\":true");
            }
        }
        if r.log_response {
            let (stream, lossy);
            let body = match &r.response {
                Some(Captured::Bytes { bytes, truncated }) => Some(if *truncated {
                    lossy = String::from_utf8_lossy(bytes);
                    Body::Text(cut_at_boundary(&lossy, cap))
                } else {
                    Body::Json(bytes)
                }),
                Some(Captured::Stream(text)) => {
                    stream = serde_json::to_vec(&stream_value(text)).unwrap_or_default();
                    Some(Body::Json(&stream))
                }
                None => None,
            };
            if let Some(body) = body {
                if append_body(out, "response", body, redactor, cap) || response_truncated {
                    out.extend_from_slice(b",\"response_truncated\":true");
                }
            }
        }
        out.push(b'}');
        Rendered {
            line,
            error: is_error,
            head,
            exception,
        }
    }
}

/// An IPv4 address as `Display` writes it, without a formatter.
pub(super) fn ipv4(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (k, octet) in ip.octets().into_iter().enumerate() {
        if k > 0 {
            buf[len] = b'.';
            len += 1;
        }
        for div in [100, 10, 1] {
            if octet >= div || div == 1 {
                buf[len] = b'0' + octet / div % 10;
                len += 1;
            }
        }
    }
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

/// A string, redacted.
pub(super) fn redacted(out: &mut Vec<u8>, redactor: &mut Redactor, text: &str) {
    write_str(out, &redactor.redact(text));
}

/// A string redacted, or `null`.
fn redacted_opt(out: &mut Vec<u8>, redactor: &mut Redactor, text: Option<&str>) {
    match text {
        Some(text) => redacted(out, redactor, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A string of the proxy's own (a name, a code), or `null`.
fn plain_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A number, boolean or `None` (`null`), as serde_json writes it.
fn number(out: &mut Vec<u8>, value: impl serde::Serialize) {
    // Writing to a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, &value);
}
