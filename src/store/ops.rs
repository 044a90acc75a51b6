//! What a request asks of its shared limit keys ([`LimitOp`]) and the
//! answer ([`Verdict`]): the vocabulary of the rate limiters' Redis calls,
//! in every build (the limiters name it with or without the `redis` feature).

use std::time::Duration;

/// What a limit key is asked to do (see `limit.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Count `n` if that stays within the limit.
    Acquire,
    /// Whether the count is under the limit; counts nothing.
    Check,
    /// Count `n` whatever the limit.
    Add,
}

impl Op {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn code(self) -> &'static str {
        match self {
            Op::Acquire => "a",
            Op::Check => "c",
            Op::Add => "f",
        }
    }
}

/// One limit of a decision: a Redis key and what to do with it.
#[derive(Clone, Debug)]
pub struct LimitOp {
    /// The full key (see [`RedisStore::client_limit_key`](super::RedisStore::client_limit_key)).
    pub key: String,
    /// What to do.
    pub op: Op,
    /// How much to count.
    pub n: u64,
    /// The limit per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

/// The shared decision over a list of [`LimitOp`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit has room; the state of the last one.
    Allowed {
        /// What is left of the last limit.
        remaining: u64,
        /// Time until its current window ends.
        reset: Duration,
    },
    /// The limit at `index` (of the ops given) refused.
    Refused {
        /// Which op refused.
        index: usize,
        /// Time until it would have room.
        wait: Duration,
    },
}
