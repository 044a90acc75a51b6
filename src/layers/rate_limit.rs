//! `rate_limit`: per-client request, token and concurrency limits, and the
//! per-backend request limits failover consults.
//!
//! Limits count per window, and each key has its own: a key's window starts
//! with the first request it makes after its previous window ended, and
//! lasts `window` (whole seconds). A refused client is told the time until
//! its window ends — never more than the window — and a request made then
//! is counted in a fresh window: `Retry-After` (rounded up to whole seconds)
//! is a promise, kept as long as no one else spends the quota of that key
//! meanwhile. Within one key's window a client may spend its whole quota at
//! once; it cannot spend more before the window ends. A client is identified
//! by `key`: its API key (or verified identity, when `auth` runs first), its
//! IP address, or one global bucket.
//!
//! - `requests` per `window`: a request over the limit gets a 429 in the
//!   client's format with `Retry-After`; every answer carries
//!   `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`.
//! - `tokens` per `window`: counted from the upstream's usage once an answer
//!   ends, streamed answers included (the upstream is asked for stream usage
//!   even when the client did not ask, and that extra chunk is kept from the
//!   client); a client over budget gets a 429 on its next request.
//! - `concurrency`: requests in flight per client, released when the answer
//!   (stream included) ends or the client goes away.
//!
//! Rejections are answered at once; nothing is parked in `poll_ready`.
//!
//! The window counters are written here rather than taken from a crate such
//! as governor because the same counters must also consume tokens after the
//! fact, be listed by the admin API, and map one-to-one onto the shared
//! (Redis) store.
//!
//! ```
//! use std::time::Duration;
//! use llm_router::layers::rate_limit::WindowLimiter;
//!
//! let limiter = WindowLimiter::new(2, Duration::from_secs(60));
//! assert!(limiter.try_acquire("client-a", 1).is_ok());
//! assert!(limiter.try_acquire("client-a", 1).is_ok());
//! assert!(limiter.try_acquire("client-a", 1).is_err());
//! assert!(limiter.try_acquire("client-b", 1).is_ok());
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::app::ClientAddr;
use crate::body::{BoxError, ProxyBody};
use crate::error::ProxyError;
use crate::request::{ClientFormat, LlmRequest};
use crate::store::{LimitOp, Op, RedisStore, Verdict};
use crate::usage::{UsageRequestedByProxy, UsageSlot};

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

/// Backend limits (`rate_limit` of a `[[backends]]` entry), by backend name.
#[derive(Debug, Default)]
pub struct BackendLimits {
    limiters: HashMap<String, WindowLimiter>,
    /// With `[state] store = "redis"`: where the limits are decided.
    store: OnceLock<Arc<RedisStore>>,
}

impl BackendLimits {
    /// Decide the limits in `store` (`[state] store = "redis"`), falling
    /// back to the local counters; limits already tied to a store keep it.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// The shared store, when there is one.
    pub fn store(&self) -> Option<&Arc<RedisStore>> {
        self.store.get()
    }

    /// Like [`BackendLimits::check`], decided in `store` (one round trip,
    /// bounded by its `timeout`); locally when Redis is unavailable. The
    /// local counter counts this replica's requests either way.
    pub async fn check_shared(&self, store: &RedisStore, backend: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(backend) else {
            return Ok(());
        };
        let op = LimitOp {
            key: store.backend_limit_key(backend),
            op: Op::Acquire,
            n: 1,
            limit: limiter.limit(),
            window: limiter.window(),
        };
        match store.decide(std::slice::from_ref(&op)).await {
            Some(Verdict::Allowed { .. }) => {
                limiter.add("", 1);
                Ok(())
            }
            Some(Verdict::Refused { wait, .. }) => Err(wait),
            None => limiter.try_acquire("", 1).map(|_| ()),
        }
    }

    /// Add a limit for `backend`.
    pub fn insert(&mut self, backend: impl Into<String>, limiter: WindowLimiter) {
        self.limiters.insert(backend.into(), limiter);
    }

