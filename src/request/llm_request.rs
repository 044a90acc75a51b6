//! [`LlmRequest`]: the client's body, parsed once (lazily where it can be),
//! its accessors and edits, and its serialization for the upstream.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::scan::scan;
use super::{ClientFormat, Endpoint};
use crate::error::ProxyError;

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
    /// use llm_router::{Endpoint, LlmRequest};
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
    #[cfg_attr(not(feature = "observability"), allow(dead_code))] // the `log` layer's
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

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
}
