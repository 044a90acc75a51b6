//! [`MetricsLayer`]: applies [`MetricsService`](super::MetricsService).

use std::collections::HashSet;
use std::sync::Arc;

use tower::Layer;

use super::series::SeriesTable;
use super::{Metrics, MetricsService};
use crate::routing::RouteTable;

/// Applies [`MetricsService`]. See the [module docs](crate::layers::metrics).
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
    routes: Option<Arc<RouteTable>>,
    /// The series of the routes' names, resolved once for every request.
    series: Arc<SeriesTable>,
    key_names: Arc<HashSet<String>>,
}

impl MetricsLayer {
    /// Record into `metrics`. Without [`with_routes`](Self::with_routes),
    /// a request is labelled by the route a layer before this one put in
    /// its extensions, else `"(unknown)"`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsLayer {
            metrics,
            routes: None,
            series: Arc::new(SeriesTable::of(None)),
            key_names: Arc::default(),
        }
    }

    /// The key names `llm_router_cost_usd_total` may carry in its `key`
    /// label: a request whose verified identity
    /// ([`RequestContext::identity`](crate::request::RequestContext::identity))
    /// is one of them is labelled with it, another verified client
    /// `"(other)"`, an unverified one `"none"`. Without names, every
    /// verified client is `"(other)"`: a raw key never becomes a label.
    pub fn with_key_names(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.key_names = Arc::new(names.into_iter().collect());
        self
    }

    /// Label each request by the route of `routes` its model resolves to
    /// (the stack's own table), and the registry's circuits by the targets
    /// of these routes.
    pub fn with_routes(mut self, routes: Arc<RouteTable>) -> Self {
        self.metrics.set_routes(&routes);
        self.series = Arc::new(SeriesTable::of(Some(&routes)));
        self.routes = Some(routes);
        self
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            routes: self.routes.clone(),
            series: self.series.clone(),
            key_names: self.key_names.clone(),
        }
    }
}
