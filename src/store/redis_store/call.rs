//! One script call on a request's path (or a budget settlement), made the
//! same way for limits and budgets: only while Redis is usable, bounded by
//! a timeout, and every way it can fail turned into "decide locally".

use std::time::Duration;

use redis::ScriptInvocation;

use super::RedisStore;

impl RedisStore {
    /// Run `invocation` on the shared connection, waiting at most
    /// `timeout`, and read its answer (a list of integers) with `read`.
    ///
    /// `None` when Redis is unavailable, did not answer in time (the store
    /// becomes degraded and reconnects), failed the call, or answered what
    /// `read` refuses (`what` names the script in the one warning): the
    /// caller decides locally.
    pub(super) async fn run_script<T>(
        &self,
        invocation: &ScriptInvocation<'_>,
        timeout: Duration,
        what: &str,
        read: impl FnOnce(&[i64]) -> Option<T>,
    ) -> Option<T> {
        if !self.usable().await {
            return None;
        }
        let mut conn = self
            .conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let answer =
            tokio::time::timeout(timeout, invocation.invoke_async::<Vec<i64>>(&mut conn)).await;
        match answer {
            Ok(Ok(v)) => {
                let read = read(&v);
                if read.is_none() {
                    self.script_failed(&format!("unexpected {what} answer {v:?}"));
                }
                read
            }
            Ok(Err(e)) => {
                self.call_failed(&e);
                None
            }
            Err(_) => {
                self.lost(&format!(
                    "no answer within {}",
                    crate::error::humanize(timeout)
                ));
                None
            }
        }
    }
}
