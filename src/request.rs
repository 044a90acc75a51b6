//! The parsed request that travels through the stack: [`LlmRequest`].
//!
//! The client's body is read once (bounded, see [`read_body`]), parsed once
//! into an [`LlmRequest`] and put into the request's extensions. Layers read
//! and edit it there ([`LlmRequest::body_mut`]); the upstream edge serializes
//! it once ([`LlmRequest::to_bytes`]), swapping in the target's model name
//! without copying the document. Cloning an `LlmRequest` is cheap (the JSON is
//! behind an `Arc`), which is what retry and failover rely on to replay it.
//!
//! ```
//! use llm_router::request::{Endpoint, LlmRequest};
//!
//! let req = LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"gpt-4","stream":true,"messages":[]}"#).unwrap();
//! assert_eq!(req.model(), "gpt-4");
//! assert!(req.is_stream());
//! let upstream = req.to_bytes(Some("gpt-4o")).unwrap();
//! assert_eq!(&upstream[..], br#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
//! ```

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::ProxyError;

/// The API dialect a client speaks; errors and answers are rendered in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientFormat {
    /// OpenAI's Chat Completions / Completions / Embeddings API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Responses API (`/v1/responses`); its errors are OpenAI's.
    Responses,
}

impl ClientFormat {
    /// The format errors are rendered in: Responses clients read OpenAI's.
    pub fn error_format(self) -> ClientFormat {
        match self {
            ClientFormat::Responses => ClientFormat::OpenAi,
            other => other,
        }
    }
}

/// The client API endpoint a request was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions` (also `/openai/chat/completions`).
    ChatCompletions,
    /// `POST /v1/completions` (legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic Messages).
    Messages,
    /// `POST /v1/responses` (OpenAI Responses).
    Responses,
    /// `POST /v1/messages/count_tokens` (Anthropic's input token count).
    CountTokens,
    /// `POST /v1/responses/input_tokens` (OpenAI's input token count).
    InputTokens,
}

impl Endpoint {
    /// The format the client of this endpoint speaks.
    pub fn client_format(self) -> ClientFormat {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => ClientFormat::Anthropic,
            Endpoint::Responses | Endpoint::InputTokens => ClientFormat::Responses,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings => {
                ClientFormat::OpenAi
            }
        }
    }

    /// A short stable name (`chat_completions`, ...), for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::InputTokens => "input_tokens",
        }
    }

    /// Whether answers of this endpoint may be streamed.
    pub fn can_stream(self) -> bool {
        !matches!(
            self,
            Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::InputTokens
        )
    }

    /// Whether this endpoint counts input tokens rather than generating.
    pub fn counts_tokens(self) -> bool {
        matches!(self, Endpoint::CountTokens | Endpoint::InputTokens)
    }

    /// The client API endpoint at `path` (trailing slash removed): the
    /// `/v1/` paths, their `/openai/v1/`, `/openai/` and `/anthropic/v1/`
    /// aliases, and the legacy `/openai/chat/completions` and
    /// `/anthropic/chat/completions`.
    ///
    /// ```
    /// use llm_router::request::Endpoint;
    /// assert_eq!(Endpoint::from_path("/openai/v1/responses"), Some(Endpoint::Responses));
    /// assert_eq!(Endpoint::from_path("/anthropic/v1/messages"), Some(Endpoint::Messages));
    /// assert_eq!(Endpoint::from_path("/v1/nope"), None);
    /// ```
    pub fn from_path(path: &str) -> Option<Endpoint> {
        if let Some(rest) = path.strip_prefix("/anthropic/v1/") {
            return match rest {
                "messages" => Some(Endpoint::Messages),
                "messages/count_tokens" => Some(Endpoint::CountTokens),
                _ => None,
            };
        }
        if path == "/anthropic/chat/completions" {
            return Some(Endpoint::Messages);
        }
        let rest = path
            .strip_prefix("/v1/")
            .or_else(|| path.strip_prefix("/openai/v1/"))
            .or_else(|| path.strip_prefix("/openai/"))?;
        let openai = !path.starts_with("/v1/");
        match rest {
            "chat/completions" => Some(Endpoint::ChatCompletions),
            "completions" => Some(Endpoint::Completions),
            "embeddings" => Some(Endpoint::Embeddings),
            "responses" => Some(Endpoint::Responses),
            "responses/input_tokens" => Some(Endpoint::InputTokens),
            "messages" if !openai => Some(Endpoint::Messages),
            "messages/count_tokens" if !openai => Some(Endpoint::CountTokens),
            _ => None,
        }
    }
}

