//! [`RateLimitLayer`] and its [`RateLimit`] service: the limit headers, the
//! 429s, and the answer body that holds the concurrency slot and counts the
//! tokens.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Response};
use tower::Layer;

use super::client_limits::{InFlight, Refusal};
use super::{ClientLimits, LimitState, WindowLimiter};
use crate::body::{End, Observe, Observer, ProxyBody};
use crate::error::ProxyError;
use crate::request::ClientFormat;
use crate::service::{layer_service, LlmFuture, StackService};
use crate::usage::UsageSlot;

/// Applies [`RateLimit`]. See the [module docs](crate::layers::rate_limit).
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limits: Arc<ClientLimits>,
}

impl RateLimitLayer {
    /// Limit clients with a shared state.
    pub fn new(limits: Arc<ClientLimits>) -> Self {
        RateLimitLayer { limits }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// The client rate limit service. See the [module docs](crate::layers::rate_limit).
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limits: Arc<ClientLimits>,
}

fn set_headers(headers: &mut HeaderMap, state: &LimitState) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(state.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(state.remaining));
    let reset = state.reset.as_secs() + u64::from(state.reset.subsec_nanos() > 0);
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

fn reject(
    format: ClientFormat,
    retry_after: Duration,
    what: &str,
    state: Option<LimitState>,
) -> Response<ProxyBody> {
    let error = ProxyError::RateLimited {
        message: format!("Rate limit exceeded: {what}"),
        retry_after,
    };
    let mut response = error.to_response(format);
    response
        .extensions_mut()
        .insert(crate::classify::RejectedBy("rate_limit"));
    if let Some(state) = state {
        set_headers(response.headers_mut(), &state);
    }
    response
}

impl ClientLimits {
    /// The 429 of a refused request, in the client's format.
    fn refuse(&self, refusal: Refusal, key: &str, format: ClientFormat) -> Response<ProxyBody> {
        match refusal {
            Refusal::Tokens(wait) => {
                let limit = self.tokens.as_ref().map_or(0, WindowLimiter::limit);
                reject(
                    format,
                    wait,
                    &format!("token budget of {limit} per window used up"),
                    None,
                )
            }
            Refusal::Requests(wait) => {
                let (limit, window) = self
                    .requests
                    .as_ref()
                    .map_or((0, self.policy.window), |r| (r.limit(), r.window()));
                let state = LimitState {
                    limit,
                    remaining: 0,
                    reset: wait,
                };
                let what = format!("{limit} requests per {}", crate::error::humanize(window));
                reject(format, wait, &what, Some(state))
            }
            Refusal::Concurrency => {
                let max = self.policy.concurrency.unwrap_or(0);
                let state = self.requests.as_ref().and_then(|r| r.check(key).ok());
                reject(
                    format,
                    Duration::from_secs(1),
                    &format!("{max} requests in flight"),
                    state,
                )
            }
        }
    }
}

layer_service!(RateLimit<S>, stack + Clone + Send + 'static);

impl<S: StackService + Clone + Send + 'static> RateLimit<S> {
    /// The `call` of [`RateLimit`]'s `Service` impl.
    fn respond(&mut self, req: Request<ProxyBody>) -> LlmFuture {
        // A virtual key with limits of its own is held to them instead.
        let (limits, key) = self.limits.limits_of(&req);
        if let Some(store) = limits.store.get() {
            // Shared limits are decided before the inner service is called:
            // take the service that was polled ready, leave a clone.
            let store = store.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return Box::pin(async move {
                match limits.decide_shared(&store, &key).await {
                    Ok((state, in_flight)) => {
                        forward(&mut inner, limits, key, state, in_flight, req).await
                    }
                    Err(refusal) => {
                        Ok(limits.refuse(refusal, &key, crate::request::error_format_of(&req)))
                    }
                }
            });
        }
        match limits.decide(&key) {
            Ok((state, in_flight)) => forward(&mut self.inner, limits, key, state, in_flight, req),
            Err(refusal) => {
                let refused = limits.refuse(refusal, &key, crate::request::error_format_of(&req));
                Box::pin(std::future::ready(Ok(refused)))
            }
        }
    }
}

/// Call the inner service with a request that passed the limits; the
/// answer carries the limit headers, its body holds the concurrency slot
/// and counts the tokens when it ends.
fn forward<S>(
    inner: &mut S,
    limits: Arc<ClientLimits>,
    key: String,
    state: Option<LimitState>,
    in_flight: InFlight,
    mut req: Request<ProxyBody>,
) -> LlmFuture
where
    S: StackService,
{
    // Token budgets need the usage of streamed answers too.
    if limits.tokens.is_some() {
        crate::request::want_usage(req.extensions_mut());
    }

    let future = inner.call(req);
    Box::pin(async move {
        let mut response = future.await?;
        if let Some(state) = &state {
            set_headers(response.headers_mut(), state);
        }
        let slot = response.extensions().get::<UsageSlot>().cloned();
        let account = limits.tokens.is_some().then(|| (limits.clone(), key));
        if account.is_none() && in_flight.limits.is_none() {
            return Ok(response);
        }
        Ok(response.map(|body| {
            let accounted = Accounted {
                slot,
                account,
                _in_flight: in_flight,
            };
            ProxyBody::new(Observe::new(body, accounted))
        }))
    })
}

/// Holds the concurrency slot until the answer ends (it is complete, fails,
/// or is dropped), then counts its tokens.
struct Accounted {
    slot: Option<UsageSlot>,
    account: Option<(Arc<ClientLimits>, String)>,
    _in_flight: InFlight,
}

impl Observer for Accounted {
    fn on_end(self, _end: End<'_>) {
        if let (Some((limits, key)), Some(slot)) = (self.account, &self.slot) {
            if let (Some(tokens), Some(usage)) = (&limits.tokens, slot.get()) {
                tokens.add(&key, usage.total());
                if let Some(store) = limits.store.get() {
                    let shared = store.client_limit_key(&key, "tokens");
                    store.count(shared, usage.total(), tokens.limit(), tokens.window());
                }
            }
        }
    }
}
