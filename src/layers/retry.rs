//! `retry`: retries one target's attempt on transient failures, with
//! exponential backoff and respect for `Retry-After`.
//!
//! Retried: the `retry_on` statuses (default 429, 500, 502, 503, 504),
//! connection errors (a reset before any byte included, and a stream that
//! broke before its first content event), and — only when no other target is
//! left ([`Attempt::others_left`] is false) — timeouts: a silent upstream is
//! better left to failover than waited on again. Never retried: any other 4xx.
//!
//! The delay before retry *n* (from 0) is `initial_delay × backoff_factor^n`,
//! capped at `max_delay`; with `jitter` it is drawn from its upper half, so
//! retries spread out but never hammer. An upstream `Retry-After` within
//! `max_delay` is waited for instead; a longer one ends the retries at once
//! (failover cools the target down and moves on). Below a circuit breaker,
//! each failed attempt counts there before it is retried, and no retry goes
//! to a circuit that opened (see
//! [`CircuitGate`]). The request is replayed
//! from the parsed value in its extensions — the client's body is never read
//! again. With `other_targets_first` (the default without a `[retry]`
//! section, and the shipped config) nothing is retried while another target
//! is left: failover moves on at once and only the last target is retried. A
//! target whose model sets its own `retry = { ... }` (`Target::with_retry`)
//! is retried by that policy instead of the layer's.
//!
//! `retry` owns its replay: before the first attempt it keeps a [`Replay`]
//! of the request (its head and extensions; the body is empty after the
//! parse, and the parsed [`LlmRequest`](crate::request::LlmRequest) is
//! shared, not copied), and each retry is built from it, as the request came
//! to `retry`, whatever the services below did to theirs. When no retry can
//! follow the attempt (`max_retries = 0`, or another target is left and the
//! policy leaves retries to the last one) nothing is kept.
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use llm_router::layers::retry::{RetryLayer, RetryPolicy};
//! use llm_router::{ProxyBody, ProxyError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::default().initial_delay(Duration::from_millis(10))))
//!     .service(service_fn(move |_req: Request<ProxyBody>| {
//!         let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!         async move {
//!             let status = if n == 0 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
//!             let mut r = Response::new(ProxyBody::empty());
//!             *r.status_mut() = status;
//!             Ok::<_, ProxyError>(r)
//!         }
//!     }));
//! let answer = svc.oneshot(Request::new(ProxyBody::empty())).await.unwrap();
//! assert_eq!(answer.status(), 200);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
//! # }
//! ```

// Parts of this file are the `resilience` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "resilience"), allow(unused_imports, dead_code))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use crate::body::ProxyBody;
use crate::classify::{Attempt, Outcome, Replay};
use crate::error::ProxyError;
use crate::layers::circuit_breaker::CircuitGate;
use crate::request::RequestContext;
pub use crate::routing::RetryPolicy;
use crate::routing::Target;
use crate::service::NewService;

#[cfg(feature = "resilience")]
/// Applies [`Retry`]. See the [module docs](crate::layers::retry).
#[derive(Clone, Debug)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
}

#[cfg(feature = "resilience")]
impl RetryLayer {
    /// Retry with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy: Arc::new(policy),
        }
    }
}

#[cfg(feature = "resilience")]
impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            policy: self.policy.clone(),
            target: None,
        }
    }
}

#[cfg(feature = "resilience")]
/// The retry service. Below the split point it wraps a [`NewService`] of
/// targets and makes each target's retry, with the target's own policy
/// when its model sets one ([`Target::retry`], from `[[models]] retry`);
/// over a plain service it retries whole requests with the layer's policy.
/// See the [module docs](crate::layers::retry).
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
    target: Option<Target>,
}

#[cfg(feature = "resilience")]
impl<N> NewService<Target> for Retry<N>
where
    N: NewService<Target>,
{
    type Service = Retry<N::Service>;

    fn new_service(&self, target: Target) -> Retry<N::Service> {
        Retry {
            inner: self.inner.new_service(target.clone()),
            policy: target.retry().unwrap_or(&self.policy).clone(),
            target: Some(target),
        }
    }
}

#[cfg(feature = "resilience")]
impl<S> Service<Request<ProxyBody>> for Retry<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        // The ready service serves the first attempt; a clone the rest.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let others_left = others_left(&req);
        let (first, replay) = first_attempt(&self.policy, others_left, req, |req| inner.call(req));
        let target = self.target.clone();
        attempts(
            first,
            replay,
            others_left,
            inner,
            self.policy.clone(),
            target,
        )
    }
}

#[cfg(feature = "resilience")]
/// Whether another target is left after this one ([`Attempt`]).
fn others_left<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<Attempt>()
        .is_some_and(|a| a.others_left)
}

#[cfg(feature = "resilience")]
/// Start the first attempt, keeping a replay of the request when a retry
/// may follow (boxed: the future waiting on a slow stream's first token
/// stays small either way).
fn first_attempt<F>(
    policy: &RetryPolicy,
    others_left: bool,
    req: Request<ProxyBody>,
    call: impl FnOnce(Request<ProxyBody>) -> F,
) -> (F, Option<Box<Replay>>) {
    if !policy.may_retry(others_left) {
        return (call(req), None);
    }
    let replay = Replay::new(req);
    (call(replay.build()), Some(Box::new(replay)))
}

