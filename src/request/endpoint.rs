//! [`Endpoint`]: the client API endpoints and their paths; [`UnknownPath`],
//! the mark of a request for a path that is none of them.

use super::ClientFormat;
#[cfg(doc)]
use super::LlmRequest;
use crate::error::ProxyError;

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
    /// use llm_router::Endpoint;
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

/// The format a request's errors are rendered in: its parsed body's, else
/// its path's ([`error_format_of_path`]).
pub fn error_format_of<B>(req: &http::Request<B>) -> ClientFormat {
    match req.extensions().get::<super::LlmRequest>() {
        Some(llm) => llm.format(),
        None => error_format_of_path(req.uri().path()),
    }
}

/// The format errors for `path` are rendered in before its body is parsed:
/// Anthropic's for the `/anthropic` paths and `/v1/messages` (and below),
/// OpenAI's for every other path.
///
/// ```
/// use llm_router::{ClientFormat, __private::request::error_format_of_path};
/// assert_eq!(error_format_of_path("/v1/messages/count_tokens"), ClientFormat::Anthropic);
/// assert_eq!(error_format_of_path("/v1/responses"), ClientFormat::OpenAi);
/// ```
pub fn error_format_of_path(path: &str) -> ClientFormat {
    if path.starts_with("/anthropic") || path.starts_with("/v1/messages") {
        ClientFormat::Anthropic
    } else {
        ClientFormat::OpenAi
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

/// The error of a request that reached `layer` without an [`LlmRequest`]:
/// 404 for a path that is no endpoint ([`UnknownPath`]),
/// else an internal error.
pub fn without_request(extensions: &http::Extensions, layer: &str) -> ProxyError {
    match extensions.get::<UnknownPath>() {
        Some(unknown) => unknown.error(),
        None => ProxyError::Internal(format!("the request reached {layer} without a parsed body")),
    }
}
