//! Budgets decided in the Redis store (`[state] store = "redis"`): one
//! script call per reservation (on the request's path, bounded by `[state]
//! timeout`) and per settlement (in the background), on keys that expire
//! past the period's end. Every replica then shares one spend per budget.
//!
//! Redis unavailable (or slower than `timeout`): the store says so (one
//! warning per outage, `/health` `"state_store": "degraded"`) and each
//! replica decides in its own [`Ledger`], from the spend Redis last reported
//! plus its own since. Replicas may then together pass a budget by what
//! each admits during the outage; what they spend meanwhile is counted in
//! their ledgers (and spend files), not in Redis. A reservation a replica
//! made in Redis and could not settle there (it died, or Redis was away at
//! the end) is released by Redis after [`HOLD_FOR`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ledger::{wait_for_room, Ledger, Limit, Refusal, Spend};
use super::period::Window;
use crate::keys::{BudgetId, KeyBudget};
use crate::store::{BudgetAnswer, BudgetCall, BudgetOp, RedisStore};

/// The longest Redis holds a reservation: a request still in flight after
/// it no longer holds room in the shared budget (its settlement still
/// counts what it cost).
pub const HOLD_FOR: Duration = Duration::from_secs(3600);

/// How long a settlement, made in the background, may wait on Redis.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a budget's keys outlive the spend in them.
const KEEP_MARGIN: Duration = Duration::from_secs(3600);

/// The budget's id in the store: its id, unit and period (NUL-separated:
/// names and metadata hold no control characters).
fn store_id(budget: &KeyBudget) -> String {
    let limit = Limit::of(&budget.spec.limit);
    let who = match &budget.id {
        BudgetId::Key(name) => format!("key\0{name}"),
        BudgetId::Group(g) => format!("group\0{}\0{}", g.key, g.value),
    };
    format!("{who}\0{}\0{}", limit.unit.as_str(), budget.spec.period)
}

/// A reservation id unique to this replica and call.
fn hold_id(store: &RedisStore) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        store.replica(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn call(budget: &KeyBudget, op: BudgetOp, now: u64) -> BudgetCall {
    let window = Window::of(budget.spec.period, now);
    BudgetCall {
        op,
        id: store_id(budget),
        oldest: window.oldest(),
        current: window.current(),
        limit: Limit::of(&budget.spec.limit).amount,
        amount: 0,
        hold: String::new(),
        actual: 0,
        hold_for: HOLD_FOR,
        keep_for: Duration::from_secs(window.reset().saturating_sub(now)) + KEEP_MARGIN,
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

/// Reserve `amount` of `budget` in `store`: the reservation's id (also
/// held in `ledger`, this replica's copy), or the refusal; `None` when the
/// store is unavailable (the caller decides in the ledger).
pub(super) async fn reserve(
    store: &Arc<RedisStore>,
    ledger: &Ledger,
    budget: &KeyBudget,
    amount: u64,
    now: u64,
) -> Option<Result<String, Refusal>> {
    let id = hold_id(store);
    let request = BudgetCall {
        amount,
        hold: id.clone(),
        ..call(budget, BudgetOp::Reserve, now)
    };
    let answer = store.budget(&request, store.config().timeout).await?;
    ledger.observe(&budget.id, &budget.spec, answer.spent, now);
    if answer.admitted {
        ledger.hold(&budget.id, &budget.spec, amount, now);
        return Some(Ok(id));
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
        .budget(&call(budget, BudgetOp::View, now), store.config().timeout)
        .await?;
    Some(spend_of(budget, &answer, now))
}

/// Settle the reservation `id` of `budget` in `store` with `actual`, in the
/// background (outside a tokio runtime, or with Redis away, it stays
/// unsettled there until [`HOLD_FOR`]; the ledger has it either way).
pub(super) fn settle(
    store: &Arc<RedisStore>,
    budget: &KeyBudget,
    id: String,
    actual: u64,
    now: u64,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let request = BudgetCall {
        hold: id,
        actual,
        ..call(budget, BudgetOp::Settle, now)
    };
    let store = store.clone();
    runtime.spawn(async move {
        if store.budget(&request, SETTLE_TIMEOUT).await.is_none() {
            tracing::debug!("a budget settlement could not be written to Redis");
        }
    });
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
        let c = call(&group, BudgetOp::View, 86_400 * 10 + 5);
        assert_eq!((c.oldest, c.current), (86_400 * 10, 86_400 * 10));
        assert_eq!(c.limit, 1_000_000_000);
        assert_eq!(c.keep_for, Duration::from_secs(86_400 - 5) + KEEP_MARGIN);
    }
}
