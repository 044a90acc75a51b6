//! Shared machinery of the provider translations: a body that converts an
//! upstream answer chunk by chunk ([`ConvertBody`], a [`MapBody`]), bounded
//! collection of a JSON answer ([`CollectJson`]), newline-delimited JSON
//! framing ([`LineSplitter`]), and the small builders every translation uses
//! (ids, chunk events, OpenAI error bodies).

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::{BoxError, MapBody, ProxyBody};

/// Largest non-streamed upstream answer collected for translation.
pub(crate) const MAX_JSON_ANSWER: usize = crate::upstream::limits::MAX_JSON_ANSWER_BYTES;

/// Largest single streamed event (SSE event or NDJSON line) accepted.
pub(crate) const MAX_EVENT: usize = crate::upstream::limits::MAX_EVENT_BYTES;

/// Longest id or model name taken from an upstream's streamed answer to be
/// repeated in every event: a longer one is ignored (the translation keeps
/// its own), as each small event would carry it again.
pub(crate) const MAX_UPSTREAM_NAME: usize = 256;

/// `value` as an id or model name to repeat in every event: a string of at
/// most [`MAX_UPSTREAM_NAME`] bytes.
pub(crate) fn upstream_name(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| s.len() <= MAX_UPSTREAM_NAME)
}

/// The first parameter of `body` (a Chat Completions request) that only
/// OpenAI's Chat Completions API acts on — `logit_bias`, a non-zero
/// penalty, audio output, the legacy `functions`, `prediction`,
/// `web_search_options` — described for the 400 of a translation that
/// cannot express it.
pub(crate) fn chat_only_parameter(body: &serde_json::Map<String, Value>) -> Option<String> {
    let present = |key: &str| !matches!(body.get(key), None | Some(Value::Null));
    if body
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Some("`logit_bias`".into());
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if body
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|x| x != 0.0)
        {
            return Some(format!("a non-zero `{key}`"));
        }
    }
    if present("audio")
        || body
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x != "text"))
    {
        return Some("audio output (`audio` / `modalities`)".into());
    }
    for key in ["functions", "function_call"] {
        if present(key) {
            return Some(format!("the legacy `{key}` parameter (use `tools`)"));
        }
    }
    ["prediction", "web_search_options"]
        .into_iter()
        .find(|key| present(key))
        .map(|key| format!("`{key}`"))
}

/// Turns upstream bytes into output frames: the body toolkit's
/// [`MapFrames`](crate::body::MapFrames) under the name the translations give
/// it. Each upstream data frame gives at least one frame out (an empty one
/// when the converter held everything back), as
/// [`EMPTY_WHEN_HELD`](crate::body::MapFrames::EMPTY_WHEN_HELD) is on by
/// default.
pub(crate) use crate::body::MapFrames as Convert;

/// A body that feeds its upstream's frames through a [`Convert`] as they
/// come ([`MapBody`]): an upstream error is passed on after the output
/// produced before it; hyper never sends an empty frame.
pub(crate) type ConvertBody<C> = MapBody<C>;

/// Wrap an upstream answer's body in `conv`, with `content_type`; the length
/// changes, so `Content-Length` goes.
pub(crate) fn convert_response<C: Convert + Send + Unpin + 'static>(
    response: Response<ProxyBody>,
    content_type: &'static str,
    conv: C,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    crate::upstream::provider::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, ProxyBody::new(ConvertBody::new(body, conv)))
}

/// Collects a JSON answer (bounded) and converts it whole at the end.
pub(crate) struct CollectJson<F> {
    buf: BytesMut,
    cap: usize,
    convert: F,
    /// Over the cap: pass the answer through unchanged instead of failing.
    overflow_passthrough: bool,
    passing_through: bool,
    /// Over the cap: drop the rest and convert what was kept (error answers).
    truncate: bool,
}

impl<F> CollectJson<F>
where
    F: FnMut(&[u8]) -> Result<Bytes, BoxError> + Send + Unpin + 'static,
{
    pub(crate) fn new(convert: F) -> Self {
        CollectJson {
            buf: BytesMut::new(),
            cap: MAX_JSON_ANSWER,
            convert,
            overflow_passthrough: false,
            passing_through: false,
            truncate: false,
        }
    }

    /// For an error answer: keep its first
    /// [`MAX_ERROR_BODY_BYTES`](crate::upstream::limits::MAX_ERROR_BODY_BYTES),
    /// drop the rest, and convert what was kept.
    pub(crate) fn error_answer(mut self) -> Self {
        self.cap = crate::upstream::limits::MAX_ERROR_BODY_BYTES;
        self.truncate = true;
        self
    }

    /// Over the cap, pass the answer through unchanged.
    pub(crate) fn or_pass_through(mut self) -> Self {
        self.overflow_passthrough = true;
        self
    }
}

