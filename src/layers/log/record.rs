//! One request's record: gathered on the request path as cheap raw parts
//! (clones of `Arc`s, a few strings), turned into its JSON line — redacted,
//! bodies capped — in the writer thread.
//!
//! The line is written field by field, in a fixed order, with no map or
//! `serde_json::Value` built for it: the fields the proxy formats (time,
//! numbers, booleans, the endpoint, error codes) as they are, the strings
//! that can carry what a client or upstream sent redacted one by one. The
//! bodies are copied from their JSON text by the redacting
//! [copier](super::copier) — the request's bytes as the client sent them
//! (never parsed for the log), the answer's captured bytes — and a stream's
//! reassembled answer is serialized and copied the same way, so every body
//! takes one redaction path. An answer is parsed only when it is an error
//! (status ≥ 400), for the `error` field.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::capture::{cut_at_boundary, Captured, StreamText};
use super::copier::{copy, write_str, Invalid};
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

/// The request body a record keeps: taken on the request path, already cut
/// to `max_body_bytes`, so a record waiting for the writer never holds more
/// of it than the cap (nor the client's whole body).
#[derive(Debug)]
pub(crate) enum LoggedRequest {
    /// The whole JSON text (at most the cap): the client's bytes, shared.
    Whole(Bytes),
    /// The start of a longer text, cut at a word boundary to at most the
    /// cap; logged as a string, with `request_truncated`.
    Cut(Box<str>),
}

impl LoggedRequest {
    /// What a record keeps of `llm`: its JSON text when it fits in `cap`
    /// bytes (the client's own bytes, not copied), else the first `cap`
    /// bytes of it. An edited request is serialized only until past the cap.
    pub(crate) fn of(llm: &LlmRequest, cap: usize) -> LoggedRequest {
        if let Some(raw) = llm.raw_json() {
            if raw.len() <= cap {
                if let Ok(bytes) = llm.to_bytes(None) {
                    return LoggedRequest::Whole(bytes);
                }
            }
            return LoggedRequest::cut(raw, cap);
        }
        let mut out = CappedWriter {
            buf: Vec::new(),
            limit: cap.saturating_add(1),
        };
        match serde_json::to_writer(&mut out, llm.body()) {
            Ok(()) if out.buf.len() <= cap => LoggedRequest::Whole(Bytes::from(out.buf)),
            _ => LoggedRequest::cut(&out.buf, cap),
        }
    }

    /// The first `cap` bytes of `text`, cut at a word boundary.
    fn cut(text: &[u8], cap: usize) -> LoggedRequest {
        let head = text.get(..cap.saturating_add(1)).unwrap_or(text);
        let head = match std::str::from_utf8(head) {
            Ok(head) => head,
            Err(e) => std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default())
                .unwrap_or_default(),
        };
        LoggedRequest::Cut(cut_at_boundary(head, cap).into())
    }

    /// The bytes it keeps.
    pub(crate) fn len(&self) -> usize {
        match self {
            LoggedRequest::Whole(bytes) => bytes.len(),
            LoggedRequest::Cut(text) => text.len(),
        }
    }
}

/// A writer that takes at most `limit` bytes, then fails (which stops a
/// serializer early).
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len());
        if room == 0 && !data.is_empty() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    /// The request's body, when `requests` is on (cut on the request path).
    pub(crate) request: Option<LoggedRequest>,
    /// Whether the response body is logged (`responses`); error bodies are
    /// always captured, for the `error` field.
    pub(crate) log_response: bool,
    pub(crate) response: Option<Captured>,
    /// The cap of each logged body, in bytes.
    pub(crate) max_body: usize,
    /// Its [`weight`](Record::weight), set when it is queued.
    pub(crate) weight: usize,
}

impl Record {
    /// About how many bytes the record holds (what the queue's
    /// `queue_bytes` counts): the struct, its strings and its bodies.
    pub(crate) fn weight(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<Record>()
            + opt(&self.request_id)
            + match &self.client {
                Some(Client::Key(s) | Client::Identity(s)) => s.len(),
                None => 0,
            }
            + self.method.len()
            + self.path.len()
            + opt(&self.model)
            + self
                .attempts
                .iter()
                .map(|a| std::mem::size_of::<AttemptRecord>() + a.backend.len() + a.model.len())
                .sum::<usize>()
            + self.stack_error.as_ref().map_or(0, |e| e.message.len())
            + opt(&self.body_error)
            + self.request.as_ref().map_or(0, LoggedRequest::len)
            + self.response.as_ref().map_or(0, Captured::weight)
    }
}

