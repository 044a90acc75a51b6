//! Builds the tower stack from `[stack] order`.
//!
//! The order reads outermost first, like [`tower::ServiceBuilder`]. The
//! layers before `failover` wrap the whole request; `failover` is the split
//! point that picks targets; the layers after it wrap each attempt on one
//! target, around the [`Upstream`]. Without `failover`, [`RouteLayer`] is
//! the split point: it sends each request to its model's first target, and
//! sits just above the first per-target layer (`circuit_breaker`, `retry`)
//! in the order, or innermost when neither is listed.
//!
//! Because users choose the order at start-up, every layer is boxed into
//! one [`LlmService`] type here — the only place llm-router boxes layers.
//! Library users who compose layers in code keep the unboxed types.
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::Config;
//!
//! let config = Config::parse(
//!     "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n",
//!     Path::new("config.toml"), &|_| None).unwrap();
//! let built = llm_router::stack::build(&config).unwrap();
//! assert_eq!(built.routes.models().collect::<Vec<_>>(), ["echo"]);
//! ```

use std::fmt;
use std::sync::Arc;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ProxyBody;
pub use crate::config::LayerName;
use crate::config::{ApiKeySetting, Config, ConfigError};
use crate::error::ProxyError;
#[cfg(feature = "access")]
use crate::layers::auth::AuthLayer;
use crate::layers::auth::KeyStore;
#[cfg(feature = "access")]
use crate::layers::budget::BudgetLayer;
#[cfg(feature = "resilience")]
use crate::layers::circuit_breaker::CircuitBreakerLayer;
use crate::layers::cors::CorsLayer;
#[cfg(feature = "resilience")]
use crate::layers::failover::FailoverLayer;
#[cfg(feature = "access")]
use crate::layers::headers::HeadersLayer;
#[cfg(feature = "observability")]
use crate::layers::log::LogFlush;
#[cfg(feature = "access")]
use crate::layers::rate_limit::RateLimitLayer;
#[cfg(feature = "resilience")]
use crate::layers::retry::RetryLayer;
use crate::routing::{Backend, Credential, ModelRoute, RouteLayer, RouteTable, Target};
use crate::upstream::Upstream;

pub use crate::service::{LlmFuture, LlmService, NewService, StackService};

mod state;
pub use state::{target_survives, RouterState};

/// A boxed [`NewService`] of targets, making [`LlmService`]s: what the stack
/// built from a config folds its per-target layers into.
#[derive(Clone)]
pub struct NewLlmService(Arc<dyn Fn(Target) -> LlmService + Send + Sync>);

impl NewLlmService {
    /// Box `new`.
    pub fn new<N>(new: N) -> Self
    where
        N: NewService<Target> + Send + Sync + 'static,
        N::Service: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
            + Clone
            + Send
            + Sync
            + 'static,
        <N::Service as Service<Request<ProxyBody>>>::Future: Send + 'static,
    {
        NewLlmService(Arc::new(move |target| {
            LlmService::new(new.new_service(target))
        }))
    }

    /// A function of the target that already makes boxed services.
    pub fn from_fn<F>(new: F) -> Self
    where
        F: Fn(Target) -> LlmService + Send + Sync + 'static,
    {
        NewLlmService(Arc::new(new))
    }
}

impl NewService<Target> for NewLlmService {
    type Service = LlmService;

    fn new_service(&self, target: Target) -> LlmService {
        (self.0)(target)
    }
}

impl fmt::Debug for NewLlmService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewLlmService").finish_non_exhaustive()
    }
}

