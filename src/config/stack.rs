//! `[stack]`: the layer order, checked against the layers this build has,
//! and [`LayerName`], the names it accepts (the stack builder re-exports it).

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStack {
    order: Spanned<Vec<Spanned<String>>>,
}

impl Loader<'_> {
    pub(super) fn stack(
        &self,
        raw: Option<RawStack>,
    ) -> Result<(Vec<LayerName>, bool), ConfigError> {
        let Some(raw) = raw else {
            // The default order, limited to the layers this build has.
            let order = LayerName::DEFAULT_ORDER
                .iter()
                .copied()
                .filter(|l| l.is_built())
                .collect();
            return Ok((order, false));
        };
        // Names and duplicates first, then what this build has.
        let mut order: Vec<LayerName> = Vec::new();
        for (i, entry) in raw.order.get_ref().iter().enumerate() {
            let key = format!("stack.order[{i}]");
            let name = entry.get_ref();
            let Some(layer) = LayerName::parse(name) else {
                let known: Vec<&str> = LayerName::ALL.iter().map(|l| l.as_str()).collect();
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("unknown layer `{name}`; known layers: {}", known.join(", ")),
                ));
            };
            if let Some(first) = order.iter().position(|l| *l == layer) {
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("layer `{name}` is listed twice (first as stack.order[{first}]); each layer may appear once"),
                ));
            }
            order.push(layer);
        }
        for (i, (entry, layer)) in raw.order.get_ref().iter().zip(&order).enumerate() {
            if !layer.is_built() {
                let built: Vec<&str> = LayerName::ALL
                    .iter()
                    .filter(|l| l.is_built())
                    .map(|l| l.as_str())
                    .collect();
                let built = if built.is_empty() {
                    "none yet, so `order = []`".to_string()
                } else {
                    built.join(", ")
                };
                return Err(self.err(Some(entry.span()), format!("stack.order[{i}]"), format!(
                    "layer `{}` is not available in this version of llm-router yet; remove it from [stack] order (available layers: {built})",
                    layer.as_str()
                )));
            }
        }
        Ok((order, true))
    }
}

impl Loader<'_> {
    /// `budget` reads what `auth` resolved, so it comes after it: named
    /// before `auth`, it is an error; without `auth` in the implicit
    /// default order (no key anywhere), it is left out too.
    pub(super) fn budget_order(
        &self,
        stack: &mut Vec<LayerName>,
        stack_explicit: bool,
    ) -> Result<(), ConfigError> {
        let auth = stack.iter().position(|l| *l == LayerName::Auth);
        let budget = stack.iter().position(|l| *l == LayerName::Budget);
        match (auth, budget) {
            (None, Some(_)) if !stack_explicit => stack.retain(|l| *l != LayerName::Budget),
            (Some(a), Some(b)) if b < a => {
                return Err(ConfigError {
                    file: self.file.clone(),
                    line: self.line_of_header("order").or_else(|| self.line_of_header("stack")),
                    key: Some(format!("stack.order[{b}]")),
                    message: format!(
                        "`budget` must come after `auth` (stack.order[{a}]): it enforces the budget `auth` finds for a client's key"
                    ),
                })
            }
            _ => {}
        }
        Ok(())
    }
}

/// The names `[stack] order` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerName {
    /// Request/response logging to JSONL files.
    Log,
    /// Prometheus metrics.
    Metrics,
    /// Client keys.
    Auth,
    /// Spend budgets of virtual keys and budget groups.
    Budget,
    /// Per-client limits.
    RateLimit,
    /// PII scrubbing.
    Pii,
    /// Regex and JSONPath transforms.
    Transform,
    /// Header drop/add/force rules.
    Headers,
    /// CORS and security headers.
    Cors,
    /// Target selection and failover (the split point).
    Failover,
    /// Per-target circuit breaker.
    CircuitBreaker,
    /// Per-target retry with backoff.
    Retry,
}

impl LayerName {
    /// Every name, in the default order (`cors` last, as it is not in the default).
    pub const ALL: [LayerName; 12] = [
        LayerName::Log,
        LayerName::Metrics,
        LayerName::Auth,
        LayerName::Budget,
        LayerName::RateLimit,
        LayerName::Pii,
        LayerName::Transform,
        LayerName::Headers,
        LayerName::Failover,
        LayerName::CircuitBreaker,
        LayerName::Retry,
        LayerName::Cors,
    ];

    /// The order used when the config has no `[stack]` section.
    pub const DEFAULT_ORDER: [LayerName; 11] = [
        LayerName::Log,
        LayerName::Metrics,
        LayerName::Auth,
        LayerName::Budget,
        LayerName::RateLimit,
        LayerName::Pii,
        LayerName::Transform,
        LayerName::Headers,
        LayerName::Failover,
        LayerName::CircuitBreaker,
        LayerName::Retry,
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerName::Log => "log",
            LayerName::Metrics => "metrics",
            LayerName::Auth => "auth",
            LayerName::Budget => "budget",
            LayerName::RateLimit => "rate_limit",
            LayerName::Pii => "pii",
            LayerName::Transform => "transform",
            LayerName::Headers => "headers",
            LayerName::Cors => "cors",
            LayerName::Failover => "failover",
            LayerName::CircuitBreaker => "circuit_breaker",
            LayerName::Retry => "retry",
        }
    }

    /// Parse a config name.
    pub fn parse(name: &str) -> Option<LayerName> {
        LayerName::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// Whether this build of llm-router has the layer: its cargo feature
    /// (`observability`, `access`, `content` or `resilience`) is on.
    pub fn is_built(self) -> bool {
        match self {
            LayerName::Log | LayerName::Metrics => cfg!(feature = "observability"),
            LayerName::Auth
            | LayerName::Budget
            | LayerName::RateLimit
            | LayerName::Headers
            | LayerName::Cors => cfg!(feature = "access"),
            LayerName::Pii | LayerName::Transform => cfg!(feature = "content"),
            LayerName::Failover | LayerName::CircuitBreaker | LayerName::Retry => {
                cfg!(feature = "resilience")
            }
        }
    }

    /// Whether the layer works on one target's attempts (it belongs under the split).
    pub fn is_per_target(self) -> bool {
        matches!(self, LayerName::CircuitBreaker | LayerName::Retry)
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
