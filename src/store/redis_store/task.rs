//! The background task of a [`RedisStore`]: connect with backoff, apply
//! what other replicas publish, send this replica's queued writes in
//! batches, reconnect when the link is lost.

use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult};
use tokio::sync::{mpsc, Notify};

use super::{
    is_connection_error, Event, Link, RedisStore, BACKGROUND_TIMEOUT, BATCH, MAX_BACKOFF,
    MIN_BACKOFF,
};
use crate::store::Op;

/// The background task: connect (with backoff), then apply what other
/// replicas publish and write this replica's transitions until the
/// connection is lost; then again. Ends when the store is dropped.
pub(super) async fn supervise(
    weak: Weak<RedisStore>,
    mut events: mpsc::Receiver<Event>,
    wake: Arc<Notify>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = match weak.upgrade() {
            Some(store) => store.connect().await,
            None => return,
        };
        let why = match connected {
            Ok((mut conn, mut messages)) => {
                let Some(store) = weak.upgrade() else { return };
                store.set_conn(Some(conn.clone()));
                store.mark_up();
                drop(store);
                backoff = MIN_BACKOFF;
                let why = loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(m) => match weak.upgrade() {
                                Some(store) => store.apply_message(&m),
                                None => return,
                            },
                            None => break "the connection was closed".to_string(),
                        },
                        event = events.recv() => {
                            let Some(event) = event else { return };
                            let Some(store) = weak.upgrade() else { return };
                            let mut batch = vec![event];
                            while batch.len() < BATCH {
                                match events.try_recv() {
                                    Ok(e) => batch.push(e),
                                    Err(_) => break,
                                }
                            }
                            match store.write(&mut conn, &batch).await {
                                Ok(()) => {}
                                Err(e) if is_connection_error(&e) => break e.to_string(),
                                Err(e) => {
                                    // NOSCRIPT after a SCRIPT FLUSH: load them again.
                                    tracing::debug!(error = %e, "state store: a shared update failed");
                                    let _ = store.limit_script.load_async(&mut conn).await;
                                    let _ = store.transition_script.load_async(&mut conn).await;
                                }
                            }
                        }
                        () = wake.notified() => match weak.upgrade() {
                            // A request's call failed and already said so.
                            Some(store) if store.link() == Link::Down => break String::new(),
                            Some(_) => {}
                            None => return,
                        },
                    }
                };
                why
            }
            Err(why) => why,
        };
        match weak.upgrade() {
            Some(store) => {
                store.set_conn(None);
                if !why.is_empty() {
                    store.mark_down(&why);
                }
            }
            None => return,
        }
        // Wait before the next attempt. Updates made meanwhile are dropped:
        // the reconnect pushes the local circuits and cooldowns.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                event = events.recv() => if event.is_none() { return },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl RedisStore {
    /// Send queued writes as one pipeline.
    async fn write(&self, conn: &mut ConnectionManager, batch: &[Event]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for event in batch {
            match event {
                Event::Transition {
                    key,
                    mode,
                    ttl_ms,
                    message,
                } => {
                    let mut invocation = self.transition_script.prepare_invoke();
                    invocation
                        .key(key)
                        .arg(*mode)
                        .arg(*ttl_ms)
                        .arg(&self.channel)
                        .arg(message);
                    pipe.invoke_script(&invocation).ignore();
                }
                Event::Count {
                    key,
                    n,
                    limit,
                    window_ms,
                } => {
                    let mut invocation = self.limit_script.prepare_invoke();
                    invocation
                        .key(key)
                        .arg(Op::Add.code())
                        .arg(*n)
                        .arg(*limit)
                        .arg(*window_ms);
                    pipe.invoke_script(&invocation).ignore();
                }
            }
        }
        let limit = BACKGROUND_TIMEOUT.max(self.config.timeout);
        match tokio::time::timeout(limit, pipe.query_async::<()>(conn)).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "a background write timed out",
            ))),
        }
    }
}