impl<F> Convert for CollectJson<F>
where
    F: FnMut(&[u8]) -> Result<Bytes, BoxError> + Send + Unpin + 'static,
{
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if self.passing_through {
            out.push_back(Bytes::copy_from_slice(chunk));
            return Ok(());
        }
        if self.buf.len().saturating_add(chunk.len()) > self.cap {
            if self.truncate {
                let room = self.cap.saturating_sub(self.buf.len());
                self.buf
                    .extend_from_slice(chunk.get(..room).unwrap_or(chunk));
                return Ok(());
            }
            if self.overflow_passthrough {
                self.passing_through = true;
                out.push_back(self.buf.split().freeze());
                out.push_back(Bytes::copy_from_slice(chunk));
                return Ok(());
            }
            return Err(format!("the upstream answer is larger than {} bytes", self.cap).into());
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if self.passing_through {
            return Ok(());
        }
        let bytes = (self.convert)(&self.buf)?;
        self.buf.clear();
        out.push_back(bytes);
        Ok(())
    }
}

/// Splits a byte stream into lines (newline-delimited JSON), holding at most
/// one incomplete line, refusing one longer than its cap.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    buf: BytesMut,
    scanned: usize,
    max_line: usize,
}

impl LineSplitter {
    pub(crate) fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: BytesMut::new(),
            scanned: 0,
            max_line,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line (without its `\n` or `\r\n`).
    pub(crate) fn next_line(&mut self) -> Result<Option<Bytes>, BoxError> {
        let unscanned = self.buf.get(self.scanned..).unwrap_or_default();
        match memchr::memchr(b'\n', unscanned) {
            Some(n) => {
                let end = self.scanned.saturating_add(n).min(self.buf.len());
                self.scanned = 0;
                let mut line = self.buf.split_to(end.saturating_add(1).min(self.buf.len()));
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end.saturating_sub(1));
                }
                Ok(Some(line.freeze()))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max_line {
                    Err(format!("a streamed line is larger than {} bytes", self.max_line).into())
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// What is left at the end (a last line without a newline).
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// A random alphanumeric string of `len` characters (ids, not secrets).
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut r = RandomState::new().build_hasher().finish();
        for _ in 0..10 {
            if out.len() == len {
                break;
            }
            let n = ALPHABET.len() as u64;
            let at = usize::try_from(r.checked_rem(n).unwrap_or(0)).unwrap_or(0);
            out.push(char::from(ALPHABET.get(at).copied().unwrap_or(b'x')));
            r = r.checked_div(n).unwrap_or(0);
        }
    }
    out
}

/// A fresh OpenAI-style tool call id (`call_...`).
pub(crate) fn call_id() -> String {
    format!("call_{}", random_id(24))
}

/// A fresh chat completion id (`chatcmpl-...`).
pub(crate) fn completion_id() -> String {
    format!("chatcmpl-{}", random_id(29))
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One SSE `data:` event.
pub(crate) fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `data: [DONE]`.
pub(crate) fn sse_done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// Builds `chat.completion.chunk` events of one answer.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBuilder {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

impl ChunkBuilder {
    pub(crate) fn new(model: impl Into<String>) -> Self {
        ChunkBuilder {
            id: completion_id(),
            created: now(),
            model: model.into(),
        }
    }

    /// A chunk with one choice.
    pub(crate) fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Bytes {
        sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    /// The usage-only chunk.
    pub(crate) fn usage(&self, usage: &Value) -> Bytes {
        sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }))
    }
}

/// An OpenAI error body for an upstream error with `status` and `message`.
/// A context-length message gets the `context_length_exceeded` code, so
/// failover recognises it whatever the provider said.
pub(crate) fn openai_error(status: StatusCode, code: &str, message: &str) -> Value {
    let code = if crate::classify::is_context_exceeded(message.as_bytes()) {
        "context_length_exceeded"
    } else {
        code
    };
    json!({
        "error": {
            "message": message,
            "type": crate::error::openai_error_type(status),
            "param": null,
            "code": code,
        }
    })
}

/// An upstream body that is not the JSON expected, for messages: at most
/// 500 characters of it.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Split a `data:` URL into its media type and base64 payload.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((
        if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        },
        data,
    ))
}

/// The text of an OpenAI message `content`: a string, or its text parts joined.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Arguments of an OpenAI tool call (a JSON string) as a JSON object.
pub(crate) fn arguments_object(arguments: Option<&Value>) -> Result<Value, String> {
    match arguments {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err("tool call arguments must be a JSON object".into()),
            Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err("tool call arguments must be a JSON object".into()),
    }
}

/// Helpers of the golden fixture tests (`tests/fixtures/<provider>/`).
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
pub(crate) mod testing {
    use std::collections::VecDeque;

    use serde_json::{json, Value};

    use super::Convert;

