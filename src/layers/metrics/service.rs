//! [`MetricsService`]: labels each request by its route and records its
//! head, status and attempts; the body records the rest when it ends.

use std::collections::HashSet;
use std::sync::Arc;

use http::Request;
use tokio::time::Instant;

use super::body::Done;
use super::labels::{key_label, CostLabels, RequestLabels, RouteLabels};
use super::{Metrics, UNKNOWN_MODEL};
use crate::body::{Observe, ProxyBody};
use crate::classify::RejectedBy;
use crate::request::{LlmRequest, RequestContext};
use crate::routing::{ModelRoute, RouteTable};
use crate::service::{layer_service, LlmFuture, StackService};
use crate::usage::UsageSlot;

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

/// The metrics service. See the [module docs](crate::layers::metrics).
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    pub(super) inner: S,
    pub(super) metrics: Arc<Metrics>,
    pub(super) routes: Option<Arc<RouteTable>>,
    pub(super) key_names: Arc<HashSet<String>>,
}

layer_service!(MetricsService<S>, stack);

impl<S: StackService> MetricsService<S> {
    /// The `call` of [`MetricsService`]'s `Service` impl.
    fn respond(&mut self, mut req: Request<ProxyBody>) -> LlmFuture {
        let started = Instant::now();
        req.extensions_mut().insert(crate::usage::UsageWanted);
        let model = route_label(&req, self.routes.as_deref());
        let context = RequestContext::of(req.extensions_mut()).clone();
        context.record_attempts();
        let metrics = self.metrics.clone();
        let key_names = self.key_names.clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let head = started.elapsed();
            let records = context.attempts();
            metrics.record_attempts(&model, &records);
            // A virtual key's name is config-given, so a bounded label.
            let key = || match context.client_key().and_then(|k| k.name()) {
                Some(name) => name.to_string(),
                None => key_label(context.identity(), &key_names),
            };
            // What the attempts that did not answer reported was spent too,
            // at their backends: their tokens and their cost.
            let answer = result
                .as_ref()
                .ok()
                .and_then(|r| r.extensions().get::<UsageSlot>());
            for a in &records {
                if let Some(usage) = a.failed_usage(answer) {
                    metrics.count_tokens(&model, &a.backend, &usage);
                }
                if let Some(cost) = a.failed_cost(answer) {
                    metrics
                        .cost
                        .get_or_create(&CostLabels {
                            model: model.clone(),
                            backend: a.backend.clone(),
                            key: key(),
                        })
                        .inc_by(cost.usd());
                }
            }
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
                .observe(head.saturating_sub(context.waited()).as_secs_f64());
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
                key: key(),
            };
            Ok(response.map(|body| ProxyBody::new(Observe::new(body, done))))
        })
    }
}
