//! The ledger's arithmetic: reservations, settlements, periods, refusals
//! and their waits, its bound; a property test of any sequence of them.

use std::time::Duration;

use proptest::prelude::*;

use crate::keys::{BudgetGroup, BudgetId, BudgetPeriod, BudgetSpec};
use crate::layers::budget::{
    admits, wait_for_room, Ledger, Limit, Refusal, Unit, Window, MAX_BUDGETS,
};

/// 2026-12-09T15:00:00Z, a Wednesday.
const NOW: u64 = 1_796_828_400;
const DAY: u64 = 86_400;

fn tokens(n: u64, period: &str) -> BudgetSpec {
    BudgetSpec::parse(None, Some(n), Some(period)).unwrap()
}

fn key(name: &str) -> BudgetId {
    BudgetId::Key(name.into())
}

#[test]
fn reservations_fit_or_are_refused() {
    let ledger = Ledger::new();
    let spec = tokens(100, "day");
    let a = key("a");
    assert!(ledger.reserve(&a, &spec, 40, NOW).is_ok());
    assert!(ledger.reserve(&a, &spec, 60, NOW).is_ok());
    // Exactly full: nothing more, not even 1.
    let Err(Refusal::Over { spend, wait }) = ledger.reserve(&a, &spec, 1, NOW) else {
        panic!("over the limit");
    };
    assert_eq!((spend.spent, spend.reserved, spend.in_flight), (0, 100, 2));
    // Only requests in flight are in the way: they settle soon.
    assert_eq!(wait, 1);
    // Both settle below their estimate: the difference is released.
    ledger.settle(&a, &spec, 40, 10, NOW);
    ledger.settle(&a, &spec, 60, 20, NOW);
    let view = ledger.view(&a, &spec, NOW);
    assert_eq!((view.spent, view.reserved, view.in_flight), (30, 0, 0));
    assert_eq!(view.remaining(), 70);
    // Now spend is in the way: until the day ends (09:00 UTC left).
    let Err(Refusal::Over { wait, .. }) = ledger.reserve(&a, &spec, 71, NOW) else {
        panic!("over the limit");
    };
    assert_eq!(wait, 9 * 3600);
    // Another budget is another entry.
    assert!(ledger.reserve(&key("b"), &spec, 100, NOW).is_ok());
    // The next day, the spend no longer counts.
    assert!(ledger.reserve(&a, &spec, 100, NOW + 9 * 3600).is_ok());
}

#[test]
fn a_request_larger_than_the_budget_waits_for_the_reset() {
    let ledger = Ledger::new();
    let spec = tokens(100, "week");
    let Err(Refusal::Over { spend, wait }) = ledger.reserve(&key("a"), &spec, 101, NOW) else {
        panic!("larger than the budget");
    };
    assert_eq!(spend.resets_at, NOW - 2 * DAY - 15 * 3600 + 7 * DAY);
    assert_eq!(wait, spend.resets_at - NOW);
}

#[test]
fn rolling_spend_stops_counting_bucket_by_bucket() {
    let ledger = Ledger::new();
    let spec = tokens(100, "30d");
    let a = key("a");
    // 60 spent 10 days ago, 40 today.
    let then = NOW - 10 * DAY;
    ledger.reserve(&a, &spec, 60, then).unwrap();
    ledger.settle(&a, &spec, 60, 60, then);
    ledger.reserve(&a, &spec, 40, NOW).unwrap();
    ledger.settle(&a, &spec, 40, 40, NOW);
    // 50 more fits once the 60 stop counting: 30 buckets (days) after theirs.
    let Err(Refusal::Over { wait, .. }) = ledger.reserve(&a, &spec, 50, NOW) else {
        panic!("full");
    };
    let expires = (then / DAY + 30) * DAY;
    assert_eq!(wait, expires - NOW);
    assert!(ledger.reserve(&a, &spec, 50, expires - 1).is_err());
    assert!(ledger.reserve(&a, &spec, 50, expires).is_ok());
}

