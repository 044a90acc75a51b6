//! [`BackendLimits`]: the request limits of backends (a `[[backends]]`
//! entry's `rate_limit`), which failover consults before it picks a target.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{LimitView, WindowLimiter};
use crate::store::{LimitOp, Op, RedisStore, Verdict};

/// Backend limits (`rate_limit` of a `[[backends]]` entry), by backend name.
#[derive(Debug, Default)]
pub struct BackendLimits {
    limiters: HashMap<String, WindowLimiter>,
    /// With `[state] store = "redis"`: where the limits are decided.
    store: OnceLock<Arc<RedisStore>>,
}

impl BackendLimits {
    /// Decide the limits in `store` (`[state] store = "redis"`), falling
    /// back to the local counters; limits already tied to a store keep it.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// The shared store, when there is one.
    pub fn store(&self) -> Option<&Arc<RedisStore>> {
        self.store.get()
    }

    /// Like [`BackendLimits::check`], decided in `store` (one round trip,
    /// bounded by its `timeout`); locally when Redis is unavailable. The
    /// local counter counts this replica's requests either way.
    pub async fn check_shared(&self, store: &RedisStore, backend: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(backend) else {
            return Ok(());
        };
        let op = LimitOp {
            key: store.backend_limit_key(backend),
            op: Op::Acquire,
            n: 1,
            limit: limiter.limit(),
            window: limiter.window(),
        };
        match store.decide(std::slice::from_ref(&op)).await {
            Some(Verdict::Allowed { .. }) => {
                limiter.add("", 1);
                Ok(())
            }
            Some(Verdict::Refused { wait, .. }) => Err(wait),
            None => limiter.try_acquire("", 1).map(|_| ()),
        }
    }

    /// Add a limit for `backend`.
    pub fn insert(&mut self, backend: impl Into<String>, limiter: WindowLimiter) {
        self.limiters.insert(backend.into(), limiter);
    }

    /// The limiter of `backend`, if it has a limit.
    pub fn get(&self, backend: &str) -> Option<&WindowLimiter> {
        self.limiters.get(backend)
    }

    /// How many backends have a limit.
    pub fn len(&self) -> usize {
        self.limiters.len()
    }

    /// Whether any backend has a limit.
    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }

    /// Count one request to `backend`, or say how long until it has room.
    pub fn check(&self, backend: &str) -> Result<(), Duration> {
        match self.limiters.get(backend) {
            Some(l) => l.try_acquire("", 1).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Whether `backend` has room for a request now, without counting one.
    pub fn has_room(&self, backend: &str) -> bool {
        self.limiters
            .get(backend)
            .is_none_or(|l| l.check("").is_ok())
    }

    /// Each backend's limit.
    pub fn snapshot(&self) -> Vec<LimitView> {
        let mut out: Vec<LimitView> = self
            .limiters
            .iter()
            .flat_map(|(name, l)| {
                let views = l.snapshot(|_| name.clone());
                if views.is_empty() {
                    vec![LimitView {
                        key: name.clone(),
                        limit: l.limit(),
                        remaining: l.limit(),
                        reset_secs: l.window().as_secs_f64(),
                    }]
                } else {
                    views
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 15): a backend's `rate_limit` resets after its
    /// window.
    #[tokio::test(start_paused = true)]
    async fn a_backend_limit_resets_after_its_window() {
        let mut limits = BackendLimits::default();
        limits.insert("b", WindowLimiter::new(1, Duration::from_secs(2)));
        assert!(limits.check("b").is_ok());
        let wait = limits.check("b").unwrap_err();
        assert!(!limits.has_room("b"));
        assert_eq!(wait, Duration::from_secs(2));
        tokio::time::advance(wait).await;
        assert!(limits.has_room("b"));
        assert!(limits.check("b").is_ok());
        assert!(limits.check("b").is_err());
        assert!(limits.check("unlimited").is_ok());
    }
}
