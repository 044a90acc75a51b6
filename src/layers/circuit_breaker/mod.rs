//! `circuit_breaker`: stops sending requests to a target that keeps failing.
//!
//! Per target (backend and model), a breaker is **closed** until
//! `failure_threshold` consecutive failures (5xx, connection errors,
//! timeouts; a 429 is not a failure, it starts a cooldown in failover) open it.
//! While **open**, calls are refused at once with [`ProxyError::CircuitOpen`]
//! — the upstream is not touched — so failover moves on. After `open_for` it
//! is **half-open**: up to `half_open_requests` requests go through as probes
//! (concurrent requests beyond them are refused, not all turned into probes);
//! a probe that fails re-opens it for `open_for` (a probe is never retried),
//! and once `half_open_requests` probes have succeeded it closes. Every
//! transition is a tracing event.
//!
//! Retries below the breaker (`retry` after `circuit_breaker` in the order)
//! go through it too: the breaker puts a [`CircuitGate`] into the request,
//! and `retry` asks it before each retry. A failed attempt about to be
//! retried counts as a failure at once; the attempt that would open the
//! circuit is not retried (its failure opens it), and a retry whose circuit
//! opened meanwhile is not sent ([`ProxyError::CircuitOpen`]). So while a
//! target is down only its probes reach it, however many requests and
//! retries are in flight.
//!
//! The registry is bounded: a closed circuit without failures is not kept,
//! and past [`MAX_CIRCUITS`] entries the closed and expired ones are dropped;
//! a target that finds the table full of open circuits is not tracked. A
//! client sending endless model names to a `*` route cannot grow it. Targets
//! of `api_key = "passthrough"` backends have a circuit per client
//! credential (see [`state_key`]).
//!
//! The state lives in a shared [`Breakers`] registry, so every clone of the
//! service (hyper makes one per connection) sees the same circuits, and the
//! admin API can show them.
//!
//! [`ProxyError::CircuitOpen`]: crate::error::ProxyError::CircuitOpen
//! [`state_key`]: crate::routing::state_key
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use llm_router::__private::classify::Outcome;
//! use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers, CircuitBreakerLayer};
//!
//! let breakers = Arc::new(Breakers::new(BreakerPolicy {
//!     failure_threshold: 2,
//!     open_for: Duration::from_secs(30),
//!     half_open_requests: 1,
//! }));
//! let _layer = CircuitBreakerLayer::new(breakers.clone());
//! for _ in 0..2 {
//!     let admission = breakers.admit("openai/gpt-4o").unwrap();
//!     breakers.record("openai/gpt-4o", admission, Outcome::ServerError);
//! }
//! assert!(breakers.admit("openai/gpt-4o").is_err()); // open: refused at once
//! ```

mod gate;
#[cfg(feature = "resilience")]
mod layer;
mod registry;
#[cfg(feature = "resilience")]
mod service;
mod state;

pub use gate::CircuitGate;
#[cfg(feature = "resilience")]
pub use layer::CircuitBreakerLayer;
pub use registry::{BreakerView, Breakers};
#[cfg(feature = "resilience")]
pub use service::CircuitBreaker;
pub use state::{Admission, BreakerPolicy, MAX_CIRCUITS};

#[cfg(test)]
mod tests;
