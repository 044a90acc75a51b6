//! `failover`: the split point. Tries the targets of the requested model in
//! order until one answers.
//!
//! Targets are tried by priority; within one priority the order is drawn by
//! weight, so load is shared. A target is skipped without a call while it is
//! cooling down or its backend's rate limit is exhausted. The layer wraps a
//! [`NewService`] of targets: when the stack is built it makes each target's
//! own service (circuit breaker, retry, upstream, with the target as a
//! constructor input), and each attempt calls the chosen target's service
//! with an [`Attempt`](crate::classify::Attempt) in the request's extensions. After each attempt a
//! pure decision (`decide`, unit-tested without I/O) says what comes next.
//! The next target is
//! tried after a status in `on` (default 429, 500, 502, 503, 504), a
//! connection error, a timeout, a stream that failed before its first
//! content event, or an open circuit. A 429 puts its (backend, model) in
//! cooldown for its `Retry-After`, or `cooldown`; a 5xx that carries a
//! `Retry-After` cools it down for that long too. No cooldown lasts longer
//! than `max_cooldown` (default 5 minutes), whatever the upstream said.
//!
//! Cooldowns (like circuits) of an `api_key = "passthrough"` backend are
//! kept per client credential: the key is `backend/model#<tag>`, the tag 16
//! hex digits of the credential's SHA-256 (see [`state_key`]), so one
//! tenant's own 429 does not cool the target down for the others. The
//! registry is bounded ([`MAX_COOLDOWNS`]): expired cooldowns are dropped,
//! and a new one that finds it full of running ones is not kept.
//!
//! A "context length exceeded" answer is never retried: the model's
//! `context_fallback` is tried instead when it has one. Any other 4xx goes
//! back to the client as it came. When every target failed, the client gets
//! the last failure; when none could be tried at all, a 503 with
//! `Retry-After` set to when the earliest target comes back.
//!
//! Streams are safe to fail over because the upstream edge holds a streamed
//! answer's head until its first content event: a stream that breaks before
//! it is an error here, invisible to the client.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
//! use llm_router::routing::RouteTable;
//!
//! let layer = FailoverLayer::new(
//!     Arc::new(RouteTable::default()),
//!     FailoverPolicy::default(),
//!     Arc::new(Cooldowns::default()),
//! );
//! # let _ = layer;
//! ```

// Parts of this file are the `resilience` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "resilience"), allow(unused_imports, dead_code))]

mod cooldowns;
#[cfg(feature = "resilience")]
mod decide;
#[cfg(feature = "resilience")]
mod run;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::classify::Replay;
use crate::error::ProxyError;
use crate::layers::rate_limit::BackendLimits;
use crate::routing::{is_passthrough, PerTarget, RouteTable, Target};
use crate::service::NewService;

pub use self::cooldowns::{CooldownView, Cooldowns, MAX_COOLDOWNS};
pub use crate::classify::is_context_exceeded;
pub use crate::routing::{state_key, target_key, without_credential_tag, CredentialTag};

/// Failover settings (`[failover]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// Statuses that move on to the next target.
    pub on: Vec<u16>,
    /// Cooldown after a 429 without `Retry-After`.
    pub cooldown: Duration,
    /// The longest any cooldown lasts (`max_cooldown`), whatever the
    /// upstream's `Retry-After` or another replica says.
    pub max_cooldown: Duration,
}

/// Default `[failover] max_cooldown`.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(300);

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            on: vec![429, 500, 502, 503, 504, 529],
            cooldown: Duration::from_secs(60),
            max_cooldown: DEFAULT_MAX_COOLDOWN,
        }
    }
}

#[cfg(feature = "resilience")]
/// Applies [`Failover`]. See the [module docs](crate::layers::failover).
///
/// One reference count to clone: each request's attempts keep a clone.
#[derive(Clone, Debug)]
pub struct FailoverLayer(Arc<FailoverParts>);

#[cfg(feature = "resilience")]
#[derive(Clone, Debug)]
struct FailoverParts {
    table: Arc<RouteTable>,
    policy: FailoverPolicy,
    cooldowns: Arc<Cooldowns>,
    limits: Option<Arc<BackendLimits>>,
    /// Whether any target forwards the client's key: then each request's
    /// [`CredentialTag`] is computed once, on the way in.
    passthrough: bool,
}

#[cfg(feature = "resilience")]
impl FailoverLayer {
    /// Fail over across the routes of `table`. `cooldowns` takes the
    /// policy's `max_cooldown`.
    pub fn new(table: Arc<RouteTable>, policy: FailoverPolicy, cooldowns: Arc<Cooldowns>) -> Self {
        cooldowns.set_max(policy.max_cooldown);
        let passthrough = table
            .routes()
            .any(|route| route.targets().iter().any(is_passthrough));
        FailoverLayer(Arc::new(FailoverParts {
            table,
            policy,
            cooldowns,
            limits: None,
            passthrough,
        }))
    }

    /// Skip targets whose backend rate limit is exhausted.
    pub fn with_backend_limits(mut self, limits: Arc<BackendLimits>) -> Self {
        Arc::make_mut(&mut self.0).limits = Some(limits);
        self
    }
}

#[cfg(feature = "resilience")]
impl<N> Layer<N> for FailoverLayer
where
    N: NewService<Target>,
{
    type Service = Failover<N::Service>;

    /// Make the service of each target of the table with `new`.
    fn layer(&self, new: N) -> Failover<N::Service> {
        Failover {
            targets: PerTarget::new(&self.0.table, &new),
            layer: self.clone(),
        }
    }
}

#[cfg(feature = "resilience")]
/// The failover service: the routes, and each target's service. See the
/// [module docs](crate::layers::failover).
#[derive(Clone, Debug)]
pub struct Failover<S> {
    targets: PerTarget<S>,
    layer: FailoverLayer,
}

#[cfg(feature = "resilience")]
impl<S> Service<Request<ProxyBody>> for Failover<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    /// Always ready: each attempt readies its target's service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let replay = self.layer.keep(req);
        Box::pin(run::run(self.targets.clone(), self.layer.clone(), replay))
    }
}

#[cfg(feature = "resilience")]
impl FailoverLayer {
    /// Keep `req` for its attempts, with its [`CredentialTag`] when a
    /// target may need it.
    fn keep(&self, mut req: Request<ProxyBody>) -> Replay {
        if self.0.passthrough {
            if let Some(tag) = CredentialTag::of_request(req.extensions(), req.headers()) {
                req.extensions_mut().insert(tag);
            }
        }
        Replay::new(req)
    }
}
