//! The `anthropic` provider: Anthropic's Messages API.
//!
//! Requests go to `{base_url}/v1/messages` (default base URL
//! `https://api.anthropic.com`; a base URL that already ends in `/v1` gets
//! `/messages`) with the backend's key in `x-api-key` — or the client's own
//! key with `api_key = "passthrough"` — and `anthropic-version: 2023-06-01`
//! unless the client sent its own (a client's `anthropic-beta` is forwarded
//! like any other header).
//!
//! - **Anthropic clients** (`/v1/messages`): the body passes through with
//!   only the model name rewritten (and a `stream_options` that a rate limit
//!   layer may have added removed: Anthropic streams always carry usage), and
//!   the answer comes back untouched ([`Provider::answer_format`] is
//!   Anthropic).
//! - **OpenAI clients**: the request is translated from the pivot by
//!   [`crate::upstream::translate::anthropic`], and the answer — message, event stream
//!   or error — back into the pivot.
//!
//! A backend with `tools = "xml"` always goes through the pivot, so the XML
//! tool emulation sees every answer.
//!
//! ```
//! use llm_router::upstream::provider::{anthropic::Anthropic, Provider};
//! assert_eq!(Anthropic.name(), "anthropic");
//! assert_eq!(Anthropic.default_base_url(), Some("https://api.anthropic.com"));
//! ```

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::Full;
use serde_json::Value;

use super::{
    client_key, forward_headers, strip_hop_by_hop, Call, ModelListing, Outbound, Provider,
};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{ClientFormat, Endpoint};
use crate::upstream::translate::anthropic::{
    answer_to_openai, request_from_openai, ANTHROPIC_VERSION,
};
use crate::upstream::{Backend, Credential};

/// The Anthropic provider adapter. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Anthropic;

impl Anthropic {
    /// Whether this call passes the client's own Anthropic request through.
    fn passthrough(call: &Call<'_>) -> bool {
        call.request.endpoint() == Endpoint::CountTokens
            || (call.request.format() == ClientFormat::Anthropic
                && !call.target.backend().tool_mode().is_xml())
    }

    fn body(call: &Call<'_>) -> Result<Bytes, ProxyError> {
        let request = call.request;
        let model = call.target.upstream_model(request.model());
        let mut body = if Self::passthrough(call) {
            if !request.body().contains_key("stream_options") {
                return request.to_bytes(Some(model));
            }
            let mut body = request.body().clone();
            body.remove("stream_options");
            body
        } else {
            let pivot = crate::upstream::translate::pivot_request(request, call.target)?;
            request_from_openai(&pivot)?
        };
        body.insert("model".into(), Value::String(model.to_string()));
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| ProxyError::Internal(format!("serializing the upstream request: {e}")))
    }
}

