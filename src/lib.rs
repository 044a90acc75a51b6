//! # llm-router
//!
//! One endpoint in front of many LLM providers. Clients speak the OpenAI API;
//! llm-router routes each request by model name to configured upstreams —
//! OpenAI and every OpenAI-compatible API, plus a built-in `mock` — and
//! streams the answers back frame by frame.
//!
//! It is a tower middleware stack on hyper:
//!
//! ```text
//! App (endpoints, body read + parsed once)
//!  └─ layers before `failover`          (whole request)
//!      └─ split point: RouteLayer / failover   (picks a Target)
//!          └─ layers after `failover`    (each attempt on one target)
//!              └─ Upstream               (provider adapter + pooled hyper client)
//! ```
//!
//! - [`request::LlmRequest`] is the parsed body, carried in the request's
//!   extensions; layers edit it there and the upstream serializes it once.
//! - [`routing`] holds backends, targets, the route table and [`routing::RouteLayer`].
//! - [`provider`] adapts requests and answers per provider.
//! - [`upstream::Upstream`] is the innermost service.
//! - [`config`] and [`stack`] turn `config.toml` into a running stack;
//!   [`server`] serves it; [`reload`] re-reads the config and swaps it in
//!   (`POST /admin/reload`, SIGHUP, and [`watch`] for `serve --reload`) while
//!   requests in flight finish on the old one.
//! - Every layer composes alone with [`tower::ServiceBuilder`] (see
//!   [`layers`]); [`App::from_service`] turns such a stack into the endpoints,
//!   a `Service` whose error is `Infallible` (axum's `route_service` takes it).
//!
//! The user-facing contract (config keys, CLI, endpoints, errors) is described
//! in the README; the stack and every layer in `middleware.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod admin;
pub mod app;
pub mod body;
pub mod catalog;
pub mod classify;
mod client_format;
pub mod config;
pub mod docs;
pub mod error;
pub mod escape;
pub mod future;
pub mod layers;
pub mod openapi;
pub(crate) mod pricing;
pub mod reload;
pub mod request;
pub mod routing;
pub mod secret;
pub mod server;
mod service;
pub mod sse;
pub mod stack;
pub mod store;
pub mod timing;
pub mod tokens;
pub mod upstream;
pub mod usage;
pub mod watch;

// The upstream edge's parts, at the paths they have always had.
pub use upstream::{guard, provider, translate};

/// The hash map of the proxy's per-request look-ups (circuits, cooldowns,
/// limits, routes): foldhash, seeded per map, several times cheaper than
/// SipHash on short keys.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use app::App;
pub use body::{BoxError, ProxyBody};
pub use config::{Config, ConfigError};
pub use error::ProxyError;
pub use request::LlmRequest;
pub use server::Server;

/// The example config that ships as `config.toml` and that `llm-router init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.toml");
