//! Connecting to Redis (scripts loaded, channel subscribed), then
//! exchanging circuits and cooldowns with it: this replica's pushed, the
//! shared ones loaded into the local copy.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::events::MAX_TARGET_BYTES;
use super::{millis, RedisStore, BACKGROUND_TIMEOUT};

impl RedisStore {
    /// Connect, load the scripts, subscribe, then exchange circuits and
    /// cooldowns with Redis (push the local ones, load the shared ones) and
    /// write back the budget spend Redis was not told of.
    pub(super) async fn connect(
        &self,
    ) -> Result<(ConnectionManager, redis::aio::PubSubStream), String> {
        let client = self
            .client
            .clone()
            .ok_or_else(|| "redis_url is not usable".to_string())?;
        let limit = BACKGROUND_TIMEOUT.max(self.config.timeout);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(limit)
            .set_response_timeout(limit)
            .set_number_of_retries(0);
        let mut conn = bounded(
            limit,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await?;
        bounded(limit, self.limit_script.load_async(&mut conn)).await?;
        bounded(limit, self.transition_script.load_async(&mut conn)).await?;
        bounded(limit, self.budget_script.load_async(&mut conn)).await?;
        let mut pubsub = bounded(limit, client.get_async_pubsub()).await?;
        bounded(limit, pubsub.subscribe(&self.channel)).await?;
        self.push_local(&mut conn, limit).await?;
        self.pull_shared(&mut conn, limit).await?;
        self.write_back(&mut conn, limit).await?;
        Ok((conn, pubsub.into_on_message()))
    }

    /// Write the circuits this replica holds open and its cooldowns (kept
    /// while Redis was away), and publish them.
    async fn push_local(
        &self,
        conn: &mut ConnectionManager,
        limit: Duration,
    ) -> Result<(), String> {
        let Some((breakers, cooldowns)) = self.local() else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        let mut add = |key: String, mode: &'static str, kind: &str, target: &str, d: Duration| {
            let message = self.message(kind, target, d);
            let mut invocation = self.transition_script.prepare_invoke();
            invocation
                .key(key)
                .arg(mode)
                .arg(millis(d).max(1))
                .arg(&self.channel)
                .arg(message);
            pipe.invoke_script(&invocation).ignore();
        };
        let short = |(target, _): &(String, Duration)| target.len() <= MAX_TARGET_BYTES;
        for (target, left) in breakers.open_circuits().into_iter().filter(short) {
            add(self.circuit_key(&target), "set", "open", &target, left);
        }
        for (target, left) in cooldowns.active().into_iter().filter(short) {
            add(
                self.cooldown_key(&target),
                "extend",
                "cooldown",
                &target,
                left,
            );
        }
        if pipe.is_empty() {
            return Ok(());
        }
        bounded(limit, pipe.query_async::<()>(conn)).await
    }

    /// Load the open circuits and cooldowns Redis holds into the local copy.
    async fn pull_shared(
        &self,
        conn: &mut ConnectionManager,
        limit: Duration,
    ) -> Result<(), String> {
        let Some((breakers, cooldowns)) = self.local() else {
            return Ok(());
        };
        for kind in ["circuit", "cooldown"] {
            let prefix = format!("{}:{kind}:", self.config.prefix);
            let pattern = format!("{prefix}*");
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = bounded(
                    limit,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(conn),
                )
                .await?;
                if !keys.is_empty() {
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("PTTL").arg(key);
                    }
                    let ttls: Vec<i64> = bounded(limit, pipe.query_async(conn)).await?;
                    for (key, ttl) in keys.iter().zip(ttls) {
                        let (Some(target), true) = (key.strip_prefix(&prefix), ttl > 0) else {
                            continue;
                        };
                        if target.len() > MAX_TARGET_BYTES {
                            continue;
                        }
                        let left = Duration::from_millis(ttl as u64);
                        if kind == "circuit" {
                            breakers.apply_shared_open(target, left);
                        } else {
                            cooldowns.apply_shared(target, left);
                        }
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Await `fut` for at most `limit`; errors and timeouts as text.
pub(super) async fn bounded<T, E: fmt::Display>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            crate::error::humanize(limit)
        )),
    }
}
