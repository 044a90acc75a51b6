//! `circuit_breaker`: stops sending requests to a target that keeps failing.
//!
//! Per target (backend and model), a breaker is **closed** until
//! `failure_threshold` consecutive failures (5xx, connection errors,
//! timeouts; a 429 is not a failure, it starts a cooldown in failover) open it.
//! While **open**, calls are refused at once with [`ProxyError::CircuitOpen`]
//! — the upstream is not touched — so failover moves on. After `open_for` it
//! is **half-open**: up to `half_open_requests` requests go through as probes
//! (concurrent requests beyond them are refused, not all turned into probes);
//! a probe that fails re-opens it for `open_for` (a probe is never retried),
//! and once `half_open_requests` probes have succeeded it closes. Every
//! transition is a tracing event.
//!
//! Retries below the breaker (`retry` after `circuit_breaker` in the order)
//! go through it too: the breaker puts a [`CircuitGate`] into the request,
//! and `retry` asks it before each retry. A failed attempt about to be
//! retried counts as a failure at once; the attempt that would open the
//! circuit is not retried (its failure opens it), and a retry whose circuit
//! opened meanwhile is not sent ([`ProxyError::CircuitOpen`]). So while a
//! target is down only its probes reach it, however many requests and
//! retries are in flight.
//!
//! The registry is bounded: a closed circuit without failures is not kept,
//! and past [`MAX_CIRCUITS`] entries the closed and expired ones are dropped;
//! a target that finds the table full of open circuits is not tracked. A
//! client sending endless model names to a `*` route cannot grow it. Targets
//! of `api_key = "passthrough"` backends have a circuit per client
//! credential (see [`state_key`]).
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
use crate::request::LlmRequest;
use crate::routing::{state_key, CredentialTag};
use crate::routing::{Credential, Target, TargetKey};
use crate::service::NewService;
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

impl Entry {
    const CLOSED: Entry = Entry {
        phase: Phase::Closed,
        consecutive_failures: 0,
    };

    /// Whether dropping it loses nothing that still matters at `now`: a
    /// closed circuit (its failure count at most), or an open one whose
    /// time is up and that no probe reports to.
    fn expendable(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { until } => until <= now,
            Phase::HalfOpen { .. } => false,
        }
    }
}

/// The most circuits a registry keeps (see the [module
/// docs](crate::layers::circuit_breaker)): far above the configured targets
/// of any deployment, and a few MiB at most.
pub const MAX_CIRCUITS: usize = 10_000;

/// The entries, and when a full table may be swept again.
#[derive(Debug, Default)]
struct Table {
    map: FastMap<String, Entry>,
    next_sweep: Option<Instant>,
}

impl Table {
    /// The entry of `key`, created closed when there is room for it (after
    /// dropping expendable entries if the table is full; a table still full
    /// is swept again only after `pause`, so a flood of new keys costs no
    /// sweep per request).
    fn entry(&mut self, key: &str, pause: Duration) -> Option<&mut Entry> {
        if !self.map.contains_key(key) {
            if self.map.len() >= MAX_CIRCUITS {
                let now = Instant::now();
                if self.next_sweep.is_some_and(|t| now < t) {
                    return None;
                }
                self.map.retain(|_, e| !e.expendable(now));
                if self.map.len() >= MAX_CIRCUITS {
                    self.next_sweep = Some(now + pause);
                    tracing::warn!(
                        circuits = self.map.len(),
                        "circuit table full of open circuits: new targets are not tracked"
                    );
                    return None;
                }
            }
            self.map.insert(key.to_string(), Entry::CLOSED);
        }
        self.map.get_mut(key)
    }
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
    entries: Mutex<Table>,
    /// With `[state] store = "redis"`: where transitions are published.
    store: OnceLock<Arc<RedisStore>>,
}

