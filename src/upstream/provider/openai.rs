//! The `openai` provider: OpenAI and every OpenAI-compatible API (Cerebras,
//! DeepInfra, OpenRouter, vLLM, Ollama's `/v1`, ...).
//!
//! A backend is called through its Chat Completions API (the default) or,
//! with `api = "responses"`, through OpenAI's Responses API:
//!
//! | client | `api = "chat_completions"` | `api = "responses"` |
//! | --- | --- | --- |
//! | Chat Completions | passes through | translated to `/responses` ([`crate::upstream::translate::responses::upstream`]) |
//! | Messages (Anthropic) | through the pivot to `/chat/completions` | through the pivot to `/responses` |
//! | Responses | through the pivot to `/chat/completions` | passes through |
//! | Completions, Embeddings | pass through | pass through |
//! | `count_tokens`, `input_tokens` | local estimate | `input_tokens` passes through; `count_tokens` local estimate |
//!
//! "Passes through" means the client's bytes with only the model name
//! rewritten (and, for a reasoning model, `max_tokens` renamed
//! `max_completion_tokens`); answers — streamed or not, errors included —
//! then come back byte for byte. Translated answers come back as the pivot
//! and the upstream edge translates them into the client's format.
//!
//! ```
//! use llm_router::upstream::provider::{openai::OpenAi, Provider};
//! assert_eq!(OpenAi.name(), "openai");
//! ```

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use http_body_util::Full;
use serde_json::Value;

use super::{client_key, strip_hop_by_hop, Call, ModelListing, Outbound, Provider};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{ClientFormat, Endpoint};
use crate::upstream::{Backend, Credential, UpstreamApi};

/// The OpenAI(-compatible) provider adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAi;

/// What one call becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// The client's own request (model rewritten) to this path.
    Native(&'static str),
    /// The pivot to `/chat/completions`.
    Pivot,
    /// The pivot translated to the Responses API.
    PivotToResponses,
    /// Answered here: a token count estimate.
    LocalCount,
}

fn plan(call: &Call<'_>) -> Plan {
    let backend = call.target.backend();
    let responses = backend.api() == UpstreamApi::Responses;
    let xml = backend.tool_mode().is_xml();
    match call.request.endpoint() {
        Endpoint::ChatCompletions if responses => Plan::PivotToResponses,
        Endpoint::ChatCompletions => Plan::Native("/chat/completions"),
        Endpoint::Completions => Plan::Native("/completions"),
        Endpoint::Embeddings => Plan::Native("/embeddings"),
        Endpoint::Messages if responses => Plan::PivotToResponses,
        Endpoint::Messages => Plan::Pivot,
        // XML tool emulation reads the pivot answer.
        Endpoint::Responses if responses && !xml => Plan::Native("/responses"),
        Endpoint::Responses if responses => Plan::PivotToResponses,
        Endpoint::Responses => Plan::Pivot,
        Endpoint::InputTokens if responses => Plan::Native("/responses/input_tokens"),
        Endpoint::InputTokens | Endpoint::CountTokens => Plan::LocalCount,
    }
}

/// Whether the pivot answer of a translated stream should end with a usage
/// chunk: when an OpenAI client asked for it (or a layer did on its
/// behalf); always for the other clients, whose formats carry usage.
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

fn serialize(body: &serde_json::Map<String, Value>) -> Result<Bytes, ProxyError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ProxyError::Internal(format!("serializing the upstream request: {e}")))
}