#[cfg(feature = "resilience")]
/// The first attempt's outcome, then the retries it calls for.
fn attempts<S, F>(
    first: F,
    mut replay: Option<Box<Replay>>,
    others_left: bool,
    mut inner: S,
    policy: Arc<RetryPolicy>,
    target: Option<Target>,
) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Send
        + 'static,
    S::Future: Send,
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static,
{
    Box::pin(async move {
        let mut result = first.await;
        let mut n = 0;
        while let Some(delay) = policy.decide(&result, n, others_left) {
            // The last retry takes the replay itself; the others a copy.
            let last = n.saturating_add(1) >= policy.max_retries;
            let next = match replay.take() {
                Some(kept) if last => (*kept).into_request(),
                Some(kept) => {
                    let next = kept.build();
                    replay = Some(kept);
                    next
                }
                // Not kept: `may_retry` said no retry could follow.
                None => break,
            };
            // A circuit breaker above: the failure counts now, and a retry
            // that would hit an opening circuit is not made.
            let gate = next.extensions().get::<CircuitGate>().cloned();
            if gate
                .as_ref()
                .is_some_and(|g| !g.may_retry(Outcome::of(&result)))
            {
                tracing::debug!("not retrying: the circuit breaker decides");
                break;
            }
            tracing::debug!(
                target = target.as_ref().map(Target::label).as_deref().unwrap_or("-"),
                retry = n + 1,
                delay_ms = delay.as_millis() as u64,
                outcome = ?Outcome::of(&result),
                "retrying"
            );
            drop(result);
            if let Some(context) = next.extensions().get::<RequestContext>() {
                context.add_wait(delay);
            }
            // Boxed: only on a retry, and it would enlarge every future.
            Box::pin(tokio::time::sleep(delay)).await;
            if let Some(Err(e)) = gate.as_ref().map(CircuitGate::admit_retry) {
                // The circuit opened during the backoff: not sent.
                result = Err(e);
                break;
            }
            n += 1;
            result = match inner.ready().await {
                Ok(svc) => svc.call(next).await,
                Err(e) => Err(e),
            };
        }
        result
    })
}