impl Breakers {
    /// An empty registry with `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        Breakers {
            policy,
            entries: Mutex::new(Table::default()),
            store: OnceLock::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave an entry half-written: recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let a call to `key` through, or refuse it with the time until the
    /// circuit may let one through.
    pub fn admit(&self, key: &str) -> Result<Admission, Duration> {
        let mut entries = self.lock();
        let Some(entry) = entries.map.get_mut(key) else {
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
        if !failure && !entries.map.contains_key(key) {
            // Closed without failures: nothing worth keeping.
            return None;
        }
        let entry = entries.entry(key, self.policy.open_for)?;
        if failure {
            entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
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
                    let successes = successes.saturating_add(1);
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
            (_, Phase::Closed) if success && entry.consecutive_failures == 0 => {
                entries.map.remove(key);
                None
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

    /// A failed attempt of an admitted call is about to be retried (by a
    /// `retry` below the breaker): count the failure now, and say whether
    /// the retry may go. It may not when the call is a probe (a probe's
    /// failure re-opens the circuit), when the circuit is no longer closed,
    /// or when this failure reaches `failure_threshold`: then the attempt's
    /// result is the call's, and [`Breakers::record`] counts it (opening the
    /// circuit). Other outcomes (a 429) count nothing and may be retried.
    pub fn retrying(&self, key: &str, admission: Admission, outcome: Outcome) -> bool {
        if !outcome.is_breaker_failure() {
            return true;
        }
        if admission == Admission::Probe {
            return false;
        }
        let threshold = self.policy.failure_threshold.max(1);
        let mut entries = self.lock();
        let Some(entry) = entries.entry(key, self.policy.open_for) else {
            // Not tracked (a full table): as without a breaker.
            return true;
        };
        if entry.phase != Phase::Closed || entry.consecutive_failures.saturating_add(1) >= threshold
        {
            return false;
        }
        entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        true
    }

    /// Whether the circuit still lets a retry of an admitted call through
    /// (after its backoff): a probe keeps its slot; any other call only
    /// while the circuit is closed. Otherwise the time until it may let one
    /// through.
    pub fn still_admits(&self, key: &str, admission: Admission) -> Result<(), Duration> {
        if admission == Admission::Probe {
            return Ok(());
        }
        let phase = self.lock().map.get(key).map(|e| e.phase);
        match phase {
            None | Some(Phase::Closed) => Ok(()),
            Some(Phase::Open { until }) => Err(until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))),
            Some(Phase::HalfOpen { .. }) => Err(Duration::from_secs(1)),
        }
    }

    /// An admitted call ended without an outcome (the client went away).
    pub fn release(&self, key: &str, admission: Admission) {
        if admission != Admission::Probe {
            return;
        }
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key) {
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
            .map
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
        matches!(self.lock().map.get(key), Some(Entry { phase: Phase::Open { until }, .. }) if *until > now)
    }

    /// Publish this registry's transitions through `store` (`[state] store =
    /// "redis"`); a registry already tied to a store keeps it.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// Another replica opened `key`'s circuit with `left` to go: open it
    /// here too (unless it is open here for longer already). `left` is
    /// capped at this registry's `open_for`: what arrives through Redis is
    /// not trusted to be sane.
    pub fn apply_shared_open(&self, key: &str, left: Duration) {
        let until = Instant::now() + left.min(self.policy.open_for);
        let mut entries = self.lock();
        let Some(entry) = entries.entry(key, self.policy.open_for) else {
            return;
        };
        if matches!(entry.phase, Phase::Open { until: mine } if mine >= until) {
            return;
        }
        entry.phase = Phase::Open { until };
        tracing::info!(target_key = key, open_for = ?left, "circuit opened by another replica");
    }

    /// Another replica's probes closed `key`'s circuit: close it here too.
    pub fn apply_shared_closed(&self, key: &str) {
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key) {
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
            .map
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
        self.lock().map.retain(|key, _| keep(key));
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
        let map = old
            .lock()
            .map
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
            entries: Mutex::new(Table {
                map,
                next_sweep: None,
            }),
            store: old.store.clone(),
        }
    }
}

/// What the Redis store reads and updates of this replica's circuits.
impl crate::store::LocalCircuits for Breakers {
    fn open_circuits(&self) -> Vec<(String, Duration)> {
        Breakers::open_circuits(self)
    }
    fn apply_shared_open(&self, key: &str, left: Duration) {
        Breakers::apply_shared_open(self, key, left);
    }
    fn apply_shared_closed(&self, key: &str) {
        Breakers::apply_shared_closed(self, key);
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
            target: None,
        }
    }
}

/// The breaker. Below the split point it wraps a [`NewService`] of targets
/// and makes each target's breaker (its own circuit); a breaker made over a
/// plain service has no target and lets every request through.
/// See the [module docs](crate::layers::circuit_breaker).
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    breakers: Arc<Breakers>,
    target: Option<Target>,
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

/// Put into each admitted call's extensions by the breaker, for a `retry`
/// below it: [`CircuitGate::may_retry`] before a retry's backoff,
/// [`CircuitGate::admit_retry`] after it. See the [module
/// docs](crate::layers::circuit_breaker).
///
/// ```
/// use std::sync::Arc;
/// use llm_router::classify::Outcome;
/// use llm_router::layers::circuit_breaker::{Admission, BreakerPolicy, Breakers, CircuitGate};
/// use llm_router::routing::TargetKey;
///
/// let breakers = Arc::new(Breakers::new(BreakerPolicy { failure_threshold: 2, ..Default::default() }));
/// let gate = CircuitGate::new(breakers.clone(), TargetKey::join("a", "m"), Admission::Normal);
/// assert!(gate.may_retry(Outcome::ServerError)); // the first failure counts; retried
/// assert!(!gate.may_retry(Outcome::ServerError)); // the second would open the circuit
/// assert!(gate.admit_retry().is_ok());
/// ```
#[derive(Clone)]
pub struct CircuitGate {
    breakers: Arc<Breakers>,
    key: TargetKey,
    admission: Admission,
}

