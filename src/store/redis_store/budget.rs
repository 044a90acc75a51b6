//! Budget decisions made in Redis (`budget.lua`): the keys of a budget, and
//! one script call per reservation, settlement or look.

use std::fmt::Write as _;
use std::time::Duration;

use redis::ScriptInvocation;

use super::{millis, RedisStore};
use crate::store::{BudgetAnswer, BudgetCall};

impl RedisStore {
    /// The three keys of the budget `id` (hashed: a group's value never
    /// appears in Redis): its spend, its reservations, their expiries.
    pub fn budget_keys(&self, id: &str) -> [String; 3] {
        let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
        let mut hex = String::with_capacity(32);
        for b in digest.as_ref().iter().take(16) {
            let _ = write!(hex, "{b:02x}");
        }
        let base = format!("{}:budget:{{{hex}}}", self.config.prefix);
        [
            format!("{base}:spend"),
            format!("{base}:holds"),
            format!("{base}:expiry"),
        ]
    }

    /// Make `call` in Redis (one script call), waiting at most `timeout`
    /// (at most `[state] timeout` on a request's path). `None` when Redis is
    /// unavailable, did not answer in time, or answered nonsense: the caller
    /// decides locally.
    pub async fn budget(&self, call: &BudgetCall, timeout: Duration) -> Option<BudgetAnswer> {
        let invocation = self.budget_invocation(call);
        self.run_script(&invocation, timeout, "budget", parse).await
    }

    /// The script call of `call`.
    fn budget_invocation(&self, call: &BudgetCall) -> ScriptInvocation<'_> {
        let mut invocation = self.budget_script.prepare_invoke();
        for key in self.budget_keys(&call.id) {
            invocation.key(key);
        }
        invocation
            .arg(call.op.code())
            .arg(call.oldest)
            .arg(call.current)
            .arg(call.limit)
            .arg(call.amount)
            .arg(&call.hold)
            .arg(call.actual)
            .arg(millis(call.hold_for).max(1))
            .arg(millis(call.keep_for).max(1));
        invocation
    }
}

/// `{admitted, spent, reserved, in flight, bucket, amount, ...}`.
fn parse(v: &[i64]) -> Option<BudgetAnswer> {
    let n = |i: usize| v.get(i).map(|x| u64::try_from(*x).unwrap_or(0));
    let (admitted, spent, reserved, in_flight) = (n(0)?, n(1)?, n(2)?, n(3)?);
    let rest = v.get(4..)?;
    if rest.len() % 2 != 0 {
        return None;
    }
    let buckets = rest
        .chunks_exact(2)
        .map(|p| {
            (
                u64::try_from(p[0]).unwrap_or(0),
                u64::try_from(p[1]).unwrap_or(0),
            )
        })
        .collect();
    Some(BudgetAnswer {
        admitted: admitted == 1,
        spent,
        reserved,
        in_flight,
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_or_refused() {
        let a = parse(&[1, 30, 10, 2, 100, 20, 101, 10]).unwrap();
        assert!(a.admitted);
        assert_eq!((a.spent, a.reserved, a.in_flight), (30, 10, 2));
        assert_eq!(a.buckets, [(100, 20), (101, 10)]);
        assert!(!parse(&[0, -1, 0, 0]).unwrap().admitted);
        assert_eq!(parse(&[0, -1, 0, 0]).unwrap().spent, 0);
        assert_eq!(parse(&[1, 2, 3]), None);
        assert_eq!(parse(&[1, 2, 3, 4, 5]), None);
    }
}
