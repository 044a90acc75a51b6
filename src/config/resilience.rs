//! `[retry]`, `[circuit_breaker]`, `[failover]`, `[rate_limit]` and a
//! backend's `rate_limit`: raw serde structs and their conversion into the
//! layers' typed policies.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::layers::circuit_breaker::BreakerPolicy;
use crate::layers::failover::FailoverPolicy;
use crate::layers::rate_limit::{KeyBy, RateLimitPolicy};
use crate::layers::retry::RetryPolicy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    max_retries: Option<Spanned<i64>>,
    retry_on: Option<Spanned<Vec<Spanned<i64>>>>,
    initial_delay: Option<Spanned<String>>,
    backoff_factor: Option<Spanned<toml::Value>>,
    max_delay: Option<Spanned<String>>,
    jitter: Option<bool>,
    other_targets_first: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    failure_threshold: Option<Spanned<i64>>,
    open_for: Option<Spanned<String>>,
    half_open_requests: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFailover {
    on: Option<Spanned<Vec<Spanned<i64>>>>,
    cooldown: Option<Spanned<String>>,
    max_cooldown: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    requests: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    tokens: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackendLimit {
    requests: Spanned<i64>,
    window: Option<Spanned<String>>,
}

/// A backend's own request limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendLimit {
    /// Requests per window.
    pub requests: u64,
    /// The window.
    pub window: Duration,
}

