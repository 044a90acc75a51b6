//! The local copy a [`RedisStore`](super::RedisStore) keeps in step with the
//! other replicas: what it needs of this replica's circuit and cooldown
//! registries ([`LocalCircuits`], [`LocalCooldowns`]). The registries of the
//! `circuit_breaker` and `failover` layers implement these; the store knows
//! nothing else of them.

use std::time::Duration;

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
