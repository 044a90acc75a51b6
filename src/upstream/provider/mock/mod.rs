//! The `mock` provider: answers locally, in exact OpenAI format, with no
//! network and no key — so a new user sees the proxy work at once, and tests
//! have a deterministic backend.
//!
//! - chat completions echo the last user message (text parts joined),
//!   streamed word by word when `stream: true` (with a usage chunk when
//!   `stream_options.include_usage` is set); `max_tokens` /
//!   `max_completion_tokens` cut the echo and give `finish_reason: "length"`;
//! - a client that forces a tool call (`tool_choice` `"required"` or a named
//!   function) gets one, unless the conversation ends with a tool result:
//!   the named (else the first) function, with arguments made from its
//!   schema's required properties (`"echo"`, 1, true) — so SDKs' tool loops
//!   can be driven end to end;
//! - Anthropic Messages and Responses requests (`/v1/messages`,
//!   `/v1/responses`) are answered the same way from the pivot, and
//!   translated back by the upstream edge; token counts are estimated;
//! - legacy completions echo the prompt;
//! - embeddings return one deterministic unit vector per input (1536
//!   dimensions, or `dimensions`), as floats or as base64 (`encoding_format`,
//!   which the official SDKs set by default).
//!
//! Tokens are counted as whitespace-separated words. Every answer carries
//! the header `x-llm-router-mock: true` ([`MOCK_HEADER`]).
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::upstream::provider::{mock::Mock, Call, Outbound, Provider};
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::routing::{Backend, Target};
//!
//! let target = Target::new(Arc::new(Backend::builder("m", Arc::new(Mock)).build().unwrap()), None);
//! let request = LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"echo","messages":[{"role":"user","content":"hello there"}]}"#).unwrap();
//! let headers = http::HeaderMap::new();
//! let call = Call { request: &request, target: &target, headers: &headers, client_credential: None };
//! assert!(matches!(Mock.prepare(&call).unwrap(), Outbound::Local(_)));
//! ```

mod chat;
mod completion;
mod embeddings;
mod sse;
mod words;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Response};
use serde_json::{json, Value};

use self::chat::chat;
use self::completion::completion;
use self::embeddings::embeddings;
use super::{Call, ModelListing, Outbound, Provider};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{Endpoint, LlmRequest};

/// The local echo provider. See the [module docs](crate::upstream::provider::mock).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock;

/// Default embedding size (that of `text-embedding-3-small`).
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 1536;

impl Provider for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        None
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        let model = call.target.upstream_model(request.model()).to_string();
        let response = match request.endpoint() {
            Endpoint::ChatCompletions => chat(request, &model),
            Endpoint::Completions => completion(request, &model),
            Endpoint::Embeddings => embeddings(request, &model)?,
            Endpoint::CountTokens | Endpoint::InputTokens => {
                return Ok(match super::local_count(call)? {
                    Outbound::Local(response) => Outbound::Local(marked(response)),
                    other => other,
                });
            }
            // Anthropic and Responses clients: answered from the pivot,
            // translated back by the upstream edge.
            Endpoint::Messages | Endpoint::Responses => {
                let pivot =
                    crate::upstream::translate::pivot_request(request, call.target)?.into_owned();
                chat(
                    &LlmRequest::from_value(Endpoint::ChatCompletions, Value::Object(pivot))?,
                    &model,
                )
            }
        };
        Ok(Outbound::Local(marked(response)))
    }

    fn respond(&self, _call: &Call<'_>, response: Response<ProxyBody>) -> Response<ProxyBody> {
        response
    }

    /// [`MODELS`], without asking anyone.
    fn model_list(&self, _backend: &crate::upstream::Backend) -> Result<ModelListing, ProxyError> {
        Ok(ModelListing::Fixed(MODELS))
    }
}

/// The models the mock reports for `GET /v1/models` (it answers any name).
pub const MODELS: &[&str] = &["echo"];

/// The header on every answer of the mock (`x-llm-router-mock: true`), so
/// that a client can tell an echo from a model's answer.
pub const MOCK_HEADER: &str = "x-llm-router-mock";

fn marked(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response.headers_mut().insert(
        http::HeaderName::from_static(MOCK_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id(prefix: &str) -> String {
    format!("{prefix}-mock-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

#[cfg(test)]
mod tests;
