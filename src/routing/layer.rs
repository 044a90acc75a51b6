//! [`RouteLayer`] and its [`Route`] service: resolve each request's model
//! ([`resolve_route`]) and send it to the route's first target.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use super::{ModelRoute, PerTarget, RouteTable, Target};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::future::MaybeReady;
use crate::request::{without_request, LlmRequest};
use crate::service::NewService;

/// Resolve a request's model into its route (404 when nothing matches).
pub fn resolve_route(
    table: &RouteTable,
    request: &LlmRequest,
) -> Result<Arc<ModelRoute>, ProxyError> {
    table
        .resolve_for(request.model(), request.format())
        .cloned()
        .ok_or_else(|| ProxyError::ModelNotFound(request.model().to_string()))
}

/// Routes every request to the first target of its model. See the
/// [module docs](crate::routing).
#[derive(Clone, Debug)]
pub struct RouteLayer {
    table: Arc<RouteTable>,
    limits: Option<Arc<crate::layers::rate_limit::BackendLimits>>,
}

impl RouteLayer {
    /// Route with this table.
    pub fn new(table: Arc<RouteTable>) -> Self {
        RouteLayer {
            table,
            limits: None,
        }
    }

    /// Refuse (429) a request whose target's backend limit is exhausted.
    pub fn with_backend_limits(
        mut self,
        limits: Arc<crate::layers::rate_limit::BackendLimits>,
    ) -> Self {
        self.limits = Some(limits);
        self
    }
}

impl<N> Layer<N> for RouteLayer
where
    N: NewService<Target>,
{
    type Service = Route<N::Service>;

    /// Make the service of each target of the table with `new`.
    fn layer(&self, new: N) -> Route<N::Service> {
        Route {
            targets: PerTarget::new(&self.table, &new),
            table: self.table.clone(),
            limits: self.limits.clone(),
        }
    }
}

/// The service made by [`RouteLayer`]: the routes, and each target's service.
#[derive(Clone, Debug)]
pub struct Route<S> {
    targets: PerTarget<S>,
    table: Arc<RouteTable>,
    limits: Option<Arc<crate::layers::rate_limit::BackendLimits>>,
}

impl<S, B> Service<Request<B>> for Route<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>, Error = ProxyError> + Clone,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = MaybeReady<Oneshot<S, Request<B>>, Response<ProxyBody>, ProxyError>;

    /// Always ready: each call readies its target's service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(llm) = req.extensions().get::<LlmRequest>() else {
            return MaybeReady::ready(Err(without_request(req.extensions(), "routing")));
        };
        let route = match resolve_route(&self.table, llm) {
            Ok(route) => route,
            Err(e) => return MaybeReady::ready(Err(e)),
        };
        let Some(target) = route.first_choice() else {
            return MaybeReady::ready(Err(ProxyError::Unavailable {
                model: llm.model().to_string(),
                retry_after: None,
            }));
        };
        if let Some(limits) = &self.limits {
            if let Err(retry_after) = limits.check(target.backend().name()) {
                // The only target skipped for its backend's limit: 429.
                return MaybeReady::ready(Err(ProxyError::RateLimited {
                    message: format!(
                        "Backend `{}` is over its rate limit; retry after the Retry-After delay",
                        target.backend().name()
                    ),
                    retry_after,
                }));
            }
        }
        match self.targets.for_call(target) {
            Ok(service) => MaybeReady::inner(service.oneshot(req)),
            Err(e) => MaybeReady::ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Endpoint;
    use crate::routing::Backend;
    use crate::upstream::provider::mock::Mock;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    #[tokio::test]
    async fn route_calls_the_target_service_or_404s() {
        let table = Arc::new(RouteTable::new(vec![ModelRoute::new(
            "echo",
            vec![Target::new(backend("local"), Some("up"))],
        )]));
        let svc = RouteLayer::new(table).layer(|target: Target| {
            tower::service_fn(move |_req: Request<()>| {
                assert_eq!(target.upstream_model("echo"), "up");
                async { Ok::<_, ProxyError>(Response::new(ProxyBody::empty())) }
            })
        });
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"echo"}"#).unwrap());
        svc.clone().oneshot(req).await.unwrap();

        let mut req = Request::new(());
        req.extensions_mut()
            .insert(LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"nope"}"#).unwrap());
        let e = svc.oneshot(req).await.unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
