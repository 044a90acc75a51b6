//! `metrics`: Prometheus metrics of every request, and the per-backend JSON
//! summary of `GET /metrics` with `Accept: application/json`.
//!
//! Recorded per client request: requests by model, backend and status; total
//! latency (until the answer's last byte), time to first byte (the answer's
//! head — for a stream, its first content event) and the proxy's own overhead
//! as histograms; tokens in and out from the upstream's usage (streamed
//! answers included); the answers' cost in USD (`llm_router_cost_usd_total`,
//! by model, backend and key: the usage at the price of the model that
//! answered, read from the answer's [`UsageSlot`](crate::usage::UsageSlot);
//! and what each attempt that did not answer — an error answer retried or
//! failed over, a stream broken before its first content — reported, at its
//! own model's price, on its own backend); rate-limit rejections. Per upstream attempt (from the
//! [`RequestContext`] the upstream edge records them in): upstream errors by kind, retries
//! and failovers. At scrape time: each circuit's state. The log layer's dropped
//! records are counted through [`Metrics::log_records_dropped`].
//!
//! **Bounded labels.** Every label value comes from the config, never from
//! what a client sent, so `/metrics` stays the same size whatever clients
//! send: `model` is the name of the configured route that served the request
//! (`"gpt-4o"`, a pattern such as `"gpt-*"`, or `"*"`), or `"(unknown)"` when
//! no route matches (or the layer was given no [`RouteTable`], see
//! [`MetricsLayer::with_routes`]); `backend` is a configured backend's name.
//! A circuit of a target whose upstream model is the client's name (a target
//! without `model` under a pattern or `"*"` route) is shown as
//! `backend/*`, the worst state among them. `key` (of the cost) is the name
//! of the virtual key (`[[keys]]`) the client presented, or of the key `auth`
//! verified when it is one of the names given to
//! [`MetricsLayer::with_key_names`], `"(other)"` for another verified
//! client (a raw key or a JWT subject is never a label), `"none"` without
//! one.
//!
//! **Recorded without look-ups.** The series of each configured route's
//! name are found once, when the stack is built
//! ([`MetricsLayer::with_routes`]); those of a route and a backend are
//! resolved at the first request that backend answers for it, then kept.
//! A request then costs a few relaxed atomic adds and its histogram
//! observations: no label is built, hashed or looked up, and no lock is
//! taken unless it failed (its error is counted by kind) or was answered
//! with another status than 200.
//!
//! **Families:** `llm_router_requests_total{model, backend, status}`, the
//! latency, first-byte and overhead histograms,
//! `llm_router_tokens_total{model, backend, direction}` and
//! `llm_router_cost_usd_total{model, backend, key}` (both from the answer's
//! usage and what the failed attempts reported, each at its backend;
//! `key` is a key name the layer was given with `with_key_names`, else
//! `(other)` for a verified client and `none` without one),
//! `llm_router_upstream_errors_total{backend, kind}`,
//! `llm_router_retries_total{backend}`, `llm_router_failovers_total{model}`,
//! `llm_router_rate_limit_rejections_total` and, at each scrape,
//! `llm_router_circuit_state{target}` (0 closed, 1 half-open, 2 open).
//! `GET /metrics` encodes the registry (OpenMetrics text); with `Accept:
//! application/json` it is a per-backend summary (`total_requests`,
//! `success_rate`, `avg_response_time`, `error_counts` keyed `http_<status>`,
//! `timeout`, `connection_error`, `stream_error`, `other`, then `retries`,
//! `tokens_in`, `tokens_out`) keyed by backend name at the top level — the shape
//! other routers' dashboards read — and the same under `"backends"`.
//! `GET /router/stats` adds totals per model, which the registry keeps beside
//! the Prometheus families (at most 1,000 model names; further ones are counted
//! as `(other)`).
//!
//! [`RequestContext`]: crate::request::RequestContext
//! [`RouteTable`]: crate::routing::RouteTable
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::layers::metrics::{Metrics, MetricsLayer};
//! use llm_router::routing::RouteTable;
//!
//! let metrics = Arc::new(Metrics::new());
//! let routes = Arc::new(RouteTable::new(Vec::new()));
//! let _layer = MetricsLayer::new(metrics.clone()).with_routes(routes);
//! let text = metrics.encode(None);
//! assert!(text.contains("llm_router_rate_limit_rejections_total 0"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

// Parts of this file are the `observability` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "observability"), allow(unused_imports, dead_code))]

#[cfg(feature = "observability")]
mod body;
mod encode;
mod labels;
#[cfg(feature = "observability")]
mod layer;
mod registry;
mod series;
#[cfg(feature = "observability")]
mod service;
mod stats;

pub use labels::UNKNOWN_MODEL;
#[cfg(feature = "observability")]
pub use layer::MetricsLayer;
pub use registry::Metrics;
#[cfg(feature = "observability")]
pub use service::MetricsService;

#[cfg(test)]
mod tests;