impl CircuitGate {
    /// The gate of a call to `key` let through as `admission`.
    pub fn new(breakers: Arc<Breakers>, key: TargetKey, admission: Admission) -> Self {
        CircuitGate {
            breakers,
            key,
            admission,
        }
    }

    /// An attempt ended with `outcome` and retry would try again: whether
    /// it may (see [`Breakers::retrying`]).
    pub fn may_retry(&self, outcome: Outcome) -> bool {
        self.breakers.retrying(&self.key, self.admission, outcome)
    }

    /// Just before a retry is sent: [`ProxyError::CircuitOpen`] when the
    /// circuit opened meanwhile (the retry is not sent).
    pub fn admit_retry(&self) -> Result<(), ProxyError> {
        self.breakers
            .still_admits(&self.key, self.admission)
            .map_err(|retry_after| ProxyError::CircuitOpen {
                target: self.key.to_string(),
                retry_after,
            })
    }
}

impl std::fmt::Debug for CircuitGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitGate")
            .field("key", &self.key)
            .field("admission", &self.admission)
            .finish_non_exhaustive()
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

    fn len(b: &Breakers) -> usize {
        b.lock().map.len()
    }

    /// Regression (issue 15): a `*` route kept one entry per client-chosen
    /// model name forever.
    #[tokio::test(start_paused = true)]
    async fn closed_circuits_without_failures_are_not_kept() {
        let b = breakers();
        for i in 0..100 {
            let key = format!("up/model-{i}");
            let a = b.admit(&key).unwrap();
            b.record(&key, a, Outcome::Success);
        }
        assert_eq!(len(&b), 0);
        // A failure is kept until a success clears it.
        b.record("up/x", Admission::Normal, Outcome::ServerError);
        assert_eq!(b.snapshot()[0].consecutive_failures, 1);
        b.record("up/x", Admission::Normal, Outcome::Success);
        assert_eq!(len(&b), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let b = Breakers::new(BreakerPolicy {
            failure_threshold: 1,
            open_for: Duration::from_secs(10),
            half_open_requests: 1,
        });
        // Every unique name fails once: each opens a circuit.
        for i in 0..MAX_CIRCUITS + 500 {
            b.record(
                &format!("up/m-{i}"),
                Admission::Normal,
                Outcome::ServerError,
            );
        }
        assert_eq!(len(&b), MAX_CIRCUITS);
        // The circuits already open stay open; the newest names are not tracked.
        assert!(b.is_open("up/m-0"));
        assert!(!b.is_open(&format!("up/m-{}", MAX_CIRCUITS + 1)));
        assert_eq!(b.admit("up/new"), Ok(Admission::Normal));
        // Once they expired, room is made again (after the sweep pause).
        tokio::time::advance(Duration::from_secs(10)).await;
        b.record("up/new", Admission::Normal, Outcome::ServerError);
        assert!(b.is_open("up/new"));
        assert_eq!(len(&b), 1);

        // Closed circuits with failures make room as well.
        let b = breakers();
        for i in 0..MAX_CIRCUITS + 500 {
            b.record(
                &format!("up/m-{i}"),
                Admission::Normal,
                Outcome::ServerError,
            );
        }
        assert!(len(&b) <= MAX_CIRCUITS);
        assert!(b
            .snapshot()
            .iter()
            .any(|c| c.target == format!("up/m-{}", MAX_CIRCUITS + 499)));
    }

    /// Retries below the breaker: a failure about to be retried counts at
    /// once; the one that reaches the threshold is not retried; a probe is
    /// never retried; a retry whose circuit opened meanwhile is not sent.
    #[tokio::test(start_paused = true)]
    async fn retries_go_through_the_breaker() {
        let b = Arc::new(breakers());
        let first = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Normal);
        assert!(
            first.may_retry(Outcome::RateLimited),
            "a 429 counts nothing"
        );
        assert!(first.may_retry(Outcome::ServerError));
        assert!(first.may_retry(Outcome::Timeout));
        assert_eq!(b.snapshot()[0].consecutive_failures, 2);
        assert!(!first.may_retry(Outcome::ServerError), "the third opens it");
        assert!(first.admit_retry().is_ok());
        b.record("up/m", Admission::Normal, Outcome::ServerError);
        assert!(b.is_open("up/m"));
        let other = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Normal);
        assert!(!other.may_retry(Outcome::ServerError));
        assert!(matches!(
            other.admit_retry(),
            Err(ProxyError::CircuitOpen { .. })
        ));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.admit("up/m"), Ok(Admission::Probe));
        let probe = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Probe);
        assert!(!probe.may_retry(Outcome::ConnectionError));
        assert!(probe.may_retry(Outcome::RateLimited));
        assert!(probe.admit_retry().is_ok());
    }
}
