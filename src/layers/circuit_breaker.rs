//! `circuit_breaker`: stops sending requests to a target that keeps failing.
//!
//! Per target (backend and model), a breaker is **closed** until
//! `failure_threshold` consecutive failures (5xx, connection errors,
//! timeouts; a 429 is not a failure, it starts a cooldown in failover) open it.
//! While **open**, calls are refused at once with [`ProxyError::CircuitOpen`]
//! — the upstream is not touched — so failover moves on. After `open_for` it
//! is **half-open**: up to `half_open_requests` requests go through as probes
//! (concurrent requests beyond them are refused, not all turned into probes);
//! a probe that fails re-opens it, and once `half_open_requests` probes have
//! succeeded it closes. Every transition is a tracing event.
//!
//! The state lives in a shared [`Breakers`] registry, so every clone of the
//! service (hyper makes one per connection) sees the same circuits, and the
//! admin API can show them.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use llm_router::classify::Outcome;
//! use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers, CircuitBreakerLayer};
//!
//! let breakers = Arc::new(Breakers::new(BreakerPolicy {
//!     failure_threshold: 2,
//!     open_for: Duration::from_secs(30),
//!     half_open_requests: 1,
//! }));
//! let _layer = CircuitBreakerLayer::new(breakers.clone());
//! for _ in 0..2 {
//!     let admission = breakers.admit("openai/gpt-4o").unwrap();
//!     breakers.record("openai/gpt-4o", admission, Outcome::ServerError);
//! }
//! assert!(breakers.admit("openai/gpt-4o").is_err()); // open: refused at once
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::classify::Outcome;
use crate::error::ProxyError;
use crate::layers::failover::target_key;
use crate::request::LlmRequest;
use crate::routing::{Target, TargetKey};
use crate::store::RedisStore;
use crate::FastMap;

/// Breaker settings (`[circuit_breaker]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open a closed circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before probing.
    pub open_for: Duration,
    /// Probes let through while half-open; all must succeed to close.
    pub half_open_requests: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            half_open_requests: 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    phase: Phase,
    consecutive_failures: u32,
}

/// How a call was let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Normal,
    /// A half-open probe.
    Probe,
}

/// One circuit, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BreakerView {
    /// `backend/model`.
    pub target: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Consecutive failures so far.
    pub consecutive_failures: u32,
    /// Seconds until an open circuit lets a probe through.
    pub retry_in_secs: Option<f64>,
}

/// The shared circuit registry. See the [module docs](crate::layers::circuit_breaker).
#[derive(Debug)]
pub struct Breakers {
    policy: BreakerPolicy,
    entries: Mutex<FastMap<String, Entry>>,
    /// With `[state] store = "redis"`: where transitions are published.
    store: OnceLock<Arc<RedisStore>>,
}

