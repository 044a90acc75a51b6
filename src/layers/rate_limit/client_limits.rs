//! [`ClientLimits`]: the shared state of the client limits (request and
//! token windows, concurrency slots) and the decision for one request, made
//! locally or in the shared (Redis) store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::Request;

use super::{ClientIdentity, KeyBy, LimitState, RateLimitPolicy, WindowLimiter};
use crate::keys::{ClientKey, KeyRateLimit};
use crate::request::RequestContext;
use crate::store::{LimitOp, Op, RedisStore, Verdict};

/// The shared state of the client limits.
#[derive(Debug)]
pub struct ClientLimits {
    pub(super) policy: RateLimitPolicy,
    pub(super) requests: Option<WindowLimiter>,
    pub(super) tokens: Option<WindowLimiter>,
    in_flight: Mutex<HashMap<String, u64>>,
    /// With `[state] store = "redis"`: where the limits are decided.
    pub(super) store: OnceLock<Arc<RedisStore>>,
    /// The limits of virtual keys with a `rate_limit` of their own, by key
    /// name (at most [`MAX_KEY_LIMITS`] idle ones).
    per_key: Mutex<HashMap<String, Arc<ClientLimits>>>,
}

/// The most per-key limit tables kept: beyond it, the tables of keys with
/// no request in flight are dropped (their counts start over). The virtual
/// keys in force are far fewer; names only pile up across reloads.
pub const MAX_KEY_LIMITS: usize = 10_000;

/// The prefix of the counters of a virtual key's own limits (`key:<name>`,
/// in the admin API and the shared store): never a client's raw key.
pub const KEY_PREFIX: &str = "key:";

impl ClientLimits {
    /// Limits per `policy`.
    pub fn new(policy: RateLimitPolicy) -> Self {
        let window = policy.window;
        ClientLimits {
            requests: policy.requests.map(|n| WindowLimiter::new(n, window)),
            tokens: policy.tokens.map(|n| WindowLimiter::new(n, window)),
            in_flight: Mutex::new(HashMap::new()),
            store: OnceLock::new(),
            per_key: Mutex::new(HashMap::new()),
            policy,
        }
    }

    /// The limits of the virtual key `name` whose own limits are `limit`:
    /// the same table as long as they do not change (a changed `rate_limit`
    /// starts a new one that keeps the counts of an unchanged window).
    pub fn for_key(&self, name: &str, limit: &KeyRateLimit) -> Arc<ClientLimits> {
        let policy = RateLimitPolicy {
            requests: limit.requests,
            tokens: limit.tokens,
            concurrency: limit.concurrency,
            window: limit.window,
            key: KeyBy::ApiKey,
        };
        let mut map = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(name).filter(|l| l.policy == policy) {
            return found.clone();
        }
        let limits = ClientLimits::new(policy);
        if let Some(old) = map.get(name) {
            limits.carry_over(old);
        }
        if let Some(store) = self.store.get() {
            limits.attach_store(store);
        }
        if map.len() >= MAX_KEY_LIMITS && !map.contains_key(name) {
            // Only this map holds an idle table.
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        let limits = Arc::new(limits);
        map.insert(name.to_string(), limits.clone());
        limits
    }

    /// The limits a request is held to, and the key it is counted under:
    /// its virtual key's own (under `key:<name>`) when it has a
    /// `rate_limit`, else these, by [`RateLimitPolicy::key`].
    pub fn limits_of<B>(self: &Arc<Self>, req: &Request<B>) -> (Arc<ClientLimits>, String) {
        let own = req
            .extensions()
            .get::<ClientKey>()
            .and_then(|c| c.virtual_key.as_deref())
            .and_then(|k| Some((k.name(), k.rate_limit()?)));
        match own {
            Some((name, limit)) => (self.for_key(name, limit), format!("{KEY_PREFIX}{name}")),
            None => (self.clone(), self.key_of(req)),
        }
    }

    /// Decide the request and token limits in `store` (`[state] store =
    /// "redis"`), falling back to the local counters; limits already tied
    /// to a store keep it. Concurrency stays per replica.
    pub fn attach_store(&self, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
        for limits in self
            .per_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            limits.attach_store(store);
        }
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
        // Virtual keys' own limits do not depend on `[rate_limit]`.
        let old_keys = old
            .per_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.per_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(old_keys);
    }