    /// The limiter of `backend`, if it has a limit.
    pub fn get(&self, backend: &str) -> Option<&WindowLimiter> {
        self.limiters.get(backend)
    }

    /// How many backends have a limit.
    pub fn len(&self) -> usize {
        self.limiters.len()
    }

    /// Whether any backend has a limit.
    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }

    /// Count one request to `backend`, or say how long until it has room.
    pub fn check(&self, backend: &str) -> Result<(), Duration> {
        match self.limiters.get(backend) {
            Some(l) => l.try_acquire("", 1).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Whether `backend` has room for a request now, without counting one.
    pub fn has_room(&self, backend: &str) -> bool {
        self.limiters
            .get(backend)
            .is_none_or(|l| l.check("").is_ok())
    }

    /// Each backend's limit.
    pub fn snapshot(&self) -> Vec<LimitView> {
        let mut out: Vec<LimitView> = self
            .limiters
            .iter()
            .flat_map(|(name, l)| {
                let views = l.snapshot(|_| name.clone());
                if views.is_empty() {
                    vec![LimitView {
                        key: name.clone(),
                        limit: l.limit(),
                        remaining: l.limit(),
                        reset_secs: l.window().as_secs_f64(),
                    }]
                } else {
                    views
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// How clients are told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyBy {
    /// The verified identity from `auth`, else the presented API key, else the IP.
    #[default]
    ApiKey,
    /// The client's IP address.
    Ip,
    /// One bucket for everyone.
    Global,
}

/// The verified identity of a client, set by `auth` (a key or a JWT `sub`).
/// `Debug` masks it: it may be a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity(pub String);

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientIdentity({})", crate::secret::mask_key(&self.0))
    }
}

/// Client limits (`[rate_limit]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitPolicy {
    /// Requests per window.
    pub requests: Option<u64>,
    /// Tokens per window.
    pub tokens: Option<u64>,
    /// Requests in flight.
    pub concurrency: Option<u64>,
    /// The window.
    pub window: Duration,
    /// How clients are told apart.
    pub key: KeyBy,
}

/// The shared state of the client limits.
#[derive(Debug)]
pub struct ClientLimits {
    policy: RateLimitPolicy,
    requests: Option<WindowLimiter>,
    tokens: Option<WindowLimiter>,
    in_flight: Mutex<HashMap<String, u64>>,
    /// With `[state] store = "redis"`: where the limits are decided.
    store: OnceLock<Arc<RedisStore>>,
}

impl ClientLimits {
    /// Limits per `policy`.
    pub fn new(policy: RateLimitPolicy) -> Self {
        let window = policy.window;
        ClientLimits {
            requests: policy.requests.map(|n| WindowLimiter::new(n, window)),
            tokens: policy.tokens.map(|n| WindowLimiter::new(n, window)),
            in_flight: Mutex::new(HashMap::new()),
            store: OnceLock::new(),
            policy,
        }
    }

    /// Decide the request and token limits in `store` (`[state] store =
    /// "redis"`), falling back to the local counters; limits already tied
    /// to a store keep it. Concurrency stays per replica.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
    }

    /// The policy.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// Carry the request and token counts of `old` over to these limits
    /// (a config reload that changed `[rate_limit]`), where the window is the
    /// same; see [`WindowLimiter::carry_over`]. Concurrency counts are not
    /// carried: requests in flight release their slot in `old`.
    pub fn carry_over(&self, old: &ClientLimits) {
        if let (Some(new), Some(old)) = (&self.requests, &old.requests) {
            new.carry_over(old);
        }
        if let (Some(new), Some(old)) = (&self.tokens, &old.tokens) {
            new.carry_over(old);
        }
    }

    /// Request and token limits per client, for the admin API.
    pub fn snapshot(&self) -> serde_json::Value {
        let mask = |k: &str| {
            // A JWT client's `jwt:<sub>` is an identity, not a secret.
            if k.starts_with("ip:") || k == "global" || k.starts_with("jwt:") {
                k.to_string()
            } else {
                crate::secret::mask_key(k)
            }
        };
        serde_json::json!({
            "requests": self.requests.as_ref().map(|l| l.snapshot(mask)),
            "tokens": self.tokens.as_ref().map(|l| l.snapshot(mask)),
            "window_secs": self.policy.window.as_secs_f64(),
        })
    }

    fn key_of<B>(&self, req: &Request<B>) -> String {
        let ip = || {
            req.extensions()
                .get::<ClientAddr>()
                .map(|a| format!("ip:{}", a.0.ip()))
                .unwrap_or_else(|| "ip:unknown".into())
        };
        match self.policy.key {
            KeyBy::Global => "global".into(),
            KeyBy::Ip => ip(),
            KeyBy::ApiKey => req
                .extensions()
                .get::<ClientIdentity>()
                .map(|c| c.0.clone())
                .or_else(|| crate::provider::client_key(req.headers()).map(str::to_string))
                .unwrap_or_else(ip),
        }
    }

    fn enter(self: &Arc<Self>, key: &str) -> Result<InFlight, ()> {
        let Some(max) = self.policy.concurrency else {
            return Ok(InFlight {
                limits: None,
                key: String::new(),
            });
        };
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return Err(());
        }
        *n += 1;
        Ok(InFlight {
            limits: Some(self.clone()),
            key: key.to_string(),
        })
    }
}

