//! The `openai` provider: OpenAI and every OpenAI-compatible API (Cerebras,
//! DeepInfra, OpenRouter, vLLM, Ollama's `/v1`, ...).
//!
//! Requests from OpenAI clients go through unchanged but for the model name
//! (aliasing) and the credential; answers — streamed or not, errors included —
//! pass through byte for byte. Anthropic clients reach `/chat/completions`
//! through the pivot ([`crate::translate::request_as_openai`]); the upstream
//! edge translates the answer back.
//!
//! ```
//! use llm_router::provider::{openai::OpenAi, Provider};
//! assert_eq!(OpenAi.name(), "openai");
//! ```

use http::{header, HeaderValue, Method, Request, Response};
use http_body_util::Full;

use super::{client_key, forward_headers, strip_hop_by_hop, Call, Outbound, Provider};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::Endpoint;
use crate::routing::Credential;

/// The OpenAI(-compatible) provider adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAi;

impl OpenAi {
    fn path(endpoint: Endpoint) -> Result<&'static str, ProxyError> {
        match endpoint {
            Endpoint::ChatCompletions => Ok("/chat/completions"),
            Endpoint::Completions => Ok("/completions"),
            Endpoint::Embeddings => Ok("/embeddings"),
            // Anthropic clients reach chat completions through the pivot.
            Endpoint::Messages => Ok("/chat/completions"),
        }
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://api.openai.com/v1")
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        let backend = call.target.backend();
        let uri = backend.uri_for(Self::path(request.endpoint())?)?;
        // The pivot, with the target's model name (and XML tool emulation
        // applied when the backend has `tools = "xml"`).
        let body = crate::translate::pivot_bytes(request, call.target)?;
        let mut headers = forward_headers(call.headers);
        let invalid = || {
            ProxyError::bad_request("invalid_api_key", "The API key contains invalid characters")
        };
        let value = match backend.credential() {
            Credential::None => None,
            // Built once per backend.
            Credential::Key(_) => Some(backend.bearer_header().ok_or_else(invalid)?),
            // The key `auth` took from the headers, else the client's header.
            Credential::Passthrough => match call
                .client_credential
                .map(|c| c.expose())
                .or_else(|| client_key(call.headers))
            {
                Some(key) => {
                    let mut value =
                        HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| invalid())?;
                    value.set_sensitive(true);
                    Some(value)
                }
                None => None,
            },
        };
        if let Some(value) = value {
            headers.insert(header::AUTHORIZATION, value);
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

    fn respond(&self, _call: &Call<'_>, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
        strip_hop_by_hop(response.headers_mut());
        response
    }
}