/// Marks a request for a path that is no endpoint of the proxy: it goes
/// through the stack without an [`LlmRequest`] (so `log` records it and
/// `metrics` counts it) and is answered 404 where a target would be chosen.
#[derive(Clone, Debug)]
pub struct UnknownPath {
    /// The request's method.
    pub method: http::Method,
    /// Its path (without the query).
    pub path: Box<str>,
}

impl UnknownPath {
    /// The 404 this request gets.
    pub fn error(&self) -> ProxyError {
        ProxyError::UnknownEndpoint {
            method: self.method.to_string(),
            path: self.path.to_string(),
        }
    }
}

/// A client request, parsed once, carried in the request's extensions.
///
/// Parsing is lazy where it can be: [`parse`](Self::parse) validates the
/// whole body (syntax, UTF-8, nesting) and reads only the top-level `model`
/// and `stream` values; the full document is built the first time a layer
/// asks for it ([`body`](Self::body)) and shared by every clone from then on.
/// A request no layer had to look into goes upstream as the client's own
/// bytes, with only the model name spliced in when the target renames it.
#[derive(Clone, Debug)]
pub struct LlmRequest {
    endpoint: Endpoint,
    /// False for [`LlmRequest::unread`]: the body was never read.
    read: bool,
    doc: Doc,
}

#[derive(Clone, Debug)]
enum Doc {
    /// The client's bytes, untouched by any layer.
    Raw(Arc<RawDoc>),
    /// A document a layer edited (or one built from a value).
    Edited(Arc<Map<String, Value>>),
}

#[derive(Debug)]
struct RawDoc {
    bytes: Bytes,
    /// The span of the `model` value (the JSON string, quotes included).
    model_span: std::ops::Range<usize>,
    model: Box<str>,
    stream: bool,
    /// The full document, parsed on first use.
    parsed: OnceLock<Map<String, Value>>,
}

/// Deeper than this, a body takes the full parse at once (which enforces
/// serde_json's own recursion limit), so a lazily parsed body can never
/// fail to parse later.
const LAZY_MAX_DEPTH: usize = 64;

impl LlmRequest {
    /// Parse a client body. Malformed JSON, a non-object body and a missing
    /// or non-string `model` are 400s.
    pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Self, ProxyError> {
        Self::parse_bytes(endpoint, Bytes::copy_from_slice(bytes))
    }