#[test]
fn waits() {
    let w = Window::of(BudgetPeriod::Rolling(Duration::from_secs(30 * DAY)), NOW);
    let b = NOW / DAY;
    let buckets = [(b - 20, 30), (b - 5, 30), (b, 30)];
    // 90 spent of 100: 10 fits; 11 needs the oldest bucket gone; 41 the next.
    assert_eq!(wait_for_room(&buckets, &w, 10, 100, NOW), 1);
    assert_eq!(
        wait_for_room(&buckets, &w, 11, 100, NOW),
        w.expires(b - 20) - NOW
    );
    assert_eq!(
        wait_for_room(&buckets, &w, 41, 100, NOW),
        w.expires(b - 5) - NOW
    );
    assert_eq!(wait_for_room(&buckets, &w, 100, 100, NOW), w.reset() - NOW);
    assert_eq!(wait_for_room(&buckets, &w, 101, 100, NOW), w.reset() - NOW);
    // Never 0, even at the edge.
    assert_eq!(wait_for_room(&buckets, &w, 101, 100, w.reset()), 1);
    assert!(admits(0, 0, 0, 0));
    assert!(!admits(1, u64::MAX, 0, u64::MAX));
}

#[test]
fn a_changed_unit_or_period_starts_over_a_changed_limit_does_not() {
    let ledger = Ledger::new();
    let a = key("a");
    let day = tokens(100, "day");
    ledger.reserve(&a, &day, 50, NOW).unwrap();
    ledger.settle(&a, &day, 50, 50, NOW);
    assert_eq!(ledger.view(&a, &tokens(80, "day"), NOW).remaining(), 30);
    assert_eq!(ledger.view(&a, &tokens(100, "week"), NOW).spent, 0);
    let usd = BudgetSpec::parse(Some(1.0), None, Some("week")).unwrap();
    let view = ledger.view(&a, &usd, NOW);
    assert_eq!(
        (view.unit, view.spent, view.limit),
        (Unit::NanoUsd, 0, 1_000_000_000)
    );
    assert_eq!(Limit::of(&usd.limit).amount, 1_000_000_000);
}

#[test]
fn looking_creates_nothing_and_the_table_is_bounded() {
    let ledger = Ledger::new();
    let spec = tokens(10, "day");
    assert_eq!(ledger.view(&key("nobody"), &spec, NOW).spent, 0);
    assert!(ledger.is_empty());
    // Budgets in use fill the table: a new one is refused...
    for i in 0..MAX_BUDGETS {
        ledger
            .reserve(&key(&format!("k{i}")), &spec, 1, NOW)
            .unwrap();
    }
    assert_eq!(
        ledger.reserve(&key("one-more"), &spec, 1, NOW),
        Err(Refusal::Full)
    );
    assert_eq!(ledger.len(), MAX_BUDGETS);
    // ...until some are idle with nothing spent (released, next day): dropped.
    for i in 0..10 {
        ledger.settle(&key(&format!("k{i}")), &spec, 1, 0, NOW);
    }
    assert!(ledger.reserve(&key("one-more"), &spec, 1, NOW).is_ok());
    assert_eq!(ledger.len(), MAX_BUDGETS - 9);
}

#[test]
fn saved_spend_comes_back() {
    let ledger = Ledger::new();
    let group = BudgetId::Group(BudgetGroup {
        key: "team".into(),
        value: "platform".into(),
    });
    let spec = tokens(1000, "month");
    ledger.reserve(&group, &spec, 500, NOW).unwrap();
    ledger.settle(&group, &spec, 500, 321, NOW);
    assert!(ledger.take_dirty());
    assert!(!ledger.take_dirty());
    let saved = ledger.saved(NOW);
    let again = Ledger::new();
    again.restore(saved.clone(), NOW);
    assert_eq!(again.view(&group, &spec, NOW).spent, 321);
    // Restored next month: nothing that still counts.
    let later = Ledger::new();
    later.restore(saved, NOW + 31 * DAY);
    assert!(later.is_empty());
}

