//! The answer's body under the metrics layer: an
//! [`Observe`](crate::body::Observe) that records
//! the latency and the tokens when it ends or is dropped.

use std::sync::Arc;

use tokio::time::Instant;

use super::labels::{CostLabels, RouteLabels};
use super::Metrics;
use crate::body::{End, Observer};
use crate::usage::UsageSlot;

/// What to record once the answer's body ends.
pub(super) struct Done {
    pub(super) metrics: Arc<Metrics>,
    pub(super) route: RouteLabels,
    pub(super) started: Instant,
    pub(super) slot: Option<UsageSlot>,
    /// The `key` label (see `labels::key_label`).
    pub(super) key: String,
}

impl Done {
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
        m.latency
            .get_or_create(&self.route)
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(cost) = self.slot.as_ref().and_then(UsageSlot::cost) {
            m.cost
                .get_or_create(&CostLabels {
                    model: self.route.model.clone(),
                    backend: self.route.backend.clone(),
                    key: self.key,
                })
                .inc_by(cost.usd());
        }
        if let Some(usage) = self.slot.and_then(|s| s.get()) {
            m.count_tokens(&self.route.model, &self.route.backend, &usage);
        }
    }
}