/// Whether the pivot answer should end with a usage chunk: when an OpenAI
/// client asked for it (or a layer did on its behalf); always for Anthropic
/// clients, whose events carry usage.
fn include_usage(call: &Call<'_>) -> bool {
    call.request.format() != ClientFormat::OpenAi
        || call
            .request
            .body()
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true)
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://api.anthropic.com")
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        if request.endpoint() == Endpoint::InputTokens {
            return super::local_count(call);
        }
        if !matches!(
            request.endpoint(),
            Endpoint::ChatCompletions
                | Endpoint::Messages
                | Endpoint::Responses
                | Endpoint::CountTokens
        ) {
            return Err(ProxyError::bad_request(
                "unsupported_endpoint",
                format!(
                    "the `anthropic` provider serves chat requests only, not {}",
                    request.endpoint().as_str()
                ),
            ));
        }
        let backend = call.target.backend();
        let base = backend.base_url().trim_end_matches('/');
        let count = request.endpoint() == Endpoint::CountTokens;
        let path = match (base.ends_with("/v1"), count) {
            (true, false) => "/messages",
            (false, false) => "/v1/messages",
            (true, true) => "/messages/count_tokens",
            (false, true) => "/v1/messages/count_tokens",
        };
        let uri = backend.uri_for(path)?;
        let body = Self::body(call)?;

        let mut headers = forward_headers(call.headers);
        if !headers.contains_key("anthropic-version") {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        let key = match backend.credential() {
            Credential::None => None,
            Credential::Key(secret) => Some(secret.expose()),
            // The key `auth` took from the headers, else the client's header.
            Credential::Passthrough => call
                .client_credential
                .map(|c| c.expose())
                .or_else(|| client_key(call.headers)),
        };
        if let Some(key) = key {
            let mut value = HeaderValue::try_from(key).map_err(|_| {
                ProxyError::bad_request(
                    "invalid_api_key",
                    "The API key contains invalid characters",
                )
            })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        builder
            .body(Full::new(body))
            .map(Outbound::Http)
            .map_err(|e| ProxyError::Internal(format!("building the upstream request: {e}")))
    }

    fn respond(&self, call: &Call<'_>, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
        strip_hop_by_hop(response.headers_mut());
        if Self::passthrough(call) {
            return response;
        }
        answer_to_openai(response, include_usage(call))
    }

    fn answer_format(&self, call: &Call<'_>) -> ClientFormat {
        if Self::passthrough(call) {
            ClientFormat::Anthropic
        } else {
            ClientFormat::OpenAi
        }
    }

    /// `GET /v1/models?limit=1000` with `x-api-key` and `anthropic-version`
    /// (its answer is OpenAI-shaped: `data[].id`).
    fn model_list(&self, backend: &Backend) -> Result<ModelListing, ProxyError> {
        let path = if backend.base_url().trim_end_matches('/').ends_with("/v1") {
            "/models?limit=1000"
        } else {
            "/v1/models?limit=1000"
        };
        super::list_request(backend, backend.uri_for(path)?, |key| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
            if let Some(key) = key {
                headers.insert("x-api-key", super::gemini::sensitive(key.to_string())?);
            }
            Ok(headers)
        })
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn model_list_request() {
        for (base, path) in [
            ("https://api.anthropic.com", "/v1/models?limit=1000"),
            (
                "https://gw.example/anthropic/v1",
                "/anthropic/v1/models?limit=1000",
            ),
        ] {
            let backend = Backend::builder("a", std::sync::Arc::new(Anthropic))
                .base_url(base)
                .api_key("sk-ant-backend")
                .build()
                .unwrap();
            let Ok(ModelListing::Fetch(r)) = Anthropic.model_list(&backend) else {
                panic!("no request");
            };
            assert_eq!(r.method(), Method::GET);
            assert_eq!(r.uri().path_and_query().unwrap().as_str(), path);
            assert_eq!(r.headers()["x-api-key"], "sk-ant-backend");
            assert_eq!(r.headers()["anthropic-version"], ANTHROPIC_VERSION);
        }
        let ids = Anthropic
            .parse_model_list(
                br#"{"data":[{"type":"model","id":"claude-sonnet-4-0"}],"has_more":false}"#,
            )
            .unwrap();
        assert_eq!(ids, ["claude-sonnet-4-0"]);
    }
    use crate::request::LlmRequest;
    use crate::secret::Secret;
    use crate::upstream::{Backend, Target};
    use std::sync::Arc;

    fn prepare(endpoint: Endpoint, body: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let backend = Backend::builder("a", Arc::new(Anthropic))
            .credential(Credential::Key(Secret::new("sk-ant-backend")))
            .build()
            .unwrap();
        let target = Target::new(Arc::new(backend), Some("claude-real"));
        let request = LlmRequest::parse(endpoint, body.as_bytes()).unwrap();
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let call = Call {
            request: &request,
            target: &target,
            headers: &h,
            client_credential: None,
        };
        match Anthropic.prepare(&call).unwrap() {
            Outbound::Http(r) => r,
            Outbound::Local(_) => panic!("anthropic answered locally"),
        }
    }

    fn json(r: &Request<Full<Bytes>>) -> Value {
        use http_body::Body;
        let mut body = r.body().clone();
        let frame = futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut body).poll_frame(cx)
        }))
        .flatten()
        .unwrap()
        .unwrap();
        serde_json::from_slice(&frame.into_data().unwrap()).unwrap()
    }

    #[test]
    fn anthropic_clients_pass_through_with_the_model_rewritten() {
        let body = r#"{"model":"alias","max_tokens":5,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"x_extra":1}"#;
        let r = prepare(
            Endpoint::Messages,
            body,
            &[
                ("anthropic-version", "2024-01-01"),
                ("anthropic-beta", "tools-2024"),
                ("x-api-key", "client-key"),
            ],
        );
        assert_eq!(r.uri().to_string(), "https://api.anthropic.com/v1/messages");
        assert_eq!(r.headers()["x-api-key"], "sk-ant-backend");
        assert_eq!(r.headers()["anthropic-version"], "2024-01-01");
        assert_eq!(r.headers()["anthropic-beta"], "tools-2024");
        let v = json(&r);
        assert_eq!(v["model"], "claude-real");
        assert_eq!(v["x_extra"], 1);
        assert_eq!(v["messages"][0]["content"], "hi");
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn openai_clients_are_translated() {
        let body = r#"{"model":"alias","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#;
        let r = prepare(Endpoint::ChatCompletions, body, &[]);
        assert_eq!(r.headers()["anthropic-version"], ANTHROPIC_VERSION);
        assert!(r.headers().get("authorization").is_none());
        let v = json(&r);
        assert_eq!(v["model"], "claude-real");
        assert_eq!(v["system"], "s");
        assert_eq!(v["max_tokens"], 4096);
    }

    #[test]
    fn other_endpoints_are_refused() {
        let backend = Backend::builder("a", Arc::new(Anthropic)).build().unwrap();
        let target = Target::new(Arc::new(backend), None);
        let request =
            LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"m","input":"x"}"#).unwrap();
        let h = http::HeaderMap::new();
        let call = Call {
            request: &request,
            target: &target,
            headers: &h,
            client_credential: None,
        };
        assert_eq!(Anthropic.prepare(&call).unwrap_err().status(), 400);
    }
}
