//! The totals kept beside the Prometheus families (which cannot be read
//! back) and the JSON views built from them: [`Metrics::summary`] and
//! [`Metrics::json`].

use serde_json::json;

use super::Metrics;
use crate::classify::AttemptRecord;

#[derive(Clone, Debug, Default)]
pub(super) struct BackendStats {
    pub(super) total: u64,
    pub(super) success: u64,
    pub(super) total_secs: f64,
    /// By [`error_count_key`]: `http_<status>`, `timeout`,
    /// `connection_error`, `stream_error`, `other`.
    pub(super) errors: std::collections::BTreeMap<std::borrow::Cow<'static, str>, u64>,
    pub(super) retries: u64,
    pub(super) tokens_in: u64,
    pub(super) tokens_out: u64,
}

/// The `error_counts` key of a failed attempt: `http_<status>` when the
/// upstream answered (statuses are three digits, so the keys are bounded),
/// else the kind of failure.
pub(super) fn error_count_key(a: &AttemptRecord) -> std::borrow::Cow<'static, str> {
    match (a.error_kind, a.status) {
        ("timeout", _) => "timeout".into(),
        ("connect", _) => "connection_error".into(),
        ("stream", _) => "stream_error".into(),
        (_, Some(status)) => format!("http_{status}").into(),
        _ => "other".into(),
    }
}

/// Per-model totals for `GET /router/stats` (Prometheus families cannot be
/// read back).
#[derive(Clone, Debug, Default)]
pub(super) struct ModelStats {
    pub(super) requests: u64,
    pub(super) statuses: std::collections::BTreeMap<u16, u64>,
    pub(super) failovers: u64,
    pub(super) tokens_in: u64,
    pub(super) tokens_out: u64,
}

/// At most this many model names are kept apart in the totals of
/// [`Metrics::summary`] (they are route names, so this only matters for a
/// config with more routes); further ones are counted under `"(other)"`.
pub(super) const MAX_MODELS: usize = 1000;

impl Metrics {
    /// Totals since start (config reloads keep them): requests and statuses
    /// per model, attempts, retries and errors per backend, failovers,
    /// client rate-limit rejections and tokens — what `GET /router/stats`
    /// shows.
    ///
    /// ```
    /// use llm_router::layers::metrics::Metrics;
    ///
    /// let summary = Metrics::new().summary();
    /// assert_eq!(summary["requests"], 0);
    /// assert_eq!(summary["rate_limit_rejections"], 0);
    /// ```
    pub fn summary(&self) -> serde_json::Value {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = models.keys().collect();
        names.sort();
        let by_model: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let m = &models[name];
                let statuses: serde_json::Map<String, serde_json::Value> = m
                    .statuses
                    .iter()
                    .map(|(status, n)| (status.to_string(), json!(n)))
                    .collect();
                (
                    name.clone(),
                    json!({
                        "requests": m.requests,
                        "statuses": statuses,
                        "failovers": m.failovers,
                        "tokens_in": m.tokens_in,
                        "tokens_out": m.tokens_out,
                    }),
                )
            })
            .collect();
        let sum = |f: fn(&ModelStats) -> u64| models.values().map(f).sum::<u64>();
        let (requests, failovers) = (sum(|m| m.requests), sum(|m| m.failovers));
        let (tokens_in, tokens_out) = (sum(|m| m.tokens_in), sum(|m| m.tokens_out));
        let errors = sum(|m| {
            m.statuses
                .iter()
                .filter(|(s, _)| **s >= 400)
                .map(|(_, n)| n)
                .sum()
        });
        drop(models);
        let backends = self.backends();
        let mut names: Vec<&String> = backends.keys().collect();
        names.sort();
        let by_backend: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let b = &backends[name];
                (
                    name.clone(),
                    json!({
                        "attempts": b.total,
                        "successes": b.success,
                        "retries": b.retries,
                        "errors": b.errors,
                        "tokens_in": b.tokens_in,
                        "tokens_out": b.tokens_out,
                    }),
                )
            })
            .collect();
        let retries: u64 = backends.values().map(|b| b.retries).sum();
        json!({
            "requests": requests,
            "errors": errors,
            "retries": retries,
            "failovers": failovers,
            "rate_limit_rejections": self.rate_limited.get(),
            "tokens": {"in": tokens_in, "out": tokens_out},
            "models": by_model,
            "backends": by_backend,
        })
    }

    /// Per backend: `total_requests`, `success_rate`, `avg_response_time`
    /// (seconds, to the answer's head) and `error_counts` by kind
    /// (`http_<status>`, `timeout`, `connection_error`, `stream_error`,
    /// `other`), keyed by backend name at the top level (the shape other
    /// routers' dashboards read) and, the same, under `"backends"` (which
    /// a backend of that name cannot shadow).
    pub fn json(&self) -> serde_json::Value {
        let backends = self.backends();
        let mut names: Vec<&String> = backends.keys().collect();
        names.sort();
        let map: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let s = &backends[name];
                let total = s.total.max(1) as f64;
                (
                    name.clone(),
                    json!({
                        "total_requests": s.total,
                        "success_rate": if s.total == 0 { 1.0 } else { s.success as f64 / total },
                        "avg_response_time": if s.total == 0 { 0.0 } else { s.total_secs / total },
                        "error_counts": s.errors,
                        "retries": s.retries,
                        "tokens_in": s.tokens_in,
                        "tokens_out": s.tokens_out,
                    }),
                )
            })
            .collect();
        let mut top = map.clone();
        top.insert("backends".into(), serde_json::Value::Object(map));
        serde_json::Value::Object(top)
    }
}
