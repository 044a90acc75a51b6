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

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, Limited};
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
}

impl Endpoint {
    /// The format the client of this endpoint speaks.
    pub fn client_format(self) -> ClientFormat {
        match self {
            Endpoint::Messages => ClientFormat::Anthropic,
            _ => ClientFormat::OpenAi,
        }
    }

    /// A short stable name (`chat_completions`, ...), for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
        }
    }

    /// Whether answers of this endpoint may be streamed.
    pub fn can_stream(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }
}

/// A client request, parsed once, carried in the request's extensions.
#[derive(Clone, Debug)]
pub struct LlmRequest {
    endpoint: Endpoint,
    body: Arc<Map<String, Value>>,
}

impl LlmRequest {
    /// Parse a client body. Malformed JSON, a non-object body and a missing
    /// or non-string `model` are 400s.
    pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Self, ProxyError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
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
            body: Arc::new(body),
        })
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
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the client asked for a streamed answer.
    pub fn is_stream(&self) -> bool {
        self.endpoint.can_stream() && self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The JSON document, read-only.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The JSON document, for layers that edit it (copied on write if a
    /// retry or failover attempt still shares it).
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        Arc::make_mut(&mut self.body)
    }

    /// Serialize for the upstream, with `model` replaced by `model` when given.
    pub fn to_bytes(&self, model: Option<&str>) -> Result<Bytes, ProxyError> {
        let doc = WithModel {
            body: &self.body,
            model,
        };
        serde_json::to_vec(&doc)
            .map(Bytes::from)
            .map_err(|e| ProxyError::Internal(format!("serializing the upstream request: {e}")))
    }
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
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit_usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => {
            if err.is::<http_body_util::LengthLimitError>() {
                Err(ProxyError::PayloadTooLarge { limit })
            } else {
                Err(ProxyError::bad_request(
                    "body_read_error",
                    format!("Could not read the request body: {err}"),
                ))
            }
        }
    }
}

#[cfg(test)]
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
    }
}