    /// [`parse`](Self::parse), keeping `bytes` (no copy) to send upstream
    /// as they are when no layer edits the request.
    pub fn parse_bytes(endpoint: Endpoint, bytes: Bytes) -> Result<Self, ProxyError> {
        if let Some(top) = scan(&bytes) {
            if let Some(model) = top.model {
                return Ok(LlmRequest {
                    endpoint,
                    read: true,
                    doc: Doc::Raw(Arc::new(RawDoc {
                        model_span: model.0,
                        model: model.1,
                        stream: top.stream,
                        parsed: OnceLock::new(),
                        bytes,
                    })),
                });
            }
        }
        // Anything unusual (an error to report, a missing model, duplicate
        // keys, deep nesting) takes the full parse, which words the error.
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ProxyError::bad_request(
                "invalid_json",
                format!("We could not parse the JSON body of your request: {e}"),
            )
        })?;
        Self::from_value(endpoint, value)
    }

    /// Build from an already parsed JSON value (validated like [`parse`](Self::parse)).
    pub fn from_value(endpoint: Endpoint, value: Value) -> Result<Self, ProxyError> {
        let Value::Object(body) = value else {
            return Err(ProxyError::bad_request(
                "invalid_json",
                "The request body must be a JSON object",
            ));
        };
        match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ProxyError::bad_request(
                    "missing_model",
                    "You must provide a model parameter",
                ))
            }
            Some(_) => {
                return Err(ProxyError::bad_request(
                    "invalid_model",
                    "The model parameter must be a string",
                ))
            }
        }
        if let Some(stream) = body.get("stream") {
            if !stream.is_boolean() && !stream.is_null() {
                return Err(ProxyError::bad_request(
                    "invalid_stream",
                    "The stream parameter must be a boolean",
                ));
            }
        }
        Ok(LlmRequest {
            endpoint,
            read: true,
            doc: Doc::Edited(Arc::new(body)),
        })
    }

    /// A request whose body was not read: what the app hands the stack for
    /// a client that failed authentication (checked from the headers
    /// before the body, which is never buffered). Its model is empty, it is
    /// not streamed, its document is empty, and it can never be sent
    /// upstream ([`to_bytes`](Self::to_bytes) fails). The `log` layer
    /// records it without a body.
    ///
    /// ```
    /// use llm_router::request::{Endpoint, LlmRequest};
    ///
    /// let req = LlmRequest::unread(Endpoint::Messages);
    /// assert!(!req.is_body_read());
    /// assert_eq!(req.model(), "");
    /// assert!(req.to_bytes(None).is_err());
    /// ```
    pub fn unread(endpoint: Endpoint) -> Self {
        LlmRequest {
            endpoint,
            read: false,
            doc: Doc::Edited(Arc::default()),
        }
    }

    /// Whether the client's body was read (false only for
    /// [`unread`](Self::unread)).
    pub fn is_body_read(&self) -> bool {
        self.read
    }

    /// The endpoint the client called.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The client's format (derived from the endpoint).
    pub fn format(&self) -> ClientFormat {
        self.endpoint.client_format()
    }

    /// The model name the client asked for.
    pub fn model(&self) -> &str {
        match &self.doc {
            Doc::Raw(raw) => &raw.model,
            Doc::Edited(body) => body.get("model").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// Whether the client asked for a streamed answer.
    pub fn is_stream(&self) -> bool {
        self.endpoint.can_stream()
            && match &self.doc {
                Doc::Raw(raw) => raw.stream,
                Doc::Edited(body) => body.get("stream").and_then(Value::as_bool) == Some(true),
            }
    }

    /// Whether the request still is the client's bytes, untouched (nothing
    /// called [`body_mut`](Self::body_mut)).
    pub fn is_unedited(&self) -> bool {
        matches!(self.doc, Doc::Raw(_))
    }

    /// The client's JSON text, when no layer has edited this request
    /// (read without parsing it, unlike [`body`](Self::body)).
    pub(crate) fn raw_json(&self) -> Option<&[u8]> {
        match &self.doc {
            Doc::Raw(raw) => Some(&raw.bytes),
            Doc::Edited(_) => None,
        }
    }

    /// The JSON document, read-only (parsed on first use, once for every
    /// clone).
    pub fn body(&self) -> &Map<String, Value> {
        match &self.doc {
            Doc::Raw(raw) => raw.parsed.get_or_init(|| full_parse(&raw.bytes)),
            Doc::Edited(body) => body,
        }
    }

    /// The JSON document, for layers that edit it (copied on write if a
    /// retry or failover attempt still shares it).
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        let body = match std::mem::replace(&mut self.doc, Doc::Edited(Arc::default())) {
            Doc::Raw(raw) => Arc::new(match Arc::try_unwrap(raw) {
                Ok(raw) => raw
                    .parsed
                    .into_inner()
                    .unwrap_or_else(|| full_parse(&raw.bytes)),
                Err(shared) => match shared.parsed.get() {
                    Some(map) => map.clone(),
                    None => full_parse(&shared.bytes),
                },
            }),
            Doc::Edited(body) => body,
        };
        self.doc = Doc::Edited(body);
        match &mut self.doc {
            Doc::Edited(body) => Arc::make_mut(body),
            Doc::Raw(_) => empty_map(),
        }
    }

    /// Serialize for the upstream, with `model` replaced by `model` when given.
    /// An unedited request is the client's own bytes (no copy), or those
    /// bytes with the new model name spliced in.
    pub fn to_bytes(&self, model: Option<&str>) -> Result<Bytes, ProxyError> {
        if !self.read {
            return Err(ProxyError::Internal(
                "a request whose body was not read cannot be sent upstream".into(),
            ));
        }
        match &self.doc {
            Doc::Raw(raw) => match model {
                Some(model) if model != &*raw.model => {
                    let mut out = Vec::with_capacity(raw.bytes.len() + model.len());
                    out.extend_from_slice(&raw.bytes[..raw.model_span.start]);
                    serde_json::to_writer(&mut out, model).map_err(|e| {
                        ProxyError::Internal(format!("serializing the upstream request: {e}"))
                    })?;
                    out.extend_from_slice(&raw.bytes[raw.model_span.end..]);
                    Ok(Bytes::from(out))
                }
                _ => Ok(raw.bytes.clone()),
            },
            Doc::Edited(body) => {
                let doc = WithModel { body, model };
                serde_json::to_vec(&doc).map(Bytes::from).map_err(|e| {
                    ProxyError::Internal(format!("serializing the upstream request: {e}"))
                })
            }
        }
    }
}

