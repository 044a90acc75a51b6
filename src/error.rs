//! Typed errors and the one table that turns them into HTTP answers.
//!
//! Every layer and the upstream service fail with a [`ProxyError`]. The error
//! knows its status code, and [`ProxyError::to_response`] renders it in the
//! client's own format: `{"error":{"message","type","code"}}` for OpenAI
//! clients, `{"type":"error","error":{"type","message"}}` for Anthropic ones.
//!
//! ```
//! use http::StatusCode;
//! use llm_router::ProxyError;
//! use llm_router::ClientFormat;
//!
//! let err = ProxyError::ModelNotFound("gpt-5".into());
//! assert_eq!(err.status(), StatusCode::NOT_FOUND);
//! let response = err.to_response(ClientFormat::OpenAi);
//! assert_eq!(response.status(), StatusCode::NOT_FOUND);
//! ```

use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::body::{BoxError, ProxyBody};
use crate::client_format::ClientFormat;

/// Everything that can go wrong between a client and an upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The request is malformed (bad JSON, missing `model`, ...): 400.
    #[error("{message}")]
    BadRequest {
        /// Human-readable reason.
        message: String,
        /// Machine-readable code (`invalid_json`, `missing_model`, ...).
        code: &'static str,
    },
    /// No `[[models]]` entry matches the requested model: 404.
    #[error("The model `{0}` does not exist or is not served by this proxy")]
    ModelNotFound(String),
    /// No endpoint at this path: 404.
    #[error("Unknown endpoint: {method} {path}")]
    UnknownEndpoint {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The endpoint exists but not for this method: 405.
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The request body is larger than `body_limit`: 413.
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The request body sent nothing for `body_read_timeout`: 408.
    #[error("The request body stalled: nothing arrived for {}", humanize(*after))]
    RequestTimeout {
        /// The configured `body_read_timeout`.
        after: Duration,
    },
    /// The upstream could not be reached, or the connection broke before the
    /// response head: 502.
    #[error("Upstream `{backend}` connection error: {source}")]
    UpstreamConnect {
        /// Backend name.
        backend: String,
        /// The underlying cause.
        #[source]
        source: BoxError,
    },
    /// No response head (or no connection) within the backend's timeout: 504.
    #[error("Upstream `{backend}` did not answer within {}", humanize(*after))]
    UpstreamTimeout {
        /// Backend name.
        backend: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// No key, or a key the proxy does not know: 401.
    #[error("{message}")]
    Unauthorized {
        /// Human-readable reason (never the key itself).
        message: String,
        /// `missing_api_key` or `invalid_api_key`.
        code: &'static str,
    },
    /// A valid key without the right to this endpoint (a client key on an
    /// admin endpoint): 403.
    #[error("{message}")]
    Forbidden {
        /// Human-readable reason (never the key itself).
        message: String,
        /// `admin_key_required`, ...
        code: &'static str,
    },
    /// A virtual key asked for a model outside its `models`: 403
    /// `model_not_allowed`.
    #[error("The API key `{key}` may not use the model `{model}`")]
    ModelNotAllowed {
        /// The model asked for.
        model: String,
        /// The virtual key's name.
        key: String,
    },
    /// A client is over its rate limit: 429.
    #[error("{message}")]
    RateLimited {
        /// What limit was hit.
        message: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// A client's budget has no room for this request's reservation: 429
    /// `budget_exceeded`, with `Retry-After` until it has (the period's
    /// reset, at the latest).
    #[error("{message}")]
    BudgetExceeded {
        /// Which budget, and how much of it is spent and reserved.
        message: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// A client with a dollar budget asked for a model without a price (its
    /// cost could not be counted): 400 `model_not_priced`.
    #[error("The model `{model}` has no price, so the dollar budget of {budget} cannot count its cost; add its price to [pricing] or use a priced model")]
    ModelNotPriced {
        /// The model asked for.
        model: String,
        /// Whose budget (`key:<name>`, `group:<key>=<value>`).
        budget: String,
    },
    /// A target's circuit is open; the call was refused without touching it: 503.
    #[error("The circuit of `{target}` is open")]
    CircuitOpen {
        /// `backend/model`.
        target: String,
        /// When a probe may go through.
        retry_after: Duration,
    },
    /// A target is cooling down after a 429: 503.
    #[error("`{target}` is cooling down after a rate limit")]
    CoolingDown {
        /// `backend/model`.
        target: String,
        /// When it comes back.
        retry_after: Duration,
    },
    /// A backend's own rate limit is exhausted: 503.
    #[error("The rate limit of backend `{backend}` is exhausted")]
    BackendRateLimited {
        /// Backend name.
        backend: String,
        /// When it has room again.
        retry_after: Duration,
    },
    /// A streamed answer failed before its first content event: 502.
    #[error("Upstream `{backend}` stream failed before any content: {reason}")]
    StreamFailed {
        /// Backend name.
        backend: String,
        /// What happened.
        reason: String,
    },
    /// Every target is unavailable (circuit open, cooling down, limit exhausted): 503.
    #[error("No target of model `{model}` is available right now")]
    Unavailable {
        /// The requested model.
        model: String,
        /// When the earliest target is expected back.
        retry_after: Option<Duration>,
    },
    /// A bug or an impossible state; never expected: 500.
    #[error("Internal proxy error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// A 400 with the given code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ProxyError::BadRequest {
            message: message.into(),
            code,
        }
    }

    /// The HTTP status code the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::ModelNotFound(_) | ProxyError::UnknownEndpoint { .. } => {
                StatusCode::NOT_FOUND
            }
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden { .. } | ProxyError::ModelNotAllowed { .. } => {
                StatusCode::FORBIDDEN
            }
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamConnect { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RateLimited { .. } | ProxyError::BudgetExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProxyError::ModelNotPriced { .. } => StatusCode::BAD_REQUEST,
            ProxyError::StreamFailed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Unavailable { .. }
            | ProxyError::CircuitOpen { .. }
            | ProxyError::CoolingDown { .. }
            | ProxyError::BackendRateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI-style `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest { code, .. }
            | ProxyError::Unauthorized { code, .. }
            | ProxyError::Forbidden { code, .. } => code,
            ProxyError::ModelNotFound(_) => "model_not_found",
            ProxyError::ModelNotAllowed { .. } => "model_not_allowed",
            ProxyError::UnknownEndpoint { .. } => "unknown_url",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::PayloadTooLarge { .. } => "request_too_large",
            ProxyError::RequestTimeout { .. } => "request_timeout",
            ProxyError::UpstreamConnect { .. } => "upstream_connection_error",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::BudgetExceeded { .. } => "budget_exceeded",
            ProxyError::ModelNotPriced { .. } => "model_not_priced",
            ProxyError::StreamFailed { .. } => "upstream_stream_error",
            ProxyError::CircuitOpen { .. } => "circuit_open",
            ProxyError::CoolingDown { .. } => "target_cooling_down",
            ProxyError::BackendRateLimited { .. } => "backend_rate_limited",
            ProxyError::Unavailable { .. } => "no_target_available",
            ProxyError::Internal(_) => "internal_error",
        }
    }

    /// The `Retry-After` the answer should carry, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::Unavailable { retry_after, .. } => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            ProxyError::RateLimited { retry_after, .. }
            | ProxyError::BudgetExceeded { retry_after, .. }
            | ProxyError::CircuitOpen { retry_after, .. }
            | ProxyError::CoolingDown { retry_after, .. }
            | ProxyError::BackendRateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Render this error as a complete HTTP answer in the client's format.
    pub fn to_response(&self, format: ClientFormat) -> Response<ProxyBody> {
        let status = self.status();
        let mut response = error_response(status, format, self.code(), &self.to_string());
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let ProxyError::Unauthorized { .. } = self {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"llm-router\""),
            );
        }
        response
    }
}

/// The OpenAI error `type` for a status code.
pub fn openai_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "invalid_request_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// The Anthropic error `type` for a status code.
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// Build an error answer in the client's format.
///
/// ```
/// use http::StatusCode;
/// use llm_router::__private::error::error_response;
/// use llm_router::ClientFormat;
///
/// let r = error_response(StatusCode::BAD_REQUEST, ClientFormat::Anthropic, "invalid_json", "bad");
/// assert_eq!(r.status(), StatusCode::BAD_REQUEST);
/// ```
pub fn error_response(
    status: StatusCode,
    format: ClientFormat,
    code: &str,
    message: &str,
) -> Response<ProxyBody> {
    let body = match format {
        ClientFormat::OpenAi | ClientFormat::Responses => json!({
            "error": {
                "message": message,
                "type": openai_error_type(status),
                "param": null,
                "code": code,
            }
        }),
        ClientFormat::Anthropic => json!({
            "type": "error",
            "error": {
                "type": anthropic_error_type(status),
                "message": message,
            }
        }),
    };
    json_response(status, &body)
}

/// A JSON answer with the given status.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(ProxyBody::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// "1.5s", "250ms", "2m" — the same form the config uses.
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(r: Response<ProxyBody>) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn openai_shape() {
        let r = ProxyError::ModelNotFound("x".into()).to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 404);
        let v = body_json(r).await;
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("`x`"));
    }

    #[tokio::test]
    async fn anthropic_shape() {
        let r = ProxyError::PayloadTooLarge { limit: 10 }.to_response(ClientFormat::Anthropic);
        assert_eq!(r.status(), 413);
        let v = body_json(r).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "request_too_large");
    }

    #[tokio::test]
    async fn unauthorized_in_both_formats() {
        let e = || ProxyError::Unauthorized {
            message: "Invalid API key".into(),
            code: "invalid_api_key",
        };
        let r = e().to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let v = body_json(r).await;
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["message"], "Invalid API key");

        let r = e().to_response(ClientFormat::Anthropic);
        assert_eq!(r.status(), 401);
        let v = body_json(r).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["message"], "Invalid API key");
    }

    #[tokio::test]
    async fn forbidden_in_both_formats() {
        let e = || ProxyError::Forbidden {
            message: "admin key required".into(),
            code: "admin_key_required",
        };
        let r = e().to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 403);
        let v = body_json(r).await;
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["code"], "admin_key_required");
        let v = body_json(e().to_response(ClientFormat::Anthropic)).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
    }

    #[tokio::test]
    async fn model_not_allowed_in_both_formats() {
        let e = || ProxyError::ModelNotAllowed {
            model: "gpt-4o".into(),
            key: "team-a".into(),
        };
        let r = e().to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 403);
        let v = body_json(r).await;
        assert_eq!(v["error"]["code"], "model_not_allowed");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("`gpt-4o`"));
        let v = body_json(e().to_response(ClientFormat::Anthropic)).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("`team-a`"));
    }

    #[tokio::test]
    async fn budget_errors_in_both_formats() {
        let e = || ProxyError::BudgetExceeded {
            message: "Budget exceeded".into(),
            retry_after: Duration::from_secs(3600),
        };
        let r = e().to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3600");
        let v = body_json(r).await;
        assert_eq!(v["error"]["code"], "budget_exceeded");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        let r = e().to_response(ClientFormat::Anthropic);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3600");
        let v = body_json(r).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");

        let e = ProxyError::ModelNotPriced {
            model: "m".into(),
            budget: "key:team-a".into(),
        };
        assert_eq!(e.status(), 400);
        assert_eq!(e.retry_after(), None);
        let v = body_json(e.to_response(ClientFormat::OpenAi)).await;
        assert_eq!(v["error"]["code"], "model_not_priced");
        assert!(v["error"]["message"].as_str().unwrap().contains("`m`"));
    }

    #[test]
    fn unavailable_sets_retry_after_rounded_up() {
        let e = ProxyError::Unavailable {
            model: "m".into(),
            retry_after: Some(Duration::from_millis(1500)),
        };
        let r = e.to_response(ClientFormat::OpenAi);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn statuses() {
        let timeout = ProxyError::UpstreamTimeout {
            backend: "b".into(),
            after: Duration::from_secs(2),
        };
        assert_eq!(timeout.status(), 504);
        assert!(timeout.to_string().contains("2s"));
        let connect = ProxyError::UpstreamConnect {
            backend: "b".into(),
            source: "refused".into(),
        };
        assert_eq!(connect.status(), 502);
    }

    #[tokio::test]
    async fn request_timeout_in_both_formats() {
        let e = ProxyError::RequestTimeout {
            after: Duration::from_secs(30),
        };
        assert_eq!(e.status(), 408);
        assert_eq!(e.code(), "request_timeout");
        let v = body_json(e.to_response(ClientFormat::OpenAi)).await;
        assert_eq!(v["error"]["code"], "request_timeout");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("30s"));
        let v = body_json(e.to_response(ClientFormat::Anthropic)).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}
