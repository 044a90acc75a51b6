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
//! - [`upstream::provider`] adapts requests and answers per provider.
//! - [`upstream::Upstream`] is the innermost service.
//! - [`config`] and [`stack`] turn `config.toml` into a running stack;
//!   [`server`] serves it; [`server::ConfigSource`] re-reads the config and swaps it in
//!   (`POST /admin/reload`, SIGHUP, and [`server::watch`] for `serve --reload`) while
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
mod body;
mod catalog;
mod classify;
mod client_format;
pub mod config;
mod docs;
mod duration;
mod error;
mod escape;
mod future;
mod keys;
pub mod layers;
mod openapi;
mod pricing;
mod reload;
mod request;
pub mod routing;
mod secret;
pub mod server;
mod service;
mod sse;
pub mod stack;
mod store;
mod timing;
mod tokens;
pub mod upstream;
mod usage;
mod watch;

/// Internals for the crate's own tests, benches and doc examples; not API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The hash map of the proxy's per-request look-ups (circuits, cooldowns,
/// limits, routes): foldhash, seeded per map, several times cheaper than
/// SipHash on short keys.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use app::App;
pub use body::{BoxError, ProxyBody};
pub use client_format::ClientFormat;
pub use config::{Config, ConfigError};
pub use error::ProxyError;
pub use request::{Endpoint, LlmRequest, RequestContext};
pub use server::Server;

/// The example config that ships as `config.toml` and that `llm-router init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.toml");