/// Never reached (`body_mut` has just stored an edited document); a fresh
/// leaked empty map stands in rather than a panic.
#[cold]
fn empty_map() -> &'static mut Map<String, Value> {
    Box::leak(Box::default())
}

/// The full parse of bytes [`scan`] accepted. It cannot fail (the scan
/// validated the syntax and bounded the depth); an empty object stands in
/// if it ever did.
fn full_parse(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// What the lazy parse reads of the top level.
struct Top {
    model: Option<(std::ops::Range<usize>, Box<str>)>,
    stream: bool,
}

/// Validate `bytes` as one JSON object and read its `model` and `stream`
/// without building the document: one pass over the bytes (RFC 8259
/// syntax, strings checked a word at a time, UTF-8 checked only when a
/// non-ASCII byte was seen). `None` when the body needs the full parse:
/// invalid JSON (to word the error), a non-object, a non-string or empty
/// model, a non-boolean stream, duplicate `model`/`stream` keys, an escaped
/// top-level key or model, a `\u` surrogate escape, or nesting deeper than
/// [`LAZY_MAX_DEPTH`].
fn scan(bytes: &[u8]) -> Option<Top> {
    let mut s = Scanner {
        b: bytes,
        i: 0,
        non_ascii: false,
    };
    s.ws();
    if s.peek()? != b'{' {
        return None;
    }
    s.i += 1;
    let mut top = Top {
        model: None,
        stream: false,
    };
    let mut seen_stream = false;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key_start = s.i + 1;
            if s.peek()? != b'"' || s.string()? {
                // Not a key, or an escaped one (it may spell `model`).
                return None;
            }
            let key = &bytes[key_start..s.i - 1];
            s.ws();
            if s.next()? != b':' {
                return None;
            }
            s.ws();
            match key {
                b"model" => {
                    let start = s.i;
                    if top.model.is_some() || s.peek()? != b'"' || s.string()? {
                        return None;
                    }
                    let model = std::str::from_utf8(&bytes[start + 1..s.i - 1]).ok()?;
                    if model.is_empty() {
                        return None;
                    }
                    top.model = Some((start..s.i, model.into()));
                }
                b"stream" => {
                    if seen_stream {
                        return None;
                    }
                    seen_stream = true;
                    if s.literal(b"true") {
                        top.stream = true;
                    } else if !s.literal(b"false") && !s.literal(b"null") {
                        return None;
                    }
                }
                _ => s.value(1)?,
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i != bytes.len() || (s.non_ascii && std::str::from_utf8(bytes).is_err()) {
        return None;
    }
    Some(top)
}

/// The cursor of [`scan`].
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// A byte ≥ 0x80 was seen in a string: UTF-8 is checked at the end.
    non_ascii: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.b.get(self.i..self.i + word.len()) == Some(word);
        if found {
            self.i += word.len();
        }
        found
    }

    /// One value; containers at `depth` (1 for a top-level value's own).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                if depth > LAZY_MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    if self.next()? != b':' {
                        return None;
                    }
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth > LAZY_MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, refusing numbers that
    /// might not fit an f64 (over 300 integer digits, a 3-digit exponent).
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match *b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                let end = digits(i + 1);
                // Too large for an f64 perhaps: the full parse decides.
                if end - i > 300 {
                    return None;
                }
                i = end;
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            // A three-digit exponent may be out of range: the full parse decides.
            if end == i || end - i > 2 {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }

    /// At an opening quote: skip the string, leaving the cursor after the
    /// closing quote. `Some(true)` when it held escapes.
    fn string(&mut self) -> Option<bool> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            // The next quote or backslash (SIMD); what lies before it may
            // hold no control character, and non-ASCII bytes send the whole
            // document through UTF-8 validation at the end.
            let end = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            let (control, high) = control_and_high(&b[i..end]);
            if control {
                return None;
            }
            self.non_ascii |= high;
            if b[end] == b'"' {
                self.i = end + 1;
                return Some(escaped);
            }
            escaped = true;
            i = end;
            match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    // Surrogates (pairs or lone): left to the full parse.
                    if matches!(hex[0], b'd' | b'D')
                        && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                    {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            }
        }
    }
}

