//! `failover`: the split point. Tries the targets of the requested model in
//! order until one answers.
//!
//! Targets are tried by priority; within one priority the order is drawn by
//! weight, so load is shared. A target is skipped without a call while it is
//! cooling down or its backend's rate limit is exhausted; the inner stack
//! (circuit breaker, retry, upstream) is called once per attempt with the
//! target and an [`Attempt`] in the request's extensions. The next target is
//! tried after a status in `on` (default 429, 500, 502, 503, 504), a
//! connection error, a timeout, a stream that failed before its first
//! content event, or an open circuit. A 429 puts its (backend, model) in
//! cooldown for its `Retry-After`, or `cooldown`; a 5xx that carries a
//! `Retry-After` cools it down for that long too. No cooldown lasts longer
//! than `max_cooldown` (default 5 minutes), whatever the upstream said.
//!
//! Cooldowns (like circuits) of an `api_key = "passthrough"` backend are
//! kept per client credential: the key is `backend/model#<tag>`, the tag 16
//! hex digits of the credential's SHA-256 (see [`state_key`]), so one
//! tenant's own 429 does not cool the target down for the others. The
//! registry is bounded ([`MAX_COOLDOWNS`]): expired cooldowns are dropped,
//! and a new one that finds it full of running ones is not kept.
//!
//! A "context length exceeded" answer is never retried: the model's
//! `context_fallback` is tried instead when it has one. Any other 4xx goes
//! back to the client as it came. When every target failed, the client gets
//! the last failure; when none could be tried at all, a 503 with
//! `Retry-After` set to when the earliest target comes back.
//!
//! Streams are safe to fail over because the upstream edge holds a streamed
//! answer's head until its first content event: a stream that breaks before
//! it is an error here, invisible to the client.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
//! use llm_router::routing::RouteTable;
//!
//! let layer = FailoverLayer::new(
//!     Arc::new(RouteTable::default()),
//!     FailoverPolicy::default(),
//!     Arc::new(Cooldowns::default()),
//! );
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::body::ProxyBody;
use crate::classify::{retry_after, Attempt, Outcome, Replay};
use crate::error::ProxyError;
use crate::layers::rate_limit::BackendLimits;
use crate::provider::ClientCredential;
use crate::request::LlmRequest;
use crate::routing::{resolve_route, Credential, ModelRoute, RouteTable, Target, TargetKey};
use crate::stack::LlmService;
use crate::store::RedisStore;
use crate::FastMap;

/// Failover settings (`[failover]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// Statuses that move on to the next target.
    pub on: Vec<u16>,
    /// Cooldown after a 429 without `Retry-After`.
    pub cooldown: Duration,
    /// The longest any cooldown lasts (`max_cooldown`), whatever the
    /// upstream's `Retry-After` or another replica says.
    pub max_cooldown: Duration,
}

/// Default `[failover] max_cooldown`.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(300);

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            on: vec![429, 500, 502, 503, 504, 529],
            cooldown: Duration::from_secs(60),
            max_cooldown: DEFAULT_MAX_COOLDOWN,
        }
    }
}

/// The most cooldowns a registry keeps (see the [module
/// docs](crate::layers::failover)).
pub const MAX_COOLDOWNS: usize = 10_000;

/// Targets sitting out after a 429, keyed `backend/model` (plus a
/// credential tag for passthrough backends, see [`state_key`]).
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

/// The key under which a target's cooldown and circuit are kept: the backend
/// and the model actually asked for there.
pub fn target_key(target: &Target, requested_model: &str) -> crate::routing::TargetKey {
    target.key(requested_model)
}

/// A client's credential as it appears in the state keys of passthrough
/// targets: the first 8 bytes of its SHA-256, in hex. The credential itself
/// is never kept. Put into a request's extensions by `failover` (computed
/// once per request) and read by `circuit_breaker`.
///
/// ```
/// use llm_router::layers::failover::CredentialTag;
///
/// let tag = CredentialTag::of_key("sk-tenant-a");
/// assert_eq!(tag.as_str().len(), 16);
/// assert!(!tag.as_str().contains("tenant"));
/// assert_ne!(tag, CredentialTag::of_key("sk-tenant-b"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CredentialTag([u8; 16]);

impl CredentialTag {
    /// The tag of `key`.
    pub fn of_key(key: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut hex = [b'0'; 16];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            if let [hi, lo] = pair {
                *hi = DIGITS[usize::from(byte >> 4)];
                *lo = DIGITS[usize::from(byte & 0x0f)];
            }
        }
        CredentialTag(hex)
    }

    /// The tag of a request's credential: the one `auth` verified, else the
    /// key the client sent (what a passthrough backend forwards).
    pub fn of_request(extensions: &http::Extensions, headers: &http::HeaderMap) -> Option<Self> {
        match extensions.get::<ClientCredential>() {
            Some(credential) => Some(Self::of_key(credential.0.expose())),
            None => crate::provider::client_key(headers).map(Self::of_key),
        }
    }

    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for CredentialTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialTag({})", self.as_str())
    }
}