/// The stack built from a config, and what it was built from.
#[derive(Clone)]
pub struct Built {
    /// The whole stack, from the first layer down to the upstream.
    pub service: LlmService,
    /// The model routes (for `/v1/models`, `/health`).
    pub routes: Arc<RouteTable>,
    /// The layers above the split point, outermost first.
    pub outer: Vec<LayerName>,
    /// The layers below the split point, outermost first.
    pub inner: Vec<LayerName>,
    /// The shared state of the layers.
    pub state: RouterState,
    /// CORS, when `cors` is in the order: it wraps the whole app (endpoints
    /// included), not the LLM stack, since preflights never reach the stack.
    pub cors: Option<CorsLayer>,
    /// The writers of the stack's `log` layers, for a graceful shutdown to
    /// wait on (see [`App::log_flush`](crate::App::log_flush)); a stack
    /// composed in code adds its own with [`LogFlush::include`].
    #[cfg(feature = "observability")]
    pub log_flush: LogFlush,
    /// The price catalog the answers are priced with (`[pricing]` over the
    /// built-in prices).
    pub pricing: Arc<crate::config::Pricing>,
}

/// The log writers of a stack being built: their [`LogFlush`] (nothing
/// without the `observability` feature).
#[cfg(feature = "observability")]
type LogWriters = LogFlush;
#[cfg(not(feature = "observability"))]
type LogWriters = ();