/// A held concurrency slot; released on drop.
#[derive(Debug)]
struct InFlight {
    limits: Option<Arc<ClientLimits>>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(limits) = &self.limits {
            let mut map = limits.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

/// Applies [`RateLimit`]. See the [module docs](crate::layers::rate_limit).
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limits: Arc<ClientLimits>,
}

impl RateLimitLayer {
    /// Limit clients with a shared state.
    pub fn new(limits: Arc<ClientLimits>) -> Self {
        RateLimitLayer { limits }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// The client rate limit service. See the [module docs](crate::layers::rate_limit).
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limits: Arc<ClientLimits>,
}

fn set_headers(headers: &mut HeaderMap, state: &LimitState) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(state.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(state.remaining));
    let reset = state.reset.as_secs() + u64::from(state.reset.subsec_nanos() > 0);
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

/// The client's format, for a rejection.
fn format_of<B>(req: &Request<B>) -> ClientFormat {
    req.extensions()
        .get::<LlmRequest>()
        .map(LlmRequest::format)
        .unwrap_or(ClientFormat::OpenAi)
}

fn reject(
    format: ClientFormat,
    retry_after: Duration,
    what: &str,
    state: Option<LimitState>,
) -> Response<ProxyBody> {
    let error = ProxyError::RateLimited {
        message: format!("Rate limit exceeded: {what}"),
        retry_after,
    };
    let mut response = error.to_response(format);
    response
        .extensions_mut()
        .insert(crate::classify::RejectedBy("rate_limit"));
    if let Some(state) = state {
        set_headers(response.headers_mut(), &state);
    }
    response
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// The token budget is used up; room again after this long.
    Tokens(Duration),
    /// The request limit is reached; room again after this long.
    Requests(Duration),
    /// Every concurrency slot is taken.
    Concurrency,
}

/// What the answer's headers say, and the concurrency slot held; or why not.
type Decision = Result<(Option<LimitState>, InFlight), Refusal>;

impl ClientLimits {
    /// The 429 of a refused request, in the client's format.
    fn refuse(&self, refusal: Refusal, key: &str, format: ClientFormat) -> Response<ProxyBody> {
        match refusal {
            Refusal::Tokens(wait) => {
                let limit = self.tokens.as_ref().map_or(0, WindowLimiter::limit);
                reject(
                    format,
                    wait,
                    &format!("token budget of {limit} per window used up"),
                    None,
                )
            }
            Refusal::Requests(wait) => {
                let (limit, window) = self
                    .requests
                    .as_ref()
                    .map_or((0, self.policy.window), |r| (r.limit(), r.window()));
                let state = LimitState {
                    limit,
                    remaining: 0,
                    reset: wait,
                };
                let what = format!("{limit} requests per {}", crate::error::humanize(window));
                reject(format, wait, &what, Some(state))
            }
            Refusal::Concurrency => {
                let max = self.policy.concurrency.unwrap_or(0);
                let state = self.requests.as_ref().and_then(|r| r.check(key).ok());
                reject(
                    format,
                    Duration::from_secs(1),
                    &format!("{max} requests in flight"),
                    state,
                )
            }
        }
    }