/// The model part of a state key without its `#<tag>` (see [`state_key`]).
///
/// ```
/// use llm_router::layers::failover::without_credential_tag;
///
/// assert_eq!(without_credential_tag("gpt-4o#0123456789abcdef"), "gpt-4o");
/// assert_eq!(without_credential_tag("gpt-4o"), "gpt-4o");
/// assert_eq!(without_credential_tag("odd#name"), "odd#name");
/// ```
pub fn without_credential_tag(model: &str) -> &str {
    match model.rsplit_once('#') {
        Some((name, tag)) if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => model,
    }
}

/// Whether `target`'s backend forwards the client's own key.
fn is_passthrough(target: &Target) -> bool {
    matches!(target.backend().credential(), Credential::Passthrough)
}

/// The key under which `target`'s cooldown and circuit are kept for a
/// request: [`target_key`], plus `#<tag>` of the client's credential when
/// the backend is `api_key = "passthrough"` (each tenant's own rate limits
/// and failures are its own).
///
/// ```
/// use llm_router::layers::failover::{state_key, CredentialTag};
/// use llm_router::routing::{Backend, Credential, Target};
/// use llm_router::provider::mock::Mock;
/// use std::sync::Arc;
///
/// let backend = |name: &str, credential| {
///     let built = Backend::builder(name, Arc::new(Mock)).credential(credential).build();
///     Arc::new(built.unwrap())
/// };
/// let shared = Target::new(backend("b", Credential::None), Some("m"));
/// let tag = CredentialTag::of_key("sk-a");
/// assert_eq!(&*state_key(&shared, "m", Some(&tag)), "b/m");
/// let own = Target::new(backend("p", Credential::Passthrough), Some("m"));
/// assert_eq!(&*state_key(&own, "m", Some(&tag)), format!("p/m#{}", tag.as_str()));
/// ```
pub fn state_key(target: &Target, requested_model: &str, tag: Option<&CredentialTag>) -> TargetKey {
    match tag {
        Some(tag) if is_passthrough(target) => TargetKey::join(
            target.backend().name(),
            &format!(
                "{}#{}",
                target.upstream_model(requested_model),
                tag.as_str()
            ),
        ),
        _ => target.key(requested_model),
    }
}

/// Applies [`Failover`]. See the [module docs](crate::layers::failover).
///
/// One reference count to clone: each request's attempts keep a clone.
#[derive(Clone, Debug)]
pub struct FailoverLayer(Arc<FailoverParts>);

#[derive(Clone, Debug)]
struct FailoverParts {
    table: Arc<RouteTable>,
    policy: FailoverPolicy,
    cooldowns: Arc<Cooldowns>,
    limits: Option<Arc<BackendLimits>>,
    /// Whether any target forwards the client's key: then each request's
    /// [`CredentialTag`] is computed once, on the way in.
    passthrough: bool,
}

impl FailoverLayer {
    /// Fail over across the routes of `table`. `cooldowns` takes the
    /// policy's `max_cooldown`.
    pub fn new(table: Arc<RouteTable>, policy: FailoverPolicy, cooldowns: Arc<Cooldowns>) -> Self {
        cooldowns.set_max(policy.max_cooldown);
        let passthrough = table
            .routes()
            .any(|route| route.targets().iter().any(is_passthrough));
        FailoverLayer(Arc::new(FailoverParts {
            table,
            policy,
            cooldowns,
            limits: None,
            passthrough,
        }))
    }

    /// Skip targets whose backend rate limit is exhausted.
    pub fn with_backend_limits(mut self, limits: Arc<BackendLimits>) -> Self {
        Arc::make_mut(&mut self.0).limits = Some(limits);
        self
    }
}

impl<S> Layer<S> for FailoverLayer {
    type Service = Failover<S>;

    fn layer(&self, inner: S) -> Failover<S> {
        Failover {
            inner,
            layer: self.clone(),
        }
    }
}

/// The failover service. See the [module docs](crate::layers::failover).
#[derive(Clone, Debug)]
pub struct Failover<S> {
    inner: S,
    layer: FailoverLayer,
}

/// Phrases providers use for "the prompt does not fit the context window".
const CONTEXT_EXCEEDED: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "input is too long",
    "too many tokens",
];