impl Built {
    /// A stack composed in code: `service` serving the models of `routes`,
    /// with default (empty) shared state.
    pub fn new(service: LlmService, routes: Arc<RouteTable>) -> Self {
        Built {
            service,
            routes,
            outer: Vec::new(),
            inner: Vec::new(),
            state: RouterState::default(),
            cors: None,
            #[cfg(feature = "observability")]
            log_flush: LogFlush::default(),
            pricing: Arc::new(crate::config::Pricing::builtin()),
        }
    }
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Built")
            .field("outer", &self.outer)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Build the backends and model routes of a config.
pub fn route_table(config: &Config) -> Result<RouteTable, ConfigError> {
    let mut backends = std::collections::HashMap::new();
    for b in &config.backends {
        let err = |message: String| ConfigError {
            file: config.path.display().to_string(),
            line: None,
            key: Some(format!("backends.{}", b.name)),
            message,
        };
        let provider = crate::upstream::provider::by_name(&b.provider)
            .ok_or_else(|| err(format!("provider `{}` is not available", b.provider)))?;
        let mut builder = Backend::builder(b.name.clone(), provider)
            .timeout(b.timeout)
            .connect_timeout(b.connect_timeout)
            .first_byte_timeout(b.first_byte_timeout)
            .idle_timeout(b.idle_timeout)
            .tls_verify(b.tls_verify)
            .header_rules(b.headers.clone())
            .tool_mode(config.tools.mode(b.tools))
            .api(b.api)
            .credential(match &b.api_key {
                None => Credential::None,
                Some(ApiKeySetting::Passthrough) => Credential::Passthrough,
                Some(ApiKeySetting::Key(k)) => {
                    Credential::Key(crate::secret::Secret::new(k.as_str()))
                }
            });
        if let Some(url) = &b.base_url {
            builder = builder.base_url(url.clone());
        }
        let backend = builder.build().map_err(|e| err(e.to_string()))?;
        backends.insert(b.name.clone(), Arc::new(backend));
    }
    let mut routes = Vec::new();
    for m in &config.models {
        // One policy shared by the model's targets.
        let retry = m.retry.clone().map(Arc::new);
        let mut targets = Vec::new();
        for t in &m.targets {
            let backend = backends
                .get(&t.backend)
                .cloned()
                .ok_or_else(|| ConfigError {
                    file: config.path.display().to_string(),
                    line: None,
                    key: Some(format!("models.{}.targets", m.name)),
                    message: format!("backend `{}` is not defined", t.backend),
                })?;
            let mut target = Target::new(backend, t.model.as_deref())
                .priority(t.priority)
                .weight(t.weight);
            if let Some(policy) = &retry {
                target = target.with_retry(policy.clone());
            }
            targets.push(target);
        }
        let mut route = ModelRoute::new(m.name.clone(), targets);
        if m.strip_prefix {
            route = route.with_strip_prefix();
        }
        if let Some(fallback) = &m.context_fallback {
            route = route.with_context_fallback(fallback.clone());
        }
        if let Some(clients) = m.clients {
            route = route.with_clients(clients);
        }
        routes.push(route);
    }
    Ok(RouteTable::new(routes))
}

/// Build the whole stack of a config, with fresh state.
pub fn build(config: &Config) -> Result<Built, ConfigError> {
    build_with_state(config, RouterState::new(config))
}

/// Build the whole stack of a config around existing state (so circuits,
/// cooldowns and limits carry over a reload).
pub fn build_with_state(config: &Config, mut state: RouterState) -> Result<Built, ConfigError> {
    let routes = Arc::new(route_table(config)?);
    let log_writers = LogWriters::default();
    let order = &config.stack;
    // The key store is shared by the `auth` layer and the admin endpoints.
    if order.contains(&LayerName::Auth) && state.auth.is_none() {
        state.auth = Some(Arc::new(KeyStore::new(config.auth.clone())));
    }
    let split = order
        .iter()
        .position(|l| *l == LayerName::Failover)
        .or_else(|| order.iter().position(|l| l.is_per_target()))
        .unwrap_or(order.len());
    let outer: Vec<LayerName> = order[..split].to_vec();
    let inner: Vec<LayerName> = order[split..]
        .iter()
        .copied()
        .filter(|l| *l != LayerName::Failover)
        .collect();

    // Below the split point: one service per target, each made with its
    // target as a constructor input.
    let pricing = Arc::new(crate::config::Pricing::new(&config.pricing));
    let mut per_target = NewLlmService::new(Upstream::new().with_pricing(pricing.clone()));
    for layer in inner.iter().rev() {
        per_target = match layer {
            #[cfg(feature = "resilience")]
            LayerName::Retry => {
                NewLlmService::new(RetryLayer::new(config.retry.clone()).layer(per_target))
            }
            #[cfg(feature = "resilience")]
            LayerName::CircuitBreaker => NewLlmService::new(
                CircuitBreakerLayer::new(state.breakers.clone()).layer(per_target),
            ),
            // A request-level layer named after the split: around each target.
            other => {
                let wrap = layer_of(*other, config, &state, &routes, &log_writers, &pricing)?;
                NewLlmService::from_fn(move |target| wrap(per_target.new_service(target)))
            }
        };
    }
    let mut service = match order.contains(&LayerName::Failover) {
        #[cfg(feature = "resilience")]
        true => {
            let failover = FailoverLayer::new(
                routes.clone(),
                config.failover.clone(),
                state.cooldowns.clone(),
            )
            .with_backend_limits(state.backend_limits.clone());
            LlmService::new(failover.layer(per_target))
        }
        // Without the `resilience` feature the config refuses `failover`.
        _ => {
            let route =
                RouteLayer::new(routes.clone()).with_backend_limits(state.backend_limits.clone());
            LlmService::new(route.layer(per_target))
        }
    };
    for layer in outer.iter().rev() {
        service = layer_of(*layer, config, &state, &routes, &log_writers, &pricing)?(service);
    }
    let cors = if order.contains(&LayerName::Cors) {
        let policy = config.cors.clone().unwrap_or_default();
        Some(CorsLayer::new(&policy).map_err(|e| ConfigError {
            file: config.path.display().to_string(),
            line: None,
            key: Some("cors".into()),
            message: e.to_string(),
        })?)
    } else {
        None
    };
    Ok(Built {
        service,
        routes,
        outer,
        inner,
        state,
        cors,
        #[cfg(feature = "observability")]
        log_flush: log_writers,
        pricing,
    })
}

/// One named layer of the configured stack, boxed: it wraps an
/// [`LlmService`] into another.
type BoxedLayer = Arc<dyn Fn(LlmService) -> LlmService + Send + Sync>;

/// Box `layer` as a [`BoxedLayer`].
#[cfg_attr(
    not(any(feature = "observability", feature = "access", feature = "content")),
    allow(dead_code)
)]
fn boxed<L>(layer: L) -> BoxedLayer
where
    L: Layer<LlmService> + Send + Sync + 'static,
    L::Service: tower::Service<
            http::Request<crate::body::ProxyBody>,
            Response = http::Response<crate::body::ProxyBody>,
            Error = crate::error::ProxyError,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<http::Request<crate::body::ProxyBody>>>::Future: Send + 'static,
{
    Arc::new(move |service| LlmService::new(layer.layer(service)))
}

