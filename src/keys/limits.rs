//! [`KeyRateLimit`]: a virtual key's own `rate_limit`, which `rate_limit`
//! applies to it in place of `[rate_limit]`.

use std::time::Duration;

/// A virtual key's `rate_limit = { requests, window, tokens, concurrency }`:
/// the keys of `[rate_limit]` (but `key`: these count per virtual key). The
/// `rate_limit` layer applies them to this key *instead of* the global
/// per-client limits; what it leaves out is not limited for this key.
///
/// ```
/// use std::time::Duration;
/// use llm_router::layers::auth::KeyRateLimit;
///
/// let limit = KeyRateLimit::new(Some(600), None, Some(20), Duration::from_secs(60)).unwrap();
/// assert_eq!(limit.requests, Some(600));
/// assert!(KeyRateLimit::new(None, None, None, Duration::from_secs(60)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyRateLimit {
    /// Requests per window.
    pub requests: Option<u64>,
    /// Tokens per window (counted from the upstreams' usage).
    pub tokens: Option<u64>,
    /// Requests in flight.
    pub concurrency: Option<u64>,
    /// The window of `requests` and `tokens`.
    pub window: Duration,
}

impl KeyRateLimit {
    /// The window when none is given, as `[rate_limit]`'s.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    /// Check the values: each at least 1, at least one of them, a window
    /// of whole seconds (at least one). The error names the key it is about (empty: the table).
    pub fn new(
        requests: Option<u64>,
        tokens: Option<u64>,
        concurrency: Option<u64>,
        window: Duration,
    ) -> Result<KeyRateLimit, (&'static str, String)> {
        for (name, v) in [
            ("requests", requests),
            ("tokens", tokens),
            ("concurrency", concurrency),
        ] {
            if v == Some(0) {
                return Err((name, "must be at least 1".into()));
            }
        }
        if requests.is_none() && tokens.is_none() && concurrency.is_none() {
            return Err((
                "",
                "sets no limit; give at least one of requests, tokens, concurrency".into(),
            ));
        }
        if window < Duration::from_secs(1) || window.subsec_nanos() != 0 {
            return Err((
                "window",
                "must be a whole number of seconds, at least \"1s\" (Retry-After counts seconds)"
                    .into(),
            ));
        }
        Ok(KeyRateLimit {
            requests,
            tokens,
            concurrency,
            window,
        })
    }

    /// As `/v1/key/info` and `/admin/keys` show it.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "tokens": self.tokens,
            "concurrency": self.concurrency,
            "window": crate::error::humanize(self.window),
        })
    }
}
