//! Budgets decided in the Redis store (`[state] store = "redis"`): one
//! script call per reservation (on the request's path, bounded by `[state]
//! timeout`), per settlement and per round of lease renewals (in the
//! background), on keys that expire past the period's end. Every replica
//! then shares one spend per budget.
//!
//! A reservation is a lease of [`HOLD_FOR`], renewed by its replica while
//! its request is in flight ([`Budgets`](super::Budgets) keeps the ids):
//! one a replica made and could not settle (it died) is released by Redis
//! one lease after the last renewal.
//!
//! Redis unavailable (or slower than `timeout`): the store says so (one
//! warning per outage, `/health` `"state_store": "degraded"`) and each
//! replica decides in its own [`Ledger`], from the spend Redis last reported
//! plus its own since. Replicas may then together pass a budget by what
//! each admits during the outage. What a replica spends meanwhile is
//! counted in its ledger (and spend file), and kept as settlements to write
//! to Redis when it is back (see the store's write-back); a reservation
//! decided here still names an id, since a call that timed out may have
//! made it in Redis all the same: its settlement ends it there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ledger::{wait_for_room, Ledger, Limit, Refusal, Saved, Spend, Unit};
use super::period::Window;
use crate::keys::{BudgetId, BudgetPeriod, KeyBudget};
use crate::store::{BudgetAnswer, BudgetCall, BudgetOp, RedisStore};

/// A reservation's lease in Redis: the replica that made it renews it every
/// [`RENEW_EVERY`] while its request is in flight, so a reservation is held
/// this long past the last renewal at most (a replica that crashed, or
/// lost Redis, with requests in flight).
pub const HOLD_FOR: Duration = Duration::from_secs(30);

/// How often a replica renews the leases of its reservations in flight (and
/// retries spend it could not write): a third of [`HOLD_FOR`], so that one
/// renewal may fail without a lease ending.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long a settlement or renewal, made in the background, may wait on
/// Redis.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a budget's keys outlive the spend in them.
const KEEP_MARGIN: Duration = Duration::from_secs(3600);

/// The budget's id in the store: its id, unit and period (NUL-separated:
/// names and metadata hold no control characters).
fn store_id_of(id: &BudgetId, unit: Unit, period: BudgetPeriod) -> String {
    let who = match id {
        BudgetId::Key(name) => format!("key\0{name}"),
        BudgetId::Group(g) => format!("group\0{}\0{}", g.key, g.value),
    };
    format!("{who}\0{}\0{period}", unit.as_str())
}

/// The store id of `budget`.
pub(super) fn store_id(budget: &KeyBudget) -> String {
    let unit = Limit::of(&budget.spec.limit).unit;
    store_id_of(&budget.id, unit, budget.spec.period)
}

