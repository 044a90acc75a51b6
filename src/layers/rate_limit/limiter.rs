//! [`WindowLimiter`]: window counters per key, bounded in memory
//! ([`MAX_LIMITER_KEYS`]), and what they report ([`LimitState`],
//! [`LimitView`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Window {
    /// When this key's current window started (its first count after the
    /// previous window ended).
    start: Instant,
    count: u64,
}

impl Window {
    /// Start a new window at `now` once the current one has ended.
    fn roll(&mut self, now: Instant, window: Duration) {
        if now.saturating_duration_since(self.start) >= window {
            self.start = now;
            self.count = 0;
        }
    }

    /// Time until the current window ends (never more than `window`).
    fn left(&self, now: Instant, window: Duration) -> Duration {
        window.saturating_sub(now.saturating_duration_since(self.start))
    }
}

/// Where a limit stands for one key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitState {
    /// The limit.
    pub limit: u64,
    /// What is left now.
    pub remaining: u64,
    /// Time until the current window ends.
    pub reset: Duration,
}

/// One key of a limiter, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LimitView {
    /// The key (masked when it is an API key).
    pub key: String,
    /// The limit per window.
    pub limit: u64,
    /// What is left now.
    pub remaining: u64,
    /// Seconds until the current window ends.
    pub reset_secs: f64,
}

/// The most keys one [`WindowLimiter`] tracks (client keys, IP addresses,
/// JWT subjects). Beyond it, once the windows that ended are dropped, the
/// keys it has no room for share one window ([`OVERFLOW_KEY`]): memory stays
/// bounded, and a flood of fresh keys (addresses of a whole IPv6 prefix, say)
/// is limited as one client rather than not at all.
pub const MAX_LIMITER_KEYS: usize = 100_000;

/// The key under which the clients a full limiter cannot track are counted.
pub const OVERFLOW_KEY: &str = "(overflow)";

/// Window counters per key. See the [module docs](crate::layers::rate_limit).
#[derive(Debug)]
pub struct WindowLimiter {
    limit: u64,
    window: Duration,
    entries: Mutex<HashMap<String, Window>>,
    ops: AtomicU64,
}

