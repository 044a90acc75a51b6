//! The Redis state store. See the [module docs](crate::store).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Notify};

use super::{LocalCircuits, LocalCooldowns, StateConfig, StoreStatus};

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

/// What a limit key is asked to do (see `limit.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Count `n` if that stays within the limit.
    Acquire,
    /// Whether the count is under the limit; counts nothing.
    Check,
    /// Count `n` whatever the limit.
    Add,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Acquire => "a",
            Op::Check => "c",
            Op::Add => "f",
        }
    }
}

/// One limit of a decision: a Redis key and what to do with it.
#[derive(Clone, Debug)]
pub struct LimitOp {
    /// The full key (see [`RedisStore::client_limit_key`]).
    pub key: String,
    /// What to do.
    pub op: Op,
    /// How much to count.
    pub n: u64,
    /// The limit per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

/// The shared decision over a list of [`LimitOp`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit has room; the state of the last one.
    Allowed {
        /// What is left of the last limit.
        remaining: u64,
        /// Time until its current window ends.
        reset: Duration,
    },
    /// The limit at `index` (of the ops given) refused.
    Refused {
        /// Which op refused.
        index: usize,
        /// Time until it would have room.
        wait: Duration,
    },
}

/// A write for the background task.
enum Event {
    /// A circuit or cooldown transition (`transition.lua`).
    Transition {
        key: String,
        mode: &'static str,
        ttl_ms: u64,
        message: String,
    },
    /// Usage counted after the fact (`limit.lua`, op `f`).
    Count {
        key: String,
        n: u64,
        limit: u64,
        window_ms: u64,
    },
}

/// The longest event accepted from `{prefix}:events`; longer ones are
/// ignored unread.
const MAX_EVENT_BYTES: usize = 2048;
/// The longest target key shared (published, or accepted from Redis). A
/// longer one (a client's very long model name on a `*` route) stays local.
const MAX_TARGET_BYTES: usize = 512;
/// The longest replica id accepted in an event.
const MAX_REPLICA_BYTES: usize = 64;

/// A transition as published on `{prefix}:events`. Anything that can
/// publish there can send one, so it is validated before it is applied:
/// known fields and kinds only, bounded sizes, and durations capped by the
/// registries (`open_for`, `max_cooldown`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Message {
    from: String,
    kind: Kind,
    target: String,
    #[serde(default)]
    ms: u64,
}

/// What a transition says.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// A circuit opened for `ms`.
    Open,
    /// A circuit closed.
    Closed,
    /// A target cools down for `ms`.
    Cooldown,
}

impl Message {
    /// Parse and check an event's payload; `None` for anything malformed,
    /// unknown or oversized.
    fn parse(payload: &[u8]) -> Option<Message> {
        if payload.len() > MAX_EVENT_BYTES {
            return None;
        }
        let message: Message = serde_json::from_slice(payload).ok()?;
        let sane = !message.target.is_empty()
            && message.target.len() <= MAX_TARGET_BYTES
            && message.target.contains('/')
            && !message.target.chars().any(char::is_control)
            && message.from.len() <= MAX_REPLICA_BYTES;
        sane.then_some(message)
    }
}

