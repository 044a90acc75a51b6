//! [`RouterState`]: the state the layers share across requests and config
//! reloads, and [`target_survives`], which says what of it a reload keeps.

use std::sync::Arc;

use crate::config::{Config, LayerName};
use crate::layers::auth::KeyStore;
use crate::layers::budget::Budgets;
use crate::layers::circuit_breaker::Breakers;
use crate::layers::failover::Cooldowns;
use crate::layers::rate_limit::{BackendLimits, ClientLimits, WindowLimiter};

/// The state the layers share across requests (and across config reloads):
/// circuits, cooldowns and limiters.
#[derive(Clone, Debug)]
pub struct RouterState {
    /// Circuit breakers, per target.
    pub breakers: Arc<Breakers>,
    /// 429 cooldowns, per target.
    pub cooldowns: Arc<Cooldowns>,
    /// Per-client limits.
    pub client_limits: Arc<ClientLimits>,
    /// Per-backend limits.
    pub backend_limits: Arc<BackendLimits>,
    /// Client and admin keys, when `auth` is in the order (the admin
    /// endpoints are open without it).
    pub auth: Option<Arc<KeyStore>>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::layers::metrics::Metrics>,
    /// The Redis store the limits, cooldowns and circuits above are shared
    /// through (`[state] store = "redis"`); `None` keeps them in memory.
    pub store: Option<Arc<crate::store::RedisStore>>,
    /// Spend and reservations of the `budget` layer (and where they are
    /// saved: [`App::from_config`](crate::App::from_config) loads the spend
    /// file and starts saving it).
    pub budgets: Arc<Budgets>,
}

impl Default for RouterState {
    /// Default breaker policy, no limits.
    fn default() -> Self {
        RouterState {
            breakers: Arc::new(Breakers::new(Default::default())),
            cooldowns: Arc::new(Cooldowns::default()),
            client_limits: Arc::new(ClientLimits::new(Default::default())),
            backend_limits: Arc::new(BackendLimits::default()),
            auth: None,
            metrics: Arc::new(crate::layers::metrics::Metrics::new()),
            store: None,
            budgets: Arc::new(Budgets::new()),
        }
    }
}

impl RouterState {
    /// Fresh state for `config`.
    pub fn new(config: &Config) -> Self {
        let mut backend_limits = BackendLimits::default();
        for b in &config.backends {
            if let Some(limit) = b.rate_limit {
                backend_limits.insert(
                    b.name.clone(),
                    WindowLimiter::new(limit.requests, limit.window),
                );
            }
        }
        let state = RouterState {
            breakers: Arc::new(Breakers::new(config.circuit_breaker.clone())),
            cooldowns: Arc::new(Cooldowns::default()),
            client_limits: Arc::new(ClientLimits::new(config.rate_limit.clone())),
            backend_limits: Arc::new(backend_limits),
            metrics: Arc::new(crate::layers::metrics::Metrics::new()),
            auth: config
                .stack
                .contains(&LayerName::Auth)
                .then(|| Arc::new(KeyStore::new(config.auth.clone()))),
            // Without the `redis` feature the config refuses `store = "redis"`.
            #[cfg(feature = "redis")]
            store: (config.state.store == crate::store::StoreKind::Redis)
                .then(|| crate::store::RedisStore::new(config.state.clone())),
            #[cfg(not(feature = "redis"))]
            store: None,
            budgets: Arc::new(Budgets::with_spend_file(config.spend_file())),
        };
        state.attach_store();
        state
    }

    /// Tie the registries to the Redis store, if there is one, and start
    /// it (once); registries already tied to it stay so. Run again after a
    /// reload replaced some of them.
    pub fn attach_store(&self) {
        if let Some(store) = &self.store {
            self.breakers.attach_store(store);
            self.cooldowns.attach_store(store);
            self.client_limits.attach_store(store);
            self.backend_limits.attach_store(store);
            self.budgets.attach_store(store);
            store.start(&self.breakers, &self.cooldowns);
        }
    }

    /// `"ok"` or `"degraded"` with `[state] store = "redis"`, for `/health`.
    pub fn state_store_status(&self) -> Option<&'static str> {
        self.store.as_ref().map(|s| s.status().as_str())
    }
}

