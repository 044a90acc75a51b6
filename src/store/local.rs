//! The local copy a [`RedisStore`](super::RedisStore) keeps in step with the
//! other replicas: what it needs of this replica's circuit and cooldown
//! registries ([`LocalCircuits`], [`LocalCooldowns`]) and of its budget
//! spend ([`LocalSpend`]). The registries of the `circuit_breaker`,
//! `failover` and `budget` layers implement these; the store knows nothing
//! else of them.

use std::time::Duration;

use super::BudgetCall;

/// This replica's circuits, as the store reads and updates them.
pub trait LocalCircuits: Send + Sync {
    /// The circuits open now, with the time each has left.
    fn open_circuits(&self) -> Vec<(String, Duration)>;
    /// Another replica opened `key`'s circuit with `left` to go (capped by
    /// the registry: what arrives through Redis is not trusted to be sane).
    fn apply_shared_open(&self, key: &str, left: Duration);
    /// Another replica's probes closed `key`'s circuit.
    fn apply_shared_closed(&self, key: &str);
}

/// This replica's cooldowns, as the store reads and updates them.
pub trait LocalCooldowns: Send + Sync {
    /// The cooldowns running now, with the time each has left.
    fn active(&self) -> Vec<(String, Duration)>;
    /// Another replica put `key` in cooldown with `left` to go (capped by
    /// the registry), not to be published again.
    fn apply_shared(&self, key: &str, left: Duration);
}

/// This replica's budget spend, as the store writes it back to Redis when
/// it (re)connects.
pub trait LocalSpend: Send + Sync {
    /// Take the spend Redis was not told of (counted while it was
    /// unavailable, or whose settlement failed), as settlements to make;
    /// with `all` (Redis lost its data), every budget's spend of this
    /// replica that still counts instead.
    fn take_unwritten(&self, all: bool) -> Vec<BudgetCall>;
    /// Settlements of [`LocalSpend::take_unwritten`] that could not be
    /// written: kept for the next time.
    fn put_back(&self, calls: Vec<BudgetCall>);
}