    /// Whether the client's token budget has room, on this replica's counter.
    fn check_tokens(&self, key: &str) -> Result<(), Refusal> {
        match &self.tokens {
            Some(tokens) => tokens.check(key).map(drop).map_err(Refusal::Tokens),
            None => Ok(()),
        }
    }

    /// Count the request on this replica's counter, if it fits.
    fn acquire_request(&self, key: &str) -> Result<Option<LimitState>, Refusal> {
        match &self.requests {
            Some(requests) => requests
                .try_acquire(key, 1)
                .map(Some)
                .map_err(Refusal::Requests),
            None => Ok(None),
        }
    }

    /// The memory store: token check, concurrency, request count — all
    /// synchronous, nothing allocated for the store.
    fn decide(self: &Arc<Self>, key: &str) -> Decision {
        self.check_tokens(key)?;
        // Concurrency first: a request refused for it is not counted.
        let in_flight = self.enter(key).map_err(|()| Refusal::Concurrency)?;
        Ok((self.acquire_request(key)?, in_flight))
    }

    /// The Redis store: concurrency (per replica), then the token check and
    /// the request count in one script call; the local counters when Redis
    /// is unavailable. The local request counter counts this replica's
    /// requests either way, so the fallback starts from what it sent.
    async fn decide_shared(self: &Arc<Self>, store: &RedisStore, key: &str) -> Decision {
        let in_flight = self.enter(key).map_err(|()| Refusal::Concurrency)?;
        let mut ops = Vec::with_capacity(2);
        if let Some(tokens) = &self.tokens {
            ops.push(LimitOp {
                key: store.client_limit_key(key, "tokens"),
                op: Op::Check,
                n: 1,
                limit: tokens.limit(),
                window: tokens.window(),
            });
        }
        if let Some(requests) = &self.requests {
            ops.push(LimitOp {
                key: store.client_limit_key(key, "requests"),
                op: Op::Acquire,
                n: 1,
                limit: requests.limit(),
                window: requests.window(),
            });
        }
        let state = match store.decide(&ops).await {
            None => {
                self.check_tokens(key)?;
                self.acquire_request(key)?
            }
            Some(Verdict::Refused { index, wait }) => {
                return Err(if self.tokens.is_some() && index == 0 {
                    Refusal::Tokens(wait)
                } else {
                    Refusal::Requests(wait)
                });
            }
            Some(Verdict::Allowed { remaining, reset }) => self.requests.as_ref().map(|requests| {
                requests.add(key, 1);
                LimitState {
                    limit: requests.limit(),
                    remaining,
                    reset,
                }
            }),
        };
        Ok((state, in_flight))
    }
}

impl<S> Service<Request<ProxyBody>> for RateLimit<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let limits = self.limits.clone();
        let key = limits.key_of(&req);
        if let Some(store) = limits.store.get() {
            // Shared limits are decided before the inner service is called:
            // take the service that was polled ready, leave a clone.
            let store = store.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return Box::pin(async move {
                match limits.decide_shared(&store, &key).await {
                    Ok((state, in_flight)) => {
                        forward(&mut inner, limits, key, state, in_flight, req).await
                    }
                    Err(refusal) => Ok(limits.refuse(refusal, &key, format_of(&req))),
                }
            });
        }
        match limits.decide(&key) {
            Ok((state, in_flight)) => forward(&mut self.inner, limits, key, state, in_flight, req),
            Err(refusal) => {
                let refused = limits.refuse(refusal, &key, format_of(&req));
                Box::pin(std::future::ready(Ok(refused)))
            }
        }
    }
}