/// A reservation id unique to this replica and call.
pub(super) fn hold_id(store: &RedisStore) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        store.replica(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A call of `op` on the budget `id` (of `unit` and `period`) at `now`.
fn call_of(
    id: String,
    period: BudgetPeriod,
    op: BudgetOp,
    now: u64,
    hold_for: Duration,
) -> BudgetCall {
    let window = Window::of(period, now);
    BudgetCall {
        op,
        id,
        oldest: window.oldest(),
        current: window.current(),
        limit: 0,
        amount: 0,
        hold: String::new(),
        actual: 0,
        hold_for,
        keep_for: Duration::from_secs(window.reset().saturating_sub(now)) + KEEP_MARGIN,
        renew: Vec::new(),
    }
}

fn call(budget: &KeyBudget, op: BudgetOp, now: u64, hold_for: Duration) -> BudgetCall {
    BudgetCall {
        limit: Limit::of(&budget.spec.limit).amount,
        ..call_of(store_id(budget), budget.spec.period, op, now, hold_for)
    }
}

/// The spend an answer of the store describes.
fn spend_of(budget: &KeyBudget, answer: &BudgetAnswer, now: u64) -> Spend {
    let window = Window::of(budget.spec.period, now);
    let limit = Limit::of(&budget.spec.limit);
    Spend {
        unit: limit.unit,
        limit: limit.amount,
        spent: answer.spent,
        reserved: answer.reserved,
        in_flight: answer.in_flight,
        resets_at: window.reset(),
    }
}

/// Reserve `amount` of `budget` in `store` as reservation `id` (see
/// [`hold_id`]), on a lease of `hold_for`: `Ok` when made (and held in
/// `ledger`, this replica's copy), or the refusal; `None` when the store is
/// unavailable or did not answer in time (the caller decides in the ledger;
/// the reservation may still have been made, so its settlement names it).
pub(super) async fn reserve(
    store: &Arc<RedisStore>,
    ledger: &Ledger,
    budget: &KeyBudget,
    (id, amount): (&str, u64),
    now: u64,
    hold_for: Duration,
) -> Option<Result<(), Refusal>> {
    let request = BudgetCall {
        amount,
        hold: id.to_string(),
        ..call(budget, BudgetOp::Reserve, now, hold_for)
    };
    let answer = store.budget(&request, store.config().timeout).await?;
    ledger.observe(&budget.id, &budget.spec, answer.spent, now);
    if answer.admitted {
        ledger.hold(&budget.id, &budget.spec, amount, now);
        return Some(Ok(()));
    }
    let window = Window::of(budget.spec.period, now);
    let mut buckets: Vec<(u64, u64)> = answer
        .buckets
        .iter()
        .copied()
        .filter(|(b, _)| window.counts(*b))
        .collect();
    buckets.sort_unstable();
    let wait = wait_for_room(&buckets, &window, amount, request.limit, now);
    Some(Err(Refusal::Over {
        spend: spend_of(budget, &answer, now),
        wait,
    }))
}

/// The spend of `budget` in `store`; `None` when it is unavailable.
pub(super) async fn view(store: &Arc<RedisStore>, budget: &KeyBudget, now: u64) -> Option<Spend> {
    let answer = store
        .budget(
            &call(budget, BudgetOp::View, now, HOLD_FOR),
            store.config().timeout,
        )
        .await?;
    Some(spend_of(budget, &answer, now))
}

/// The settlement of `budget`'s reservation `hold` (ended if Redis holds
/// it) with `actual`, counted in the bucket current at `now`.
pub(super) fn settlement(
    budget: &KeyBudget,
    hold: String,
    actual: u64,
    now: u64,
    hold_for: Duration,
) -> BudgetCall {
    BudgetCall {
        hold,
        actual,
        ..call(budget, BudgetOp::Settle, now, hold_for)
    }
}

/// The renewal of the leases of `budget`'s reservations `ids`.
pub(super) fn renewal(
    budget: &KeyBudget,
    ids: Vec<String>,
    now: u64,
    hold_for: Duration,
) -> BudgetCall {
    BudgetCall {
        renew: ids,
        ..call(budget, BudgetOp::Renew, now, hold_for)
    }
}

/// The spend `saved` (this replica's, per budget and bucket) as
/// settlements that count it (for Redis that lost its data).
pub(super) fn spend_calls(saved: Vec<Saved>, now: u64, hold_for: Duration) -> Vec<BudgetCall> {
    let mut calls = Vec::new();
    for s in saved {
        let id = store_id_of(&s.id, s.unit, s.period);
        for &(bucket, amount) in s.buckets.as_slice() {
            calls.push(BudgetCall {
                current: bucket,
                actual: amount,
                ..call_of(id.clone(), s.period, BudgetOp::Settle, now, hold_for)
            });
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{BudgetGroup, BudgetSpec};

    #[test]
    fn store_ids_name_the_budget_its_unit_and_period() {
        let spec = BudgetSpec::parse(None, Some(5), Some("30d")).unwrap();
        let key = KeyBudget {
            id: BudgetId::Key("a".into()),
            spec,
        };
        assert_eq!(store_id(&key), "key\0a\0tokens\x0030d");
        let group = KeyBudget {
            id: BudgetId::Group(BudgetGroup {
                key: "team".into(),
                value: "a".into(),
            }),
            spec: BudgetSpec::parse(Some(1.0), None, Some("day")).unwrap(),
        };
        assert_eq!(store_id(&group), "group\0team\0a\0usd\0day");
        let c = call(&group, BudgetOp::View, 86_400 * 10 + 5, HOLD_FOR);
        assert_eq!((c.oldest, c.current), (86_400 * 10, 86_400 * 10));
        assert_eq!(c.limit, 1_000_000_000);
        assert_eq!(c.keep_for, Duration::from_secs(86_400 - 5) + KEEP_MARGIN);
    }
}
