//! `metrics`: Prometheus metrics of every request, and the per-backend JSON
//! summary of `GET /metrics` with `Accept: application/json`.
//!
//! Recorded per client request: requests by model, backend and status; total
//! latency (until the answer's last byte), time to first byte (the answer's
//! head — for a stream, its first content event) and the proxy's own overhead
//! as histograms; tokens in and out from the upstream's usage (streamed
//! answers included); rate-limit rejections. Per upstream attempt (from the
//! [`AttemptLog`] the upstream edge fills): upstream errors by kind, retries
//! and failovers. At scrape time: each circuit's state. The log layer's dropped
//! records are counted through [`Metrics::log_records_dropped`].
//!
//! **Bounded labels.** Every label value comes from the config, never from
//! what a client sent, so `/metrics` stays the same size whatever clients
//! send: `model` is the name of the configured route that served the request
//! (`"gpt-4o"`, a pattern such as `"gpt-*"`, or `"*"`), or `"(unknown)"` when
//! no route matches (or the layer was given no [`RouteTable`], see
//! [`MetricsLayer::with_routes`]); `backend` is a configured backend's name.
//! A circuit of a target whose upstream model is the client's name (a target
//! without `model` under a pattern or `"*"` route) is shown as
//! `backend/*`, the worst state among them.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::layers::metrics::{Metrics, MetricsLayer};
//! use llm_router::routing::RouteTable;
//!
//! let metrics = Arc::new(Metrics::new());
//! let routes = Arc::new(RouteTable::new(Vec::new()));
//! let _layer = MetricsLayer::new(metrics.clone()).with_routes(routes);
//! let text = metrics.encode(None);
//! assert!(text.contains("llm_router_rate_limit_rejections_total 0"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body::{BoxError, ProxyBody};
use crate::classify::{AttemptLog, AttemptRecord, RejectedBy};
use crate::error::ProxyError;
use crate::layers::circuit_breaker::Breakers;
use crate::request::LlmRequest;
use crate::routing::{ModelRoute, RouteTable};
use crate::timing::Waited;
use crate::usage::UsageSlot;
use crate::FastMap;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: String,
    backend: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    model: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    backend: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    backend: String,
    direction: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn overhead_histogram() -> Histogram {
    // 10 µs .. ~80 ms
    Histogram::new(exponential_buckets(0.000_01, 2.0, 14))
}

#[derive(Clone, Debug, Default)]
struct BackendStats {
    total: u64,
    success: u64,
    total_secs: f64,
    /// By [`error_count_key`]: `http_<status>`, `timeout`,
    /// `connection_error`, `stream_error`, `other`.
    errors: std::collections::BTreeMap<std::borrow::Cow<'static, str>, u64>,
    retries: u64,
    tokens_in: u64,
    tokens_out: u64,
}

/// The `error_counts` key of a failed attempt: `http_<status>` when the
/// upstream answered (statuses are three digits, so the keys are bounded),
/// else the kind of failure.
fn error_count_key(a: &AttemptRecord) -> std::borrow::Cow<'static, str> {
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
struct ModelStats {
    requests: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
    failovers: u64,
    tokens_in: u64,
    tokens_out: u64,
}

/// At most this many model names are kept apart in the totals of
/// [`Metrics::summary`] (they are route names, so this only matters for a
/// config with more routes); further ones are counted under `"(other)"`.
const MAX_MODELS: usize = 1000;

/// The `model` label of a request that matched no configured route.
pub const UNKNOWN_MODEL: &str = "(unknown)";

/// What the circuits' labels are drawn from: the targets of the routes of
/// the stack built last (see [`MetricsLayer::with_routes`]).
#[derive(Debug, Default)]
struct CircuitNames {
    /// Target keys (`backend/model`) with a configured upstream model.
    fixed: std::collections::HashSet<String>,
    /// The backends' names, longest first.
    backends: Vec<String>,
}

impl CircuitNames {
    fn of(routes: &RouteTable) -> Self {
        let mut names = CircuitNames::default();
        for route in routes.routes() {
            for target in route.targets() {
                let backend = target.backend().name();
                match target.model() {
                    Some(model) if model != "*" => {
                        names.fixed.insert(format!("{backend}/{model}"));
                    }
                    _ => {}
                }
                if !names.backends.iter().any(|b| b == backend) {
                    names.backends.push(backend.to_string());
                }
            }
        }
        names.backends.sort_by_key(|b| std::cmp::Reverse(b.len()));
        names
    }