/// Whether an error body says the context length was exceeded.
pub fn is_context_exceeded(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_lowercase();
    CONTEXT_EXCEEDED.iter().any(|p| text.contains(p))
}

/// Read a (small) error answer's body, keeping the answer intact.
async fn read_error_body(response: Response<ProxyBody>) -> (Response<ProxyBody>, Bytes) {
    let (parts, body) = response.into_parts();
    let bytes = match Limited::new(body, 256 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    (
        Response::from_parts(parts, ProxyBody::full(bytes.clone())),
        bytes,
    )
}

/// Make the replayed request ask for `model` (the context fallback's name).
fn ask_for_model(replay: &mut Replay, model: &str) {
    if let Some(llm) = replay.extensions_mut().get_mut::<LlmRequest>() {
        llm.body_mut().insert("model".into(), model.into());
    }
}

impl<S> Service<Request<ProxyBody>> for Failover<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let replay = layer.keep(req);
        Box::pin(run(inner, layer, replay))
    }
}

impl crate::stack::CallRef for Failover<LlmService> {
    fn call_ref(&self, req: Request<ProxyBody>) -> crate::stack::LlmFuture {
        let replay = self.layer.keep(req);
        Box::pin(run(self.inner.clone(), self.layer.clone(), replay))
    }
}

impl FailoverLayer {
    /// Keep `req` for its attempts, with its [`CredentialTag`] when a
    /// target may need it.
    fn keep(&self, mut req: Request<ProxyBody>) -> Replay {
        if self.0.passthrough {
            if let Some(tag) = CredentialTag::of_request(req.extensions(), req.headers()) {
                req.extensions_mut().insert(tag);
            }
        }
        Replay::new(req)
    }
}

