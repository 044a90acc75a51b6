//! Limit decisions made in Redis (the ops and verdicts are in
//! `store/ops.rs`), and the limit keys themselves.

use std::fmt;
use std::time::Duration;

use super::{millis, Event, RedisStore};
use crate::store::{LimitOp, Verdict};

impl RedisStore {
    /// The key of one of a client's limits (`what`: `requests`, `tokens`).
    /// The client key (an API key, `ip:...`, `global`) is hashed.
    pub fn client_limit_key(&self, client: &str, what: &str) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, client.as_bytes());
        let mut hex = String::with_capacity(32);
        for b in &digest.as_ref()[..16] {
            use fmt::Write;
            let _ = write!(hex, "{b:02x}");
        }
        format!("{}:limit:client:{{{hex}}}:{what}", self.config.prefix)
    }

    /// The key of a backend's request limit.
    pub fn backend_limit_key(&self, backend: &str) -> String {
        format!(
            "{}:limit:backend:{{{backend}}}:requests",
            self.config.prefix
        )
    }

    /// Decide `ops` atomically in Redis (one script call, one round trip).
    /// `None` when Redis is unavailable or did not answer within `timeout`:
    /// the caller decides locally.
    pub async fn decide(&self, ops: &[LimitOp]) -> Option<Verdict> {
        if ops.is_empty() {
            return None;
        }
        let mut invocation = self.limit_script.prepare_invoke();
        for op in ops {
            invocation
                .key(&op.key)
                .arg(op.op.code())
                .arg(op.n)
                .arg(op.limit)
                .arg(millis(op.window));
        }
        self.run_script(&invocation, self.config.timeout, "limit", verdict)
            .await
    }

    /// Count `n` on `key` after the fact (tokens of a finished answer), in
    /// the background.
    pub fn count(&self, key: String, n: u64, limit: u64, window: Duration) {
        if n == 0 {
            return;
        }
        self.enqueue(|| Event::Count {
            key,
            n,
            limit,
            window_ms: millis(window),
        });
    }
}

/// `{allowed (1/0), refusing op (1-based), remaining, reset or wait (ms)}`.
fn verdict(v: &[i64]) -> Option<Verdict> {
    let &[allowed, index, remaining, ms] = v else {
        return None;
    };
    Some(if allowed == 1 {
        Verdict::Allowed {
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
        }
    } else {
        Verdict::Refused {
            index: usize::try_from(index.max(1) - 1).unwrap_or(0),
            wait: Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)),
        }
    })
}
