//! [`MetricsService`]: finds each request's series by its route and records
//! its head, status and attempts; the body records the rest when it ends.

use std::collections::HashSet;
use std::sync::Arc;

use http::Request;
use tokio::time::Instant;

use super::body::Done;
use super::series::{RouteSeries, SeriesTable};
use super::Metrics;
use crate::body::{Observe, ProxyBody};
use crate::classify::RejectedBy;
use crate::request::{LlmRequest, RequestContext};
use crate::routing::{ModelRoute, RouteTable};
use crate::service::{layer_service, LlmFuture, StackService};
use crate::usage::UsageSlot;

/// The series of a request: those of its configured route's name.
fn series_of(
    req: &Request<ProxyBody>,
    routes: Option<&RouteTable>,
    table: &SeriesTable,
) -> Arc<RouteSeries> {
    let ext = req.extensions();
    let name = ext.get::<Arc<ModelRoute>>().map(|r| r.name()).or_else(|| {
        let llm = ext.get::<LlmRequest>()?;
        routes?
            .resolve_for(llm.model(), llm.format())
            .map(|r| r.name())
    });
    table.get(name)
}

/// The metrics service. See the [module docs](crate::layers::metrics).
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    pub(super) inner: S,
    pub(super) metrics: Arc<Metrics>,
    pub(super) routes: Option<Arc<RouteTable>>,
    pub(super) series: Arc<SeriesTable>,
    pub(super) key_names: Arc<HashSet<String>>,
}

layer_service!(MetricsService<S>, stack);

impl<S: StackService> MetricsService<S> {
    /// The `call` of [`MetricsService`]'s `Service` impl.
    fn respond(&mut self, mut req: Request<ProxyBody>) -> LlmFuture {
        let started = Instant::now();
        req.extensions_mut().insert(crate::usage::UsageWanted);
        let route = series_of(&req, self.routes.as_deref(), &self.series);
        let context = RequestContext::of(req.extensions_mut()).clone();
        context.record_attempts();
        let metrics = self.metrics.clone();
        let key_names = self.key_names.clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let head = started.elapsed();
            let answer = result
                .as_ref()
                .ok()
                .and_then(|r| r.extensions().get::<UsageSlot>());
            let path = context.with_attempts(|records| {
                metrics.record_attempts(&route, records);
                // What the attempts that did not answer reported was spent
                // too, at their backends: their tokens and their cost.
                for a in records {
                    if let Some(usage) = a.failed_usage(answer) {
                        route.count_tokens(&metrics, &a.backend, &usage);
                    }
                    if let Some(cost) = a.failed_cost(answer) {
                        let key = Done::key_label(&context, &key_names);
                        metrics.count_cost(&route.model, &a.backend, key, cost.usd());
                    }
                }
                let backend = records.last().map_or("none", |a| a.backend.as_str());
                route.path(&metrics, backend)
            });
            let status = match &result {
                Ok(r) => r.status().as_u16(),
                Err(e) => e.status().as_u16(),
            };
            metrics
                .overhead
                .observe(head.saturating_sub(context.waited()).as_secs_f64());
            path.ttfb.observe(head.as_secs_f64());
            route.totals(&metrics).count_request(status);
            path.count_status(&metrics, status);
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    path.latency.observe(head.as_secs_f64());
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
                path,
                started,
                slot,
                context,
                key_names,
            };
            Ok(response.map(|body| ProxyBody::new(Observe::new(body, done))))
        })
    }
}
