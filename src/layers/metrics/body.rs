//! The answer's body under the metrics layer: records the latency and the
//! tokens when it ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::labels::{CostLabels, RouteLabels, TokenLabels};
use super::Metrics;
use crate::body::{BoxError, ProxyBody};
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
        self.record();
    }

    fn record(self) {
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
pub(super) struct Observed {
    pub(super) inner: ProxyBody,
    pub(super) done: Option<Done>,
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