/// `window` rounded up to whole seconds (at least one): `Retry-After` counts
/// whole seconds, and a window that ends between two of them could not be
/// promised exactly.
fn whole_seconds(window: Duration) -> Duration {
    let secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl WindowLimiter {
    /// `limit` per `window` (rounded up to whole seconds, at least one).
    pub fn new(limit: u64, window: Duration) -> Self {
        WindowLimiter {
            limit,
            window: whole_seconds(window),
            entries: Mutex::new(HashMap::new()),
            ops: AtomicU64::new(0),
        }
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Window>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_entry<T>(&self, key: &str, f: impl FnOnce(&mut Window, Instant) -> T) -> T {
        let now = Instant::now();
        let mut entries = self.lock();
        if self.ops.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            // Windows that ended hold nothing: the next count starts anew.
            let window = self.window;
            entries.retain(|_, w| now.saturating_duration_since(w.start) < window);
        }
        let key = if entries.contains_key(key) {
            key
        } else {
            if entries.len() >= MAX_LIMITER_KEYS {
                let window = self.window;
                entries.retain(|_, w| now.saturating_duration_since(w.start) < window);
            }
            let key = if entries.len() >= MAX_LIMITER_KEYS {
                OVERFLOW_KEY
            } else {
                key
            };
            entries.entry(key.to_string()).or_insert(Window {
                start: now,
                count: 0,
            });
            key
        };
        let mut fresh = Window {
            start: now,
            count: 0,
        };
        let entry = entries.get_mut(key).unwrap_or(&mut fresh);
        entry.roll(now, self.window);
        f(entry, now)
    }

    fn state(&self, w: &Window, now: Instant) -> LimitState {
        LimitState {
            limit: self.limit,
            remaining: self.limit.saturating_sub(w.count),
            reset: w.left(now, self.window),
        }
    }

    /// Count `n` for `key` if that stays within the limit; otherwise the
    /// time until this key's window ends (at most the window): a request
    /// made then is counted in a fresh window.
    pub fn try_acquire(&self, key: &str, n: u64) -> Result<LimitState, Duration> {
        self.with_entry(key, |w, now| {
            if w.count.saturating_add(n) > self.limit {
                Err(w.left(now, self.window))
            } else {
                w.count = w.count.saturating_add(n);
                Ok(self.state(w, now))
            }
        })
    }

    /// Whether `key` is still under the limit, without counting anything.
    pub fn check(&self, key: &str) -> Result<LimitState, Duration> {
        self.with_entry(key, |w, now| {
            if w.count >= self.limit {
                Err(w.left(now, self.window))
            } else {
                Ok(self.state(w, now))
            }
        })
    }

    /// Count `n` for `key` after the fact (tokens of a finished answer).
    pub fn add(&self, key: &str, n: u64) {
        self.with_entry(key, |w, _| w.count = w.count.saturating_add(n));
    }

    /// Start from the counts of `old` when it counts over the same window
    /// (a config reload that changed only the limit, or nothing); returns
    /// whether it did. Over a different window the counts mean something
    /// else, and this limiter starts empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llm_router::layers::rate_limit::WindowLimiter;
    ///
    /// let old = WindowLimiter::new(2, Duration::from_secs(60));
    /// old.try_acquire("k", 2).unwrap();
    /// let new = WindowLimiter::new(3, Duration::from_secs(60));
    /// assert!(new.carry_over(&old));
    /// assert_eq!(new.check("k").unwrap().remaining, 1);
    /// ```
    pub fn carry_over(&self, old: &WindowLimiter) -> bool {
        if old.window != self.window {
            return false;
        }
        let entries = old.lock().clone();
        *self.lock() = entries;
        true
    }

    /// Every key seen recently.
    pub fn snapshot(&self, show_key: impl Fn(&str) -> String) -> Vec<LimitView> {
        let now = Instant::now();
        let mut entries = self.lock();
        let mut out: Vec<LimitView> = entries
            .iter_mut()
            .map(|(k, w)| {
                w.roll(now, self.window);
                let s = self.state(w, now);
                LimitView {
                    key: show_key(k),
                    limit: s.limit,
                    remaining: s.remaining,
                    reset_secs: s.reset.as_secs_f64(),
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

    #[test]
    fn a_full_limiter_counts_new_keys_as_one() {
        let limiter = WindowLimiter::new(2, Duration::from_secs(60));
        for n in 0..MAX_LIMITER_KEYS {
            limiter.try_acquire(&format!("k{n}"), 1).unwrap();
        }
        assert_eq!(limiter.lock().len(), MAX_LIMITER_KEYS);
        // Keys it has no room for share the overflow window...
        limiter.try_acquire("fresh-1", 1).unwrap();
        limiter.try_acquire("fresh-2", 1).unwrap();
        assert!(limiter.try_acquire("fresh-3", 1).is_err());
        assert_eq!(limiter.lock().len(), MAX_LIMITER_KEYS + 1);
        // ...while the keys it tracks keep their own.
        limiter.try_acquire("k0", 1).unwrap();
        assert!(limiter.try_acquire("k0", 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn window_per_key() {
        let l = WindowLimiter::new(10, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(3)).await;
        for _ in 0..10 {
            l.try_acquire("k", 1).unwrap();
        }
        // The key's window started with its first request: 10 s from then.
        let wait = l.try_acquire("k", 1).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(l.try_acquire("k", 1), Err(Duration::from_secs(6)));
        assert_eq!(l.check("k"), Err(Duration::from_secs(6)));
        tokio::time::advance(Duration::from_secs(6) - Duration::from_millis(1)).await;
        assert!(l.try_acquire("k", 1).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        // A fresh window: the whole quota again, nothing carried over.
        let state = l.try_acquire("k", 1).unwrap();
        assert_eq!(state.remaining, 9);
        assert_eq!(state.reset, Duration::from_secs(10));
        assert_eq!(l.try_acquire("other", 1).unwrap().remaining, 9);
    }

    /// Retry-After as the 429 says it: whole seconds, rounded up.
    fn retry_after_secs(wait: Duration) -> u64 {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    }

    /// Regression (issue 15): with `requests = 3, window = "60s"` a 429 said
    /// `Retry-After: 80`, with a 2 s window 3; a client must never be told
    /// to wait longer than the window, and must be admitted once it waited
    /// what it was told.
    #[tokio::test(start_paused = true)]
    async fn retry_after_never_exceeds_the_window_and_is_kept() {
        for (requests, window_secs) in [(3, 60), (3, 2), (1, 1), (2, 1), (10, 7), (100, 60)] {
            let window = Duration::from_secs(window_secs);
            let l = WindowLimiter::new(requests, window);
            // Refusals at several points of the window, waits kept each time.
            for offset_ms in [0, 1, 250, 999, 1500] {
                tokio::time::advance(Duration::from_millis(offset_ms)).await;
                while l.try_acquire("k", 1).is_ok() {}
                let wait = l.try_acquire("k", 1).unwrap_err();
                let told = retry_after_secs(wait);
                assert!(
                    told >= 1 && told <= window_secs,
                    "({requests}, {window_secs}s): Retry-After {told}"
                );
                let state = l.check("k").unwrap_err();
                assert!(retry_after_secs(state) <= window_secs);
                tokio::time::advance(Duration::from_secs(told)).await;
                assert!(
                    l.try_acquire("k", 1).is_ok(),
                    "({requests}, {window_secs}s): refused after waiting Retry-After {told}"
                );
            }
        }
    }

    /// A fractional window is rounded up to whole seconds, so the promise
    /// can be kept in whole seconds too.
    #[tokio::test(start_paused = true)]
    async fn windows_are_whole_seconds() {
        assert_eq!(
            WindowLimiter::new(1, Duration::from_millis(1500)).window(),
            Duration::from_secs(2)
        );
        assert_eq!(
            WindowLimiter::new(1, Duration::from_millis(10)).window(),
            Duration::from_secs(1)
        );
        assert_eq!(
            WindowLimiter::new(1, Duration::from_secs(60)).window(),
            Duration::from_secs(60)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_after_the_fact() {
        let l = WindowLimiter::new(100, Duration::from_secs(60));
        assert!(l.check("k").is_ok());
        l.add("k", 150);
        assert!(l.check("k").is_err());
        assert!(l.check("other").is_ok());
    }
}
