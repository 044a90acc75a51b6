//! The cooldown registry: targets sitting out after a 429 (or a 5xx with
//! `Retry-After`), bounded, shared through the Redis store when there is one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::DEFAULT_MAX_COOLDOWN;
use crate::store::RedisStore;
use crate::FastMap;

/// The most cooldowns a registry keeps (see the [module
/// docs](crate::layers::failover)).
pub const MAX_COOLDOWNS: usize = 10_000;

/// Targets sitting out after a 429, keyed `backend/model` (plus a
/// credential tag for passthrough backends, see [`state_key`](crate::routing::state_key)).
#[derive(Debug)]
pub struct Cooldowns {
    until: Mutex<FastMap<String, Instant>>,
    /// How many cooldowns the map holds, read without the lock: with none
    /// (the usual case) a request never takes it.
    len: AtomicUsize,
    /// The longest cooldown, in milliseconds (`[failover] max_cooldown`).
    max_ms: AtomicU64,
    /// When the map was last found full of running cooldowns: it is not
    /// swept again before a second has passed.
    full_since: Mutex<Option<Instant>>,
    /// With `[state] store = "redis"`: where cooldowns are published.
    store: OnceLock<Arc<RedisStore>>,
}

impl Default for Cooldowns {
    fn default() -> Self {
        Cooldowns {
            until: Mutex::default(),
            len: AtomicUsize::new(0),
            max_ms: AtomicU64::new(millis(DEFAULT_MAX_COOLDOWN)),
            full_since: Mutex::new(None),
            store: OnceLock::new(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The locked map; keeps [`Cooldowns::len`] in step when released.
struct CooldownsGuard<'a> {
    map: MutexGuard<'a, FastMap<String, Instant>>,
    len: &'a AtomicUsize,
}

impl std::ops::Deref for CooldownsGuard<'_> {
    type Target = FastMap<String, Instant>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for CooldownsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Drop for CooldownsGuard<'_> {
    fn drop(&mut self) {
        self.len.store(self.map.len(), Ordering::Release);
    }
}

/// One cooldown, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CooldownView {
    /// `backend/model`.
    pub target: String,
    /// Seconds left.
    pub remaining_secs: f64,
}

impl Cooldowns {
    fn lock(&self) -> CooldownsGuard<'_> {
        CooldownsGuard {
            map: self.until.lock().unwrap_or_else(|e| e.into_inner()),
            len: &self.len,
        }
    }

