//! [`Metrics`]: the registry of every llm-router metric, and the recording
//! of one request's upstream attempts.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    latency_histogram, overhead_histogram, BackendLabel, CircuitNames, CostLabels, ErrorLabels,
    Histograms, ModelLabel, RequestLabels, RouteLabels, TargetLabel, TokenLabels,
};
use super::series::{PathSeries, RouteSeries};
use super::stats::{BackendTotals, ModelTotals, MAX_MODELS, MAX_PATHS};
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
    pub(super) backends: Mutex<FastMap<String, Arc<BackendTotals>>>,
    pub(super) models: Mutex<FastMap<String, Arc<ModelTotals>>>,
    /// The series of each model and backend pair served so far (route and
    /// backend names: bounded by the config, and by [`MAX_PATHS`]).
    pub(super) paths: Mutex<FastMap<(String, String), Arc<PathSeries>>>,
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
            paths: Mutex::new(FastMap::default()),
            circuit_targets: Mutex::new(Default::default()),
            circuit_names: Mutex::new(None),
        }
    }

    /// Label circuits by the targets of `routes` (the stack built last).
    pub(super) fn set_routes(&self, routes: &RouteTable) {
        let names = CircuitNames::of(routes);
        *self.circuit_names.lock().unwrap_or_else(|e| e.into_inner()) = Some(names);
    }

    pub(super) fn backends(&self) -> MutexGuard<'_, FastMap<String, Arc<BackendTotals>>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn models(&self) -> MutexGuard<'_, FastMap<String, Arc<ModelTotals>>> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The totals of `model` (`"(other)"` past [`MAX_MODELS`] names).
    pub(super) fn model_totals(&self, model: &str) -> Arc<ModelTotals> {
        let mut models = self.models();
        if let Some(totals) = models.get(model) {
            return totals.clone();
        }
        let name = if models.len() >= MAX_MODELS {
            "(other)"
        } else {
            model
        };
        models.entry(name.to_string()).or_default().clone()
    }

    /// The totals of `backend` (a configured backend's name).
    pub(super) fn backend_totals(&self, backend: &str) -> Arc<BackendTotals> {
        let mut backends = self.backends();
        match backends.get(backend) {
            Some(totals) => totals.clone(),
            None => backends.entry(backend.to_string()).or_default().clone(),
        }
    }

    /// The series of `model` answered by `backend`, made at the first
    /// request of the pair and kept (past [`MAX_PATHS`] pairs, made anew).
    pub(super) fn path_series(&self, model: &str, backend: &str) -> Arc<PathSeries> {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let key = (model.to_string(), backend.to_string());
        if let Some(path) = paths.get(&key) {
            return path.clone();
        }
        let path = Arc::new(PathSeries::new(self, model, backend));
        if paths.len() < MAX_PATHS {
            paths.insert(key, path.clone());
        }
        path
    }

    /// Add `usd` to `llm_router_cost_usd_total` of `model`, `backend` and `key`.
    pub(super) fn count_cost(&self, model: &str, backend: &str, key: String, usd: f64) {
        self.cost
            .get_or_create(&CostLabels {
                model: model.to_string(),
                backend: backend.to_string(),
                key,
            })
            .inc_by(usd);
    }

    /// Count log records dropped by a full log channel.
    pub fn log_records_dropped(&self, n: u64) {
        self.log_dropped.inc_by(n);
    }

    /// Record the attempts of one request of `route` (errors, retries,
    /// failovers, per-backend totals).
    pub(super) fn record_attempts(&self, route: &RouteSeries, attempts: &[AttemptRecord]) {
        let mut failovers = 0;
        let mut previous: Option<(&str, &str)> = None;
        for a in attempts {
            let path = route.path(self, &a.backend);
            path.backend.count_attempt(a);
            if a.error_kind != "none" {
                self.upstream_errors
                    .get_or_create(&ErrorLabels {
                        backend: a.backend.clone(),
                        kind: a.error_kind.to_string(),
                    })
                    .inc();
            }
            match previous {
                Some((b, m)) if b == a.backend && m == a.model => path.count_retry(self),
                Some(_) => {
                    failovers += 1;
                    route.failovers(self).inc();
                }
                None => {}
            }
            previous = Some((&a.backend, &a.model));
        }
        if failovers > 0 {
            route.totals(self).count_failovers(failovers);
        }
    }
}