/// Rate limits, cooldowns and circuits shared through Redis. See the
/// [module docs](crate::store).
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
    replica: String,
    channel: String,
    limit_script: Script,
    transition_script: Script,
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
            replica,
            limit_script: Script::new(include_str!("limit.lua")),
            transition_script: Script::new(include_str!("transition.lua")),
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

    fn circuit_key(&self, target: &str) -> String {
        format!("{}:circuit:{target}", self.config.prefix)
    }

    fn cooldown_key(&self, target: &str) -> String {
        format!("{}:cooldown:{target}", self.config.prefix)
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

    /// Decide `ops` atomically in Redis (one script call, one round trip).
    /// `None` when Redis is unavailable or did not answer within `timeout`:
    /// the caller decides locally.
    pub async fn decide(&self, ops: &[LimitOp]) -> Option<Verdict> {
        if ops.is_empty() || !self.usable().await {
            return None;
        }
        let mut conn = self
            .conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let mut invocation = self.limit_script.prepare_invoke();
        for op in ops {
            invocation
                .key(&op.key)
                .arg(op.op.code())
                .arg(op.n)
                .arg(op.limit)
                .arg(millis(op.window));
        }
        let answer = tokio::time::timeout(
            self.config.timeout,
            invocation.invoke_async::<Vec<i64>>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok(v)) if v.len() == 4 => Some(if v[0] == 1 {
                Verdict::Allowed {
                    remaining: v[2].max(0) as u64,
                    reset: Duration::from_millis(v[3].max(0) as u64),
                }
            } else {
                Verdict::Refused {
                    index: (v[1].max(1) - 1) as usize,
                    wait: Duration::from_millis(v[3].max(1) as u64),
                }
            }),
            Ok(Ok(v)) => {
                self.script_failed(&format!("unexpected answer {v:?}"));
                None
            }
            Ok(Err(e)) => {
                self.call_failed(&e);
                None
            }
            Err(_) => {
                self.lost(&format!(
                    "no answer within {}",
                    crate::error::humanize(self.config.timeout)
                ));
                None
            }
        }
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

    /// Tell the other replicas that `target`'s circuit opened for `open_for`.
    pub fn circuit_opened(&self, target: &str, open_for: Duration) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.circuit_key(target),
            mode: "set",
            ttl_ms: millis(open_for).max(1),
            message: self.message("open", target, open_for),
        });
    }

    /// Tell the other replicas that `target`'s circuit closed.
    pub fn circuit_closed(&self, target: &str) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.circuit_key(target),
            mode: "del",
            ttl_ms: 0,
            message: self.message("closed", target, Duration::ZERO),
        });
    }

    /// Tell the other replicas that `target` cools down for `duration`.
    pub fn cooldown_started(&self, target: &str, duration: Duration) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.cooldown_key(target),
            mode: "extend",
            ttl_ms: millis(duration).max(1),
            message: self.message("cooldown", target, duration),
        });
    }

    fn message(&self, kind: &str, target: &str, d: Duration) -> String {
        serde_json::json!({"from": self.replica, "kind": kind, "target": target, "ms": millis(d)})
            .to_string()
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
            "Redis state store unavailable: rate limits, cooldowns and circuits are per replica \
             until it is back (reconnecting in the background)"
        );
    }

    fn mark_up(&self) {
        let was = self.link.send_replace(Link::Up);
        if was == Link::Down {
            tracing::info!(
                redis = %self.url_for_logs,
                "Redis state store reconnected: rate limits, cooldowns and circuits are shared again"
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

    /// Connect, load the scripts, subscribe, then exchange circuits and
    /// cooldowns with Redis: push the local ones, load the shared ones.
    async fn connect(&self) -> Result<(ConnectionManager, redis::aio::PubSubStream), String> {
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
        let mut pubsub = bounded(limit, client.get_async_pubsub()).await?;
        bounded(limit, pubsub.subscribe(&self.channel)).await?;
        self.push_local(&mut conn, limit).await?;
        self.pull_shared(&mut conn, limit).await?;
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

    /// Apply a transition another replica published (validated; durations
    /// are capped by the registries).
    fn apply_message(&self, msg: &redis::Msg) {
        self.apply_payload(msg.get_payload_bytes());
    }

    fn apply_payload(&self, payload: &[u8]) {
        let Some(message) = Message::parse(payload) else {
            tracing::debug!("state store: ignoring a malformed event");
            return;
        };
        if message.from == self.replica {
            return;
        }
        let Some((breakers, cooldowns)) = self.local() else {
            return;
        };
        let d = Duration::from_millis(message.ms);
        match message.kind {
            Kind::Open => breakers.apply_shared_open(&message.target, d),
            Kind::Closed => breakers.apply_shared_closed(&message.target),
            Kind::Cooldown => cooldowns.apply_shared(&message.target, d),
        }
    }

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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// Await `fut` for at most `limit`; errors and timeouts as text.
async fn bounded<T, E: fmt::Display>(
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

/// The background task: connect (with backoff), then apply what other
/// replicas publish and write this replica's transitions until the
/// connection is lost; then again. Ends when the store is dropped.
async fn supervise(weak: Weak<RedisStore>, mut events: mpsc::Receiver<Event>, wake: Arc<Notify>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::circuit_breaker::{BreakerPolicy, Breakers};
    use crate::layers::failover::Cooldowns;

    fn event(json: &str) -> Option<Message> {
        Message::parse(json.as_bytes())
    }

    #[test]
    fn events_are_validated() {
        let ok = event(r#"{"from":"r1","kind":"open","target":"a/m","ms":1000}"#).unwrap();
        assert_eq!(ok.kind, Kind::Open);
        assert_eq!(ok.ms, 1000);
        assert!(event(r#"{"from":"r1","kind":"closed","target":"a/m"}"#).is_some());
        // Unknown fields and kinds, missing targets, oversized parts.
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m","ms":1,"x":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"explode","target":"a/m"}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"nomodel","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m\n","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m","ms":-1}"#).is_none());
        let long = format!(
            r#"{{"from":"r1","kind":"open","target":"a/{}","ms":1}}"#,
            "m".repeat(MAX_TARGET_BYTES)
        );
        assert!(event(&long).is_none());
        let huge = format!(
            r#"{{"from":"{}","kind":"open","target":"a/m","ms":1}}"#,
            "r".repeat(MAX_EVENT_BYTES)
        );
        assert!(event(&huge).is_none());
        assert!(event("not json").is_none());
    }

    /// Regression (issue 15): any Redis client could publish a 31-year open
    /// circuit or cooldown; what arrives is capped by `open_for` and
    /// `max_cooldown`.
    #[tokio::test(start_paused = true)]
    async fn published_durations_are_capped() {
        let store = RedisStore::new(StateConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            ..StateConfig::default()
        });
        let breakers = Arc::new(Breakers::new(BreakerPolicy {
            open_for: Duration::from_secs(30),
            ..BreakerPolicy::default()
        }));
        let cooldowns = Arc::new(Cooldowns::default());
        cooldowns.set_max(Duration::from_secs(300));
        store.tie(&breakers, &cooldowns);
        let years = 31 * 365 * 24 * 3600 * 1000u64;
        store.apply_payload(
            format!(r#"{{"from":"other","kind":"open","target":"a/m","ms":{years}}}"#).as_bytes(),
        );
        store.apply_payload(
            format!(r#"{{"from":"other","kind":"cooldown","target":"b/m","ms":{years}}}"#)
                .as_bytes(),
        );
        let open = breakers.open_circuits();
        assert_eq!(open.len(), 1);
        assert!(open[0].1 <= Duration::from_secs(30), "{open:?}");
        assert_eq!(cooldowns.remaining("b/m"), Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!breakers.is_open("a/m"));
        tokio::time::advance(Duration::from_secs(270)).await;
        assert_eq!(cooldowns.remaining("b/m"), None);
        // An event with an unknown field changes nothing.
        store.apply_payload(br#"{"from":"other","kind":"open","target":"c/m","ms":1000,"evil":1}"#);
        assert!(!breakers.is_open("c/m"));
    }
}
