//! The answer's body under the metrics layer: an
//! [`Observe`](crate::body::Observe) that records
//! the latency and the tokens when it ends or is dropped.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::labels::key_label;
use super::series::{PathSeries, RouteSeries};
use super::Metrics;
use crate::body::{End, Observer};
use crate::request::RequestContext;
use crate::usage::UsageSlot;

/// What to record once the answer's body ends.
pub(super) struct Done {
    pub(super) metrics: Arc<Metrics>,
    pub(super) route: Arc<RouteSeries>,
    pub(super) path: Arc<PathSeries>,
    pub(super) started: Instant,
    pub(super) slot: Option<UsageSlot>,
    /// The request's context and the key names, for the `key` label of a
    /// cost (made only when there is one).
    pub(super) context: RequestContext,
    pub(super) key_names: Arc<HashSet<String>>,
}

impl Done {
    /// The `key` label of the request of `context`: its virtual key's name
    /// (config-given, so a bounded label), else see `labels::key_label`.
    pub(super) fn key_label(context: &RequestContext, key_names: &HashSet<String>) -> String {
        match context.client_key().and_then(|k| k.name()) {
            Some(name) => name.to_string(),
            None => key_label(context.identity(), key_names),
        }
    }

    #[cfg(test)]
    pub(super) fn record_for_test(self) {
        self.on_end(End::Complete);
    }
}

/// Records latency and tokens once the answer's body ends: complete, failed,
/// or dropped (a client that went away). The body is an
/// [`Observe`](crate::body::Observe) of it.
impl Observer for Done {
    fn on_end(self, _end: End<'_>) {
        let m = &self.metrics;
        self.path
            .latency
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(cost) = self.slot.as_ref().and_then(UsageSlot::cost) {
            let key = Done::key_label(&self.context, &self.key_names);
            m.count_cost(
                &self.route.model,
                &self.path.labels.backend,
                key,
                cost.usd(),
            );
        }
        if let Some(usage) = self.slot.and_then(|s| s.get()) {
            self.route
                .count_tokens(m, &self.path.labels.backend, &usage);
        }
    }
}
