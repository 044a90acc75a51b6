//! The layers of the stack, one module each. Every layer is a tower
//! [`Layer`](tower::Layer) + [`Service`](tower::Service) pair, built from typed
//! values (no config or serde needed), usable alone with
//! [`tower::ServiceBuilder`]. `config.toml` places them with `[stack] order`;
//! see `middleware.md` for the order and why.

pub mod auth;
pub mod circuit_breaker;
pub mod cors;
mod edit;
pub mod failover;
pub mod headers;
pub mod metrics;
pub mod pii;
pub mod rate_limit;
pub mod retry;
pub mod transform;
