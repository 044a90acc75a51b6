//! The boxed service the configured stack is folded into: [`LlmService`].
//!
//! Because users choose the order at start-up, every layer of the stack
//! built from a config is boxed into this one type (the only place
//! llm-router boxes layers). Library users who compose layers in code keep
//! the unboxed types. It lives apart from the stack builder so that layers
//! and the app can name it without depending on the builder.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use crate::body::ProxyBody;
use crate::error::ProxyError;

/// The future of an [`LlmService`].
pub type LlmFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

/// The boxed service the configured stack is folded into.
///
/// Unlike [`tower::util::BoxCloneSyncService`], a clone is one reference
/// count (the layers below are shared, not cloned level by level), and a
/// layer whose future already is an [`LlmFuture`] is not boxed a second
/// time. Each call clones the wrapped service and drives its `poll_ready`
/// first, as tower asks; llm-router's layers are always ready, so that
/// costs nothing, and a service that is not ready is waited for.
///
/// ```
/// use std::sync::Arc;
/// use llm_router::upstream::provider::mock::Mock;
/// use llm_router::routing::{Backend, Target};
/// use llm_router::stack::{LlmService, NewService};
/// use llm_router::upstream::Upstream;
///
/// let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
/// let service = LlmService::new(Upstream::new().new_service(Target::new(local, None)));
/// let _shared = service.clone();
/// ```
#[derive(Clone)]
pub struct LlmService(Arc<dyn DynService>);

impl fmt::Debug for LlmService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmService").finish_non_exhaustive()
    }
}

impl LlmService {
    /// Box `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        LlmService(Arc::new(Shared(service)))
    }
}

trait DynService: Send + Sync {
    fn call(&self, req: Request<ProxyBody>) -> LlmFuture;
}

impl LlmService {
    /// Call through a shared reference: the wrapped service is cloned for
    /// the call and driven to ready first, as [`Service`] asks.
    pub(crate) fn call_ref(&self, req: Request<ProxyBody>) -> LlmFuture {
        self.0.call(req)
    }
}

struct Shared<S>(S);

impl<S> DynService for Shared<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, req: Request<ProxyBody>) -> LlmFuture {
        let mut service = self.0.clone();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => into_llm_future(service.call(req)),
            Poll::Ready(Err(e)) => Box::pin(std::future::ready(Err(e))),
            Poll::Pending => Box::pin(async move {
                use tower::ServiceExt;
                service.ready().await?.call(req).await
            }),
        }
    }
}

/// `future` as an [`LlmFuture`]: as it is when it already is one (most of
/// llm-router's layers box their own future), boxed otherwise.
fn into_llm_future<F>(future: F) -> LlmFuture
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static,
{
    let mut slot = Some(future);
    if let Some(boxed) = (&mut slot as &mut dyn Any).downcast_mut::<Option<LlmFuture>>() {
        if let Some(boxed) = boxed.take() {
            return boxed;
        }
    }
    match slot {
        Some(future) => Box::pin(future),
        None => Box::pin(std::future::ready(Err(ProxyError::Internal(
            "a layer's future was taken twice".into(),
        )))),
    }
}

impl Service<Request<ProxyBody>> for LlmService {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = LlmFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> LlmFuture {
        self.0.call(req)
    }
}

/// Makes one service per target (the shape of linkerd2-proxy's
/// `NewService`): the split point (`failover`, or [`RouteLayer`] without
/// it) calls it once for each target of its route table when the stack is
/// built, so a target, its backend and its policies are constructor inputs
/// of the per-target layers and of the upstream edge, not values they look
/// up in each request.
///
/// Per-target layers ([`CircuitBreakerLayer`], [`RetryLayer`]) wrap one
/// `NewService` into another; [`Upstream`] is the innermost. A closure
/// `Fn(T) -> S` is one too.
///
/// ```
/// use std::sync::Arc;
/// use llm_router::upstream::provider::mock::Mock;
/// use llm_router::routing::{Backend, Target};
/// use llm_router::stack::NewService;
/// use llm_router::upstream::Upstream;
///
/// let backend = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
/// let _service = Upstream::new().new_service(Target::new(backend, Some("echo")));
/// ```
///
/// [`RouteLayer`]: crate::routing::RouteLayer
/// [`CircuitBreakerLayer`]: crate::layers::circuit_breaker::CircuitBreakerLayer
/// [`RetryLayer`]: crate::layers::retry::RetryLayer
/// [`Upstream`]: crate::upstream::Upstream
pub trait NewService<T> {
    /// The service made for one target.
    type Service;

    /// The service of `target`.
    fn new_service(&self, target: T) -> Self::Service;
}

impl<T, F, S> NewService<T> for F
where
    F: Fn(T) -> S,
{
    type Service = S;

    fn new_service(&self, target: T) -> S {
        self(target)
    }
}
