//! [`RetryPolicy`]: when and how one target's attempt is retried. The
//! `retry` layer applies it (its own, or the one a model sets, which its
//! [`Target`](super::Target) carries); this module holds the decision only.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use http::Response;

use super::{retry_after, Outcome};
use crate::body::ProxyBody;
use crate::error::ProxyError;

/// When and how to retry: the `retry` layer's policy, or a model's own
/// (`[[models]] retry`, carried by its [`Target`](crate::routing::Target)).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Statuses retried.
    pub retry_on: Vec<u16>,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Growth of the delay per retry.
    pub backoff_factor: f64,
    /// Longest delay, and longest `Retry-After` waited for.
    pub max_delay: Duration,
    /// Spread delays randomly over their upper half.
    pub jitter: bool,
    /// Hand a failure straight back while another target is left
    /// ([`Attempt::others_left`](crate::classify::Attempt::others_left)), so failover tries the other targets
    /// first and only the last one is retried here: a failing primary costs
    /// the client no backoff before its fallback answers.
    pub other_targets_first: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            retry_on: vec![429, 500, 502, 503, 504, 529],
            initial_delay: Duration::from_secs(1),
            backoff_factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: true,
            other_targets_first: false,
        }
    }
}

impl RetryPolicy {
    /// Set `max_retries`.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Set `initial_delay`.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Set `max_delay`.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Set `backoff_factor`.
    pub fn backoff_factor(mut self, f: f64) -> Self {
        self.backoff_factor = f;
        self
    }

    /// Set `jitter`.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Set `other_targets_first`.
    pub fn other_targets_first(mut self, on: bool) -> Self {
        self.other_targets_first = on;
        self
    }

    /// Set `retry_on`.
    pub fn retry_on(mut self, statuses: Vec<u16>) -> Self {
        self.retry_on = statuses;
        self
    }

    /// The backoff delay before retry `n` (0-based), before jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = self.backoff_factor.max(1.0).powi(n.min(64) as i32);
        let secs = self.initial_delay.as_secs_f64() * factor;
        let capped = secs.min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(capped.max(0.0))
    }

    fn jittered(&self, d: Duration) -> Duration {
        if !self.jitter || d.is_zero() {
            return d;
        }
        let r = RandomState::new().build_hasher().finish();
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        d.mul_f64(0.5 + 0.5 * frac)
    }

    /// Whether an attempt may be retried at all, whatever its outcome: not
    /// when `max_retries` is 0, nor while another target is left with
    /// `other_targets_first`. When it is false, [`decide`](Self::decide)
    /// hands every result back, so the `retry` layer keeps no replay.
    pub(crate) fn may_retry(&self, others_left: bool) -> bool {
        self.max_retries > 0 && !(others_left && self.other_targets_first)
    }

    /// What to do after retry number `n` (0-based) produced `result`: the
    /// delay before trying again, or `None` to hand the result back.
    pub fn decide(
        &self,
        result: &Result<Response<ProxyBody>, ProxyError>,
        n: u32,
        others_left: bool,
    ) -> Option<Duration> {
        if n >= self.max_retries || !self.may_retry(others_left) {
            return None;
        }
        match result {
            Ok(response) => {
                if !self.retry_on.contains(&response.status().as_u16()) {
                    return None;
                }
                match retry_after(response.headers()) {
                    Some(wait) if wait > self.max_delay => None,
                    Some(wait) => Some(wait.max(Duration::from_millis(1))),
                    None => Some(self.jittered(self.backoff(n))),
                }
            }
            Err(e) => match Outcome::of_error(e) {
                Outcome::ConnectionError => Some(self.jittered(self.backoff(n))),
                Outcome::Timeout if !others_left => Some(self.jittered(self.backoff(n))),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_upper_half() {
        let p = RetryPolicy::default();
        for _ in 0..100 {
            let d = p.jittered(Duration::from_secs(2));
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
        assert_eq!(p.backoff(10), Duration::from_secs(60));
    }
}
