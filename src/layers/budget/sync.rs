//! What this replica owes the Redis store: the spend it could not tell it
//! of ([`Unwritten`]), and the leases of its reservations in flight there
//! ([`Leases`]). Both bounded; both only used with `[state] store =
//! "redis"`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::keys::KeyBudget;
use crate::store::BudgetCall;
use crate::FastMap;

/// The most settlements waiting to be written back: past it, a
/// reservation's settlement only adds its spend (the reservation ends with
/// its lease), and spend of a new budget or bucket is dropped (warned).
pub const MAX_UNWRITTEN: usize = 100_000;

/// The most reservations in flight whose leases this replica renews: past
/// it, a reservation is held one lease (its settlement still counts what it
/// cost).
pub const MAX_LEASES: usize = 100_000;

/// The most reservations renewed in one call.
const RENEW_BATCH: usize = 1000;

/// Settlements Redis was not told of (the spend decided here while it was
/// unavailable, settlements that failed), merged by budget, bucket and
/// reservation: written back when Redis is back.
#[derive(Debug, Default)]
pub(super) struct Unwritten {
    calls: Mutex<FastMap<(String, u64, String), BudgetCall>>,
    /// Spend was dropped since the last take (warned once).
    dropped: AtomicBool,
}

impl Unwritten {
    /// Keep `call` (a settlement) to write later.
    pub(super) fn add(&self, mut call: BudgetCall) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (call.id.clone(), call.current, call.hold.clone());
        if calls.len() >= MAX_UNWRITTEN && !calls.contains_key(&key) && !call.hold.is_empty() {
            // No room to end the reservation: only count the spend.
            call.hold.clear();
            key.2.clear();
        }
        if let Some(kept) = calls.get_mut(&key) {
            kept.actual = kept.actual.saturating_add(call.actual);
            return;
        }
        if calls.len() >= MAX_UNWRITTEN {
            if !self.dropped.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = MAX_UNWRITTEN,
                    "budget spend waiting for Redis: too many budgets and buckets, some spend will not reach it"
                );
            }
            return;
        }
        calls.insert(key, call);
    }

    /// Take every settlement kept.
    pub(super) fn take(&self) -> Vec<BudgetCall> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        self.dropped.store(false, Ordering::Relaxed);
        calls.drain().map(|(_, call)| call).collect()
    }

    /// Drop every settlement kept (they are counted another way).
    pub(super) fn clear(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many settlements are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

type Ids = HashSet<String, foldhash::fast::RandomState>;

/// Reservations this replica made in Redis and has not settled yet, by
/// budget (its store id): their leases are renewed while they are here.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<Held>,
}

/// The reservations by budget, and how many in all.
#[derive(Debug, Default)]
struct Held {
    by_budget: FastMap<String, (KeyBudget, Ids)>,
    count: usize,
}

impl Leases {
    /// Renew the lease of reservation `id` of `budget` (`store_id`) from
    /// now on; `false` when [`MAX_LEASES`] are renewed already.
    pub(super) fn add(&self, store_id: &str, budget: &KeyBudget, id: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.count >= MAX_LEASES {
            return false;
        }
        let (_, ids) = held
            .by_budget
            .entry(store_id.to_string())
            .or_insert_with(|| (budget.clone(), Ids::default()));
        if ids.insert(id.to_string()) {
            held.count += 1;
        }
        true
    }

    /// Stop renewing reservation `id` (settled).
    pub(super) fn remove(&self, store_id: &str, id: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, ids)) = held.by_budget.get_mut(store_id) else {
            return;
        };
        let removed = ids.remove(id);
        if ids.is_empty() {
            held.by_budget.remove(store_id);
        }
        if removed {
            held.count = held.count.saturating_sub(1);
        }
    }

    /// The reservations to renew, by budget, at most [`RENEW_BATCH`] a
    /// group.
    pub(super) fn due(&self) -> Vec<(KeyBudget, Vec<String>)> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (budget, ids) in held.by_budget.values() {
            let ids: Vec<String> = ids.iter().cloned().collect();
            for chunk in ids.chunks(RENEW_BATCH) {
                out.push((budget.clone(), chunk.to_vec()));
            }
        }
        out
    }

    /// How many reservations are renewed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::{BudgetId, BudgetSpec};
    use crate::store::BudgetOp;

    fn settle(id: &str, current: u64, hold: &str, actual: u64) -> BudgetCall {
        BudgetCall {
            op: BudgetOp::Settle,
            id: id.into(),
            oldest: current,
            current,
            limit: 0,
            amount: 0,
            hold: hold.into(),
            actual,
            hold_for: Duration::from_secs(1),
            keep_for: Duration::from_secs(1),
            renew: Vec::new(),
        }
    }

    #[test]
    fn unwritten_spend_is_merged_by_budget_bucket_and_reservation() {
        let u = Unwritten::default();
        u.add(settle("a", 1, "", 5));
        u.add(settle("a", 1, "", 7));
        u.add(settle("a", 2, "", 1));
        u.add(settle("a", 1, "h1", 3));
        u.add(settle("b", 1, "", 2));
        assert_eq!(u.len(), 4);
        let mut calls: Vec<(String, u64, String, u64)> = u
            .take()
            .into_iter()
            .map(|c| (c.id, c.current, c.hold, c.actual))
            .collect();
        calls.sort();
        assert_eq!(
            calls,
            [
                ("a".into(), 1, String::new(), 12),
                ("a".into(), 1, "h1".into(), 3),
                ("a".into(), 2, String::new(), 1),
                ("b".into(), 1, String::new(), 2),
            ]
        );
        assert_eq!(u.len(), 0);
        u.add(settle("a", 1, "", 5));
        u.clear();
        assert!(u.take().is_empty());
    }

    #[test]
    fn unwritten_spend_is_bounded_and_kept_past_it_when_it_can_merge() {
        let u = Unwritten::default();
        for i in 0..MAX_UNWRITTEN as u64 {
            u.add(settle("a", i, "", 1));
        }
        // A reservation's settlement: its spend merges into its bucket.
        u.add(settle("a", 0, "h", 4));
        // A new bucket: dropped.
        u.add(settle("b", 0, "", 4));
        assert_eq!(u.len(), MAX_UNWRITTEN);
        let calls = u.take();
        let first = calls
            .iter()
            .find(|c| c.id == "a" && c.current == 0)
            .unwrap();
        assert_eq!((first.actual, first.hold.as_str()), (5, ""));
        assert!(!calls.iter().any(|c| c.id == "b"));
    }

    #[test]
    fn leases_are_grouped_by_budget_and_removed_when_settled() {
        let budget = KeyBudget {
            id: BudgetId::Key("a".into()),
            spec: BudgetSpec::parse(None, Some(100), Some("day")).unwrap(),
        };
        let l = Leases::default();
        assert!(l.add("s-a", &budget, "1"));
        assert!(l.add("s-a", &budget, "2"));
        assert!(l.add("s-a", &budget, "2"));
        assert!(l.add("s-b", &budget, "3"));
        assert_eq!(l.len(), 3);
        let mut due: Vec<Vec<String>> = l
            .due()
            .into_iter()
            .map(|(_, mut ids)| {
                ids.sort();
                ids
            })
            .collect();
        due.sort();
        assert_eq!(due, [vec!["1".to_string(), "2".into()], vec!["3".into()]]);
        l.remove("s-a", "1");
        l.remove("s-a", "1");
        l.remove("s-b", "3");
        assert_eq!(l.len(), 1);
        assert_eq!(l.due().len(), 1);
        l.remove("s-a", "2");
        assert!(l.due().is_empty());
    }
}