    /// A fixture file's bytes.
    pub(crate) fn fixture(path: &str) -> Vec<u8> {
        let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
    }

    /// Messages with their tool call ids renamed in order of appearance.
    pub(crate) fn canonical_ids(messages: &Value) -> Value {
        let mut names: Vec<String> = Vec::new();
        let mut v = messages.clone();
        for m in v.as_array_mut().unwrap() {
            for c in m["tool_calls"].as_array_mut().into_iter().flatten() {
                names.push(c["id"].as_str().unwrap().to_string());
                c["id"] = json!(format!("id{}", names.len() - 1));
            }
            if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
                let n = names.iter().position(|x| x == id).unwrap();
                m["tool_call_id"] = json!(format!("id{n}"));
            }
        }
        v
    }

    /// A JSON fixture.
    pub(crate) fn json_fixture(path: &str) -> Value {
        serde_json::from_slice(&fixture(path))
            .unwrap_or_else(|e| panic!("fixture {path} is not JSON: {e}"))
    }

    /// Generated values made comparable: `created` is 0, generated ids are
    /// `call_*` / `chatcmpl-*`.
    pub(crate) fn normalize(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x.as_str()) {
                        ("created", _) => *x = json!(0),
                        ("id", Some(id)) if id.starts_with("call_") && id.len() == 29 => {
                            *x = json!("call_*")
                        }
                        ("id", Some(id)) if id.starts_with("chatcmpl-") && id.len() == 38 => {
                            *x = json!("chatcmpl-*")
                        }
                        _ => normalize(x),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(normalize),
            _ => {}
        }
    }

    /// Run `input` through a converter in chunks of `size` bytes; the
    /// output events, parsed and normalized (`[DONE]` as a string).
    pub(crate) fn run<C: Convert>(mut conv: C, input: &[u8], size: usize) -> Vec<Value> {
        let mut out = VecDeque::new();
        for piece in input.chunks(size.max(1)) {
            conv.push(piece, &mut out).unwrap();
        }
        conv.finish(&mut out).unwrap();
        let bytes: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        let text = String::from_utf8(bytes).expect("output is UTF-8");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").expect("a data event");
                let mut v = if data == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(data).expect("event JSON")
                };
                normalize(&mut v);
                v
            })
            .collect()
    }

    /// A streamed fixture gives `expected`, whole and one byte per chunk.
    pub(crate) fn assert_stream<C: Convert>(make: impl Fn() -> C, input: &str, expected: &str) {
        let input = fixture(input);
        let expected = json_fixture(expected);
        let whole = run(make(), &input, input.len());
        assert_eq!(Value::Array(whole), expected, "whole input");
        let bytewise = run(make(), &input, 1);
        assert_eq!(Value::Array(bytewise), expected, "one byte per chunk");
        for size in [2, 3, 7, 64] {
            assert_eq!(
                Value::Array(run(make(), &input, size)),
                expected,
                "chunks of {size}"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere() {
        let input = b"{\"a\":1}\r\n{\"b\":\"\xc3\xa9\"}\n\n{\"c\":3}";
        for size in 1..input.len() {
            let mut s = LineSplitter::new(1024);
            let mut lines = Vec::new();
            for piece in input.chunks(size) {
                s.push(piece);
                while let Some(l) = s.next_line().unwrap() {
                    lines.push(l);
                }
            }
            lines.extend(s.finish());
            assert_eq!(
                lines,
                vec![
                    Bytes::from_static(b"{\"a\":1}"),
                    Bytes::from_static("{\"b\":\"é\"}".as_bytes()),
                    Bytes::new(),
                    Bytes::from_static(b"{\"c\":3}"),
                ],
                "chunk size {size}"
            );
        }
    }

    /// An error answer keeps its first bytes only, then is converted.
    #[test]
    fn error_answers_are_cut_not_grown() {
        let mut conv =
            CollectJson::new(|body: &[u8]| Ok(Bytes::from(body.len().to_string()))).error_answer();
        let mut out = VecDeque::new();
        for _ in 0..100 {
            conv.push(&[b'x'; 4096], &mut out).unwrap();
        }
        conv.finish(&mut out).unwrap();
        let kept = crate::upstream::limits::MAX_ERROR_BODY_BYTES.to_string();
        assert_eq!(out.pop_front().unwrap(), Bytes::from(kept));
    }

    #[test]
    fn lines_bounded() {
        let mut s = LineSplitter::new(4);
        s.push(b"0123456");
        assert!(s.next_line().is_err());
    }

    #[test]
    fn ids_and_data_urls() {
        let a = call_id();
        assert!(a.starts_with("call_") && a.len() == 29);
        assert_ne!(a, call_id());
        assert_eq!(
            parse_data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hi"), None);
    }

    #[test]
    fn context_errors_get_the_openai_code() {
        let v = openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        );
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds the maximum number of tokens"));
    }
}