/// Whether `bytes` hold a control character (below 0x20), and whether they
/// hold a non-ASCII byte: eight bytes at a time.
fn control_and_high(bytes: &[u8]) -> (bool, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let (mut control, mut high) = (0u64, 0u64);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        high |= w;
        // A byte below 0x20 (of those without the high bit) borrows into its
        // high bit; bytes with the high bit are masked out by `!w`.
        control |= w.wrapping_sub(ONES * 0x20) & !w;
    }
    let mut tail_control = false;
    for &byte in chunks.remainder() {
        tail_control |= byte < 0x20;
        high |= u64::from(byte);
    }
    (tail_control || control & HIGHS != 0, high & HIGHS != 0)
}

/// Serializes a map with its `model` value swapped, without cloning the map.
struct WithModel<'a> {
    body: &'a Map<String, Value>,
    model: Option<&'a str>,
}

impl Serialize for WithModel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.body.len()))?;
        for (key, value) in self.body.iter() {
            match (key.as_str(), self.model) {
                ("model", Some(model)) => map.serialize_entry(key, model)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Read a request body, refusing (413) anything larger than `limit` bytes
/// without reading past the limit. A `Content-Length` over the limit is
/// refused before a single body byte is read.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: u64) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    read_body_inner(headers, body, limit, None).await
}

/// [`read_body`], and a body that sends nothing for `stall` (between two
/// frames, or before the first) is refused with 408
/// ([`ProxyError::RequestTimeout`]): `[server] body_read_timeout`.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use llm_router::body::ProxyBody;
/// use llm_router::request::read_body_within;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let headers = HeaderMap::new();
/// let body = read_body_within(&headers, ProxyBody::full("{}"), 1024, Duration::from_secs(30));
/// assert_eq!(&body.await.unwrap()[..], b"{}");
/// # }
/// ```
pub async fn read_body_within<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
    stall: std::time::Duration,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    read_body_inner(headers, body, limit, Some(stall)).await
}

