//! The document as serde reads it ([`RawConfig`], the top level; each
//! section's raw struct lives beside its validation), and serde's errors
//! put in TOML words.

use serde::Deserialize;

use super::backends::RawBackend;
use super::models::RawModel;
use super::server::RawServer;
use super::stack::RawStack;
use super::{auth, cors, headers, keys, log, pricing, resilience, state, tools, transforms};

// ---------------------------------------------------------------------------
// Raw, serde-facing structs. Every table rejects unknown keys.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<RawServer>,
    pub(super) stack: Option<RawStack>,
    #[serde(default)]
    pub(super) backends: Vec<RawBackend>,
    #[serde(default)]
    pub(super) models: Vec<RawModel>,
    // Sections of layers this build does not have yet: accepted by the
    // parser so that the error can say so clearly.
    pub(super) retry: Option<resilience::RawRetry>,
    pub(super) circuit_breaker: Option<resilience::RawBreaker>,
    pub(super) failover: Option<resilience::RawFailover>,
    pub(super) rate_limit: Option<resilience::RawRateLimit>,
    pub(super) auth: Option<auth::RawAuth>,
    #[serde(default)]
    pub(super) keys: Vec<keys::RawKey>,
    pub(super) headers: Option<headers::RawHeaders>,
    #[serde(default)]
    pub(super) transforms: Vec<transforms::RawTransform>,
    pub(super) pii: Option<transforms::RawPii>,
    pub(super) log: Option<log::RawLog>,
    pub(super) tools: Option<tools::RawTools>,
    pub(super) cors: Option<cors::RawCors>,
    pub(super) state: Option<state::RawState>,
    pub(super) pricing: Option<pricing::RawPricing>,
}

/// A serde path without the internals of `toml::Spanned`
/// (`models[0].targets.$__serde_spanned_private_value[0]` -> `models[0].targets[0]`).
pub(super) fn clean_path(path: &str) -> String {
    path.replace(".$__serde_spanned_private_value", "")
        .replace("$__serde_spanned_private_value", "")
}

pub(super) fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// serde's message, in TOML words and with a hint where a common mistake is likely.
pub(super) fn explain_serde_error(path: &str, message: &str) -> String {
    let message = one_line(message);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let what = if path.contains(['.', '[']) {
            "key"
        } else {
            "section or key"
        };
        let mut out = format!("unknown {what} `{name}`");
        if let Some(best) = closest(name, &candidates) {
            out.push_str(&format!(" (did you mean `{best}`?)"));
        }
        if candidates.is_empty() {
            out.push_str("; this table takes no keys");
        } else {
            out.push_str("; expected one of ");
            out.push_str(
                &candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        return out;
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    if (path == "backends" || path == "models") && message.contains("expected a sequence") {
        return format!("{message}; write each entry as [[{path}]] (double brackets)");
    }
    if last.ends_with("timeout") && message.contains("expected a string") {
        return format!("{message}; durations are strings with a unit, like \"30s\" or \"250ms\"");
    }
    message
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a typo.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