    /// Request and token limits per client, for the admin API.
    pub fn snapshot(&self) -> serde_json::Value {
        let mask = |k: &str| {
            // A JWT client's `jwt:<sub>` is an identity, not a secret.
            if k.starts_with("ip:")
                || k == "global"
                || k.starts_with("jwt:")
                || k.starts_with(KEY_PREFIX)
            {
                k.to_string()
            } else {
                crate::secret::mask_key(k)
            }
        };
        let mut out = serde_json::json!({
            "requests": self.requests.as_ref().map(|l| l.snapshot(mask)),
            "tokens": self.tokens.as_ref().map(|l| l.snapshot(mask)),
            "window_secs": self.policy.window.as_secs_f64(),
        });
        let per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if !per_key.is_empty() {
            let mut keys: Vec<(&String, &Arc<ClientLimits>)> = per_key.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            out["keys"] = keys
                .into_iter()
                .map(|(name, l)| (name.clone(), l.snapshot()))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        out
    }

    pub(super) fn key_of<B>(&self, req: &Request<B>) -> String {
        let ip = || {
            req.extensions()
                .get::<RequestContext>()
                .and_then(RequestContext::client_addr)
                .map(|a| format!("ip:{}", a.ip()))
                .unwrap_or_else(|| "ip:unknown".into())
        };
        match self.policy.key {
            KeyBy::Global => "global".into(),
            KeyBy::Ip => ip(),
            KeyBy::ApiKey => req
                .extensions()
                .get::<ClientIdentity>()
                .map(|c| c.0.clone())
                .or_else(|| {
                    crate::upstream::provider::client_key(req.headers()).map(str::to_string)
                })
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
pub(super) struct InFlight {
    pub(super) limits: Option<Arc<ClientLimits>>,
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

/// Why a request was refused.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    /// The token budget is used up; room again after this long.
    Tokens(Duration),
    /// The request limit is reached; room again after this long.
    Requests(Duration),
    /// Every concurrency slot is taken.
    Concurrency,
}

/// What the answer's headers say, and the concurrency slot held; or why not.
pub(super) type Decision = Result<(Option<LimitState>, InFlight), Refusal>;

impl ClientLimits {
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
    pub(super) fn decide(self: &Arc<Self>, key: &str) -> Decision {
        self.check_tokens(key)?;
        // Concurrency first: a request refused for it is not counted.
        let in_flight = self.enter(key).map_err(|()| Refusal::Concurrency)?;
        Ok((self.acquire_request(key)?, in_flight))
    }

    /// The Redis store: concurrency (per replica), then the token check and
    /// the request count in one script call; the local counters when Redis
    /// is unavailable. The local request counter counts this replica's
    /// requests either way, so the fallback starts from what it sent.
    pub(super) async fn decide_shared(self: &Arc<Self>, store: &RedisStore, key: &str) -> Decision {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_table_until_its_limits_change() {
        let limits = ClientLimits::new(RateLimitPolicy::default());
        let one = KeyRateLimit::new(Some(1), None, None, Duration::from_secs(60)).unwrap();
        let a = limits.for_key("a", &one);
        assert!(Arc::ptr_eq(&a, &limits.for_key("a", &one)));
        assert!(!Arc::ptr_eq(&a, &limits.for_key("b", &one)));
        assert!(a.acquire_request("key:a").is_ok());
        assert!(a.acquire_request("key:a").is_err());
        // New limits, same window: the count carries over.
        let two = KeyRateLimit::new(Some(2), None, None, Duration::from_secs(60)).unwrap();
        let a2 = limits.for_key("a", &two);
        assert!(!Arc::ptr_eq(&a, &a2));
        assert!(a2.acquire_request("key:a").is_ok());
        assert!(a2.acquire_request("key:a").is_err());
        assert!(limits.snapshot()["keys"]["a"]["requests"].is_array());
    }

    #[test]
    fn idle_key_tables_are_bounded() {
        let limits = ClientLimits::new(RateLimitPolicy::default());
        let one = KeyRateLimit::new(Some(1), None, None, Duration::from_secs(60)).unwrap();
        let held = limits.for_key("held", &one);
        for i in 0..MAX_KEY_LIMITS + 10 {
            drop(limits.for_key(&format!("k{i}"), &one));
        }
        let n = limits.per_key.lock().unwrap().len();
        assert!(n <= MAX_KEY_LIMITS, "{n}");
        assert!(
            Arc::ptr_eq(&held, &limits.for_key("held", &one)),
            "a table in use stays"
        );
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