async fn read_body_inner<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
    stall: Option<std::time::Duration>,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    // Frame by frame: a body that arrives as one frame (the usual case)
    // is kept as it came, without a copy.
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    let mut total: u64 = 0;
    loop {
        let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
        let frame = match stall {
            None => next.await,
            // A fresh timer per frame: the gap between two frames is bounded,
            // not the whole upload.
            Some(stall) => match tokio::time::timeout(stall, next).await {
                Ok(frame) => frame,
                Err(_) => return Err(ProxyError::RequestTimeout { after: stall }),
            },
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|err| {
            let err: crate::body::BoxError = err.into();
            ProxyError::bad_request(
                "body_read_error",
                format!("Could not read the request body: {err}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        match (&mut first, &mut joined) {
            (_, Some(joined)) => joined.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (Some(head), None) => {
                let mut all = bytes::BytesMut::with_capacity(
                    declared.map_or(head.len() + data.len(), |d| (d as usize).min(1 << 20)),
                );
                all.extend_from_slice(head);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
        }
    }
    Ok(match joined {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// Deterministic mutations of JSON texts, for the differential tests of the
/// hand-written JSON passes (here and in the log's copier): each is a seed
/// with one to three bytes removed, replaced or inserted from `alphabet`.
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
pub(crate) fn json_mutations<'a>(
    seeds: &'a [&'a [u8]],
    alphabet: &'a [u8],
    count: usize,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count).map(move |_| {
        let mut body = seeds[rand(seeds.len())].to_vec();
        for _ in 0..1 + rand(3) {
            let at = rand(body.len() + 1);
            match rand(3) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 if at < body.len() => body[at] = alphabet[rand(alphabet.len())],
                _ => body.insert(at, alphabet[rand(alphabet.len())]),
            }
        }
        body
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::body::ProxyBody;

    #[test]
    fn malformed_json_is_400() {
        let e = LlmRequest::parse(Endpoint::ChatCompletions, b"{not json").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.code(), "invalid_json");
    }

    #[test]
    fn missing_model_is_400() {
        for body in [&b"{}"[..], br#"{"model":""}"#, br#"{"model":null}"#] {
            let e = LlmRequest::parse(Endpoint::ChatCompletions, body).unwrap_err();
            assert_eq!(e.code(), "missing_model");
        }
        let e = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":3}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_model");
        let e = LlmRequest::parse(Endpoint::ChatCompletions, b"[1]").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn model_swap_keeps_everything_else() {
        let r = LlmRequest::parse(
            Endpoint::ChatCompletions,
            br#"{"messages":[{"role":"user","content":"hi"}],"model":"a","x":{"y":1}}"#,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&r.to_bytes(Some("b")).unwrap()).unwrap();
        assert_eq!(out["model"], "b");
        assert_eq!(out["x"]["y"], 1);
        let same: Value = serde_json::from_slice(&r.to_bytes(None).unwrap()).unwrap();
        assert_eq!(same["model"], "a");
    }

    #[test]
    fn embeddings_never_stream() {
        let r = LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"e","stream":true}"#).unwrap();
        assert!(!r.is_stream());
    }

    #[test]
    fn clone_then_edit_does_not_touch_the_original() {
        let a = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"a"}"#).unwrap();
        let mut b = a.clone();
        b.body_mut().insert("model".into(), Value::from("b"));
        assert_eq!(a.model(), "a");
        assert_eq!(b.model(), "b");
    }

    #[test]
    fn unedited_requests_go_upstream_as_the_client_sent_them() {
        let sent =
            br#"{ "model" : "a",  "messages":[{"role":"user","content":"h\u00e9"}], "n":1.50 }"#;
        let r = LlmRequest::parse(Endpoint::ChatCompletions, sent).unwrap();
        assert!(r.is_unedited());
        assert_eq!(&r.to_bytes(None).unwrap()[..], &sent[..]);
        assert_eq!(&r.to_bytes(Some("a")).unwrap()[..], &sent[..]);
        // A new model name is spliced in, escaped.
        let out = r.to_bytes(Some("b\"q")).unwrap();
        assert_eq!(
            &out[..],
            &br#"{ "model" : "b\"q",  "messages":[{"role":"user","content":"h\u00e9"}], "n":1.50 }"#[..]
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "b\"q");
        // The document, parsed on demand, is the same one.
        assert_eq!(r.body()["messages"][0]["content"], "h\u{e9}");
        assert!(r.is_unedited());
    }

    #[test]
    fn escaped_model_names_and_stream_flags_are_read() {
        let r = LlmRequest::parse(
            Endpoint::ChatCompletions,
            br#"{"stream":true,"model":"gpt\u002d4"}"#,
        )
        .unwrap();
        assert_eq!(r.model(), "gpt-4");
        assert!(r.is_stream());
        let r = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"m","stream":null}"#)
            .unwrap();
        assert!(!r.is_stream());
        let e = LlmRequest::parse(
            Endpoint::ChatCompletions,
            br#"{"model":"m","stream":"yes"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_stream");
    }

    #[test]
    fn unusual_bodies_take_the_full_parse_with_the_same_answers() {
        // Duplicate keys: the last one wins, as in the full parse.
        let r =
            LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"a","model":"b"}"#).unwrap();
        assert_eq!(r.model(), "b");
        let v: Value = serde_json::from_slice(&r.to_bytes(Some("c")).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"model": "c"}));
        // Trailing garbage, a bad escape, invalid UTF-8: invalid JSON.
        for bad in [
            &br#"{"model":"a"} x"#[..],
            br#"{"model":"a\q"}"#,
            b"{\"model\":\"\xff\"}",
        ] {
            let e = LlmRequest::parse(Endpoint::ChatCompletions, bad).unwrap_err();
            assert_eq!(e.code(), "invalid_json", "{}", String::from_utf8_lossy(bad));
        }
        // Nesting past serde_json's limit is refused like before; nesting
        // under it but past the lazy limit is parsed at once.
        let deep = |n: usize| {
            format!(r#"{{"model":"m","x":{}1{}}}"#, "[".repeat(n), "]".repeat(n)).into_bytes()
        };
        let e = LlmRequest::parse(Endpoint::ChatCompletions, &deep(200)).unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        let r = LlmRequest::parse(Endpoint::ChatCompletions, &deep(100)).unwrap();
        assert!(!r.is_unedited());
        assert!(r.body()["x"].is_array());
        let r = LlmRequest::parse(Endpoint::ChatCompletions, &deep(10)).unwrap();
        assert!(r.is_unedited());
    }

    /// `scan` against serde_json on hand-picked and mutated bodies: what
    /// the scan accepts, serde_json accepts with the same model and stream;
    /// plain valid bodies are never sent to the slow path.
    #[test]
    fn the_scan_agrees_with_serde_json() {
        fn check(body: &[u8]) {
            let full = serde_json::from_slice::<Value>(body);
            match scan(body) {
                Some(top) => {
                    let Ok(Value::Object(map)) = &full else {
                        panic!(
                            "scan accepted what serde_json refuses: {:?}",
                            String::from_utf8_lossy(body)
                        );
                    };
                    match top.model {
                        Some((span, model)) => {
                            assert_eq!(map["model"], Value::String(model.to_string()));
                            assert_eq!(&body[span.start + 1..span.end - 1], model.as_bytes());
                        }
                        None => assert!(!map.contains_key("model")),
                    }
                    assert_eq!(map.get("stream") == Some(&Value::Bool(true)), top.stream);
                }
                None => {
                    // Refused: fine when serde_json refuses too, or for the
                    // documented reasons (escapes, duplicates, a bad model or
                    // stream, deep nesting).
                    if let Ok(Value::Object(map)) = &full {
                        let text = String::from_utf8_lossy(body);
                        let plain = !text.contains('\\')
                            && text.matches("\"model\"").count() == 1
                            && text.matches("\"stream\"").count() <= 1
                            && !text.contains("[[[[[[[[[[")
                            && !regex::Regex::new(r"[eE][+-]?[0-9]{3}|[0-9]{300}")
                                .unwrap()
                                .is_match(&text)
                            && matches!(map.get("model"), Some(Value::String(m)) if !m.is_empty())
                            && matches!(
                                map.get("stream"),
                                None | Some(Value::Bool(_)) | Some(Value::Null)
                            );
                        assert!(!plain, "scan refused a plain valid body: {text:?}");
                    }
                }
            }
        }
        let seeds: &[&[u8]] = &[
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#,
            br#" { "model" : "m" , "stream" : true , "n" : -0.5e+10 , "x" : [ 1 , 2.0 , -3E2 , null , false ] } "#,
            "{\"model\":\"m\",\"messages\":[{\"content\":\"caf\u{e9} \u{1f600} \\u00e9 \\\" \\\\ \\n\"}],\"o\":{}}".as_bytes(),
            br#"{"stream":false,"model":"m","a":{"b":{"c":[[],[{}]]}},"e":"","z":0}"#,
        ];
        for seed in seeds {
            check(seed);
        }
        let fixed: &[&[u8]] = &[
            b"",
            b"{",
            b"}",
            b"[]",
            b"{}",
            br#"{"model":"m"}x"#,
            br#"{"model":"m",}"#,
            br#"{"model":"m" "a":1}"#,
            br#"{"model":"m","a":01}"#,
            br#"{"model":"m","a":1.}"#,
            br#"{"model":"m","a":.5}"#,
            br#"{"model":"m","a":1e}"#,
            br#"{"model":"m","a":-}"#,
            br#"{"model":"m","a":tru}"#,
            br#"{"model":"m","a":"\x"}"#,
            br#"{"model":"m","a":"\u12"}"#,
            br#"{"model":"m","a":"\ud83d\ude00"}"#,
            br#"{"model":"m","a":"\ud800"}"#,
            b"{\"model\":\"m\",\"a\":\"\x01\"}",
            b"{\"model\":\"m\",\"a\":\"\xff\"}",
            b"{\"model\":\"m\xc3\"}",
            br#"{"model":"","a":1}"#,
            br#"{"model":5}"#,
            br#"{"model":"m","model":"n"}"#,
            br#"{"model":"m","stream":1}"#,
            br#"{"model":"m","stream":true,"stream":false}"#,
            br#"{"mod\u0065l":"m"}"#,
            br#"{"model":"a\"b"}"#,
            br#"{"model":"m","a":[1,]}"#,
            br#"{"model":"m","a":{"b"}}"#,
            br#"{"model":"m","a":{"b":1,}}"#,
            br#"{"model":"m"} {}"#,
            b"\xef\xbb\xbf{\"model\":\"m\"}",
        ];
        for body in fixed {
            check(body);
        }
        let deep = |n: usize| format!(r#"{{"model":"m","a":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(scan(deep(64).as_bytes()).is_some());
        assert!(scan(deep(65).as_bytes()).is_none());
        // Mutations: deterministic, bytes JSON cares about.
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnulrsaemod\x01\xc3\xa9";
        for body in crate::request::json_mutations(seeds, alphabet, 20_000) {
            check(&body);
        }
    }

    #[test]
    fn editing_a_shared_request_leaves_the_other_clone_raw() {
        let a = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"a","k":1}"#).unwrap();
        let _ = a.body();
        let mut b = a.clone();
        b.body_mut().insert("k".into(), Value::from(2));
        assert!(a.is_unedited());
        assert_eq!(&a.to_bytes(None).unwrap()[..], br#"{"model":"a","k":1}"#);
        assert_eq!(&b.to_bytes(None).unwrap()[..], br#"{"model":"a","k":2}"#);
    }

    /// `body_read_timeout` bounds each gap, not the whole upload: a body
    /// that keeps sending within the bound is read; one that stalls is a 408.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn stalled_body_is_a_408() {
        use std::time::Duration;
        let headers = HeaderMap::new();
        let stall = Duration::from_secs(30);
        // Three frames 20 s apart (60 s in all): never a 30 s gap.
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >(1);
        let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
        let sender = tokio::spawn(async move {
            for part in ["{\"a\"", ":", "1}"] {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tx.send(Ok(http_body::Frame::data(Bytes::from_static(
                    part.as_bytes(),
                ))))
                .await
                .unwrap();
            }
        });
        let read = read_body_within(&headers, body, 1024, stall).await.unwrap();
        assert_eq!(&read[..], br#"{"a":1}"#);
        sender.await.unwrap();

        // One frame, then nothing: 408 once 30 s have passed, not before.
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
        let started = tokio::time::Instant::now();
        let e = read_body_within(&headers, body, 1024, stall)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 408);
        assert_eq!(e.code(), "request_timeout");
        assert_eq!(started.elapsed(), stall);
        drop(tx);
    }

    /// A stream of what `rx` receives (no tokio-stream dependency).
    fn tokio_stream_of<T>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    #[tokio::test]
    async fn body_limit() {
        let headers = HeaderMap::new();
        let ok = read_body(&headers, ProxyBody::full("12345"), 5)
            .await
            .unwrap();
        assert_eq!(&ok[..], b"12345");
        let e = read_body(&headers, ProxyBody::full("123456"), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        let mut declared = HeaderMap::new();
        declared.insert(http::header::CONTENT_LENGTH, "100".parse().unwrap());
        let e = read_body(&declared, ProxyBody::empty(), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        // Several frames are joined; the limit counts all of them.
        let frames = |parts: &'static [&'static str]| {
            let frames = parts.iter().map(|p| {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                    p.as_bytes(),
                )))
            });
            http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        };
        let joined = read_body(&headers, frames(&["12", "", "34", "5"]), 5)
            .await
            .unwrap();
        assert_eq!(&joined[..], b"12345");
        let e = read_body(&headers, frames(&["123", "456"]), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(read_body(&headers, frames(&[]), 5)
            .await
            .unwrap()
            .is_empty());
    }
}
