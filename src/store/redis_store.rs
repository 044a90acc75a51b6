//! The Redis state store: [`RedisStore`], its link to Redis and its write
//! queue. See the module docs of `store`. Its parts:
//!
//! - `budget`: budget decisions made in Redis ([`BudgetCall`](super::BudgetCall));
//! - `limits`: limit decisions made in Redis ([`LimitOp`](super::LimitOp), [`Verdict`](super::Verdict));
//! - `call`: one script call on a request's path, bounded by a timeout (limits and budgets);
//! - `events`: circuit and cooldown transitions, published and applied;
//! - `connect`: connecting, and exchanging circuits and cooldowns with Redis;
//! - `task`: the background task (reconnects, pub/sub, batched writes).

mod budget;
mod call;
mod connect;
mod events;
mod limits;
mod task;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use tokio::sync::{mpsc, watch, Notify};

use super::{LocalCircuits, LocalCooldowns, LocalSpend, StateConfig, StoreStatus};
use events::Event;
use task::supervise;

/// The longest a connection attempt, the sync after it, or a background
/// write may take (the request path uses `timeout`).
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(1);
/// First wait before a reconnect attempt; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Transitions and token counts waiting for the background writer.
const QUEUE: usize = 4096;
/// Most writes sent in one pipeline.
const BATCH: usize = 128;

/// The registries tied by [`RedisStore::start`], held weakly: this
/// replica's circuits and cooldowns.
type Local = (Weak<dyn LocalCircuits>, Weak<dyn LocalCooldowns>);

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// The first attempt is under way.
    Connecting,
    /// Connected, scripts loaded, subscribed, synced.
    Up,
    /// Not connected; the supervisor retries with backoff.
    Down,
}