/// The request body for `plan`.
fn body(call: &Call<'_>, plan: Plan) -> Result<Bytes, ProxyError> {
    let request = call.request;
    let model = call.target.upstream_model(request.model());
    match plan {
        // Chat requests may need XML tool emulation (the pivot does it).
        Plan::Native("/chat/completions") | Plan::Pivot => {
            use crate::upstream::translate::reasoning;
            let translated = request.format() != ClientFormat::OpenAi;
            // A reasoning model refuses `max_tokens`; older models the
            // large limits and effort that translated agent clients send.
            let may_fit = reasoning::is_reasoning_model(model)
                || (translated && reasoning::output_cap(model).is_some());
            if may_fit {
                let mut pivot = crate::upstream::translate::pivot_request(request, call.target)?;
                let needed = if translated {
                    reasoning::fit_translated(model, pivot.to_mut())
                } else if reasoning::needs_token_limit_fix(model, &pivot) {
                    reasoning::fit_token_limit(model, pivot.to_mut())
                } else {
                    false
                };
                // A translated pivot is serialized here, once.
                if needed || matches!(pivot, std::borrow::Cow::Owned(_)) {
                    let mut body = pivot.into_owned();
                    body.insert("model".into(), Value::String(model.to_string()));
                    return serialize(&body);
                }
            }
            crate::upstream::translate::pivot_bytes(request, call.target)
        }
        Plan::Native(_) => request.to_bytes(Some(model)),
        Plan::PivotToResponses => {
            let pivot = crate::upstream::translate::pivot_request(request, call.target)?;
            let mut body =
                crate::upstream::translate::responses::upstream::request_from_openai(&pivot)?;
            body.insert("model".into(), Value::String(model.to_string()));
            serialize(&body)
        }
        Plan::LocalCount => Ok(Bytes::new()),
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
        let plan = plan(call);
        let path = match plan {
            Plan::LocalCount => return super::local_count(call),
            Plan::Native(path) => path,
            Plan::Pivot => "/chat/completions",
            Plan::PivotToResponses => "/responses",
        };
        let backend = call.target.backend();
        let uri = backend.uri_for(path)?;
        let body = body(call, plan)?;
        let mut headers = super::forward_headers_for(call);
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

    fn respond(&self, call: &Call<'_>, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
        strip_hop_by_hop(response.headers_mut());
        if plan(call) == Plan::PivotToResponses {
            return crate::upstream::translate::responses::upstream::answer_to_openai(
                response,
                include_usage(call),
            );
        }
        response
    }

    fn answer_format(&self, call: &Call<'_>) -> ClientFormat {
        match plan(call) {
            Plan::Native(_) => call.request.format(),
            _ => ClientFormat::OpenAi,
        }
    }

    /// `GET {base_url}/models` with `Authorization: Bearer`.
    fn model_list(&self, backend: &Backend) -> Result<ModelListing, ProxyError> {
        super::list_request(backend, backend.uri_for("/models")?, |key| {
            let mut headers = http::HeaderMap::new();
            if key.is_some() {
                let bearer = backend.bearer_header().ok_or_else(|| {
                    ProxyError::bad_request(
                        "invalid_api_key",
                        "The API key contains invalid characters",
                    )
                })?;
                headers.insert(header::AUTHORIZATION, bearer);
            }
            Ok(headers)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn model_list_request() {
        let backend = Backend::builder("o", Arc::new(OpenAi))
            .base_url("http://127.0.0.1:9/v1")
            .api_key("sk-backend-0123456789")
            .build()
            .unwrap();
        let Ok(ModelListing::Fetch(r)) = OpenAi.model_list(&backend) else {
            panic!("no request");
        };
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri().to_string(), "http://127.0.0.1:9/v1/models");
        assert_eq!(r.headers()["authorization"], "Bearer sk-backend-0123456789");
        // A backend with the client's key cannot be asked in the background.
        let passthrough = Backend::builder("p", Arc::new(OpenAi))
            .credential(Credential::Passthrough)
            .build()
            .unwrap();
        assert!(matches!(
            OpenAi.model_list(&passthrough),
            Ok(ModelListing::Unavailable)
        ));
        let ids = OpenAi
            .parse_model_list(br#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"object":"model"}]}"#)
            .unwrap();
        assert_eq!(ids, ["gpt-4o"]);
        assert!(OpenAi.parse_model_list(b"<html>").is_err());
    }
}