#[cfg(all(test, feature = "resilience"))]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    fn status(code: u16, retry_after: Option<&str>) -> Result<Response<ProxyBody>, ProxyError> {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::from_u16(code).unwrap();
        if let Some(v) = retry_after {
            r.headers_mut().insert("retry-after", v.parse().unwrap());
        }
        Ok(r)
    }

    /// A service answering from a script, recording when each call came.
    #[allow(clippy::type_complexity)]
    fn scripted(
        script: Vec<Result<Response<ProxyBody>, ProxyError>>,
    ) -> (
        impl Service<
                Request<ProxyBody>,
                Response = Response<ProxyBody>,
                Error = ProxyError,
                Future = impl Send,
            > + Clone
            + Send
            + 'static,
        Arc<Mutex<Vec<Instant>>>,
    ) {
        let script = Arc::new(Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let times = Arc::new(Mutex::new(Vec::new()));
        let t = times.clone();
        let svc = tower::service_fn(move |_req: Request<ProxyBody>| {
            t.lock().unwrap().push(Instant::now());
            let next = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| status(200, None));
            async move { next }
        });
        (svc, times)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(10))
            .jitter(false)
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_then_gives_up() {
        let (svc, times) = scripted(vec![
            status(503, None),
            status(503, None),
            status(503, None),
            status(503, None),
        ]);
        let start = Instant::now();
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let offsets: Vec<u64> = times
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - start).as_millis() as u64)
            .collect();
        assert_eq!(offsets, vec![0, 1000, 3000, 7000]);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_gives_up_past_max_delay() {
        let (svc, times) = scripted(vec![status(429, Some("3")), status(200, None)]);
        let start = Instant::now();
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(times.lock().unwrap()[1] - start, Duration::from_secs(3));

        let (svc, times) = scripted(vec![status(429, Some("60"))]);
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(times.lock().unwrap().len(), 1);
    }

    #[test]
    fn other_targets_first_leaves_the_retry_to_the_last_target() {
        let p = policy().other_targets_first(true);
        let failed = |code| status(code, None);
        for code in [500, 429] {
            assert_eq!(
                p.decide(&failed(code), 0, true),
                None,
                "{code}, others left"
            );
            assert_eq!(
                p.decide(&failed(code), 0, false),
                Some(Duration::from_secs(1)),
                "{code}, last target"
            );
        }
        let reset = Err(ProxyError::UpstreamConnect {
            backend: "b".into(),
            source: "reset".into(),
        });
        assert_eq!(p.decide(&reset, 0, true), None);
        // Off (the default of a written [retry]): the same target first.
        assert_eq!(
            policy().decide(&failed(500), 0, true),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_other_4xx() {
        let (svc, times) = scripted(vec![status(400, None)]);
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(times.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_only_when_no_other_target() {
        let timeout = || {
            Err(ProxyError::UpstreamTimeout {
                backend: "b".into(),
                after: Duration::from_secs(1),
            })
        };
        let (svc, times) = scripted(vec![timeout(), status(200, None)]);
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(Attempt { others_left: true });
        let r = RetryLayer::new(policy()).layer(svc).oneshot(req).await;
        assert!(r.is_err());
        assert_eq!(times.lock().unwrap().len(), 1);

        let (svc, times) = scripted(vec![timeout(), status(200, None)]);
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(times.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connection_errors_are_retried() {
        let refused = || {
            Err(ProxyError::UpstreamConnect {
                backend: "b".into(),
                source: "refused".into(),
            })
        };
        let (svc, _) = scripted(vec![refused(), status(200, None)]);
        let r = RetryLayer::new(policy())
            .layer(svc)
            .oneshot(Request::new(ProxyBody::empty()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// An extension that counts its live copies.
    #[derive(Clone)]
    struct Tracked(Arc<()>);

    /// What one attempt saw: its `x-team` header and the live copies of
    /// its [`Tracked`] extension (the test's own included).
    type Seen = Arc<Mutex<Vec<(Option<String>, usize)>>>;

    /// Like a layer that edits requests over the upstream edge: records
    /// what each attempt carries, edits its request, consumes it, and
    /// answers from `codes` (200 once they run out).
    fn editing(
        codes: Vec<u16>,
        seen: Seen,
    ) -> impl Service<
        Request<ProxyBody>,
        Response = Response<ProxyBody>,
        Error = ProxyError,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        let codes = Arc::new(Mutex::new(std::collections::VecDeque::from(codes)));
        tower::service_fn(move |mut req: Request<ProxyBody>| {
            let header = req
                .headers()
                .get("x-team")
                .map(|v| v.to_str().unwrap().to_string());
            let copies = req
                .extensions()
                .get::<Tracked>()
                .map_or(0, |t| Arc::strong_count(&t.0));
            seen.lock().unwrap().push((header, copies));
            req.headers_mut()
                .insert("x-team", "edited".parse().unwrap());
            req.extensions_mut().remove::<Tracked>();
            drop(req);
            let code = codes.lock().unwrap().pop_front().unwrap_or(200);
            let answer = status(code, None);
            async move { answer }
        })
    }

    /// A request from team `team`, carrying `tracked`.
    fn from_team(team: &str, tracked: &Tracked) -> Request<ProxyBody> {
        let mut req = Request::new(ProxyBody::empty());
        req.headers_mut().insert("x-team", team.parse().unwrap());
        req.extensions_mut().insert(tracked.clone());
        req
    }

    /// `req` through retry with `policy` over [`editing`] answering
    /// `codes`: the status, and what each attempt saw.
    async fn through(
        policy: RetryPolicy,
        codes: Vec<u16>,
        req: Request<ProxyBody>,
    ) -> (u16, Vec<(Option<String>, usize)>) {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let r = RetryLayer::new(policy)
            .layer(editing(codes, seen.clone()))
            .oneshot(req)
            .await
            .unwrap();
        let status = r.status().as_u16();
        let seen = seen.lock().unwrap().clone();
        (status, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_replays_the_request_as_it_came_and_nothing_leaks() {
        let tracked = Tracked(Arc::new(()));
        let (status, seen) = through(policy(), vec![503], from_team("a", &tracked)).await;
        assert_eq!(status, 200);
        // The edit below did not reach the replay; each attempt ran beside
        // retry's own copy (two retries were left after the first).
        assert_eq!(
            seen,
            vec![(Some("a".to_string()), 3), (Some("a".to_string()), 3)]
        );
        // Every copy of the request's extensions is gone with the call.
        assert_eq!(Arc::strong_count(&tracked.0), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_replay_is_copied_for_each_retry_but_the_last() {
        let tracked = Tracked(Arc::new(()));
        let (status, seen) = through(
            policy().max_retries(2),
            vec![503, 503, 503],
            from_team("b", &tracked),
        )
        .await;
        assert_eq!(status, 503);
        let copies: Vec<usize> = seen.iter().map(|(_, copies)| *copies).collect();
        assert_eq!(copies, vec![3, 3, 2]);
        assert!(seen.iter().all(|(team, _)| team.as_deref() == Some("b")));
        assert_eq!(Arc::strong_count(&tracked.0), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_replay_is_kept_when_no_retry_can_follow() {
        let tracked = Tracked(Arc::new(()));
        // Retries left to the last target while another is left.
        let mut req = from_team("c", &tracked);
        req.extensions_mut().insert(Attempt { others_left: true });
        let (status, seen) = through(policy().other_targets_first(true), vec![503], req).await;
        assert_eq!(status, 503);
        assert_eq!(seen, vec![(Some("c".to_string()), 2)]);
        // No retries at all.
        let (status, seen) =
            through(policy().max_retries(0), vec![503], from_team("c", &tracked)).await;
        assert_eq!(status, 503);
        assert_eq!(seen, vec![(Some("c".to_string()), 2)]);
        assert_eq!(Arc::strong_count(&tracked.0), 1);
    }
}
