//! A virtual key written as one JSON object (a line of `[auth] keys_file`):
//! [`VirtualKey::from_json_line`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{BudgetSpec, Expiry, KeyError, KeyRateLimit, ModelAllowList, VirtualKey};

/// The fields of a `[[keys]]` entry, as JSON. Unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    key: String,
    models: Option<Vec<String>>,
    expires: Option<String>,
    rate_limit: Option<RawRateLimit>,
    budget: Option<RawBudget>,
    metadata: Option<BTreeMap<String, String>>,
    budget_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests: Option<u64>,
    window: Option<String>,
    tokens: Option<u64>,
    concurrency: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    usd: Option<f64>,
    tokens: Option<u64>,
    period: Option<String>,
}

/// A dotted field name under `table`.
fn under(table: &str, field: &str) -> String {
    if field.is_empty() {
        table.to_string()
    } else {
        format!("{table}.{field}")
    }
}

impl VirtualKey {
    /// A virtual key written as one JSON object, with the fields of a
    /// `[[keys]]` entry: `name` and `key` (required), `models`, `expires`,
    /// `rate_limit`, `budget`, `metadata`, `budget_group`. Unknown fields are
    /// refused. Values are literal: a `key` holding `${` is refused (the
    /// keys file does not expand variables; a key written as `${VAR}` would
    /// be that very text). The error never holds the key.
    pub fn from_json_line(line: &str) -> Result<VirtualKey, KeyError> {
        let mut de = serde_json::Deserializer::from_str(line);
        let raw: RawKey = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde's message may quote the value: never for the key.
            let message = if path == "key" {
                "must be a string".to_string()
            } else {
                let m = inner.to_string();
                // "... at line 1 column 9": the line is the file's, not this.
                match m.rfind(" at line ") {
                    Some(at) => m[..at].to_string(),
                    None => m,
                }
            };
            KeyError::new(
                if path == "." || path == "?" {
                    String::new()
                } else {
                    path
                },
                message,
            )
        })?;
        de.end()
            .map_err(|_| KeyError::new("", "trailing characters after the JSON object"))?;
        if raw.key.contains("${") {
            return Err(KeyError::new(
                "key",
                "holds `${`: the keys file does not expand environment variables; write the key itself",
            ));
        }
        let mut key = VirtualKey::new(raw.name.trim(), raw.key.trim())?;
        if let Some(models) = raw.models {
            let list = ModelAllowList::new(&models).map_err(|m| {
                // `[i] why` from the list: name the entry.
                match m.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                    Some((i, why)) => KeyError::new(format!("models[{i}]"), why),
                    None => KeyError::new("models", m),
                }
            })?;
            key = key.with_models(list);
        }
        if let Some(expires) = raw.expires {
            key =
                key.with_expiry(Expiry::parse(&expires).map_err(|m| KeyError::new("expires", m))?);
        }
        if let Some(r) = raw.rate_limit {
            let window = match &r.window {
                Some(w) => crate::duration::parse_duration(w)
                    .map_err(|m| KeyError::new("rate_limit.window", m))?,
                None => KeyRateLimit::DEFAULT_WINDOW,
            };
            let limit = KeyRateLimit::new(r.requests, r.tokens, r.concurrency, window)
                .map_err(|(f, m)| KeyError::new(under("rate_limit", f), m))?;
            key = key.with_rate_limit(limit);
        }
        if let Some(b) = raw.budget {
            let spec = BudgetSpec::parse(b.usd, b.tokens, b.period.as_deref())
                .map_err(|(f, m)| KeyError::new(under("budget", f), m))?;
            key = key.with_budget(spec);
        }
        if let Some(metadata) = raw.metadata {
            key = key.with_metadata(metadata)?;
        }
        if let Some(group) = raw.budget_group {
            key = key.with_budget_group(group.trim())?;
        }
        Ok(key)
    }
}
