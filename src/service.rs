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

/// A service of the stack's shape: a request in, a `Response<ProxyBody>` or
/// a [`ProxyError`] out, through a future that can be sent to another task.
/// Every [`Service`] of that shape is one: this names the bound once (as
/// hyper's `HttpService` does) for what the stack is folded from.
///
/// ```
/// use std::sync::Arc;
/// use llm_router::upstream::provider::mock::Mock;
/// use llm_router::routing::{Backend, Target};
/// use llm_router::stack::{NewService, StackService};
/// use llm_router::upstream::Upstream;
///
/// fn of_the_stack(_service: impl StackService) {}
///
/// let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
/// of_the_stack(Upstream::new().new_service(Target::new(local, None)));
/// ```
pub trait StackService:
    Service<
    Request<ProxyBody>,
    Response = Response<ProxyBody>,
    Error = ProxyError,
    Future: Send + 'static,
>
{
}

impl<S> StackService for S
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Send + 'static,
{
}

/// The `impl Service` of a layer's service `$service<S>`, which wraps an
/// inner service `S` kept in its field `inner`: ready when `inner` is, and
/// each call made by the service's own method `respond`. Written once here
/// for the three shapes the layers share:
///
/// - `layer_service!(Pii<S>, ResponseFuture<S::Future>)`: requests with any
///   body `B`, an inner service that answers `Response<ProxyBody>`, its
///   errors passed on; `respond` returns the layer's own future.
/// - `layer_service!(Headers<S>, passing)`: requests with any body, the
///   inner service's own answers, errors and future; `respond` works on the
///   request only.
/// - `layer_service!(LogService<S>, stack)`: the stack's requests over a
///   [`StackService`], with more bounds after a `+` if `respond` needs them
///   (`stack + Clone`); `respond` returns an [`LlmFuture`].
// Only the feature-gated layers use it.
#[cfg_attr(
    not(any(feature = "observability", feature = "access", feature = "content")),
    allow(unused_macros)
)]
macro_rules! layer_service {
    ($service:ident<S>, stack $(+ $bound:tt)*) => {
        $crate::service::layer_service!(@impl $service<S>
            [::http::Request<$crate::body::ProxyBody>]
            where [S: $crate::service::StackService $(+ $bound)*]
            => ::http::Response<$crate::body::ProxyBody>,
            $crate::error::ProxyError,
            $crate::service::LlmFuture);
    };
    ($service:ident<S>, passing) => {
        $crate::service::layer_service!(@impl $service<S, B>
            [::http::Request<B>]
            where [S: ::tower::Service<::http::Request<B>>]
            => S::Response, S::Error, S::Future);
    };
    ($service:ident<S>, $future:ty) => {
        $crate::service::layer_service!(@impl $service<S, B>
            [::http::Request<B>]
            where [S: ::tower::Service<
                ::http::Request<B>,
                Response = ::http::Response<$crate::body::ProxyBody>,
            >]
            => ::http::Response<$crate::body::ProxyBody>, S::Error, $future);
    };
    (@impl $service:ident<S $(, $b:ident)?> [$request:ty] where [$($bounds:tt)*]
        => $response:ty, $error:ty, $future:ty) => {
        impl<S $(, $b)?> ::tower::Service<$request> for $service<S>
        where
            $($bounds)*
        {
            type Response = $response;
            type Error = $error;
            type Future = $future;

            fn poll_ready(
                &mut self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, req: $request) -> Self::Future {
                self.respond(req)
            }
        }
    };
}
pub(crate) use layer_service;

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
        S: StackService + Clone + Send + Sync + 'static,
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
    S: StackService + Clone + Send + Sync + 'static,
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
