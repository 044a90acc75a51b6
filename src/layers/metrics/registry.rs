//! [`Metrics`]: the registry of every llm-router metric, and the recording
//! of one request's upstream attempts.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    latency_histogram, overhead_histogram, BackendLabel, CircuitNames, CostLabels, ErrorLabels,
    Histograms, ModelLabel, RequestLabels, RouteLabels, TargetLabel, TokenLabels,
};
use super::stats::{error_count_key, BackendStats, ModelStats, MAX_MODELS};
use crate::classify::AttemptRecord;
use crate::routing::RouteTable;
use crate::FastMap;

/// The metrics registry. See the [module docs](crate::layers::metrics).
pub struct Metrics {
    pub(super) registry: Registry,
    pub(super) requests: Family<RequestLabels, Counter>,
    pub(super) latency: Histograms<RouteLabels>,
    pub(super) ttfb: Histograms<RouteLabels>,
    pub(super) overhead: Histogram,
    pub(super) upstream_errors: Family<ErrorLabels, Counter>,
    pub(super) retries: Family<BackendLabel, Counter>,
    pub(super) failovers: Family<ModelLabel, Counter>,
    pub(super) circuit_state: Family<TargetLabel, Gauge>,
    pub(super) rate_limited: Counter,
    pub(super) tokens: Family<TokenLabels, Counter>,
    pub(super) cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    pub(super) log_dropped: Counter,
    pub(super) backends: Mutex<FastMap<String, BackendStats>>,
    pub(super) models: Mutex<FastMap<String, ModelStats>>,
    /// The targets `circuit_state` has a series for (a circuit dropped by a
    /// config reload loses its series at the next scrape).
    pub(super) circuit_targets: Mutex<std::collections::HashSet<String>>,
    /// How circuits are labelled; `None` until a layer is given routes.
    pub(super) circuit_names: Mutex<Option<CircuitNames>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every llm-router metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("llm_router");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests by model, answering backend and status",
            requests.clone(),
        );
        let latency: Histograms<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time until the answer's last byte",
            latency.clone(),
        );
        let ttfb: Histograms<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "time_to_first_byte_seconds",
            "Time until the answer's head (a stream's first content)",
            ttfb.clone(),
        );
        let overhead = overhead_histogram();
        registry.register(
            "overhead_seconds",
            "Time spent in the proxy itself, upstream waits excluded",
            overhead.clone(),
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream attempts by backend and kind",
            upstream_errors.clone(),
        );
        let retries = Family::<BackendLabel, Counter>::default();
        registry.register(
            "retries",
            "Attempts repeated on the same backend",
            retries.clone(),
        );
        let failovers = Family::<ModelLabel, Counter>::default();
        registry.register(
            "failovers",
            "Moves to another target of a model",
            failovers.clone(),
        );
        let circuit_state = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "circuit_state",
            "Circuit per target: 0 closed, 1 half-open, 2 open",
            circuit_state.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limit_rejections",
            "Requests refused by a client rate limit",
            rate_limited.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens by model, backend and direction (in, out), from upstream usage",
            tokens.clone(),
        );
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Cost of the answers in USD by model, backend and key name, from upstream usage and the price catalog",
            cost.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "log_records_dropped",
            "Log records dropped because the writer fell behind",
            log_dropped.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            ttfb,
            overhead,
            upstream_errors,
            retries,
            failovers,
            circuit_state,
            rate_limited,
            tokens,
            cost,
            log_dropped,
            backends: Mutex::new(FastMap::default()),
            models: Mutex::new(FastMap::default()),
            circuit_targets: Mutex::new(Default::default()),
            circuit_names: Mutex::new(None),
        }
    }

    /// Label circuits by the targets of `routes` (the stack built last).
    pub(super) fn set_routes(&self, routes: &RouteTable) {
        let names = CircuitNames::of(routes);
        *self.circuit_names.lock().unwrap_or_else(|e| e.into_inner()) = Some(names);
    }

    pub(super) fn backends(&self) -> MutexGuard<'_, FastMap<String, BackendStats>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn with_model(&self, model: &str, f: impl FnOnce(&mut ModelStats)) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let name = if models.len() >= MAX_MODELS && !models.contains_key(model) {
            "(other)"
        } else {
            model
        };
        f(models.entry(name.to_string()).or_default());
    }

    /// Count `usage`'s tokens for `model` at `backend`: the token counter,
    /// and the model's and the backend's stats.
    pub(super) fn count_tokens(&self, model: &str, backend: &str, usage: &crate::usage::Usage) {
        self.with_model(model, |s| {
            s.tokens_in += usage.prompt_tokens;
            s.tokens_out += usage.completion_tokens;
        });
        if let Some(b) = self.backends().get_mut(backend) {
            b.tokens_in += usage.prompt_tokens;
            b.tokens_out += usage.completion_tokens;
        }
        for (direction, n) in [
            ("in", usage.prompt_tokens),
            ("out", usage.completion_tokens),
        ] {
            self.tokens
                .get_or_create(&super::labels::TokenLabels {
                    model: model.to_string(),
                    backend: backend.to_string(),
                    direction: direction.into(),
                })
                .inc_by(n);
        }
    }

    /// Count log records dropped by a full log channel.
    pub fn log_records_dropped(&self, n: u64) {
        self.log_dropped.inc_by(n);
    }

    /// Record the attempts of one request (errors, retries, failovers, per-backend stats).
    pub(super) fn record_attempts(&self, model: &str, attempts: &[AttemptRecord]) {
        let mut backends = self.backends();
        let mut failovers = 0;
        let mut previous: Option<(&str, &str)> = None;
        for a in attempts {
            let stats = backends.entry(a.backend.clone()).or_default();
            stats.total += 1;
            stats.total_secs += a.elapsed.as_secs_f64();
            if a.error_kind == "none" {
                stats.success += 1;
            } else {
                *stats.errors.entry(error_count_key(a)).or_insert(0) += 1;
                self.upstream_errors
                    .get_or_create(&ErrorLabels {
                        backend: a.backend.clone(),
                        kind: a.error_kind.to_string(),
                    })
                    .inc();
            }
            match previous {
                Some((b, m)) if b == a.backend && m == a.model => {
                    stats.retries += 1;
                    self.retries
                        .get_or_create(&BackendLabel {
                            backend: a.backend.clone(),
                        })
                        .inc();
                }
                Some(_) => {
                    failovers += 1;
                    self.failovers
                        .get_or_create(&ModelLabel {
                            model: model.to_string(),
                        })
                        .inc();
                }
                None => {}
            }
            previous = Some((&a.backend, &a.model));
        }
        drop(backends);
        self.with_model(model, |m| m.failovers += failovers);
    }
}
