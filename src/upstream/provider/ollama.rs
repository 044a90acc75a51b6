//! The `ollama` provider: Ollama's native API (`POST {base_url}/api/chat`).
//!
//! The client's request (as the pivot, see `upstream::translate`) is
//! translated by [`crate::upstream::translate::ollama`]; the answer — one JSON object,
//! or newline-delimited JSON when streamed — comes back as the pivot
//! (`chat.completion` or `chat.completion.chunk` events). Ollama needs no
//! key; a configured one is sent as `Authorization: Bearer` (for an Ollama
//! behind an authenticating proxy). Ollama's OpenAI-compatible `/v1` is
//! reachable too, as `provider = "openai"`.
//!
//! ```
//! use llm_router::upstream::provider::{ollama::Ollama, Provider};
//! assert_eq!(Ollama.name(), "ollama");
//! assert_eq!(Ollama.default_base_url(), Some("http://localhost:11434"));
//! ```

use bytes::Bytes;
use http::{header, Response};

use super::gemini::{backend_key, post, sensitive, wants_stream_usage};
use super::{Call, ModelListing, Outbound, Provider};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::Endpoint;
use crate::upstream::translate::convert::{convert_response, CollectJson};
use crate::upstream::translate::ollama::{self, OllamaStream};
use crate::upstream::Backend;

/// The Ollama provider adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ollama;

impl Provider for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("http://localhost:11434")
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        if request.endpoint().counts_tokens() {
            return super::local_count(call);
        }
        if !matches!(
            request.endpoint(),
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses
        ) {
            return Err(ProxyError::bad_request(
                "unsupported_endpoint",
                format!(
                    "the `ollama` provider serves chat requests only, not {} (Ollama's OpenAI-compatible /v1 is provider = \"openai\")",
                    request.endpoint().as_str()
                ),
            ));
        }
        let model = call.target.upstream_model(request.model());
        let pivot = crate::upstream::translate::pivot_request(request, call.target)?;
        let body = ollama::request_to_ollama(&pivot, model, request.is_stream())?;
        let backend = call.target.backend();
        // Ollama's address is often given as its OpenAI-compatible root
        // (`http://host:11434/v1`, as OLLAMA_BASE_URL is by some routers):
        // the native API is beside it.
        let base = backend.base_url().trim_end_matches('/');
        let uri = match base.strip_suffix("/v1") {
            Some(root) => super::join_url(root, "/api/chat")?,
            None => backend.uri_for("/api/chat")?,
        };
        let mut headers = super::forward_headers_for(call);
        if let Some(key) = backend_key(call) {
            headers.insert(header::AUTHORIZATION, sensitive(format!("Bearer {key}"))?);
        }
        post(uri, headers, Bytes::from(body.to_string()))
    }

    fn respond(&self, call: &Call<'_>, response: Response<ProxyBody>) -> Response<ProxyBody> {
        let status = response.status();
        let model = call.target.upstream_model(call.request.model()).to_string();
        if !status.is_success() {
            return convert_response(
                response,
                "application/json",
                CollectJson::new(move |body: &[u8]| {
                    Ok(Bytes::from(
                        ollama::error_to_openai(status, body).to_string(),
                    ))
                })
                .error_answer(),
            );
        }
        if call.request.is_stream() {
            let conv = OllamaStream::new(&model, wants_stream_usage(call));
            return convert_response(response, "text/event-stream", conv);
        }
        convert_response(
            response,
            "application/json",
            CollectJson::new(move |body: &[u8]| ollama::convert_answer_body(body, &model)),
        )
    }

    /// `GET /api/tags` (beside a `/v1` root, as for chat).
    fn model_list(&self, backend: &Backend) -> Result<ModelListing, ProxyError> {
        let base = backend.base_url().trim_end_matches('/');
        let uri = match base.strip_suffix("/v1") {
            Some(root) => super::join_url(root, "/api/tags")?,
            None => backend.uri_for("/api/tags")?,
        };
        super::list_request(backend, uri, |key| {
            let mut headers = http::HeaderMap::new();
            if let Some(key) = key {
                headers.insert(header::AUTHORIZATION, sensitive(format!("Bearer {key}"))?);
            }
            Ok(headers)
        })
    }

    /// `{"models": [{"name": "llama3.2:latest", ..}]}`.
    fn parse_model_list(&self, body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            models: Vec<Tag>,
        }
        #[derive(serde::Deserialize)]
        struct Tag {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            model: Option<String>,
        }
        let tags: Tags = serde_json::from_slice(body)?;
        Ok(tags
            .models
            .into_iter()
            .filter_map(|t| t.name.or(t.model))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_list() {
        let backend = Backend::builder("o", std::sync::Arc::new(Ollama))
            .base_url("http://127.0.0.1:11434/v1")
            .build()
            .unwrap();
        let Ok(ModelListing::Fetch(r)) = Ollama.model_list(&backend) else {
            panic!("no request");
        };
        assert_eq!(r.uri().to_string(), "http://127.0.0.1:11434/api/tags");
        assert!(!r.headers().contains_key("authorization"));
        let ids = Ollama
            .parse_model_list(
                br#"{"models":[{"name":"llama3.2:latest","size":1},{"model":"qwen3:8b"}]}"#,
            )
            .unwrap();
        assert_eq!(ids, ["llama3.2:latest", "qwen3:8b"]);
    }
}