    /// The label of a circuit: its key when the config names its model,
    /// `backend/*` when the client chose it, `None` for a backend no
    /// route uses any more.
    fn label(&self, key: &str) -> Option<String> {
        if self.fixed.contains(key) {
            return Some(key.to_string());
        }
        self.backends
            .iter()
            .find(|b| {
                key.strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|b| format!("{b}/*"))
    }
}

/// The metrics registry. See the [module docs](crate::layers::metrics).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
    ttfb: Histograms<RouteLabels>,
    overhead: Histogram,
    upstream_errors: Family<ErrorLabels, Counter>,
    retries: Family<BackendLabel, Counter>,
    failovers: Family<ModelLabel, Counter>,
    circuit_state: Family<TargetLabel, Gauge>,
    rate_limited: Counter,
    tokens: Family<TokenLabels, Counter>,
    log_dropped: Counter,
    backends: Mutex<FastMap<String, BackendStats>>,
    models: Mutex<FastMap<String, ModelStats>>,
    /// The targets `circuit_state` has a series for (a circuit dropped by a
    /// config reload loses its series at the next scrape).
    circuit_targets: Mutex<std::collections::HashSet<String>>,
    /// How circuits are labelled; `None` until a layer is given routes.
    circuit_names: Mutex<Option<CircuitNames>>,
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
            log_dropped,
            backends: Mutex::new(FastMap::default()),
            models: Mutex::new(FastMap::default()),
            circuit_targets: Mutex::new(Default::default()),
            circuit_names: Mutex::new(None),
        }
    }

    /// Label circuits by the targets of `routes` (the stack built last).
    fn set_routes(&self, routes: &RouteTable) {
        let names = CircuitNames::of(routes);
        *self.circuit_names.lock().unwrap_or_else(|e| e.into_inner()) = Some(names);
    }

    fn backends(&self) -> MutexGuard<'_, FastMap<String, BackendStats>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_model(&self, model: &str, f: impl FnOnce(&mut ModelStats)) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let name = if models.len() >= MAX_MODELS && !models.contains_key(model) {
            "(other)"
        } else {
            model
        };
        f(models.entry(name.to_string()).or_default());
    }

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

    /// Count log records dropped by a full log channel.
    pub fn log_records_dropped(&self, n: u64) {
        self.log_dropped.inc_by(n);
    }

    /// The exposition text (OpenMetrics, which Prometheus reads), with the
    /// circuit states of `breakers` read at this moment.
    pub fn encode(&self, breakers: Option<&Breakers>) -> String {
        if let Some(breakers) = breakers {
            let views = breakers.snapshot();
            // One series per label, the worst state of the circuits under it.
            let mut current: FastMap<String, i64> = FastMap::default();
            {
                let names = self.circuit_names.lock().unwrap_or_else(|e| e.into_inner());
                for view in views {
                    let value = match view.state {
                        "open" => 2,
                        "half_open" => 1,
                        _ => 0,
                    };
                    let label = match names.as_ref() {
                        Some(names) => match names.label(&view.target) {
                            Some(label) => label,
                            None => continue,
                        },
                        // A registry no layer gave routes to (a stack
                        // composed in code): the keys as they are.
                        None => view.target,
                    };
                    let worst = current.entry(label).or_insert(value);
                    *worst = (*worst).max(value);
                }
            }
            let mut published = self
                .circuit_targets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for gone in published.iter().filter(|t| !current.contains_key(*t)) {
                self.circuit_state.remove(&TargetLabel {
                    target: gone.clone(),
                });
            }
            *published = current.keys().cloned().collect();
            for (target, value) in current {
                self.circuit_state
                    .get_or_create(&TargetLabel { target })
                    .set(value);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
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

    /// Record the attempts of one request (errors, retries, failovers, per-backend stats).
    fn record_attempts(&self, model: &str, attempts: &[AttemptRecord]) {
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

/// Applies [`MetricsService`]. See the [module docs](crate::layers::metrics).
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
    routes: Option<Arc<RouteTable>>,
}

impl MetricsLayer {
    /// Record into `metrics`. Without [`with_routes`](Self::with_routes),
    /// a request is labelled by the route a layer before this one put in
    /// its extensions, else `"(unknown)"`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsLayer {
            metrics,
            routes: None,
        }
    }

    /// Label each request by the route of `routes` its model resolves to
    /// (the stack's own table), and the registry's circuits by the targets
    /// of these routes.
    pub fn with_routes(mut self, routes: Arc<RouteTable>) -> Self {
        self.metrics.set_routes(&routes);
        self.routes = Some(routes);
        self
    }
}

/// The `model` label of a request: the name of its configured route.
fn route_label(req: &Request<ProxyBody>, routes: Option<&RouteTable>) -> String {
    let ext = req.extensions();
    let name = ext.get::<Arc<ModelRoute>>().map(|r| r.name()).or_else(|| {
        let llm = ext.get::<LlmRequest>()?;
        routes?
            .resolve_for(llm.model(), llm.format())
            .map(|r| r.name())
    });
    name.unwrap_or(UNKNOWN_MODEL).to_string()
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// The metrics service. See the [module docs](crate::layers::metrics).
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    routes: Option<Arc<RouteTable>>,
}

impl<S> Service<Request<ProxyBody>> for MetricsService<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ProxyBody>) -> Self::Future {
        let started = Instant::now();
        req.extensions_mut().insert(crate::usage::UsageWanted);
        let model = route_label(&req, self.routes.as_deref());
        let attempts = match req.extensions().get::<AttemptLog>() {
            Some(log) => log.clone(),
            None => {
                let log = AttemptLog::default();
                req.extensions_mut().insert(log.clone());
                log
            }
        };
        let waited = match req.extensions().get::<Waited>() {
            Some(w) => w.clone(),
            None => {
                let w = Waited::default();
                req.extensions_mut().insert(w.clone());
                w
            }
        };
        let metrics = self.metrics.clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let head = started.elapsed();
            let records = attempts.records();
            metrics.record_attempts(&model, &records);
            let backend = records
                .last()
                .map(|a| a.backend.clone())
                .unwrap_or_else(|| "none".into());
            let status = match &result {
                Ok(r) => r.status().as_u16(),
                Err(e) => e.status().as_u16(),
            };
            metrics
                .overhead
                .observe(head.saturating_sub(waited.get()).as_secs_f64());
            let route = RouteLabels {
                model: model.clone(),
                backend: backend.clone(),
            };
            metrics
                .ttfb
                .get_or_create(&route)
                .observe(head.as_secs_f64());
            metrics.with_model(&model, |m| {
                m.requests += 1;
                *m.statuses.entry(status).or_insert(0) += 1;
            });
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    model: model.clone(),
                    backend: backend.clone(),
                    status,
                })
                .inc();
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    metrics
                        .latency
                        .get_or_create(&route)
                        .observe(head.as_secs_f64());
                    return Err(e);
                }
            };
            if response.extensions().get::<RejectedBy>() == Some(&RejectedBy("rate_limit")) {
                metrics.rate_limited.inc();
            }
            let slot = response.extensions().get::<UsageSlot>().cloned();
            let done = Done {
                metrics,
                route,
                started,
                slot,
            };
            Ok(response.map(|body| {
                ProxyBody::new(Observed {
                    inner: body,
                    done: Some(done),
                })
            }))
        })
    }
}

