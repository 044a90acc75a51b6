//! The series one request records into, resolved once instead of per
//! request: a [`RouteSeries`] per configured route name (built with the
//! stack, see [`SeriesTable`]), and a [`PathSeries`] per route and backend
//! (made at the first request that path answers, then kept by the registry).
//! Recording is then a few relaxed atomic adds and a histogram observation:
//! no label is built, hashed or looked up on the request path.

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::labels::{ModelLabel, RequestLabels, RouteLabels, TokenLabels, UNKNOWN_MODEL};
use super::stats::{BackendTotals, ModelTotals};
use super::Metrics;
use crate::routing::RouteTable;
use crate::usage::Usage;
use crate::FastMap;

/// The series of one `model` label (a route's name).
#[derive(Debug)]
pub(super) struct RouteSeries {
    pub(super) model: String,
    totals: OnceLock<Arc<ModelTotals>>,
    failovers: OnceLock<Counter>,
    /// The backends of the route's targets, their series made at first use.
    paths: Vec<(String, OnceLock<Arc<PathSeries>>)>,
}

impl RouteSeries {
    fn new(model: &str, backends: Vec<String>) -> Self {
        RouteSeries {
            model: model.to_string(),
            totals: OnceLock::new(),
            failovers: OnceLock::new(),
            paths: backends.into_iter().map(|b| (b, OnceLock::new())).collect(),
        }
    }

    /// The totals of `GET /router/stats` for this model.
    pub(super) fn totals(&self, metrics: &Metrics) -> &ModelTotals {
        self.totals
            .get_or_init(|| metrics.model_totals(&self.model))
    }

    /// `llm_router_failovers_total` of this model.
    pub(super) fn failovers(&self, metrics: &Metrics) -> &Counter {
        self.failovers.get_or_init(|| {
            metrics
                .failovers
                .get_or_create(&ModelLabel {
                    model: self.model.clone(),
                })
                .clone()
        })
    }

    /// The series of this model answered by `backend`.
    pub(super) fn path(&self, metrics: &Metrics, backend: &str) -> Arc<PathSeries> {
        match self.paths.iter().find(|(b, _)| b == backend) {
            Some((_, path)) => path
                .get_or_init(|| metrics.path_series(&self.model, backend))
                .clone(),
            // A backend outside the route's targets (`none` when no attempt
            // was made): through the registry's table.
            None => metrics.path_series(&self.model, backend),
        }
    }

    /// Count `usage`'s tokens for this model at `backend`: the token
    /// counters, and the model's and the backend's totals.
    pub(super) fn count_tokens(&self, metrics: &Metrics, backend: &str, usage: &Usage) {
        self.totals(metrics).count_tokens(usage);
        self.path(metrics, backend)
            .count_tokens(metrics, &self.model, usage);
    }
}

/// The series of one model answered by one backend.
#[derive(Debug)]
pub(super) struct PathSeries {
    pub(super) labels: RouteLabels,
    pub(super) backend: Arc<BackendTotals>,
    pub(super) ttfb: Histogram,
    pub(super) latency: Histogram,
    /// `llm_router_requests_total` with status 200, the common one.
    ok: OnceLock<Counter>,
    /// `llm_router_tokens_total` in and out.
    tokens: OnceLock<[Counter; 2]>,
    retries: OnceLock<Counter>,
}

impl PathSeries {
    pub(super) fn new(metrics: &Metrics, model: &str, backend: &str) -> Self {
        let labels = RouteLabels {
            model: model.to_string(),
            backend: backend.to_string(),
        };
        PathSeries {
            backend: metrics.backend_totals(backend),
            ttfb: metrics.ttfb.get_or_create(&labels).clone(),
            latency: metrics.latency.get_or_create(&labels).clone(),
            labels,
            ok: OnceLock::new(),
            tokens: OnceLock::new(),
            retries: OnceLock::new(),
        }
    }

    /// Count one answer with `status` in `llm_router_requests_total`.
    pub(super) fn count_status(&self, metrics: &Metrics, status: u16) {
        let counter = |status| {
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    model: self.labels.model.clone(),
                    backend: self.labels.backend.clone(),
                    status,
                })
                .clone()
        };
        if status == 200 {
            self.ok.get_or_init(|| counter(200)).inc();
        } else {
            counter(status).inc();
        }
    }

    /// Count one repeated attempt on this backend.
    pub(super) fn count_retry(&self, metrics: &Metrics) {
        self.retries
            .get_or_init(|| {
                metrics
                    .retries
                    .get_or_create(&super::labels::BackendLabel {
                        backend: self.labels.backend.clone(),
                    })
                    .clone()
            })
            .inc();
        self.backend.count_retry();
    }

    fn count_tokens(&self, metrics: &Metrics, model: &str, usage: &Usage) {
        let [tokens_in, tokens_out] = self.tokens.get_or_init(|| {
            ["in", "out"].map(|direction| {
                metrics
                    .tokens
                    .get_or_create(&TokenLabels {
                        model: model.to_string(),
                        backend: self.labels.backend.clone(),
                        direction: direction.into(),
                    })
                    .clone()
            })
        });
        tokens_in.inc_by(usage.prompt_tokens);
        tokens_out.inc_by(usage.completion_tokens);
        self.backend.count_tokens(usage);
    }
}

/// The [`RouteSeries`] of every route name of a stack's [`RouteTable`]
/// (and of `"(unknown)"`), built with the stack: a request finds its
/// series by its route's name in this fixed table, without a lock.
#[derive(Debug)]
pub(super) struct SeriesTable {
    routes: FastMap<String, Arc<RouteSeries>>,
    unknown: Arc<RouteSeries>,
}

impl SeriesTable {
    /// The table of `routes` (none: every request is `"(unknown)"` unless
    /// a layer before put its route in the request's extensions).
    pub(super) fn of(routes: Option<&RouteTable>) -> Self {
        let mut backends: FastMap<&str, Vec<String>> = FastMap::default();
        for route in routes.into_iter().flat_map(|r| r.routes()) {
            let list = backends.entry(route.name()).or_default();
            for target in route.targets() {
                let backend = target.backend().name();
                if !list.iter().any(|b| b == backend) {
                    list.push(backend.to_string());
                }
            }
        }
        SeriesTable {
            routes: backends
                .into_iter()
                .map(|(name, list)| (name.to_string(), Arc::new(RouteSeries::new(name, list))))
                .collect(),
            unknown: Arc::new(RouteSeries::new(UNKNOWN_MODEL, Vec::new())),
        }
    }

    /// The series of the route named `name` (`None`: no route matched).
    pub(super) fn get(&self, name: Option<&str>) -> Arc<RouteSeries> {
        match name {
            None => self.unknown.clone(),
            Some(name) => match self.routes.get(name) {
                Some(series) => series.clone(),
                // A route of another table (a stack composed in code that
                // routes before this layer with its own table).
                None => Arc::new(RouteSeries::new(name, Vec::new())),
            },
        }
    }
}
