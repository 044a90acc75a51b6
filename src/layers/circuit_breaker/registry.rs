//! [`Breakers`]: the shared circuit registry — admission, outcomes,
//! retries below the breaker, the admin view, and the circuits shared with
//! other replicas through the store.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Admission, BreakerPolicy, Entry, Phase, Table};
use crate::classify::Outcome;
use crate::store::RedisStore;

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

    pub(super) fn lock(&self) -> MutexGuard<'_, Table> {
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
    /// use llm_router::__private::classify::Outcome;
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
