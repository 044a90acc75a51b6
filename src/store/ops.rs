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

/// What a budget decision does (see `budget.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetOp {
    /// Reserve `amount` if it fits.
    Reserve,
    /// End the reservation `hold` (if still held; none when empty),
    /// counting `actual` as spent in bucket `current`.
    Settle,
    /// Renew the leases of the reservations `renew` (those still held).
    Renew,
    /// Read the spend.
    View,
}

impl BudgetOp {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn code(self) -> &'static str {
        match self {
            BudgetOp::Reserve => "r",
            BudgetOp::Settle => "s",
            BudgetOp::Renew => "k",
            BudgetOp::View => "v",
        }
    }
}

/// One budget decision in the shared store: a budget (by `id`, hashed into
/// its keys), the period's buckets as the replica computed them, and the
/// amounts.
#[derive(Clone, Debug)]
pub struct BudgetCall {
    /// What to do.
    pub op: BudgetOp,
    /// The budget: its id, unit and period (a budget whose unit or period
    /// changes starts over under another key).
    pub id: String,
    /// The oldest bucket that still counts.
    pub oldest: u64,
    /// The bucket spend made now goes to.
    pub current: u64,
    /// The limit per period.
    pub limit: u64,
    /// The amount to reserve ([`BudgetOp::Reserve`]).
    pub amount: u64,
    /// The reservation's id ([`BudgetOp::Reserve`], [`BudgetOp::Settle`]).
    pub hold: String,
    /// The amount spent ([`BudgetOp::Settle`]).
    pub actual: u64,
    /// A reservation's lease: how long it is held unless renewed (a replica
    /// that died with it in flight stops renewing it).
    pub hold_for: Duration,
    /// The reservations whose leases to renew ([`BudgetOp::Renew`]).
    pub renew: Vec<String>,
    /// How long the budget's keys live: past the period's end.
    pub keep_for: Duration,
}

/// The shared store's answer to a [`BudgetCall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetAnswer {
    /// The reservation was made ([`BudgetOp::Reserve`]; true for the others).
    pub admitted: bool,
    /// Spent in the period.
    pub spent: u64,
    /// Reserved by requests in flight (on every replica).
    pub reserved: u64,
    /// Reservations in flight.
    pub in_flight: u64,
    /// Spend per bucket that still counts, `(bucket, amount)`.
    pub buckets: Vec<(u64, u64)>,
}
