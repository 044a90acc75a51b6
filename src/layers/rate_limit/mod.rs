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
//! A virtual key with a `rate_limit` of its own (see
//! [`KeyRateLimit`](crate::layers::auth::KeyRateLimit), read from the
//! [`ClientKey`](crate::layers::auth::ClientKey) `auth` puts in the
//! request's extensions) is held to those limits *instead of* these,
//! counted under `key:<name>` in a table of its own
//! ([`ClientLimits::for_key`], at most [`MAX_KEY_LIMITS`] idle tables): its
//! requests never spend the global per-client quota, and what its
//! `rate_limit` leaves out is not limited for it.
//!
//! - `requests` per `window`: a request over the limit gets a 429 in the
//!   client's format with `Retry-After`; every answer carries
//!   `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`.
//! - `tokens` per `window`: counted from the upstream's usage once an answer
//!   ends, streamed answers included (the upstream is asked for stream usage
//!   even when the client did not ask, and that extra chunk is kept from the
//!   client); a client over budget gets a 429 on its next request.
//! - `concurrency`: requests in flight per client (checked first, so a
//!   request refused for it spends no request quota), released when the answer
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

// Parts of this file are the `access` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "access"), allow(unused_imports, dead_code))]

mod backend_limits;
mod client_limits;
mod identity;
#[cfg(feature = "access")]
mod layer;
mod limiter;
mod policy;

pub use backend_limits::BackendLimits;
pub use client_limits::{ClientLimits, KEY_PREFIX, MAX_KEY_LIMITS};
pub use identity::ClientIdentity;
#[cfg(feature = "access")]
pub use layer::{RateLimit, RateLimitLayer};
pub use limiter::{LimitState, LimitView, WindowLimiter, MAX_LIMITER_KEYS, OVERFLOW_KEY};
pub use policy::{KeyBy, RateLimitPolicy};
