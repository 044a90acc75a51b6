//! What is left to do with an upstream's answer once its head came
//! ([`finish`]): a stream is guarded, a JSON answer of a priced model read
//! for its cost, another one tapped for its usage when a layer wants it, a
//! JSON error answer read for its usage when a layer wants it.

use std::time::Duration;

use http::Response;
use tokio::time::Instant;

use super::cost;
use super::guard::{GuardConfig, StreamGuard};
use super::limits;
use super::Target;
use crate::body::ProxyBody;
use crate::pricing::Price;
use crate::request::LlmRequest;
use crate::usage::{UsageSlot, UsageTap};

/// What the stack wants of an answer's usage.
#[derive(Clone, Copy, Debug)]
pub(super) struct Usage {
    /// A layer reads it ([`UsageWanted`]).
    pub(super) wanted: bool,
    /// The proxy asked for it on the client's behalf: keep the usage-only
    /// chunk from the client ([`UsageRequestedByProxy`]).
    pub(super) strip: bool,
    /// The price of the model asked for.
    pub(super) price: Option<Price>,
}

/// What is left to do with an answer.
pub(super) enum Finish {
    /// Nothing: it goes to the client as it is.
    Done(Response<ProxyBody>),
    /// A non-streamed JSON answer read whole (at most `cap` bytes) before
    /// its head goes out: a successful one of a priced model, whose head
    /// carries its cost, or an error answer whose usage is wanted (an
    /// attempt that fails is charged what it reported).
    Read {
        parts: http::response::Parts,
        body: ProxyBody,
        price: Option<Price>,
        slot: Option<UsageSlot>,
        cap: usize,
    },
    /// A stream, held until its first content event (the commit point). The
    /// guard is boxed now, and that box becomes the answer's body: the
    /// future that waits holds only a pointer to it.
    FirstContent {
        parts: http::response::Parts,
        guard: Box<StreamGuard<ProxyBody>>,
        left: Duration,
    },
}

/// When usage is wanted, the answer gets `slot` (a [`UsageSlot`] with the
/// model's price). A successful streamed answer is held until its first
/// content event (the commit point) and guarded after it; a JSON answer of a
/// priced model is read for its cost, another one tapped for its usage when
/// wanted. A JSON error answer is read for its usage when wanted (at most
/// [`MAX_ERROR_BODY_BYTES`](limits::MAX_ERROR_BODY_BYTES)).
pub(super) fn finish(
    response: Response<ProxyBody>,
    llm: &LlmRequest,
    target: &Target,
    usage: Usage,
    slot: Option<UsageSlot>,
    first_content_by: Instant,
) -> Finish {
    let backend = target.backend();
    let (mut parts, body) = response.into_parts();
    if let Some(slot) = &slot {
        parts.extensions.insert(slot.clone());
    }
    if !parts.status.is_success() {
        if slot.is_some() && cost::is_json(&parts.headers) {
            let body = crate::body::IdleTimeout::new(body, backend.idle_timeout());
            return Finish::Read {
                parts,
                body: ProxyBody::new(body),
                price: usage.price,
                slot,
                cap: limits::MAX_ERROR_BODY_BYTES,
            };
        }
        return Finish::Done(Response::from_parts(parts, body));
    }
    let event_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if llm.is_stream() && event_stream {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let config = GuardConfig::new(llm.format()).idle_timeout(backend.idle_timeout());
        let mut guard = StreamGuard::new(body, config);
        if let Some(slot) = slot {
            // What a stream cut short is charged for its input (see `UsageSlot`).
            slot.begin_stream(crate::tokens::text_estimate(llm.body()));
            guard = guard.with_usage(slot, usage.strip);
        }
        return Finish::FirstContent {
            parts,
            guard: Box::new(guard),
            left: first_content_by.saturating_duration_since(Instant::now()),
        };
    }
    let body = crate::body::IdleTimeout::new(body, backend.idle_timeout());
    if let Some(price) = usage.price {
        if !llm.is_stream() && !llm.endpoint().counts_tokens() && cost::is_json(&parts.headers) {
            return Finish::Read {
                parts,
                body: ProxyBody::new(body),
                price: Some(price),
                slot,
                cap: limits::MAX_USAGE_TAP_BYTES,
            };
        }
    }
    Finish::Done(Response::from_parts(
        parts,
        match slot {
            Some(slot) => ProxyBody::new(UsageTap::new(body, slot, limits::MAX_USAGE_TAP_BYTES)),
            None => ProxyBody::new(body),
        },
    ))
}