impl Breakers {
    /// An empty registry with `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        Breakers {
            policy,
            entries: Mutex::new(FastMap::default()),
            store: OnceLock::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, FastMap<String, Entry>> {
        // A panic elsewhere cannot leave an entry half-written: recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let a call to `key` through, or refuse it with the time until the
    /// circuit may let one through.
    pub fn admit(&self, key: &str) -> Result<Admission, Duration> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return Ok(Admission::Normal);
        };
        match entry.phase {
            Phase::Closed => Ok(Admission::Normal),
            // The clock is read only for an open circuit.
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                entry.phase = Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                tracing::info!(target_key = key, "circuit half-open: sending a probe");
                Ok(Admission::Probe)
            }
            Phase::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight + successes < self.policy.half_open_requests.max(1) {
                    entry.phase = Phase::HalfOpen {
                        in_flight: in_flight + 1,
                        successes,
                    };
                    Ok(Admission::Probe)
                } else {
                    Err(Duration::from_secs(1))
                }
            }
        }
    }

    /// Record the outcome of an admitted call.
    pub fn record(&self, key: &str, admission: Admission, outcome: Outcome) {
        let opened = self.record_locally(key, admission, outcome);
        if let (Some(store), Some(opened)) = (self.store.get(), opened) {
            if opened {
                store.circuit_opened(key, self.policy.open_for);
            } else {
                store.circuit_closed(key);
            }
        }
    }

    /// [`Breakers::record`] on this replica; `Some(true)` when the circuit
    /// opened, `Some(false)` when it closed.
    fn record_locally(&self, key: &str, admission: Admission, outcome: Outcome) -> Option<bool> {
        let failure = outcome.is_breaker_failure();
        let success = matches!(outcome, Outcome::Success | Outcome::ClientError);
        let mut entries = self.lock();
        if !entries.contains_key(key) {
            entries.insert(
                key.to_string(),
                Entry {
                    phase: Phase::Closed,
                    consecutive_failures: 0,
                },
            );
        }
        let entry = entries.get_mut(key)?;
        if failure {
            entry.consecutive_failures += 1;
        } else if success {
            entry.consecutive_failures = 0;
        }
        match (admission, entry.phase) {
            (
                Admission::Probe,
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
            ) => {
                if failure {
                    entry.phase = Phase::Open {
                        until: Instant::now() + self.policy.open_for,
                    };
                    tracing::warn!(target_key = key, "circuit re-opened: the probe failed");
                    Some(true)
                } else if success {
                    let successes = successes + 1;
                    if successes >= self.policy.half_open_requests.max(1) {
                        entry.phase = Phase::Closed;
                        tracing::info!(target_key = key, "circuit closed: probes succeeded");
                        Some(false)
                    } else {
                        entry.phase = Phase::HalfOpen {
                            in_flight: in_flight.saturating_sub(1),
                            successes,
                        };
                        None
                    }
                } else {
                    entry.phase = Phase::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        successes,
                    };
                    None
                }
            }
            (_, Phase::Closed)
                if failure
                    && entry.consecutive_failures >= self.policy.failure_threshold.max(1) =>
            {
                entry.phase = Phase::Open {
                    until: Instant::now() + self.policy.open_for,
                };
                tracing::warn!(
                    target_key = key,
                    failures = entry.consecutive_failures,
                    open_for = ?self.policy.open_for,
                    "circuit opened"
                );
                Some(true)
            }
            _ => None,
        }
    }

    /// An admitted call ended without an outcome (the client went away).
    pub fn release(&self, key: &str, admission: Admission) {
        if admission != Admission::Probe {
            return;
        }
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key) {
            if let Phase::HalfOpen {
                in_flight,
                successes,
            } = entry.phase
            {
                entry.phase = Phase::HalfOpen {
                    in_flight: in_flight.saturating_sub(1),
                    successes,
                };
            }
        }
    }

    /// Every circuit that has seen traffic.
    pub fn snapshot(&self) -> Vec<BreakerView> {
        let now = Instant::now();
        let mut out: Vec<BreakerView> = self
            .lock()
            .iter()
            .map(|(key, e)| {
                let (state, retry_in) = match e.phase {
                    Phase::Closed => ("closed", None),
                    Phase::Open { until } if until > now => {
                        ("open", Some((until - now).as_secs_f64()))
                    }
                    Phase::Open { .. } => ("half_open", Some(0.0)),
                    Phase::HalfOpen { .. } => ("half_open", None),
                };
                BreakerView {
                    target: key.clone(),
                    state,
                    consecutive_failures: e.consecutive_failures,
                    retry_in_secs: retry_in,
                }
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Whether `key`'s circuit refuses calls right now.
    pub fn is_open(&self, key: &str) -> bool {
        let now = Instant::now();
        matches!(self.lock().get(key), Some(Entry { phase: Phase::Open { until }, .. }) if *until > now)
    }

    /// Publish this registry's transitions through `store` (`[state] store =
    /// "redis"`); a registry already tied to a store keeps it.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// Another replica opened `key`'s circuit with `left` to go: open it
    /// here too (unless it is open here for longer already).
    pub fn apply_shared_open(&self, key: &str, left: Duration) {
        let until = Instant::now() + left;
        let mut entries = self.lock();
        let entry = entries.entry(key.to_string()).or_insert(Entry {
            phase: Phase::Closed,
            consecutive_failures: 0,
        });
        if matches!(entry.phase, Phase::Open { until: mine } if mine >= until) {
            return;
        }
        entry.phase = Phase::Open { until };
        tracing::info!(target_key = key, open_for = ?left, "circuit opened by another replica");
    }

    /// Another replica's probes closed `key`'s circuit: close it here too.
    pub fn apply_shared_closed(&self, key: &str) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key) {
            if entry.phase != Phase::Closed {
                entry.phase = Phase::Closed;
                entry.consecutive_failures = 0;
                tracing::info!(target_key = key, "circuit closed by another replica");
            }
        }
    }

    /// The circuits open now, with the time each has left.
    pub fn open_circuits(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter_map(|(key, e)| match e.phase {
                Phase::Open { until } if until > now => Some((key.clone(), until - now)),
                _ => None,
            })
            .collect()
    }

    /// Keep only the circuits whose key (`backend/model`) `keep` accepts: a
    /// config reload drops the circuits of targets that no longer exist.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    /// A registry with `policy` that starts from the circuits of `old` that
    /// `keep` accepts (a config reload that changed `[circuit_breaker]`): an
    /// open circuit stays open until its time is up and failure counts go on.
    /// A half-open circuit comes over as due for a new probe, since the
    /// probes in flight report to `old`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llm_router::classify::Outcome;
    /// use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers};
    ///
    /// let old = Breakers::new(BreakerPolicy { failure_threshold: 1, ..Default::default() });
    /// let admission = old.admit("a/m").unwrap();
    /// old.record("a/m", admission, Outcome::ServerError);
    /// let policy = BreakerPolicy { failure_threshold: 3, open_for: Duration::from_secs(5), half_open_requests: 1 };
    /// let new = Breakers::carry_over(policy, &old, |key| key.starts_with("a/"));
    /// assert!(new.is_open("a/m"));
    /// ```
    pub fn carry_over(
        policy: BreakerPolicy,
        old: &Breakers,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Self {
        let now = Instant::now();
        let entries = old
            .lock()
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, entry)| {
                let mut entry = *entry;
                if let Phase::HalfOpen { .. } = entry.phase {
                    entry.phase = Phase::Open { until: now };
                }
                (key.clone(), entry)
            })
            .collect();
        Breakers {
            policy,
            entries: Mutex::new(entries),
            store: old.store.clone(),
        }
    }
}

