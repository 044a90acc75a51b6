//! [`RateLimitPolicy`]: the client limits (`[rate_limit]`) and how clients
//! are told apart ([`KeyBy`]).

use std::time::Duration;

/// How clients are told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyBy {
    /// The verified identity from `auth`, else the presented API key, else the IP.
    #[default]
    ApiKey,
    /// The client's IP address.
    Ip,
    /// One bucket for everyone.
    Global,
}

/// Client limits (`[rate_limit]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitPolicy {
    /// Requests per window.
    pub requests: Option<u64>,
    /// Tokens per window.
    pub tokens: Option<u64>,
    /// Requests in flight.
    pub concurrency: Option<u64>,
    /// The window.
    pub window: Duration,
    /// How clients are told apart.
    pub key: KeyBy,
}
