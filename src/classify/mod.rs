//! What an attempt's result means — shared by retry, the circuit breaker and
//! failover, so the three always agree on what counts as a failure.
//!
//! ```
//! use std::time::Duration;
//! use http::HeaderMap;
//! use llm_router::__private::classify::retry_after;
//!
//! let mut h = HeaderMap::new();
//! h.insert("retry-after", "7".parse().unwrap());
//! assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
//! ```

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Response, StatusCode};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::usage::{Cost, Usage, UsageSlot};

mod retry_policy;

pub use retry_policy::RetryPolicy;

/// One attempt's result, as the resilience layers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx (a stream that reached its first content event).
    Success,
    /// A 4xx other than 429: the request is at fault; never retried.
    ClientError,
    /// A 429 from the upstream.
    RateLimited,
    /// A 5xx from the upstream.
    ServerError,
    /// The upstream could not be reached, or broke before its first content.
    ConnectionError,
    /// No response head, or no first content, in time.
    Timeout,
    /// The target was not tried (circuit open, cooling down, backend limit).
    Skipped,
    /// Anything else the proxy itself refused (bad request, internal).
    Refused,
}

impl Outcome {
    /// Classify an attempt.
    pub fn of(result: &Result<Response<ProxyBody>, ProxyError>) -> Outcome {
        match result {
            Ok(r) => Outcome::of_status(r.status()),
            Err(e) => Outcome::of_error(e),
        }
    }

    /// Classify a status code.
    pub fn of_status(status: StatusCode) -> Outcome {
        match status.as_u16() {
            429 => Outcome::RateLimited,
            400..=499 => Outcome::ClientError,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }

    /// Classify an error.
    pub fn of_error(error: &ProxyError) -> Outcome {
        match error {
            ProxyError::UpstreamConnect { .. } | ProxyError::StreamFailed { .. } => {
                Outcome::ConnectionError
            }
            ProxyError::UpstreamTimeout { .. } => Outcome::Timeout,
            ProxyError::CircuitOpen { .. }
            | ProxyError::CoolingDown { .. }
            | ProxyError::BackendRateLimited { .. }
            | ProxyError::Unavailable { .. } => Outcome::Skipped,
            _ => Outcome::Refused,
        }
    }

    /// Whether the circuit breaker counts it as a failure (5xx, connection
    /// errors, timeouts; a 429 is not one).
    pub fn is_breaker_failure(self) -> bool {
        matches!(
            self,
            Outcome::ServerError | Outcome::ConnectionError | Outcome::Timeout
        )
    }
}

/// The upstream's `Retry-After`, in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The status an attempt gave, for retry-on / failover-on lists.
pub fn status_of(result: &Result<Response<ProxyBody>, ProxyError>) -> Option<StatusCode> {
    result.as_ref().ok().map(Response::status)
}

/// Phrases providers use for "the prompt does not fit the context window".
const CONTEXT_EXCEEDED: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "input is too long",
    "too many tokens",
];