/// Rate limits, cooldowns and circuits shared through Redis. See the
/// module docs of `store`.
///
/// Created by the stack's `RouterState::new` for `[state] store =
/// "redis"`; [`RedisStore::start`] ties it to the local registries and
/// starts its background task (connection, pub/sub,
/// writes, reconnects).
pub struct RedisStore {
    config: StateConfig,
    url_for_logs: String,
    client: Option<redis::Client>,
    conn: RwLock<Option<ConnectionManager>>,
    link: watch::Sender<Link>,
    outages: AtomicU64,
    script_warned: AtomicBool,
    wake: Arc<Notify>,
    events: mpsc::Sender<Event>,
    receiver: Mutex<Option<mpsc::Receiver<Event>>>,
    local: RwLock<Option<Local>>,
    /// This replica's budget spend, held weakly (see [`RedisStore::tie_spend`]).
    spend: RwLock<Option<Weak<dyn LocalSpend>>>,
    /// The budget epoch of the Redis data this replica last wrote its spend
    /// to (see `budget.rs`).
    budget_epoch: Mutex<Option<String>>,
    replica: String,
    channel: String,
    limit_script: Script,
    transition_script: Script,
    budget_script: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis_url", &self.url_for_logs)
            .field("prefix", &self.config.prefix)
            .field("link", &*self.link.borrow())
            .field("outages", &self.outages())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config`, not connected yet (see [`RedisStore::start`]).
    pub fn new(config: StateConfig) -> Arc<Self> {
        let (events, receiver) = mpsc::channel(QUEUE);
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| {
                tracing::warn!(error = %e, "[state] redis_url is not usable; state stays local");
            })
            .ok();
        let replica = format!(
            "{:016x}",
            RandomState::new().build_hasher().finish() ^ u64::from(std::process::id())
        );
        Arc::new(RedisStore {
            url_for_logs: config.redis_url_for_logs(),
            channel: format!("{}:events", config.prefix),
            config,
            client,
            conn: RwLock::new(None),
            link: watch::Sender::new(Link::Connecting),
            outages: AtomicU64::new(0),
            script_warned: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            events,
            receiver: Mutex::new(Some(receiver)),
            local: RwLock::new(None),
            spend: RwLock::new(None),
            budget_epoch: Mutex::new(None),
            replica,
            limit_script: Script::new(include_str!("limit.lua")),
            transition_script: Script::new(include_str!("transition.lua")),
            budget_script: Script::new(include_str!("budget.lua")),
        })
    }

    /// Tie the store to this replica's circuits and cooldowns (where what
    /// other replicas publish is applied; again after a reload replaced
    /// them) and start the background task, once. Outside a tokio runtime
    /// (`llm-router check`) nothing starts.
    pub fn start<B, C>(self: &Arc<Self>, breakers: &Arc<B>, cooldowns: &Arc<C>)
    where
        B: LocalCircuits + 'static,
        C: LocalCooldowns + 'static,
    {
        self.tie(breakers, cooldowns);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        runtime.spawn(supervise(Arc::downgrade(self), receiver, self.wake.clone()));
    }

    /// Hold `breakers` and `cooldowns` (weakly) as the local copy.
    fn tie<B, C>(&self, breakers: &Arc<B>, cooldowns: &Arc<C>)
    where
        B: LocalCircuits + 'static,
        C: LocalCooldowns + 'static,
    {
        let circuits: Weak<dyn LocalCircuits> = Arc::<B>::downgrade(breakers);
        let cooldowns: Weak<dyn LocalCooldowns> = Arc::<C>::downgrade(cooldowns);
        *self.local.write().unwrap_or_else(|e| e.into_inner()) = Some((circuits, cooldowns));
    }

    /// The config.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// `ok` when connected, `degraded` otherwise.
    pub fn status(&self) -> StoreStatus {
        match *self.link.borrow() {
            Link::Up => StoreStatus::Ok,
            Link::Connecting | Link::Down => StoreStatus::Degraded,
        }
    }

    /// How many times Redis became unavailable (each logged one warning).
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// This replica's id in published transitions.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn link(&self) -> Link {
        *self.link.borrow()
    }

    /// Whether a request may ask Redis now. While the first connection
    /// attempt is under way, waits for it at most `timeout`.
    async fn usable(&self) -> bool {
        match self.link() {
            Link::Up => return true,
            Link::Down => return false,
            Link::Connecting => {}
        }
        let mut rx = self.link.subscribe();
        let _ = tokio::time::timeout(self.config.timeout, rx.wait_for(|l| *l != Link::Connecting))
            .await;
        self.link() == Link::Up
    }

    /// Queue a write for the background task. While Redis is down nothing
    /// is queued: the reconnect pushes the local circuits and cooldowns.
    fn enqueue(&self, event: impl FnOnce() -> Event) {
        if self.link() == Link::Down {
            return;
        }
        if self.events.try_send(event()).is_err() {
            tracing::debug!("state store: write queue full, a shared update was dropped");
        }
    }

    /// A request's call failed: a connection problem makes the store
    /// degraded; anything else is warned about once.
    fn call_failed(&self, e: &RedisError) {
        if is_connection_error(e) {
            self.lost(&e.to_string());
        } else {
            self.script_failed(&e.to_string());
        }
    }

    fn script_failed(&self, why: &str) {
        if !self.script_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis = %self.url_for_logs,
                error = why,
                "Redis state store: a limit script failed; that decision was made locally"
            );
        }
    }

    /// Redis is unavailable: decide locally from now on, and have the
    /// supervisor reconnect.
    fn lost(&self, why: &str) {
        self.mark_down(why);
        self.wake.notify_one();
    }

    fn mark_down(&self, why: &str) {
        let was = self.link.send_replace(Link::Down);
        if was == Link::Down {
            tracing::debug!(redis = %self.url_for_logs, error = why, "Redis state store still unavailable");
            return;
        }
        self.outages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            redis = %self.url_for_logs,
            prefix = %self.config.prefix,
            error = why,
            "Redis state store unavailable: rate limits, budgets, cooldowns and circuits are per \
             replica until it is back (reconnecting in the background)"
        );
    }

    fn mark_up(&self) {
        let was = self.link.send_replace(Link::Up);
        if was == Link::Down {
            tracing::info!(
                redis = %self.url_for_logs,
                "Redis state store reconnected: rate limits, budgets, cooldowns and circuits are shared again"
            );
        } else if was == Link::Connecting {
            tracing::info!(redis = %self.url_for_logs, prefix = %self.config.prefix, "Redis state store connected");
        }
    }

    fn set_conn(&self, conn: Option<ConnectionManager>) {
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    fn local(&self) -> Option<(Arc<dyn LocalCircuits>, Arc<dyn LocalCooldowns>)> {
        let local = self.local.read().unwrap_or_else(|e| e.into_inner());
        let (circuits, cooldowns) = local.as_ref()?;
        Some((circuits.upgrade()?, cooldowns.upgrade()?))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