/// Call the inner service with a request that passed the limits; the
/// answer carries the limit headers, its body holds the concurrency slot
/// and counts the tokens when it ends.
fn forward<S>(
    inner: &mut S,
    limits: Arc<ClientLimits>,
    key: String,
    state: Option<LimitState>,
    in_flight: InFlight,
    mut req: Request<ProxyBody>,
) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    // Token budgets need the usage of streamed answers too.
    if limits.tokens.is_some() {
        req.extensions_mut().insert(crate::usage::UsageWanted);
        if let Some(llm) = req.extensions_mut().get_mut::<LlmRequest>() {
            // Responses streams always end with their usage.
            if llm.is_stream()
                && llm.format() != crate::request::ClientFormat::Responses
                && !client_asked_for_usage(llm)
            {
                let body = llm.body_mut();
                let options = body
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(o) = options {
                    o.insert("include_usage".into(), Value::Bool(true));
                }
                req.extensions_mut().insert(UsageRequestedByProxy);
            }
        }
    }

    let future = inner.call(req);
    Box::pin(async move {
        let mut response = future.await?;
        if let Some(state) = &state {
            set_headers(response.headers_mut(), state);
        }
        let slot = response.extensions().get::<UsageSlot>().cloned();
        let account = limits.tokens.is_some().then(|| (limits.clone(), key));
        if account.is_none() && in_flight.limits.is_none() {
            return Ok(response);
        }
        Ok(response.map(|body| {
            ProxyBody::new(Accounted {
                inner: body,
                slot,
                account,
                _in_flight: in_flight,
            })
        }))
    })
}

fn client_asked_for_usage(llm: &LlmRequest) -> bool {
    llm.body()
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Holds the concurrency slot until the answer ends, then counts its tokens.
struct Accounted {
    inner: ProxyBody,
    slot: Option<UsageSlot>,
    account: Option<(Arc<ClientLimits>, String)>,
    _in_flight: InFlight,
}

impl Accounted {
    fn settle(&mut self) {
        if let (Some((limits, key)), Some(slot)) = (self.account.take(), &self.slot) {
            if let (Some(tokens), Some(usage)) = (&limits.tokens, slot.get()) {
                tokens.add(&key, usage.total());
                if let Some(store) = limits.store.get() {
                    let shared = store.client_limit_key(&key, "tokens");
                    store.count(shared, usage.total(), tokens.limit(), tokens.window());
                }
            }
        }
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        self.settle();
    }
}

impl Body for Accounted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.settle();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

    /// Regression (issue 15): a backend's `rate_limit` resets after its
    /// window.
    #[tokio::test(start_paused = true)]
    async fn a_backend_limit_resets_after_its_window() {
        let mut limits = BackendLimits::default();
        limits.insert("b", WindowLimiter::new(1, Duration::from_secs(2)));
        assert!(limits.check("b").is_ok());
        let wait = limits.check("b").unwrap_err();
        assert!(!limits.has_room("b"));
        assert_eq!(wait, Duration::from_secs(2));
        tokio::time::advance(wait).await;
        assert!(limits.has_room("b"));
        assert!(limits.check("b").is_ok());
        assert!(limits.check("b").is_err());
        assert!(limits.check("unlimited").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_after_the_fact() {
        let l = WindowLimiter::new(100, Duration::from_secs(60));
        assert!(l.check("k").is_ok());
        l.add("k", 150);
        assert!(l.check("k").is_err());
        assert!(l.check("other").is_ok());
    }

    #[test]
    fn concurrency_slots_release_on_drop() {
        let limits = Arc::new(ClientLimits::new(RateLimitPolicy {
            concurrency: Some(1),
            window: Duration::from_secs(60),
            ..Default::default()
        }));
        let a = limits.enter("k").unwrap();
        assert!(limits.enter("k").is_err());
        drop(a);
        assert!(limits.enter("k").is_ok());
    }
}