/// Applies [`CircuitBreaker`]. See the [module docs](crate::layers::circuit_breaker).
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breakers: Arc<Breakers>,
}

impl CircuitBreakerLayer {
    /// Breakers from a shared registry.
    pub fn new(breakers: Arc<Breakers>) -> Self {
        CircuitBreakerLayer { breakers }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            breakers: self.breakers.clone(),
        }
    }
}

/// The breaker service. See the [module docs](crate::layers::circuit_breaker).
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    breakers: Arc<Breakers>,
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
        guarded(&self.breakers, req, |req| self.inner.call(req))
    }
}

impl crate::stack::CallRef for CircuitBreaker<crate::stack::LlmService> {
    fn call_ref(&self, req: Request<crate::ProxyBody>) -> crate::stack::LlmFuture {
        guarded(&self.breakers, req, |req| self.inner.call_ref(req))
    }
}

/// Admit `req` to its target's circuit and record how the call went.
fn guarded<B, F>(
    breakers: &Arc<Breakers>,
    req: Request<B>,
    call: impl FnOnce(Request<B>) -> F,
) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static,
{
    let Some(target) = req.extensions().get::<Target>() else {
        return Box::pin(call(req));
    };
    let key: TargetKey = match req.extensions().get::<LlmRequest>() {
        Some(llm) => target_key(target, llm.model()),
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
    let future = call(req);
    let pending = Pending(Some((breakers.clone(), key, admission)));
    Box::pin(async move {
        let result = future.await;
        pending.finish(Outcome::of(&result));
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
            half_open_requests: 2,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_half_opens_and_closes() {
        let b = breakers();
        for _ in 0..2 {
            let a = b.admit("t").unwrap();
            b.record("t", a, Outcome::ServerError);
        }
        // A success resets the count.
        let a = b.admit("t").unwrap();
        b.record("t", a, Outcome::Success);
        for _ in 0..3 {
            let a = b.admit("t").unwrap();
            b.record("t", a, Outcome::Timeout);
        }
        assert_eq!(b.admit("t"), Err(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        // Two probes, a third concurrent request is refused.
        assert_eq!(b.admit("t"), Ok(Admission::Probe));
        assert_eq!(b.admit("t"), Ok(Admission::Probe));
        assert!(b.admit("t").is_err());
        b.record("t", Admission::Probe, Outcome::Success);
        assert!(b.admit("t").is_err(), "one probe still in flight");
        b.record("t", Admission::Probe, Outcome::Success);
        assert_eq!(b.admit("t"), Ok(Admission::Normal));
        assert_eq!(b.snapshot()[0].state, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_429_does_not_count() {
        let b = breakers();
        for _ in 0..10 {
            let a = b.admit("t").unwrap();
            b.record("t", a, Outcome::RateLimited);
        }
        assert_eq!(b.admit("t"), Ok(Admission::Normal));
        for _ in 0..3 {
            b.record("t", Admission::Normal, Outcome::ConnectionError);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let a = b.admit("t").unwrap();
        assert_eq!(a, Admission::Probe);
        b.record("t", a, Outcome::ServerError);
        assert_eq!(b.admit("t"), Err(Duration::from_secs(10)));
        assert_eq!(b.snapshot()[0].state, "open");
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_frees_its_slot() {
        let b = breakers();
        for _ in 0..3 {
            b.record("t", Admission::Normal, Outcome::ServerError);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        let a1 = b.admit("t").unwrap();
        let _a2 = b.admit("t").unwrap();
        assert!(b.admit("t").is_err());
        b.release("t", a1);
        assert_eq!(b.admit("t"), Ok(Admission::Probe));
    }
}