/// Whether an error body says the context length was exceeded.
pub fn is_context_exceeded(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_lowercase();
    CONTEXT_EXCEEDED.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_phrases() {
        assert!(is_context_exceeded(
            br#"{"error":{"code":"context_length_exceeded"}}"#
        ));
        assert!(is_context_exceeded(br#"{"type":"error","error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#));
        assert!(is_context_exceeded(b"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."));
        assert!(!is_context_exceeded(
            br#"{"error":{"code":"content_policy_violation"}}"#
        ));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "1.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let future = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(future).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses() {
        assert_eq!(Outcome::of_status(StatusCode::OK), Outcome::Success);
        assert_eq!(
            Outcome::of_status(StatusCode::TOO_MANY_REQUESTS),
            Outcome::RateLimited
        );
        assert_eq!(
            Outcome::of_status(StatusCode::BAD_REQUEST),
            Outcome::ClientError
        );
        assert_eq!(
            Outcome::of_status(StatusCode::BAD_GATEWAY),
            Outcome::ServerError
        );
        assert!(!Outcome::RateLimited.is_breaker_failure());
        assert!(Outcome::Timeout.is_breaker_failure());
    }
}

/// Put into an attempt's extensions by the split point when another target
/// is left after this one (absent: none is). Retry uses it to leave a
/// timed-out target to failover instead of waiting on it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Another target (or a context fallback) would be tried after this one.
    pub others_left: bool,
}

/// A request kept for replay: everything but the body, which is empty after
/// the parse (the parsed body is in the extensions).
#[derive(Clone, Debug, Default)]
pub struct Replay {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
    extensions: http::Extensions,
}

impl Replay {
    /// Keep `req` for replay (its body is dropped).
    pub fn new<B>(req: http::Request<B>) -> Self {
        Replay::from_parts(req.into_parts().0)
    }

    /// Keep a request's parts for replay.
    ///
    /// ```
    /// use llm_router::__private::classify::Replay;
    ///
    /// let (parts, _body) = http::Request::post("/v1/chat/completions").body(()).unwrap().into_parts();
    /// let again: http::Request<()> = Replay::from_parts(parts).into_request();
    /// assert_eq!(again.uri(), "/v1/chat/completions");
    /// ```
    pub fn from_parts(parts: http::request::Parts) -> Self {
        Replay {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
        }
    }

    /// The extensions, to edit before the next [`build`](Replay::build).
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    /// The extensions.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// The kept request itself, with an empty body (no copy): for the last
    /// attempt.
    pub fn into_request<B: Default>(self) -> http::Request<B> {
        let mut req = http::Request::new(B::default());
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        *req.extensions_mut() = self.extensions;
        req
    }

    /// A fresh copy of the request with an empty body.
    pub fn build<B: Default>(&self) -> http::Request<B> {
        let mut req = http::Request::new(B::default());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        *req.extensions_mut() = self.extensions.clone();
        req
    }
}

/// One call to an upstream, as the upstream edge records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Backend name.
    pub backend: String,
    /// The model asked for there.
    pub model: String,
    /// What came of it.
    pub outcome: Outcome,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    /// `connect`, `timeout`, `stream`, `status_429`, `status_5xx`, or `none`.
    pub error_kind: &'static str,
    /// Time until the answer's head (first content, for a stream).
    pub elapsed: std::time::Duration,
    /// The attempt's usage slot, when a layer wanted usage. For an attempt
    /// that did not answer — an error answer retried or failed over (a JSON
    /// one is read, bounded, for its `usage`), a stream that broke before
    /// its first content — it holds what the upstream reported: see
    /// [`failed_usage`](Self::failed_usage).
    pub usage: Option<UsageSlot>,
}

impl AttemptRecord {
    /// The usage this attempt's upstream reported, unless it is the
    /// attempt that answered (whose slot is `answer`: that answer is charged
    /// by its slot's rule). Nothing reported, nothing charged.
    ///
    /// ```
    /// use llm_router::__private::classify::{AttemptRecord, Outcome};
    /// use llm_router::__private::usage::{Usage, UsageSlot};
    ///
    /// let failed = UsageSlot::default();
    /// failed.set(Usage { prompt_tokens: 12, ..Usage::default() });
    /// let record = AttemptRecord {
    ///     backend: "b".into(), model: "m".into(), outcome: Outcome::ServerError,
    ///     status: Some(500), error_kind: "status_5xx", elapsed: Default::default(),
    ///     usage: Some(failed.clone()),
    /// };
    /// let answer = UsageSlot::default();
    /// assert_eq!(record.failed_usage(Some(&answer)).unwrap().prompt_tokens, 12);
    /// // The attempt that answered is not one that failed.
    /// assert_eq!(record.failed_usage(Some(&failed)), None);
    /// ```
    pub fn failed_usage(&self, answer: Option<&UsageSlot>) -> Option<Usage> {
        let slot = self.usage.as_ref()?;
        if answer == Some(slot) {
            return None;
        }
        slot.reported()
    }

    /// The cost of [`failed_usage`](Self::failed_usage) at the price of the
    /// model this attempt was sent to, when it has one.
    pub fn failed_cost(&self, answer: Option<&UsageSlot>) -> Option<Cost> {
        let price = self.usage.as_ref()?.price()?;
        Some(price.cost(&self.failed_usage(answer)?))
    }
}

/// What the attempts that did not answer cost (see
/// [`AttemptRecord::failed_usage`]), added to the cost of the answer whose
/// slot is `answer`: the cost of the whole request, `None` when no part of
/// it has a known cost.
pub fn request_cost(attempts: &[AttemptRecord], answer: Option<&UsageSlot>) -> Option<Cost> {
    attempts
        .iter()
        .filter_map(|a| a.failed_cost(answer))
        .chain(answer.and_then(UsageSlot::cost))
        .reduce(Cost::saturating_add)
}

/// The error kind label of an attempt's result.
pub fn error_kind(result: &Result<Response<ProxyBody>, ProxyError>) -> &'static str {
    match result {
        Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => "status_429",
        Ok(r) if r.status().is_server_error() => "status_5xx",
        Ok(r) if r.status().is_client_error() => "status_4xx",
        Ok(_) => "none",
        Err(ProxyError::UpstreamTimeout { .. }) => "timeout",
        Err(ProxyError::StreamFailed { .. }) => "stream",
        Err(ProxyError::UpstreamConnect { .. }) => "connect",
        Err(_) => "refused",
    }
}

/// Marks an answer the proxy itself refused, by the layer that refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectedBy(pub &'static str);