/// A rendered record.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// The JSON line (no newline).
    pub(crate) line: Vec<u8>,
    /// Whether it also goes to the errors file.
    pub(crate) error: bool,
    /// The length of the line's text before its bodies: the errors file
    /// gets `line[..head]` and a closing `}` (the bodies are in the
    /// session file's line, written once).
    pub(crate) head: usize,
    /// What goes to `exceptions.json`, for an unhandled error.
    pub(crate) exception: Option<Value>,
}

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

/// What a body is logged from.
enum Body<'a> {
    /// JSON text (logged as the string it is when it is not JSON).
    Json(&'a [u8]),
    /// Text, logged as a string.
    Text(&'a str),
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
        super::writer::write_rfc3339(out, r.time);
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
                "time": super::writer::rfc3339(r.time),
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
fn ipv4(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &str {
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
fn redacted(out: &mut Vec<u8>, redactor: &mut Redactor, text: &str) {
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

/// Append `,"name":<body>` to a JSON object's text, redacted: a JSON body
/// copied compactly (see [`copy`]), with every value string over `cap`
/// cut; a body that is not JSON, and text, as a string, cut to `cap` too
/// (the escapes of the string do not count). A JSON document (other than
/// a string) whose copy comes out longer than `cap` goes in as that text
/// cut to `cap` bytes (at a word boundary), as a string. Whether anything
/// was cut.
fn append_body(
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
    use std::cell::Cell;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::UNIX_EPOCH;

    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};

    use super::super::capture::ToolCall;
    use super::*;
    use crate::classify::Outcome;
    use crate::layers::pii::{Detector, PiiAction, Scrubber};
    use crate::request::Endpoint;

    #[test]
    fn ipv4_addresses_as_display_writes_them() {
        for octets in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
            [10, 99, 100, 9],
        ] {
            let ip = Ipv4Addr::from(octets);
            assert_eq!(ipv4(ip, &mut [0; 15]), ip.to_string());
        }
        for n in (0..=u32::MAX).step_by(7_919_993) {
            let ip = Ipv4Addr::from(n);
            assert_eq!(ipv4(ip, &mut [0; 15]), ip.to_string());
        }
    }

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
        let mut r = Redactor::new(true, None, None, Vec::new());
        let mut line = b"{\"a\":1".to_vec();
        let text = serde_json::to_vec(body).unwrap();
        let cut = append_body(&mut line, "body", Body::Json(&text), &mut r, cap);
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
            (json!({"sk-...def": ["key sk-...789"]}), false)
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

    // ---- The rendering this one replaced, kept as the reference. ----

    /// A body to serialize redacted (the old way: from a parsed value).
    #[derive(Clone, Copy)]
    enum OldBody<'a> {
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

    fn old_append_field(
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

    fn old_render(r: &Record, redactor: &mut Redactor) -> Rendered {
        let mut out = Map::new();
        out.insert("time".into(), json!(super::super::writer::rfc3339(r.time)));
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

    // ---- Differential tests against it. ----

    fn redactors() -> Vec<Redactor> {
        let all = Scrubber::new(&Detector::ALL, PiiAction::Redact);
        let mask = Scrubber::new(&Detector::ALL, PiiAction::Mask);
        vec![
            Redactor::new(
                true,
                Some(all),
                None,
                vec!["backend-secret-xyz-0001".into()],
            ),
            Redactor::new(true, None, None, Vec::new()),
            Redactor::new(false, Some(mask), None, Vec::new()),
            Redactor::new(false, None, None, Vec::new()),
        ]
    }

    /// JSON bodies, in serde_json's own compact form (so the old path,
    /// which parsed and serialized them again, wrote them byte for byte as
    /// they are).
    fn canonical_bodies() -> Vec<Value> {
        vec![
            json!({}),
            json!([]),
            json!("a top-level string with jo@example.com"),
            json!(42),
            json!(null),
            json!([1, -2.5, 1e300, true, false, null, "x", [], {}]),
            json!({"model": "m", "messages": [{"role": "user", "content": "my key is sk-abcdefgh12345678wxyz, mail jo@example.com, card 4111 1111 1111 1111"}]}),
            json!({"sk-1234567890abcdef": {"jo@example.com": ["192.168.1.20", "+44 20 7946 0958"]}}),
            json!({"quote\"back\\slash": "tab\there\nnew line \u{1} \u{1f} \u{7f} é 😀 \u{2028}", "Bearer": "Bearer abc.def-ghi_jkl012"}),
            json!({"\u{8}\u{c}\n\r\t\u{0}\u{1f}\"\\ sk-1234567890abcdef jo@example.com": "\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}\"\\/ é 😀 sk-1234567890abcdef jo@example.com"}),
            json!({"password": "hunter2hunter2", "api_key=plainsecretvalue99": "x-api-key: k-0123456789abcdefgh"}),
            json!({"backend-secret-xyz-0001": "uses backend-secret-xyz-0001 twice: backend-secret-xyz-0001"}),
            json!({"long": "word ".repeat(40), "longer": format!("{} sk-1234567890abcdef", "é".repeat(30)), "n": [[[[["deep"]]]]]}),
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Here you go."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
            json!({"error": {"message": "bad key sk-abcdefgh12345678wxyz", "type": "invalid_request_error", "code": "x"}}),
        ]
    }

    /// The new and the old field text of `body`, and whether each cut.
    fn both(src: &[u8], redactor: &Redactor, cap: usize) -> ((Vec<u8>, bool), (Vec<u8>, bool)) {
        let mut new_redactor = redactor.clone();
        let mut new = Vec::new();
        let new_cut = append_body(&mut new, "b", Body::Json(src), &mut new_redactor, cap);
        let value = body_value(src, false, cap);
        let mut old = Vec::new();
        let old_cut = old_append_field(&mut old, "b", OldBody::Value(&value), redactor, cap);
        ((new, new_cut), (old, old_cut))
    }

    #[test]
    fn canonical_bodies_come_out_as_before_byte_for_byte() {
        for mut redactor in redactors() {
            redactor.refresh();
            for body in canonical_bodies() {
                let src = serde_json::to_vec(&body).unwrap();
                for cap in [1 << 20, 300, 64, 20, 5, 0] {
                    let (new, old) = both(&src, &redactor, cap);
                    assert_eq!(
                        String::from_utf8_lossy(&new.0),
                        String::from_utf8_lossy(&old.0),
                        "cap {cap}"
                    );
                    assert_eq!(new.1, old.1, "cut, cap {cap}: {body}");
                }
            }
        }
    }

    #[test]
    fn text_and_invalid_bodies_come_out_as_before() {
        let texts: &[&[u8]] = &[
            b"plain text with sk-1234567890abcdef and jo@example.com",
            b"{\"a\":",
            b"{\"a\":1} trailing",
            b"\xff\xfe not utf-8 \"quoted\" \\ \n",
            b"",
            b"   ",
        ];
        for mut redactor in redactors() {
            redactor.refresh();
            for text in texts {
                for cap in [1 << 20, 30, 10, 0] {
                    let (new, old) = both(text, &redactor, cap);
                    assert_eq!(new, old, "{}", String::from_utf8_lossy(text));
                }
                // Truncated: the text cut, as a string.
                let lossy = String::from_utf8_lossy(text);
                let cut = cut_at_boundary(&lossy, 12);
                let mut new = Vec::new();
                let mut r = redactor.clone();
                let new_cut = append_body(&mut new, "b", Body::Text(cut), &mut r, 12);
                let value = body_value(text, true, 12);
                let mut old = Vec::new();
                let old_cut =
                    old_append_field(&mut old, "b", OldBody::Value(&value), &redactor, 12);
                assert_eq!((new, new_cut), (old, old_cut));
            }
        }
    }

    /// Bodies as clients write them: whitespace, escapes the serializer
    /// would not write, number forms, repeated keys. The line differs in
    /// form, but reads back as the same document.
    #[test]
    fn written_bodies_read_back_the_same() {
        let bodies: &[&str] = &[
            " { \"model\" : \"m\" ,\n\t\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"h\\u00e9 \\ud83d\\ude00 \\/ \\\" \\\\ \\b\\f\\n\\r\\t\" } ] } ",
            r#"{"n":[1.50,1E2,-0,0.0e-5,12345678901234567890,1e308,-1.7976931348623157e308]}"#,
            r#"{"a":1,"a":{"b":2},"a":"sk-1234567890abcdef"}"#,
            r#"{"\u0073k-1234567890abcdef":"\u006ao@example.com"}"#,
            r#"["\u0000\u001F\u007f", "tab	inside? no: \t"]"#,
            r#"{"k":"key sk-\u0031234567890abcdef and more text to cut at some word boundary here"}"#,
        ];
        for mut redactor in redactors() {
            redactor.refresh();
            for body in bodies {
                let src = body.as_bytes();
                if serde_json::from_slice::<Value>(src).is_err() {
                    // (The tab inside a string is a control character.)
                    let mut r = redactor.clone();
                    assert_eq!(
                        super::super::copier::copy(src, &mut Vec::new(), &mut r, 1 << 20),
                        Err(Invalid)
                    );
                    continue;
                }
                for cap in [1 << 20, 30, 10] {
                    let (new, old) = both(src, &redactor, cap);
                    let read = |t: &[u8]| -> Value {
                        serde_json::from_slice(&t[b",\"b\":".len()..]).unwrap()
                    };
                    // Compare where neither went over the whole-body cap.
                    if new.0.len() - 5 <= cap && old.0.len() - 5 <= cap && !new.1 && !old.1 {
                        assert_eq!(read(&new.0), read(&old.0), "{body}");
                    }
                    if cap == 1 << 20 {
                        assert_eq!(read(&new.0), read(&old.0), "{body}");
                        assert_eq!(new.1, old.1, "{body}");
                    }
                }
            }
        }
    }

    fn attempt(
        backend: &str,
        model: &str,
        status: Option<u16>,
        kind: &'static str,
    ) -> AttemptRecord {
        AttemptRecord {
            backend: backend.into(),
            model: model.into(),
            outcome: Outcome::Success,
            status,
            error_kind: kind,
            elapsed: Duration::from_micros(41_234),
        }
    }

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_798_761_599_123),
            request_id: Some("6ac1bf6ecaec27c30000000000000bb7".into()),
            client: Some(Client::Key("sk-client-0123456789abcdef".into())),
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            endpoint: Some("chat_completions"),
            model: Some("gpt-4".into()),
            stream: false,
            attempts: vec![
                attempt("openai", "gpt-4o", Some(503), "status_5xx"),
                attempt("anthropic", "claude-sonnet-4-0", Some(200), "none"),
            ],
            status: 200,
            latency: Duration::from_micros(1_204_700),
            ttfb: Duration::from_micros(431_000),
            overhead: Duration::from_nanos(640_500),
            usage: Some(crate::usage::Usage {
                prompt_tokens: 19,
                completion_tokens: 42,
                total_tokens: 61,
                cached_tokens: 0,
            }),
            stack_error: None,
            body_error: None,
            complete: true,
            request: Some(LoggedRequest::of(
                &LlmRequest::parse(
                    Endpoint::ChatCompletions,
                    br#"{"model":"gpt-4","messages":[{"role":"user","content":"Mail jo@example.com the key sk-abc1234567890xyz"}]}"#,
                )
                .unwrap(),
                65536,
            )),
            log_response: true,
            response: Some(Captured::Bytes {
                bytes: bytes::Bytes::from_static(
                    br#"{"choices":[{"message":{"content":"Done, jo@example.com."}}]}"#,
                ),
                truncated: false,
            }),
            max_body: 65536,
            weight: 0,
        }
    }

    fn stream(error: Option<Value>) -> Captured {
        let mut text = StreamText::default();
        text.texts = vec!["Hello jo@example.com".into(), "second choice".into()];
        text.tool_calls = vec![ToolCall {
            key: 0,
            id: Some("call_1".into()),
            name: Some("lookup".into()),
            arguments: r#"{"q":"sk-1234567890abcdef"}"#.into(),
        }];
        text.finish_reason = Some("stop".into());
        text.error = error;
        Captured::Stream(text)
    }

    /// Records of every shape.
    fn records() -> Vec<Record> {
        let mut out = vec![record()];
        let mut r = record();
        r.client = Some(Client::Identity("jwt:jo@example.com".into()));
        r.client_ip = Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0x8a2e, 0x370, 0x7334,
        )));
        r.request_id = None;
        r.attempts.clear();
        r.usage = None;
        r.endpoint = None;
        r.model = None;
        r.request = None;
        r.response = None;
        out.push(r);
        let mut r = record();
        r.client = None;
        r.client_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 100, 7)));
        r.status = 500;
        r.stack_error = Some(StackError {
            code: "internal_error",
            message: "it broke for jo@example.com with sk-1234567890abcdef".into(),
            internal: true,
        });
        r.response = None;
        out.push(r);
        let mut r = record();
        r.status = 429;
        r.response = Some(Captured::Bytes {
            bytes: bytes::Bytes::from_static(
                br#"{"error":{"message":"slow down jo@example.com","type":"rate_limit_error","code":"rate_limited"}}"#,
            ),
            truncated: false,
        });
        out.push(r);
        let mut r = record();
        r.status = 502;
        r.log_response = false;
        r.response = Some(Captured::Bytes {
            bytes: bytes::Bytes::from_static(b"upstream said no to 192.168.1.20"),
            truncated: false,
        });
        out.push(r);
        let mut r = record();
        r.status = 503;
        r.response = Some(Captured::Bytes {
            bytes: bytes::Bytes::from_static(br#"{"error":{"message":"cut in the midd"#),
            truncated: true,
        });
        out.push(r);
        let mut r = record();
        r.status = 400;
        r.response = Some(Captured::Bytes {
            bytes: bytes::Bytes::from_static(b"[1,2]"),
            truncated: false,
        });
        out.push(r);
        let mut r = record();
        r.stream = true;
        r.response = Some(stream(None));
        out.push(r);
        let mut r = record();
        r.stream = true;
        r.complete = false;
        r.body_error = Some("connection reset by 192.168.1.20".into());
        r.response = Some(stream(Some(
            json!({"type": "overloaded_error", "message": "busy, mail jo@example.com"}),
        )));
        out.push(r);
        let mut r = record();
        r.response = Some(stream(Some(
            json!({"type": "overloaded_error", "message": "busy"}),
        )));
        out.push(r);
        let mut r = record();
        r.max_body = 40;
        r.method = "PATCH".into();
        r.path = "/v1/jo@example.com/sk-1234567890abcdef".into();
        out.push(r);
        let mut r = record();
        r.request = Some(LoggedRequest::of(
            &LlmRequest::from_value(
                Endpoint::Messages,
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "call +44 20 7946 0958"}]}),
            )
            .unwrap(),
            65536,
        ));
        r.request_id = Some("client id with jo@example.com \"quoted\"".into());
        out.push(r);
        out
    }

    #[test]
    fn records_render_as_before() {
        for mut redactor in redactors() {
            let mut old_redactor = redactor.clone();
            for r in records() {
                // Twice: the second time through the memo.
                for _ in 0..2 {
                    let new = r.render(&mut redactor);
                    let old = old_render(&r, &mut old_redactor);
                    assert_eq!(
                        String::from_utf8_lossy(&new.line),
                        String::from_utf8_lossy(&old.line)
                    );
                    assert_eq!(new.error, old.error);
                    assert_eq!(new.exception, old.exception);
                    assert_eq!(new.head, old.head);
                    let line: Value = serde_json::from_slice(&new.line).unwrap();
                    assert!(line.is_object());
                }
            }
        }
    }

    #[test]
    fn a_record_reads_as_documented() {
        let mut redactor = redactors().remove(0);
        let rendered = record().render(&mut redactor);
        let line = String::from_utf8(rendered.line).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"time":"2026-12-31T23:59:59.123Z","request_id":"6ac1bf6ecaec27c30000000000000bb7","#,
                r#""client":"sk-c...cdef","client_ip":"[IP_ADDRESS]","method":"POST","#,
                r#""path":"/v1/chat/completions","endpoint":"chat_completions","model":"gpt-4","stream":false,"#,
                r#""backend":"anthropic","target_model":"claude-sonnet-4-0","attempts":2,"upstream":["#,
                r#"{"backend":"openai","model":"gpt-4o","status":503,"error":"status_5xx","ms":41.234},"#,
                r#"{"backend":"anthropic","model":"claude-sonnet-4-0","status":200,"error":null,"ms":41.234}],"#,
                r#""status":200,"latency_ms":1204.7,"ttfb_ms":431.0,"overhead_ms":0.641,"#,
                r#""tokens_in":19,"tokens_out":42,"complete":true,"error":null,"#,
                r#""request":{"model":"gpt-4","messages":[{"role":"user","content":"Mail [EMAIL] the key sk-...xyz"}]},"#,
                r#""response":{"choices":[{"message":{"content":"Done, [EMAIL]."}}]}}"#,
            )
        );
        assert!(!rendered.error);
        // Without `ipv4`, the address stays.
        let mut keys_only = redactors().remove(1);
        let line = String::from_utf8(record().render(&mut keys_only).line).unwrap();
        assert!(line.contains(r#""client_ip":"192.168.1.20""#), "{line}");
    }
}