impl Loader<'_> {
    pub(super) fn count(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        min: i64,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if *n.get_ref() >= min => Ok(*n.get_ref() as u64),
            Some(n) => Err(self.err(
                Some(n.span()),
                key,
                format!(
                    "must be a whole number from {min} upward, not {}",
                    n.get_ref()
                ),
            )),
        }
    }

    fn statuses(
        &self,
        v: &Option<Spanned<Vec<Spanned<i64>>>>,
        key: &str,
        default: Vec<u16>,
    ) -> Result<Vec<u16>, ConfigError> {
        let Some(list) = v else { return Ok(default) };
        list.get_ref()
            .iter()
            .map(|s| match u16::try_from(*s.get_ref()) {
                Ok(code) if (400..=599).contains(&code) => Ok(code),
                _ => Err(self.err(
                    Some(s.span()),
                    key,
                    format!("`{}` is not an HTTP error status (400-599)", s.get_ref()),
                )),
            })
            .collect()
    }

    /// A rate-limit window: whole seconds, at least one (`Retry-After`
    /// counts whole seconds, and never exceeds the window).
    pub(super) fn window(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let window = self.duration(v, key, Duration::from_secs(60))?;
        if window < Duration::from_secs(1) || window.subsec_nanos() != 0 {
            return Err(self.err(
                v.as_ref().map(Spanned::span),
                key,
                "must be a whole number of seconds, at least \"1s\" (Retry-After counts seconds)",
            ));
        }
        Ok(window)
    }

    /// `[retry]`. Without the section, the defaults with
    /// `other_targets_first` on (a failing primary hands over to its fallback
    /// at once); a written section keeps the contract's meaning of each key,
    /// `other_targets_first` off unless it says so.
    pub(super) fn retry(&self, raw: Option<RawRetry>) -> Result<RetryPolicy, ConfigError> {
        match raw {
            None => Ok(RetryPolicy::default().other_targets_first(true)),
            Some(raw) => self.retry_over(&raw, "retry", &RetryPolicy::default()),
        }
    }

    /// A model's `retry = { ... }`: the keys it sets over `base` (the
    /// `[retry]` policy).
    pub(super) fn model_retry(
        &self,
        raw: &RawRetry,
        i: usize,
        base: &RetryPolicy,
    ) -> Result<RetryPolicy, ConfigError> {
        self.retry_over(raw, &format!("models[{i}].retry"), base)
    }

    fn retry_over(
        &self,
        raw: &RawRetry,
        prefix: &str,
        d: &RetryPolicy,
    ) -> Result<RetryPolicy, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        let backoff_factor = match &raw.backoff_factor {
            None => d.backoff_factor,
            Some(v) => match v.get_ref() {
                toml::Value::Float(f) if *f >= 1.0 && f.is_finite() => *f,
                toml::Value::Integer(i) if *i >= 1 => *i as f64,
                other => {
                    return Err(self.err(
                        Some(v.span()),
                        key("backoff_factor"),
                        format!("must be a number of at least 1.0, not {other}"),
                    ))
                }
            },
        };
        let policy = RetryPolicy {
            max_retries: self
                .count(
                    &raw.max_retries,
                    &key("max_retries"),
                    0,
                    u64::from(d.max_retries),
                )?
                .min(100) as u32,
            retry_on: self.statuses(&raw.retry_on, &key("retry_on"), d.retry_on.clone())?,
            initial_delay: self.duration(
                &raw.initial_delay,
                &key("initial_delay"),
                d.initial_delay,
            )?,
            backoff_factor,
            max_delay: self.duration(&raw.max_delay, &key("max_delay"), d.max_delay)?,
            jitter: raw.jitter.unwrap_or(d.jitter),
            other_targets_first: raw.other_targets_first.unwrap_or(d.other_targets_first),
        };
        if policy.max_delay < policy.initial_delay {
            let span = raw
                .max_delay
                .as_ref()
                .or(raw.initial_delay.as_ref())
                .map(Spanned::span);
            return Err(self.err(
                span,
                key("max_delay"),
                "must not be shorter than initial_delay",
            ));
        }
        Ok(policy)
    }

    pub(super) fn circuit_breaker(
        &self,
        raw: Option<RawBreaker>,
    ) -> Result<BreakerPolicy, ConfigError> {
        let d = BreakerPolicy::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(BreakerPolicy {
            failure_threshold: self
                .count(
                    &raw.failure_threshold,
                    "circuit_breaker.failure_threshold",
                    1,
                    u64::from(d.failure_threshold),
                )?
                .min(u64::from(u32::MAX)) as u32,
            open_for: self.duration(&raw.open_for, "circuit_breaker.open_for", d.open_for)?,
            half_open_requests: self
                .count(
                    &raw.half_open_requests,
                    "circuit_breaker.half_open_requests",
                    1,
                    u64::from(d.half_open_requests),
                )?
                .min(1000) as u32,
        })
    }

    pub(super) fn failover(&self, raw: Option<RawFailover>) -> Result<FailoverPolicy, ConfigError> {
        let d = FailoverPolicy::default();
        let Some(raw) = raw else { return Ok(d) };
        let policy = FailoverPolicy {
            on: self.statuses(&raw.on, "failover.on", d.on.clone())?,
            cooldown: self.duration(&raw.cooldown, "failover.cooldown", d.cooldown)?,
            max_cooldown: self.duration(
                &raw.max_cooldown,
                "failover.max_cooldown",
                d.max_cooldown,
            )?,
        };
        if policy.max_cooldown.is_zero() {
            return Err(self.err(
                raw.max_cooldown.as_ref().map(Spanned::span),
                "failover.max_cooldown",
                "must be longer than 0s",
            ));
        }
        Ok(policy)
    }

    pub(super) fn rate_limit(
        &self,
        raw: Option<RawRateLimit>,
    ) -> Result<RateLimitPolicy, ConfigError> {
        let Some(raw) = raw else {
            // The contract's defaults: 60 requests a minute per API key.
            return Ok(RateLimitPolicy {
                requests: Some(60),
                window: Duration::from_secs(60),
                ..RateLimitPolicy::default()
            });
        };
        let key = match &raw.key {
            None => KeyBy::ApiKey,
            Some(k) => match k.get_ref().as_str() {
                "api_key" => KeyBy::ApiKey,
                "ip" => KeyBy::Ip,
                "global" => KeyBy::Global,
                other => {
                    return Err(self.err(
                        Some(k.span()),
                        "rate_limit.key",
                        format!("must be \"api_key\", \"ip\" or \"global\", not \"{other}\""),
                    ))
                }
            },
        };
        let opt = |v: &Option<Spanned<i64>>, key: &str| -> Result<Option<u64>, ConfigError> {
            v.as_ref().map(|_| self.count(v, key, 1, 0)).transpose()
        };
        let policy = RateLimitPolicy {
            requests: opt(&raw.requests, "rate_limit.requests")?,
            tokens: opt(&raw.tokens, "rate_limit.tokens")?,
            concurrency: opt(&raw.concurrency, "rate_limit.concurrency")?,
            window: self.window(&raw.window, "rate_limit.window")?,
            key,
        };
        if policy.requests.is_none() && policy.tokens.is_none() && policy.concurrency.is_none() {
            return Err(ConfigError {
                file: self.file.clone(),
                line: self.line_of_header("rate_limit"),
                key: Some("rate_limit".into()),
                message: "sets no limit; give at least one of requests, tokens, concurrency".into(),
            });
        }
        Ok(policy)
    }

    pub(super) fn backend_limit(
        &self,
        i: usize,
        raw: &Spanned<RawBackendLimit>,
    ) -> Result<BackendLimit, ConfigError> {
        let r = raw.get_ref();
        let key = |k: &str| format!("backends[{i}].rate_limit.{k}");
        Ok(BackendLimit {
            requests: self.count(&Some(r.requests.clone()), &key("requests"), 1, 0)?,
            window: self.window(&r.window, &key("window"))?,
        })
    }
}