    /// The longest cooldown: longer ones are cut to it.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms.load(Ordering::Relaxed))
    }

    /// Set the longest cooldown (`[failover] max_cooldown`); running
    /// cooldowns are not shortened.
    pub fn set_max(&self, max: Duration) {
        self.max_ms.store(millis(max), Ordering::Relaxed);
    }

    /// Put `key` in cooldown for `duration` (extending, never shortening;
    /// at most [`Cooldowns::max`]).
    pub fn start(&self, key: &str, duration: Duration) {
        let duration = duration.min(self.max());
        self.extend(key, duration);
        tracing::info!(
            target_key = key,
            secs = duration.as_secs_f64(),
            "target cooling down"
        );
        if let Some(store) = self.store.get() {
            store.cooldown_started(key, duration);
        }
    }

    fn extend(&self, key: &str, duration: Duration) {
        let now = Instant::now();
        let until = now + duration.min(self.max());
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(entry) => {
                if *entry < until {
                    *entry = until;
                }
            }
            None => {
                if map.len() >= MAX_COOLDOWNS && !self.make_room(&mut map, now) {
                    return;
                }
                map.insert(key.to_string(), until);
            }
        }
    }

    /// Drop the expired cooldowns of a full map; whether that made room. A
    /// map still full is swept again only a second later, so a flood of
    /// new keys costs no sweep per request.
    fn make_room(&self, map: &mut FastMap<String, Instant>, now: Instant) -> bool {
        let mut full_since = self.full_since.lock().unwrap_or_else(|e| e.into_inner());
        if full_since.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1)) {
            return false;
        }
        map.retain(|_, until| *until > now);
        if map.len() < MAX_COOLDOWNS {
            *full_since = None;
            return true;
        }
        *full_since = Some(now);
        tracing::warn!(
            cooldowns = map.len(),
            "cooldown table full of running cooldowns: a new one is not kept"
        );
        false
    }

    /// Publish cooldowns through `store` (`[state] store = "redis"`); a
    /// registry already tied to a store keeps it.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// Another replica put `key` in cooldown with `left` to go: extend it
    /// here too (never shortening, at most [`Cooldowns::max`]), without
    /// publishing it again.
    pub fn apply_shared(&self, key: &str, left: Duration) {
        self.extend(key, left);
        tracing::debug!(
            target_key = key,
            secs = left.as_secs_f64(),
            "target cooling down (another replica)"
        );
    }

    /// The cooldowns running now, with the time each has left.
    pub fn active(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, until)| (k.clone(), *until - now))
            .collect()
    }

    /// Time left in `key`'s cooldown, if any.
    pub fn remaining(&self, key: &str) -> Option<Duration> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.lock();
        match map.get(key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keep only the cooldowns whose key (`backend/model`) `keep` accepts:
    /// a config reload drops those of targets that no longer exist.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    /// Cooldowns still running.
    pub fn snapshot(&self) -> Vec<CooldownView> {
        let now = Instant::now();
        let mut out: Vec<CooldownView> = self
            .lock()
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, until)| CooldownView {
                target: k.clone(),
                remaining_secs: (*until - now).as_secs_f64(),
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

/// What the Redis store reads and updates of this replica's cooldowns.
impl crate::store::LocalCooldowns for Cooldowns {
    fn active(&self) -> Vec<(String, Duration)> {
        Cooldowns::active(self)
    }
    fn apply_shared(&self, key: &str, left: Duration) {
        Cooldowns::apply_shared(self, key, left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::failover::{FailoverLayer, FailoverPolicy};
    use crate::routing::RouteTable;

    #[tokio::test(start_paused = true)]
    async fn cooldowns_expire() {
        let c = Cooldowns::default();
        c.start("a/m", Duration::from_secs(5));
        c.start("a/m", Duration::from_secs(2));
        assert_eq!(c.remaining("a/m"), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.remaining("a/m"), None);
        assert!(c.snapshot().is_empty());
    }

    /// Regression (issue 15): a Retry-After of 1e9 s made a 31-year cooldown.
    #[tokio::test(start_paused = true)]
    async fn cooldowns_are_capped() {
        let c = Cooldowns::default();
        assert_eq!(c.max(), DEFAULT_MAX_COOLDOWN);
        c.start("a/m", Duration::from_secs(1_000_000_000));
        assert_eq!(c.remaining("a/m"), Some(DEFAULT_MAX_COOLDOWN));
        c.set_max(Duration::from_secs(2));
        c.apply_shared("b/m", Duration::from_secs(3600));
        assert_eq!(c.remaining("b/m"), Some(Duration::from_secs(2)));
        // The policy's max reaches the registry with the layer.
        let cooldowns = Arc::new(Cooldowns::default());
        let policy = FailoverPolicy {
            max_cooldown: Duration::from_secs(7),
            ..FailoverPolicy::default()
        };
        let _layer = FailoverLayer::new(Arc::new(RouteTable::default()), policy, cooldowns.clone());
        assert_eq!(cooldowns.max(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cooldown_table_is_bounded() {
        let c = Cooldowns::default();
        for i in 0..MAX_COOLDOWNS + 100 {
            c.start(&format!("up/m-{i}"), Duration::from_secs(10));
        }
        assert_eq!(c.active().len(), MAX_COOLDOWNS);
        assert!(
            c.remaining("up/m-0").is_some(),
            "running cooldowns are kept"
        );
        assert!(c
            .remaining(&format!("up/m-{}", MAX_COOLDOWNS + 50))
            .is_none());
        tokio::time::advance(Duration::from_secs(10)).await;
        c.start("up/new", Duration::from_secs(10));
        assert_eq!(c.active().len(), 1);
        assert!(c.remaining("up/new").is_some());
    }
}
