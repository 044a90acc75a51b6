//! Budget decisions made in Redis (`budget.lua`): the keys of a budget, one
//! script call per reservation, settlement, renewal or look, and the spend
//! written back when Redis comes back.
//!
//! Write-back: this replica's spend that Redis was not told of (counted
//! while Redis was unavailable, or whose settlement failed) is written on
//! every (re)connect, before requests use Redis again. Redis that lost its
//! data (restarted without persistence) is told apart by its budget epoch,
//! `{prefix}:budget:epoch`, a value the first replica to connect to a data
//! set writes: a replica that finds another epoch than the one it last
//! wrote to writes all of its spend that still counts instead.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redis::ScriptInvocation;

use super::connect::bounded;
use super::{millis, RedisStore, BATCH};
use crate::store::{BudgetAnswer, BudgetCall, LocalSpend};

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
        for id in &call.renew {
            invocation.arg(id);
        }
        invocation
    }

    /// Write the spend of `spend` (this replica's budgets, held weakly)
    /// back to Redis when it (re)connects.
    pub fn tie_spend<S: LocalSpend + 'static>(&self, spend: &Arc<S>) {
        let spend: Weak<dyn LocalSpend> = Arc::<S>::downgrade(spend);
        *self.spend.write().unwrap_or_else(|e| e.into_inner()) = Some(spend);
    }

    fn local_spend(&self) -> Option<Arc<dyn LocalSpend>> {
        self.spend
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .upgrade()
    }

    /// Write back the spend Redis was not told of (see the module docs), in
    /// pipelines; what could not be written is kept for the next time.
    pub(super) async fn write_back(
        &self,
        conn: &mut ConnectionManager,
        limit: Duration,
    ) -> Result<(), String> {
        let Some(spend) = self.local_spend() else {
            return Ok(());
        };
        let epoch = self.budget_epoch(conn, limit).await?;
        let all = {
            let mut last = self.budget_epoch.lock().unwrap_or_else(|e| e.into_inner());
            let lost = last.as_ref().is_some_and(|e| *e != epoch);
            *last = Some(epoch);
            lost
        };
        let mut calls = spend.take_unwritten(all);
        if all && !calls.is_empty() {
            tracing::warn!(
                redis = %self.url_for_logs,
                budgets = calls.len(),
                "Redis lost the budgets' spend (restarted empty?): this replica wrote its own back"
            );
        }
        while !calls.is_empty() {
            let rest = calls.split_off(calls.len().min(BATCH));
            let mut pipe = redis::pipe();
            for call in &calls {
                pipe.invoke_script(&self.budget_invocation(call)).ignore();
            }
            if let Err(e) = bounded(limit, pipe.query_async::<()>(conn)).await {
                calls.extend(rest);
                spend.put_back(calls);
                return Err(e);
            }
            calls = rest;
        }
        Ok(())
    }

    /// The budget epoch of the data Redis holds, written now if it has none.
    async fn budget_epoch(
        &self,
        conn: &mut ConnectionManager,
        limit: Duration,
    ) -> Result<String, String> {
        let key = format!("{}:budget:epoch", self.config.prefix);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let fresh = format!("{}-{now:x}", self.replica);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg(&fresh).arg("NX").ignore();
        pipe.cmd("GET").arg(&key);
        let (epoch,): (String,) = bounded(limit, pipe.query_async(conn)).await?;
        Ok(epoch)
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
