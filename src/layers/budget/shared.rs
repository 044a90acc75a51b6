//! Budgets decided in the Redis store (`[state] store = "redis"`).

use std::sync::Arc;

use super::ledger::{Ledger, Refusal, Spend};
use crate::keys::KeyBudget;
use crate::store::RedisStore;

/// Reserve `amount` of `budget` in `store`: the reservation's id, or the
/// refusal; `None` when the store is unavailable (the caller decides in the
/// ledger).
pub(super) async fn reserve(
    _store: &Arc<RedisStore>,
    _ledger: &Ledger,
    _budget: &KeyBudget,
    _amount: u64,
    _now: u64,
) -> Option<Result<String, Refusal>> {
    None
}

/// The spend of `budget` in `store`; `None` when it is unavailable.
pub(super) async fn view(
    _store: &Arc<RedisStore>,
    _budget: &KeyBudget,
    _now: u64,
) -> Option<Spend> {
    None
}

/// Settle the reservation `id` of `reserved` in `store` with `actual`, in
/// the background.
pub(super) fn settle(
    _store: &Arc<RedisStore>,
    _budget: &KeyBudget,
    _id: String,
    _reserved: u64,
    _actual: u64,
    _now: u64,
) {
}
