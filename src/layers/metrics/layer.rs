//! [`MetricsLayer`]: applies [`MetricsService`](super::MetricsService).

use std::sync::Arc;

use tower::Layer;

use super::{Metrics, MetricsService};
use crate::routing::RouteTable;

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