/// What to record once the answer's body ends.
struct Done {
    metrics: Arc<Metrics>,
    route: RouteLabels,
    started: Instant,
    slot: Option<UsageSlot>,
}

impl Done {
    fn record(self) {
        let m = &self.metrics;
        m.latency
            .get_or_create(&self.route)
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(usage) = self.slot.and_then(|s| s.get()) {
            m.with_model(&self.route.model, |s| {
                s.tokens_in += usage.prompt_tokens;
                s.tokens_out += usage.completion_tokens;
            });
            if let Some(b) = m.backends().get_mut(&self.route.backend) {
                b.tokens_in += usage.prompt_tokens;
                b.tokens_out += usage.completion_tokens;
            }
            for (direction, n) in [
                ("in", usage.prompt_tokens),
                ("out", usage.completion_tokens),
            ] {
                m.tokens
                    .get_or_create(&TokenLabels {
                        model: self.route.model.clone(),
                        backend: self.route.backend.clone(),
                        direction: direction.into(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// Passes the answer through; records latency and tokens when it ends (or
/// is dropped: a client that went away).
struct Observed {
    inner: ProxyBody,
    done: Option<Done>,
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.record();
        }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            if let Some(done) = this.done.take() {
                done.record();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Outcome;

    fn attempt(status: Option<u16>, kind: &'static str) -> AttemptRecord {
        AttemptRecord {
            backend: "b".into(),
            model: "m".into(),
            outcome: Outcome::ServerError,
            status,
            error_kind: kind,
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn error_counts_are_keyed_by_status_or_failure() {
        assert_eq!(
            error_count_key(&attempt(Some(429), "status_429")),
            "http_429"
        );
        assert_eq!(
            error_count_key(&attempt(Some(503), "status_5xx")),
            "http_503"
        );
        assert_eq!(error_count_key(&attempt(None, "timeout")), "timeout");
        assert_eq!(
            error_count_key(&attempt(None, "connect")),
            "connection_error"
        );
        assert_eq!(
            error_count_key(&attempt(Some(200), "stream")),
            "stream_error"
        );
        assert_eq!(error_count_key(&attempt(None, "refused")), "other");
    }

    #[test]
    fn json_lists_each_backend_at_the_top_and_under_backends() {
        let metrics = Metrics::new();
        metrics.record_attempts(
            "m",
            &[attempt(Some(429), "status_429"), attempt(None, "timeout")],
        );
        let v = metrics.json();
        assert_eq!(v["b"]["total_requests"], 2, "{v}");
        assert_eq!(v["b"]["error_counts"]["http_429"], 1, "{v}");
        assert_eq!(v["b"]["error_counts"]["timeout"], 1, "{v}");
        assert_eq!(v["backends"]["b"], v["b"]);
    }
}
