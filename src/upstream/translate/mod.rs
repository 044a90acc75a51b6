//! Translation between client formats and provider formats.
//!
//! The OpenAI Chat Completions format is the pivot: a provider adapter takes
//! the client's request as the pivot ([`request_as_openai`]) and turns it into
//! its own wire format; it turns its upstream's answer back into the pivot
//! (JSON or `chat.completion.chunk` SSE events), and the upstream edge turns
//! the pivot into the client's format ([`answer_to_client`]). A provider that
//! speaks the client's own format (Anthropic to Anthropic) says so with
//! [`Provider::answer_format`](crate::upstream::provider::Provider::answer_format) and
//! passes it through untouched.
//!
//! Streaming translation works event by event with bounded memory (see
//! [`crate::sse`]); nothing collects a streamed answer.
//!
//! ```
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::__private::translate::request_as_openai;
//!
//! let req = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"m","messages":[]}"#).unwrap();
//! assert_eq!(request_as_openai(&req).unwrap()["model"], "m");
//! ```

pub mod anthropic;
pub mod body;
pub(crate) mod convert;
pub mod gemini;
pub mod ollama;
#[cfg(test)]
mod proptests;
pub mod reasoning;
pub mod responses;
pub mod xml_tools;

use std::borrow::Cow;

use http::Response;
use serde_json::{Map, Value};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{ClientFormat, LlmRequest};

/// The client's request in the pivot (OpenAI Chat Completions) format:
/// borrowed as is for OpenAI clients, translated for Anthropic and
/// Responses clients.
pub fn request_as_openai(request: &LlmRequest) -> Result<Cow<'_, Map<String, Value>>, ProxyError> {
    match request.format() {
        ClientFormat::OpenAi => Ok(Cow::Borrowed(request.body())),
        ClientFormat::Anthropic => anthropic::request_to_openai(request.body()).map(Cow::Owned),
        ClientFormat::Responses => {
            responses::inbound::request_to_openai(request.body()).map(Cow::Owned)
        }
    }
}

/// Turn an answer in the pivot format (a `chat.completion` JSON, a stream of
/// `chat.completion.chunk` events, or an OpenAI error) into the format of
/// `request`'s client.
pub fn answer_to_client(
    request: &LlmRequest,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    match request.format() {
        ClientFormat::OpenAi => response,
        ClientFormat::Anthropic => anthropic::answer_from_openai(response),
        ClientFormat::Responses => responses::inbound::answer_from_openai(request.body(), response),
    }
}

/// The request for `target` in the pivot format: [`request_as_openai`],
/// then, for a backend with `tools = "xml"`, tools and tool history
/// rewritten for XML tool emulation ([`xml_tools::rewrite_request`]).
/// Borrowed when nothing changes.
pub fn pivot_request<'a>(
    request: &'a LlmRequest,
    target: &crate::upstream::Target,
) -> Result<Cow<'a, Map<String, Value>>, ProxyError> {
    let mut body = request_as_openai(request)?;
    let chat = matches!(
        request.endpoint(),
        crate::request::Endpoint::ChatCompletions
            | crate::request::Endpoint::Messages
            | crate::request::Endpoint::Responses
    );
    if let Some(template) = target.backend().tool_mode().template() {
        if chat && xml_tools::needs_rewrite(&body) {
            xml_tools::rewrite_request(body.to_mut(), template);
        }
    }
    Ok(body)
}

/// [`pivot_request`] serialized for `target`, with its model name: the
/// client's bytes re-serialized once when nothing had to change.
pub fn pivot_bytes(
    request: &LlmRequest,
    target: &crate::upstream::Target,
) -> Result<bytes::Bytes, ProxyError> {
    let model = target.upstream_model(request.model());
    // An OpenAI client's request the pivot leaves as it is: the client's
    // bytes (no parse, no serialization).
    let chat = matches!(
        request.endpoint(),
        crate::request::Endpoint::ChatCompletions
    );
    if request.format() == ClientFormat::OpenAi
        && request.is_unedited()
        && !(chat && target.backend().tool_mode().template().is_some())
    {
        return request.to_bytes(Some(model));
    }
    match pivot_request(request, target)? {
        Cow::Borrowed(_) => request.to_bytes(Some(model)),
        Cow::Owned(mut body) => {
            body.insert("model".into(), Value::String(model.to_string()));
            serde_json::to_vec(&body)
                .map(bytes::Bytes::from)
                .map_err(|e| ProxyError::Internal(format!("serializing the upstream request: {e}")))
        }
    }
}