impl RouterState {
    /// The state for a config reload to `config`, carried over from this
    /// one (built for `old`, when known), so that limits, cooldowns and
    /// circuits survive the reload:
    ///
    /// - metrics and cooldowns: the same registries (counters go on);
    /// - circuits: the same registry when `[circuit_breaker]` is unchanged,
    ///   else a new one with the new policy that starts from the circuits of
    ///   the targets that survive ([`target_survives`]);
    /// - client limits: the same when `[rate_limit]` is unchanged, else new
    ///   ones that keep the request and token counts when the window is the
    ///   same (concurrency counts start over: requests in flight release
    ///   their slot in the old ones);
    /// - backend limits: the same when no backend's limit changed, else new
    ///   ones, each keeping its backend's counts when the window is the same;
    /// - auth keys: rebuilt from `config` (its keys file is read again);
    /// - budgets: the same (spend and reservations go on; the spend file,
    ///   like `[state]`, is read at start only).
    ///
    /// Entries of targets that are gone stay until [`RouterState::prune`],
    /// and the new registries are tied to the Redis store (if any) by
    /// [`RouterState::attach_store`]: the caller runs both once the new
    /// config is in force.
    pub fn carry_over(&self, old: Option<&Config>, config: &Config) -> RouterState {
        let breakers = if *self.breakers.policy() == config.circuit_breaker {
            self.breakers.clone()
        } else {
            Arc::new(Breakers::carry_over(
                config.circuit_breaker.clone(),
                &self.breakers,
                |key| target_survives(key, old, config),
            ))
        };
        let client_limits = if *self.client_limits.policy() == config.rate_limit {
            self.client_limits.clone()
        } else {
            let limits = ClientLimits::new(config.rate_limit.clone());
            limits.carry_over(&self.client_limits);
            Arc::new(limits)
        };
        let with_limit: Vec<_> = config
            .backends
            .iter()
            .filter_map(|b| b.rate_limit.map(|l| (b, l)))
            .collect();
        let unchanged = with_limit.len() == self.backend_limits.len()
            && with_limit.iter().all(|(b, l)| {
                self.backend_limits
                    .get(&b.name)
                    .is_some_and(|old| old.limit() == l.requests && old.window() == l.window)
            });
        let backend_limits = if unchanged {
            self.backend_limits.clone()
        } else {
            let mut limits = BackendLimits::default();
            for (b, l) in with_limit {
                let limiter = WindowLimiter::new(l.requests, l.window);
                if let Some(previous) = self.backend_limits.get(&b.name) {
                    limiter.carry_over(previous);
                }
                limits.insert(b.name.clone(), limiter);
            }
            Arc::new(limits)
        };
        let state = RouterState {
            breakers,
            cooldowns: self.cooldowns.clone(),
            client_limits,
            backend_limits,
            auth: config
                .stack
                .contains(&LayerName::Auth)
                .then(|| Arc::new(KeyStore::new(config.auth.clone()))),
            metrics: self.metrics.clone(),
            // `[state]` is read at start only: the store carries over as it is.
            store: self.store.clone(),
            budgets: self.budgets.clone(),
        };
        // Not attached to the store yet: the build may still fail, and the
        // store must keep feeding the registries in force until the swap.
        // The caller runs `attach_store` once the new state is in force.
        state
    }

    /// Drop the circuits and cooldowns of targets that no longer exist in
    /// `config` (see [`target_survives`]).
    pub fn prune(&self, old: Option<&Config>, config: &Config) {
        self.breakers
            .retain(|key| target_survives(key, old, config));
        self.cooldowns
            .retain(|key| target_survives(key, old, config));
    }
}

/// Whether the target a circuit or cooldown is kept under (`backend/model`,
/// see [`target_key`](crate::layers::failover::target_key)) still exists in
/// `config`: its backend is still defined — at the same provider and
/// `base_url` as in `old`, when known — and some model still sends `model`
/// to it (by name, or as a target with model `*` or none).
///
/// ```
/// use std::path::Path;
/// use llm_router::config::Config;
/// use llm_router::stack::target_survives;
///
/// let config = Config::parse(
///     "[[backends]]\nname = \"a\"\nprovider = \"mock\"\n[[models]]\nname = \"m\"\ntargets = [{ backend = \"a\", model = \"x\" }]\n",
///     Path::new("config.toml"), &|_| None).unwrap();
/// assert!(target_survives("a/x", None, &config));
/// assert!(!target_survives("a/y", None, &config));
/// assert!(!target_survives("b/x", None, &config));
/// ```
pub fn target_survives(key: &str, old: Option<&Config>, config: &Config) -> bool {
    config.backends.iter().any(|b| {
        let Some(model) = key
            .strip_prefix(b.name.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return false;
        };
        // Passthrough targets keep state per client credential: `model#<tag>`.
        let model = match b.api_key {
            Some(crate::config::ApiKeySetting::Passthrough) => {
                crate::layers::failover::without_credential_tag(model)
            }
            _ => model,
        };
        let moved = old.is_some_and(|old| {
            old.backends
                .iter()
                .any(|o| o.name == b.name && (o.provider != b.provider || o.base_url != b.base_url))
        });
        !moved
            && config.models.iter().any(|m| {
                m.targets.iter().any(|t| {
                    t.backend == b.name
                        && t.model.as_deref().is_none_or(|tm| tm == "*" || tm == model)
                })
            })
    })
}