/// One step of a ledger's life.
#[derive(Clone, Debug)]
enum Op {
    Reserve { who: u8, amount: u64 },
    Settle { actual: u64 },
    Advance { secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0u8..3,
            prop_oneof![0u64..200, Just(u64::MAX), Just(u64::MAX / 2)]
        )
            .prop_map(|(who, amount)| Op::Reserve { who, amount }),
        prop_oneof![0u64..300, Just(u64::MAX)].prop_map(|actual| Op::Settle { actual }),
        prop_oneof![0u64..4000, Just(DAY), Just(40 * DAY)].prop_map(|secs| Op::Advance { secs }),
    ]
}

proptest! {
    /// Any sequence of reservations, settlements and time never panics,
    /// never lets spent + reserved pass the limit at an admission, and
    /// leaves nothing reserved once every reservation is settled.
    #[test]
    fn any_sequence_keeps_the_books(
        ops in proptest::collection::vec(op(), 1..80),
        limit in prop_oneof![1u64..500, Just(u64::MAX)],
        period in prop_oneof![Just("day"), Just("week"), Just("month"), Just("2h"), Just("30d")],
    ) {
        let ledger = Ledger::new();
        let spec = tokens(limit, period);
        let mut now = NOW;
        let mut holds: Vec<(BudgetId, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Reserve { who, amount } => {
                    let id = key(&format!("k{who}"));
                    let before = ledger.view(&id, &spec, now);
                    match ledger.reserve(&id, &spec, amount, now) {
                        Ok(spend) => {
                            prop_assert!(admits(before.spent, before.reserved, amount, limit));
                            prop_assert!(spend.spent.checked_add(spend.reserved).is_some_and(|t| t <= limit));
                            holds.push((id, amount));
                        }
                        Err(Refusal::Over { spend, wait }) => {
                            prop_assert!(!admits(spend.spent, spend.reserved, amount, limit));
                            prop_assert!(wait >= 1);
                        }
                        Err(Refusal::Full) => prop_assert!(false, "three budgets fill nothing"),
                    }
                }
                Op::Settle { actual } => {
                    if let Some((id, reserved)) = holds.pop() {
                        ledger.settle(&id, &spec, reserved, actual, now);
                    }
                }
                Op::Advance { secs } => now = now.saturating_add(secs),
            }
        }
        for (id, reserved) in holds.drain(..) {
            ledger.settle(&id, &spec, reserved, 0, now);
        }
        for who in 0..3u8 {
            let view = ledger.view(&key(&format!("k{who}")), &spec, now);
            prop_assert_eq!((view.reserved, view.in_flight), (0, 0));
            prop_assert!(view.remaining() <= limit);
        }
    }
}

#[test]
fn the_shared_spend_last_seen_counts_while_deciding_alone() {
    let ledger = Ledger::new();
    let spec = tokens(100, "day");
    let a = key("a");
    // Redis said 70 were spent, 10 of them here.
    ledger.reserve(&a, &spec, 10, NOW).unwrap();
    ledger.settle(&a, &spec, 10, 10, NOW);
    ledger.observe(&a, &spec, 70, NOW);
    assert_eq!(ledger.view(&a, &spec, NOW).spent, 70);
    assert!(ledger.reserve(&a, &spec, 31, NOW).is_err());
    // This replica's own spend since comes on top.
    ledger.reserve(&a, &spec, 20, NOW).unwrap();
    ledger.settle(&a, &spec, 20, 20, NOW);
    assert_eq!(ledger.view(&a, &spec, NOW).spent, 90);
    // The next day the others' spend no longer counts.
    assert_eq!(ledger.view(&a, &spec, NOW + DAY).spent, 0);
}
