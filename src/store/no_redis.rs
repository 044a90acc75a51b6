//! [`RedisStore`] in a build without the `redis` feature: a type with no
//! values, so the registries keep their one code path (`Option<&RedisStore>`
//! is always `None`) and the config refuses `[state] store = "redis"`.

use std::sync::Arc;
use std::time::Duration;

use super::{
    BudgetAnswer, BudgetCall, LimitOp, LocalCircuits, LocalCooldowns, LocalSpend, StateConfig,
    StoreStatus, Verdict,
};

/// The Redis state store, absent from this build (no `redis` feature): no
/// value of it exists.
#[derive(Debug)]
pub enum RedisStore {}

#[allow(missing_docs, clippy::unused_async)]
impl RedisStore {
    pub fn start<B, C>(self: &Arc<Self>, _breakers: &Arc<B>, _cooldowns: &Arc<C>)
    where
        B: LocalCircuits + 'static,
        C: LocalCooldowns + 'static,
    {
        match **self {}
    }

    pub fn config(&self) -> &StateConfig {
        match *self {}
    }

    pub fn status(&self) -> StoreStatus {
        match *self {}
    }

    pub fn outages(&self) -> u64 {
        match *self {}
    }

    pub fn replica(&self) -> &str {
        match *self {}
    }

    pub fn circuit_opened(&self, _target: &str, _open_for: Duration) {
        match *self {}
    }

    pub fn circuit_closed(&self, _target: &str) {
        match *self {}
    }

    pub fn cooldown_started(&self, _target: &str, _duration: Duration) {
        match *self {}
    }

    pub fn client_limit_key(&self, _client: &str, _what: &str) -> String {
        match *self {}
    }

    pub fn backend_limit_key(&self, _backend: &str) -> String {
        match *self {}
    }

    pub async fn decide(&self, _ops: &[LimitOp]) -> Option<Verdict> {
        match *self {}
    }

    pub fn count(&self, _key: String, _n: u64, _limit: u64, _window: Duration) {
        match *self {}
    }

    pub fn budget_keys(&self, _id: &str) -> [String; 3] {
        match *self {}
    }

    pub async fn budget(&self, _call: &BudgetCall, _timeout: Duration) -> Option<BudgetAnswer> {
        match *self {}
    }

    pub fn tie_spend<S: LocalSpend + 'static>(&self, _spend: &Arc<S>) {
        match *self {}
    }
}
