//! Where rate limits, cooldowns and circuit state live (`[state]`).
//!
//! - **`store = "memory"`** (the default): in this process. The registries
//!   of the layers — `ClientLimits` and `BackendLimits` (`rate_limit`),
//!   `Cooldowns` (`failover`) and `Breakers` (`circuit_breaker`) — are the
//!   whole state: every decision is a synchronous look-up under a lock, with no
//!   await and nothing allocated for the store.
//! - **`store = "redis"`**: shared by every replica through a
//!   [`RedisStore`]. The same registries stay as each replica's *local copy*
//!   (the store sees them as [`LocalCircuits`] and [`LocalCooldowns`]) and
//!   its fallback:
//!   - **limits** are decided in Redis, atomically, by one Lua script
//!     (`EVALSHA`, `EVAL` when Redis lost the script): the same per-key
//!     window arithmetic as the memory store, the token check and the request
//!     count of a client in one call — one round trip per request (plus one
//!     per tried target whose backend has a `rate_limit`). The local
//!     counters keep counting this replica's own traffic;
//!   - **budgets** are decided in Redis too (`budget.lua`): one script per
//!     reservation, on the request's path, and one per settlement and per
//!     round of lease renewals, in the background; unavailable, the `budget`
//!     layer's ledger decides, and the spend it counted meanwhile
//!     ([`LocalSpend`]) is written back on reconnect;
//!   - **cooldowns and circuits** are read from the local copy, so a healthy
//!     request never waits on Redis for them. Each transition (circuit
//!     opened or closed, cooldown started) is written to Redis and published
//!     on `{prefix}:events` by a background task; every replica applies what
//!     the others publish as it arrives (pub/sub, no polling). On (re)connect
//!     a replica pushes the circuits and cooldowns it holds and loads those
//!     Redis holds;
//!   - **Redis unavailable** (down at start, lost, or slower than `timeout`):
//!     decisions fall back to the local copy at once, one warning is logged
//!     per outage, `/health` says `"state_store": "degraded"`, and a
//!     background task reconnects with backoff (100 ms doubling to 2 s),
//!     then resumes. No request waits on Redis longer than `timeout`.
//!
//! Keys are namespaced by `prefix` and expire (but the budget epoch): a
//! limit when its window ends, a cooldown or an open circuit when it ends,
//! a budget past its period's end. Client keys appear
//! hashed (SHA-256), never raw.
//!
//! | key | what |
//! | --- | --- |
//! | `{prefix}:limit:client:{<sha256>}:requests` / `:tokens` | a client's window counter (hash `s` = start, `c` = count) |
//! | `{prefix}:limit:backend:{<name>}:requests` | a backend's `rate_limit` counters |
//! | `{prefix}:cooldown:<backend>/<model>` | a target cooling down (TTL = time left) |
//! | `{prefix}:circuit:<backend>/<model>` | an open circuit (TTL = time left) |
//! | `{prefix}:budget:{<sha256>}:spend` / `:holds` / `:expiry` | a budget's spend per bucket and reserved total, its reservations in flight, their leases' ends (`budget.lua`) |
//! | `{prefix}:budget:epoch` | the budget epoch: written by the first replica to connect to a data set, so replicas tell Redis that lost its data apart (it does not expire) |
//! | `{prefix}:events` | the pub/sub channel of transitions |
//!
//! Per replica, still: concurrency limits (requests in flight), consecutive
//! failure counts, and half-open probes (each replica whose open period
//! ended may probe; the first probe to close or re-open the circuit tells
//! the others).
//!
//! ```
//! use std::time::Duration;
//! use llm_router::__private::store::{StateConfig, StoreKind};
//!
//! let config = StateConfig::default();
//! assert_eq!(config.store, StoreKind::Memory);
//! assert_eq!(config.prefix, "llm-router");
//! assert_eq!(config.timeout, Duration::from_millis(100));
//! ```

mod local;
#[cfg(not(feature = "redis"))]
mod no_redis;
mod ops;
#[cfg(feature = "redis")]
mod redis_store;

use std::fmt;
use std::time::Duration;

pub use local::{LocalCircuits, LocalCooldowns, LocalSpend};
#[cfg(not(feature = "redis"))]
pub use no_redis::RedisStore;
pub use ops::{BudgetAnswer, BudgetCall, BudgetOp, LimitOp, Op, Verdict};
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

/// `[state] store`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// In this process (the default).
    #[default]
    Memory,
    /// Shared through Redis.
    Redis,
}

impl StoreKind {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// `[state]`. `Debug` hides a password in `redis_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// Where the state lives.
    pub store: StoreKind,
    /// The Redis server (`redis://[:password@]host:port[/db]`).
    pub redis_url: String,
    /// The first part of every key and of the channel.
    pub prefix: String,
    /// The longest any Redis call may take on a request's path; after it,
    /// the local decision is used.
    pub timeout: Duration,
    /// `spend_file`: where the `budget` layer saves spend (resolved against
    /// the config's directory); `None`: `llm-router-spend.json` there.
    pub spend_file: Option<std::path::PathBuf>,
}

impl StateConfig {
    /// Default `redis_url`.
    pub const DEFAULT_REDIS_URL: &'static str = "redis://127.0.0.1:6379";
    /// Default `prefix`.
    pub const DEFAULT_PREFIX: &'static str = "llm-router";
    /// Default `timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// `redis_url` without its password, for logs.
    pub fn redis_url_for_logs(&self) -> String {
        hide_password(&self.redis_url)
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            store: StoreKind::Memory,
            redis_url: Self::DEFAULT_REDIS_URL.into(),
            prefix: Self::DEFAULT_PREFIX.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            spend_file: None,
        }
    }
}

impl fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateConfig")
            .field("store", &self.store)
            .field("redis_url", &self.redis_url_for_logs())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("spend_file", &self.spend_file)
            .finish()
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Whether the shared store is in use, as `/health` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    /// Connected: decisions are shared.
    Ok,
    /// Not connected (yet, or any more): decisions are local.
    Degraded,
}

impl StoreStatus {
    /// `"ok"` or `"degraded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Ok => "ok",
            StoreStatus::Degraded => "degraded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            hide_password("redis://app:s3cret@cache"),
            "redis://app:***@cache"
        );
        assert_eq!(
            hide_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let config = StateConfig {
            redis_url: "redis://:hunter2@h".into(),
            ..StateConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