/// The named layer, built from the config and the shared state; a `log`
/// layer's writer joins `log_writers`.
// In a build without some layer family, its arms are gone.
#[cfg_attr(
    not(all(
        feature = "observability",
        feature = "access",
        feature = "content",
        feature = "resilience"
    )),
    allow(unused_variables, unreachable_code)
)]
fn layer_of(
    layer: LayerName,
    config: &Config,
    state: &RouterState,
    routes: &Arc<RouteTable>,
    log_writers: &LogWriters,
    pricing: &Arc<crate::config::Pricing>,
) -> Result<BoxedLayer, ConfigError> {
    Ok(match layer {
        #[cfg(feature = "observability")]
        LayerName::Metrics => boxed(
            crate::layers::metrics::MetricsLayer::new(state.metrics.clone())
                .with_routes(routes.clone()),
        ),
        #[cfg(feature = "access")]
        LayerName::RateLimit => boxed(RateLimitLayer::new(state.client_limits.clone())),
        #[cfg(feature = "access")]
        LayerName::Budget => boxed({
            // Admissions count input tokens: load the tokenizer now.
            crate::tokens::warm_up();
            BudgetLayer::new(state.budgets.clone())
                .pricer(pricing.clone())
                .default_max_tokens(u64::from(pricing.default_max_tokens()))
        }),
        // Above the split point: no target, so every request goes through.
        #[cfg(feature = "resilience")]
        LayerName::CircuitBreaker => boxed(CircuitBreakerLayer::new(state.breakers.clone())),
        // Above the split point: whole requests are retried.
        #[cfg(feature = "resilience")]
        LayerName::Retry => boxed(RetryLayer::new(config.retry.clone())),
        #[cfg(feature = "access")]
        LayerName::Auth => {
            // `build_with_state` makes sure the state has the keys.
            let keys = state
                .auth
                .clone()
                .unwrap_or_else(|| Arc::new(KeyStore::new(config.auth.clone())));
            let auth = AuthLayer::new(keys);
            #[cfg(feature = "observability")]
            if config.stack.contains(&LayerName::Log) || config.stack.contains(&LayerName::Metrics)
            {
                // Tells `log` and `metrics` (outside `auth`) whom `auth` let in.
                return Ok(Arc::new(move |service| {
                    let service = crate::layers::log::IdentityTap::new(service);
                    LlmService::new(auth.layer(service))
                }));
            }
            boxed(auth)
        }
        #[cfg(feature = "observability")]
        LayerName::Log => {
            let log = crate::layers::log::LogLayer::from_config(
                config,
                state.auth.clone(),
                state.metrics.clone(),
            );
            log_writers.include(&log.flush_handle());
            boxed(log)
        }
        #[cfg(feature = "access")]
        LayerName::Headers => boxed(HeadersLayer::new(config.headers.clone())),
        // CORS wraps the whole app (see `Built::cors`), not the LLM stack.
        #[cfg(feature = "access")]
        LayerName::Cors => Arc::new(|service| service),
        #[cfg(feature = "content")]
        LayerName::Pii => boxed(crate::layers::pii::PiiLayer::new(
            config.pii.clone().unwrap_or_default(),
        )),
        #[cfg(feature = "content")]
        LayerName::Transform => boxed(crate::layers::transform::TransformLayer::new(
            config.transforms.iter().cloned(),
        )),
        // Validation refuses names whose layer is not built, so this is only
        // reached through a bug.
        #[allow(unreachable_patterns)]
        other => {
            return Err(ConfigError {
                file: config.path.display().to_string(),
                line: None,
                key: Some("stack.order".into()),
                message: format!(
                    "layer `{other}` is not available in this version of llm-router yet"
                ),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in LayerName::ALL {
            assert_eq!(LayerName::parse(l.as_str()), Some(l));
        }
        assert_eq!(LayerName::parse("retries"), None);
    }
}