/// The attempts of one request. An `async` block rather than an `async fn`:
/// the arguments are then kept once in the future, not twice (the future
/// lives as long as a slow stream takes to its first token).
#[allow(clippy::manual_async_fn)]
fn run<S>(
    mut inner: S,
    layer: FailoverLayer,
    mut replay: Replay,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError> + Send,
    S::Future: Send,
{
    async move {
        let Some(llm) = replay.extensions().get::<LlmRequest>().cloned() else {
            return Err(crate::routing::without_request(
                replay.extensions(),
                "failover",
            ));
        };
        // The model asked for: the client's, or the context fallback's.
        let mut requested: std::borrow::Cow<'_, str> = std::borrow::Cow::Borrowed(llm.model());
        let mut route: Arc<ModelRoute> = resolve_route(&layer.0.table, &llm)?;
        let mut fallback_used = false;
        let tag = replay.extensions().get::<CredentialTag>().copied();
        let tag = tag.as_ref();
        let mut last: Option<Result<Response<ProxyBody>, ProxyError>> = None;
        let mut earliest_back: Option<Duration> = None;
        let mut note_back = |d: Duration| {
            earliest_back = Some(earliest_back.map_or(d, |e: Duration| e.min(d)));
        };
        // Whether a target was skipped for an open circuit: then a request
        // no target could take is a 503; skipped only for rate limits and
        // cooldowns, a 429.
        let mut circuit_skipped = false;

        'routes: loop {
            let current = route.clone();
            // One target (the usual case) needs no ordering, nor a `Vec`.
            let (one, many);
            let targets: &[&Target] = match current.targets() {
                [only] => {
                    one = [only];
                    &one
                }
                _ => {
                    many = current.ordered();
                    &many
                }
            };
            for (i, &target) in targets.iter().enumerate() {
                let key = state_key(target, &requested, tag);
                if let Some(left) = layer.0.cooldowns.remaining(&key) {
                    tracing::debug!(target_key = %crate::escape::Escaped(&key), "skipping: cooling down");
                    note_back(left);
                    continue;
                }
                if let Some(limits) = &layer.0.limits {
                    // Shared through Redis: one round trip (bounded by
                    // `[state] timeout`); in memory: a look-up, no await.
                    let verdict = match limits.store() {
                        None => limits.check(target.backend().name()),
                        // Boxed: its state would otherwise enlarge every
                        // request's future, Redis or not.
                        Some(store) => {
                            Box::pin(limits.check_shared(store, target.backend().name())).await
                        }
                    };
                    if let Err(wait) = verdict {
                        tracing::debug!(target_key = %crate::escape::Escaped(&key), "skipping: backend rate limit exhausted");
                        note_back(wait);
                        continue;
                    }
                }
                let extensions = replay.extensions_mut();
                extensions.insert(target.clone());
                // A target that will be skipped is not "left": with none, a
                // timeout is retried here rather than ending the request.
                let others_left = targets[i + 1..].iter().any(|t| {
                    layer
                        .0
                        .cooldowns
                        .remaining(&state_key(t, &requested, tag))
                        .is_none()
                        && layer
                            .0
                            .limits
                            .as_ref()
                            .is_none_or(|l| l.has_room(t.backend().name()))
                });
                // Absent means none left (one entry fewer to copy per attempt).
                if others_left {
                    extensions.insert(Attempt { others_left });
                } else {
                    extensions.remove::<Attempt>();
                }
                // The last target (with no context fallback to come) gets the
                // kept request itself: no copy.
                let last_chance =
                    i + 1 == targets.len() && (fallback_used || route.context_fallback().is_none());
                let result = match inner.ready().await {
                    Ok(svc) => {
                        let request = if last_chance {
                            std::mem::take(&mut replay).into_request()
                        } else {
                            replay.build()
                        };
                        svc.call(request).await
                    }
                    Err(e) => Err(e),
                };
                match Outcome::of(&result) {
                    Outcome::Success => return result,
                    Outcome::ClientError => {
                        let Ok(response) = result else { return result };
                        if response.status() != StatusCode::BAD_REQUEST
                            && response.status() != StatusCode::PAYLOAD_TOO_LARGE
                        {
                            return Ok(response);
                        }
                        // Boxed: a rare path that would otherwise enlarge every request's future.
                        let (response, body) = Box::pin(read_error_body(response)).await;
                        if !is_context_exceeded(&body) {
                            return Ok(response);
                        }
                        match route.context_fallback() {
                            Some(name) if !fallback_used => {
                                match layer.0.table.resolve_for(name, llm.format()) {
                                    Some(next) => {
                                        tracing::info!(
                                            from = route.name(),
                                            to = name,
                                            "context length exceeded: trying the context fallback"
                                        );
                                        // The fallback is asked for under its own name
                                        // (what its targets without a model send).
                                        requested = std::borrow::Cow::Owned(name.to_string());
                                        ask_for_model(&mut replay, &requested);
                                        route = next.clone();
                                        fallback_used = true;
                                        continue 'routes;
                                    }
                                    None => return Ok(response),
                                }
                            }
                            _ => return Ok(response),
                        }
                    }
                    Outcome::RateLimited => {
                        if let Ok(response) = &result {
                            let wait =
                                retry_after(response.headers()).unwrap_or(layer.0.policy.cooldown);
                            layer.0.cooldowns.start(&key, wait);
                            if !layer.0.policy.on.contains(&429) {
                                return result;
                            }
                        }
                        last = Some(result);
                    }
                    Outcome::ServerError => {
                        // A 5xx that says when to come back (retry gave up on
                        // it) sits out that long, like a 429.
                        if let Some(wait) =
                            result.as_ref().ok().and_then(|r| retry_after(r.headers()))
                        {
                            layer.0.cooldowns.start(&key, wait);
                        }
                        let status = result.as_ref().map(|r| r.status().as_u16()).unwrap_or(500);
                        if !layer.0.policy.on.contains(&status) {
                            return result;
                        }
                        tracing::info!(target_key = %crate::escape::Escaped(&key), status, "failing over");
                        last = Some(result);
                    }
                    Outcome::ConnectionError | Outcome::Timeout => {
                        if let Err(e) = &result {
                            tracing::info!(target_key = %crate::escape::Escaped(&key), error = %crate::escape::Escaped(e), "failing over");
                        }
                        last = Some(result);
                    }
                    Outcome::Skipped => {
                        if let Err(e) = &result {
                            if let Some(d) = e.retry_after() {
                                note_back(d);
                            }
                            circuit_skipped |= !matches!(
                                e,
                                ProxyError::CoolingDown { .. }
                                    | ProxyError::BackendRateLimited { .. }
                            );
                        }
                    }
                    Outcome::Refused => return result,
                }
            }
            break;
        }
        match last {
            Some(result) => result,
            // Every target was skipped for a rate limit (its backend's, or a
            // cooldown after a 429): the client is told to come back.
            None if !circuit_skipped && earliest_back.is_some() => Err(ProxyError::RateLimited {
                message: format!(
                    "Every target of `{requested}` is rate limited or cooling down; retry after the Retry-After delay"
                ),
                retry_after: earliest_back.unwrap_or(Duration::from_secs(1)),
            }),
            None => Err(ProxyError::Unavailable {
                model: requested.into_owned(),
                retry_after: earliest_back,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_phrases() {
        assert!(is_context_exceeded(
            br#"{"error":{"code":"context_length_exceeded"}}"#
        ));
        assert!(is_context_exceeded(br#"{"type":"error","error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#));
        assert!(is_context_exceeded(b"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."));
        assert!(!is_context_exceeded(
            br#"{"error":{"code":"content_policy_violation"}}"#
        ));
    }

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
