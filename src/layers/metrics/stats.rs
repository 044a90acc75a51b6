//! The totals kept beside the Prometheus families (which cannot be read
//! back) and the JSON views built from them: [`Metrics::summary`] and
//! [`Metrics::json`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde_json::json;

use super::Metrics;
use crate::classify::AttemptRecord;
use crate::usage::Usage;

/// A backend's totals for the JSON views: attempts, successes, time to the
/// answers' heads, errors by kind, retries and tokens.
#[derive(Debug, Default)]
pub(super) struct BackendTotals {
    total: AtomicU64,
    success: AtomicU64,
    elapsed_nanos: AtomicU64,
    retries: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    /// By [`error_count_key`]: `http_<status>`, `timeout`,
    /// `connection_error`, `stream_error`, `other` (locked only to count
    /// an error).
    errors: Mutex<BTreeMap<Cow<'static, str>, u64>>,
}

impl BackendTotals {
    /// Count one attempt on this backend.
    pub(super) fn count_attempt(&self, a: &AttemptRecord) {
        self.total.fetch_add(1, Relaxed);
        let nanos = u64::try_from(a.elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Relaxed);
        if a.error_kind == "none" {
            self.success.fetch_add(1, Relaxed);
        } else {
            *lock(&self.errors).entry(error_count_key(a)).or_insert(0) += 1;
        }
    }

    pub(super) fn count_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub(super) fn count_tokens(&self, usage: &Usage) {
        self.tokens_in.fetch_add(usage.prompt_tokens, Relaxed);
        self.tokens_out.fetch_add(usage.completion_tokens, Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
#[derive(Debug, Default)]
pub(super) struct ModelTotals {
    requests: AtomicU64,
    /// Answers with status 200, the common one; the others in `statuses`.
    ok: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
    failovers: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
}

impl ModelTotals {
    /// Count one request answered with `status`.
    pub(super) fn count_request(&self, status: u16) {
        self.requests.fetch_add(1, Relaxed);
        if status == 200 {
            self.ok.fetch_add(1, Relaxed);
        } else {
            *lock(&self.statuses).entry(status).or_insert(0) += 1;
        }
    }

    pub(super) fn count_failovers(&self, n: u64) {
        self.failovers.fetch_add(n, Relaxed);
    }

    pub(super) fn count_tokens(&self, usage: &Usage) {
        self.tokens_in.fetch_add(usage.prompt_tokens, Relaxed);
        self.tokens_out.fetch_add(usage.completion_tokens, Relaxed);
    }

    /// The count of each status answered.
    fn statuses(&self) -> BTreeMap<u16, u64> {
        let mut statuses = lock(&self.statuses).clone();
        match self.ok.load(Relaxed) {
            0 => {}
            n => {
                statuses.insert(200, n);
            }
        }
        statuses
    }
}

/// At most this many model names are kept apart in the totals of
/// [`Metrics::summary`] (they are route names, so this only matters for a
/// config with more routes); further ones are counted under `"(other)"`.
pub(super) const MAX_MODELS: usize = 1000;

/// At most this many model and backend pairs keep their series in the
/// registry's table; further ones are resolved at each request.
pub(super) const MAX_PATHS: usize = 10_000;

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
        let models = self.models();
        let mut names: Vec<&String> = models.keys().collect();
        names.sort();
        let (mut requests, mut failovers, mut errors) = (0, 0, 0);
        let (mut tokens_in, mut tokens_out) = (0, 0);
        let mut by_model = serde_json::Map::new();
        for name in names {
            let Some(m) = models.get(name) else { continue };
            let statuses = m.statuses();
            let model_requests = m.requests.load(Relaxed);
            let model_failovers = m.failovers.load(Relaxed);
            let (model_in, model_out) = (m.tokens_in.load(Relaxed), m.tokens_out.load(Relaxed));
            requests += model_requests;
            failovers += model_failovers;
            tokens_in += model_in;
            tokens_out += model_out;
            errors += statuses
                .iter()
                .filter(|(s, _)| **s >= 400)
                .map(|(_, n)| n)
                .sum::<u64>();
            let statuses: serde_json::Map<String, serde_json::Value> = statuses
                .iter()
                .map(|(status, n)| (status.to_string(), json!(n)))
                .collect();
            by_model.insert(
                name.clone(),
                json!({
                    "requests": model_requests,
                    "statuses": statuses,
                    "failovers": model_failovers,
                    "tokens_in": model_in,
                    "tokens_out": model_out,
                }),
            );
        }
        drop(models);
        let backends = self.backends();
        let mut names: Vec<&String> = backends.keys().collect();
        names.sort();
        let mut retries = 0;
        let mut by_backend = serde_json::Map::new();
        for name in names {
            let Some(b) = backends.get(name) else {
                continue;
            };
            retries += b.retries.load(Relaxed);
            by_backend.insert(
                name.clone(),
                json!({
                    "attempts": b.total.load(Relaxed),
                    "successes": b.success.load(Relaxed),
                    "retries": b.retries.load(Relaxed),
                    "errors": &*lock(&b.errors),
                    "tokens_in": b.tokens_in.load(Relaxed),
                    "tokens_out": b.tokens_out.load(Relaxed),
                }),
            );
        }
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
        let mut map = serde_json::Map::new();
        for name in names {
            let Some(s) = backends.get(name) else {
                continue;
            };
            let total = s.total.load(Relaxed);
            let (success, nanos) = (s.success.load(Relaxed), s.elapsed_nanos.load(Relaxed));
            let per = total.max(1) as f64;
            map.insert(
                name.clone(),
                json!({
                    "total_requests": total,
                    "success_rate": if total == 0 { 1.0 } else { success as f64 / per },
                    "avg_response_time": if total == 0 { 0.0 } else { nanos as f64 / 1e9 / per },
                    "error_counts": &*lock(&s.errors),
                    "retries": s.retries.load(Relaxed),
                    "tokens_in": s.tokens_in.load(Relaxed),
                    "tokens_out": s.tokens_out.load(Relaxed),
                }),
            );
        }
        let mut top = map.clone();
        top.insert("backends".into(), serde_json::Value::Object(map));
        serde_json::Value::Object(top)
    }
}
