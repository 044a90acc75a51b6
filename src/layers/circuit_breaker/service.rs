//! [`CircuitBreaker`]: the service, made per target through its
//! [`NewService`] impl; admits each call to its target's circuit and records
//! how it went.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::{Admission, Breakers, CircuitGate};
use crate::body::ProxyBody;
use crate::classify::Outcome;
use crate::error::ProxyError;
use crate::request::LlmRequest;
use crate::routing::{state_key, CredentialTag};
use crate::routing::{Credential, Target, TargetKey};
use crate::service::NewService;

/// The breaker. Below the split point it wraps a [`NewService`] of targets
/// and makes each target's breaker (its own circuit); a breaker made over a
/// plain service has no target and lets every request through.
/// See the [module docs](crate::layers::circuit_breaker).
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    pub(super) inner: S,
    pub(super) breakers: Arc<Breakers>,
    pub(super) target: Option<Target>,
}

impl<N> NewService<Target> for CircuitBreaker<N>
where
    N: NewService<Target>,
{
    type Service = CircuitBreaker<N::Service>;

    fn new_service(&self, target: Target) -> CircuitBreaker<N::Service> {
        CircuitBreaker {
            inner: self.inner.new_service(target.clone()),
            breakers: self.breakers.clone(),
            target: Some(target),
        }
    }
}

/// Releases a probe slot if the call is dropped before its outcome.
struct Pending(Option<(Arc<Breakers>, TargetKey, Admission)>);

impl Pending {
    fn finish(mut self, outcome: Outcome) {
        if let Some((breakers, key, admission)) = self.0.take() {
            breakers.record(&key, admission, outcome);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((breakers, key, admission)) = self.0.take() {
            breakers.release(&key, admission);
        }
    }
}

impl<S, B> Service<Request<B>> for CircuitBreaker<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(target) = &self.target else {
            return Box::pin(self.inner.call(req));
        };
        guarded(&self.breakers, target, req, |req| self.inner.call(req))
    }
}

/// Admit `req` to `target`'s circuit and record how the call went.
fn guarded<B, F>(
    breakers: &Arc<Breakers>,
    target: &Target,
    mut req: Request<B>,
    call: impl FnOnce(Request<B>) -> F,
) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static,
{
    let key: TargetKey = match req.extensions().get::<LlmRequest>() {
        Some(llm) => {
            // Computed by failover when it runs; else here.
            let tag = match req.extensions().get::<CredentialTag>() {
                Some(tag) => Some(*tag),
                None if matches!(target.backend().credential(), Credential::Passthrough) => {
                    CredentialTag::of_request(req.extensions(), req.headers())
                }
                None => None,
            };
            state_key(target, llm.model(), tag.as_ref())
        }
        None => TargetKey::join(target.backend().name(), target.model().unwrap_or("*")),
    };
    let admission = match breakers.admit(&key) {
        Ok(a) => a,
        Err(retry_after) => {
            return Box::pin(std::future::ready(Err(ProxyError::CircuitOpen {
                target: key.to_string(),
                retry_after,
            })))
        }
    };
    req.extensions_mut()
        .insert(CircuitGate::new(breakers.clone(), key.clone(), admission));
    let future = call(req);
    let pending = Pending(Some((breakers.clone(), key, admission)));
    Box::pin(async move {
        let result = future.await;
        pending.finish(Outcome::of(&result));
        result
    })
}
