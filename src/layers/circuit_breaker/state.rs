//! The state of one circuit (closed, open, half-open), the bounded table of
//! circuits, the policy that drives them and how a call was let through.
//! No tower code.

use std::time::Duration;

use tokio::time::Instant;

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
pub(super) enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) phase: Phase,
    pub(super) consecutive_failures: u32,
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
pub(super) struct Table {
    pub(super) map: FastMap<String, Entry>,
    pub(super) next_sweep: Option<Instant>,
}

impl Table {
    /// The entry of `key`, created closed when there is room for it (after
    /// dropping expendable entries if the table is full; a table still full
    /// is swept again only after `pause`, so a flood of new keys costs no
    /// sweep per request).
    pub(super) fn entry(&mut self, key: &str, pause: Duration) -> Option<&mut Entry> {
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
