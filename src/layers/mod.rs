//! The layers of the stack, one module each. Every layer is a tower
//! [`Layer`](tower::Layer) + [`Service`](tower::Service) pair, built from typed
//! values (no config or serde needed), usable alone with
//! [`tower::ServiceBuilder`]. `config.toml` places them with `[stack] order`;
//! see `middleware.md` for the order and why.
//!
//! Composed in code, outermost first as in `[stack] order`, around the
//! [`Upstream`](crate::upstream::Upstream) over a
//! [`RouteTable`](crate::routing::RouteTable), and served by
//! [`App`](crate::App) (which parses the body and renders errors):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http::Request;
//! use tower::{ServiceBuilder, ServiceExt};
//! use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers, CircuitBreakerLayer};
//! use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
//! use llm_router::layers::metrics::{Metrics, MetricsLayer};
//! use llm_router::layers::rate_limit::{ClientLimits, RateLimitLayer, RateLimitPolicy};
//! use llm_router::layers::retry::{RetryLayer, RetryPolicy};
//! use llm_router::upstream::provider::mock::Mock;
//! use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
//! use llm_router::upstream::Upstream;
//! use llm_router::{App, ProxyBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), llm_router::BoxError> {
//! let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build()?);
//! let routes = Arc::new(RouteTable::new(vec![
//!     ModelRoute::new("echo", vec![Target::new(local, None)]),
//! ]));
//! let stack = ServiceBuilder::new()
//!     .layer(MetricsLayer::new(Arc::new(Metrics::new())))
//!     .layer(RateLimitLayer::new(Arc::new(ClientLimits::new(RateLimitPolicy {
//!         requests: Some(60),
//!         window: Duration::from_secs(60),
//!         ..Default::default()
//!     }))))
//!     .layer(FailoverLayer::new(routes.clone(), FailoverPolicy::default(), Arc::new(Cooldowns::default())))
//!     .layer(CircuitBreakerLayer::new(Arc::new(Breakers::new(BreakerPolicy::default()))))
//!     .layer(RetryLayer::new(RetryPolicy::default().max_retries(2)))
//!     .service(Upstream::new());
//! let app = App::from_service(stack, routes);
//!
//! let req = Request::post("/v1/chat/completions")
//!     .body(ProxyBody::full(r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#))?;
//! let answer = app.oneshot(req).await?;
//! assert_eq!(answer.status(), 200);
//! assert_eq!(answer.headers()["x-ratelimit-remaining"], "59");
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod budget;
pub mod circuit_breaker;
pub mod cors;
mod edit;

/// The shared state store the layers' registries attach to (`[state] store = "redis"`).
pub use crate::store::RedisStore;
pub use edit::{AnswerEdit, EditFuture};
pub mod failover;
pub mod headers;
/// JWT clients of `auth`; the code lives in [`auth::jwt`].
pub use auth::jwt;
#[cfg(feature = "observability")]
pub mod log;
pub mod metrics;
pub mod pii;
pub mod rate_limit;
pub mod retry;
pub mod transform;
