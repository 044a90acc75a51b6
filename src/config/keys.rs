//! `[[keys]]`: virtual keys — the raw serde structs and their checks (the
//! values checked by [`VirtualKey`](crate::layers::auth::VirtualKey) and its
//! parts, every error at the line of the value it is about).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::layers::auth::{
    AuthKey, BudgetSpec, Expiry, KeyError, KeyRateLimit, KeySource, ModelAllowList, ModelPattern,
    VirtualKey,
};

/// One `[[keys]]` entry. Unknown keys are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    name: Spanned<String>,
    key: Spanned<String>,
    models: Option<Spanned<Vec<Spanned<String>>>>,
    expires: Option<Spanned<String>>,
    rate_limit: Option<Spanned<RawKeyLimit>>,
    budget: Option<Spanned<RawBudget>>,
    metadata: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    budget_group: Option<Spanned<String>>,
}

/// A key's `rate_limit = { ... }`: `[rate_limit]`'s keys but `key`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyLimit {
    requests: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    tokens: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
}

/// A key's `budget = { usd | tokens, period }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    usd: Option<Spanned<f64>>,
    tokens: Option<Spanned<i64>>,
    period: Option<Spanned<String>>,
}

impl Loader<'_> {
    /// `[[keys]]`: each entry checked, names unique, keys unique (among
    /// them, and against `[auth]`'s own keys and admin keys, which `others`
    /// holds).
    pub(super) fn virtual_keys(
        &self,
        raw: &[RawKey],
        others: &[AuthKey],
        admin: &[crate::secret::Secret],
    ) -> Result<Vec<AuthKey>, ConfigError> {
        let mut out: Vec<AuthKey> = Vec::with_capacity(raw.len());
        for (i, rk) in raw.iter().enumerate() {
            let vk = self.virtual_key(i, rk)?;
            let at = |span: Range<usize>| super::env::line_of(self.text, span.start);
            if let Some(j) = out.iter().position(|o| {
                o.virtual_key
                    .as_ref()
                    .is_some_and(|ov| ov.name() == vk.name())
            }) {
                return Err(self.err(
                    Some(rk.name.span()),
                    format!("keys[{i}].name"),
                    format!(
                        "duplicate key name `{}` (first defined at line {})",
                        vk.name(),
                        at(raw[j].name.span())
                    ),
                ));
            }
            let clash = if let Some(j) = out.iter().position(|o| o.key == *vk.key()) {
                Some(format!(
                    "has the same key as keys[{j}] (`{}`, line {})",
                    raw[j].name.get_ref().trim(),
                    at(raw[j].key.span())
                ))
            } else if let Some(o) = others.iter().find(|o| o.key == *vk.key()) {
                Some(format!(
                    "is also a key of [auth] ({}); a key is either plain or virtual",
                    o.source
                ))
            } else if admin.contains(vk.key()) {
                Some(
                    "is also an admin key; an admin key is not limited, give the virtual key its own"
                        .into(),
                )
            } else {
                None
            };
            if let Some(clash) = clash {
                return Err(self.err(
                    Some(rk.key.span()),
                    format!("keys[{i}].key"),
                    format!("the key of `{}` {clash}", vk.name()),
                ));
            }
            out.push(AuthKey::virtual_key(vk, KeySource::Config));
        }
        Ok(out)
    }

    /// One `[[keys]]` entry.
    fn virtual_key(&self, i: usize, raw: &RawKey) -> Result<VirtualKey, ConfigError> {
        let path = |field: &str| {
            if field.is_empty() {
                format!("keys[{i}]")
            } else {
                format!("keys[{i}].{field}")
            }
        };
        // A `KeyError` about a field of this entry, at `span`.
        let fail =
            |span: Range<usize>, e: KeyError| self.err(Some(span), path(&e.field), e.message);
        let key_text = raw.key.get_ref().trim();
        if key_text.is_empty() {
            return Err(self.err(
                Some(raw.key.span()),
                path("key"),
                "is empty (an unset `${VAR:-}`?); set the key, e.g. key = \"${TEAM_A_KEY}\"",
            ));
        }
        let mut key = VirtualKey::new(raw.name.get_ref().trim(), key_text).map_err(|e| {
            let span = if e.field == "key" {
                raw.key.span()
            } else {
                raw.name.span()
            };
            fail(span, e)
        })?;
        if let Some(models) = &raw.models {
            let mut patterns = Vec::with_capacity(models.get_ref().len());
            for (j, m) in models.get_ref().iter().enumerate() {
                let p = ModelPattern::parse(m.get_ref().trim())
                    .map_err(|e| self.err(Some(m.span()), path(&format!("models[{j}]")), e))?;
                patterns.push(p);
            }
            let list = ModelAllowList::from_patterns(patterns)
                .map_err(|e| self.err(Some(models.span()), path("models"), e))?;
            key = key.with_models(list);
        }
        if let Some(expires) = &raw.expires {
            let e = Expiry::parse(expires.get_ref())
                .map_err(|e| self.err(Some(expires.span()), path("expires"), e))?;
            key = key.with_expiry(e);
        }
        if let Some(limit) = &raw.rate_limit {
            key = key.with_rate_limit(self.key_limit(limit, &path("rate_limit"))?);
        }
        if let Some(budget) = &raw.budget {
            let b = budget.get_ref();
            let tokens = match &b.tokens {
                Some(t) => Some(self.count(&Some(t.clone()), &path("budget.tokens"), 1, 0)?),
                None => None,
            };
            let spec = BudgetSpec::parse(
                b.usd.as_ref().map(|u| *u.get_ref()),
                tokens,
                b.period.as_ref().map(|p| p.get_ref().as_str()),
            )
            .map_err(|(field, message)| {
                let span = match field {
                    "usd" => b.usd.as_ref().map(Spanned::span),
                    "tokens" => b.tokens.as_ref().map(Spanned::span),
                    "period" => b.period.as_ref().map(Spanned::span),
                    _ => None,
                }
                .unwrap_or_else(|| budget.span());
                let key = if field.is_empty() {
                    path("budget")
                } else {
                    path(&format!("budget.{field}"))
                };
                self.err(Some(span), key, message)
            })?;
            key = key.with_budget(spec);
        }
        if let Some(metadata) = &raw.metadata {
            let plain: BTreeMap<String, String> = metadata
                .get_ref()
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect();
            key = key.with_metadata(plain).map_err(|e| {
                let span = e
                    .field
                    .strip_prefix("metadata.")
                    .and_then(|k| metadata.get_ref().get(k))
                    .map_or_else(|| metadata.span(), Spanned::span);
                fail(span, e)
            })?;
        }
        if let Some(group) = &raw.budget_group {
            key = key
                .with_budget_group(group.get_ref().trim())
                .map_err(|e| fail(group.span(), e))?;
        }
        Ok(key)
    }

    /// A key's `rate_limit = { ... }`.
    fn key_limit(
        &self,
        raw: &Spanned<RawKeyLimit>,
        key: &str,
    ) -> Result<KeyRateLimit, ConfigError> {
        let r = raw.get_ref();
        let opt = |v: &Option<Spanned<i64>>, k: &str| -> Result<Option<u64>, ConfigError> {
            v.as_ref()
                .map(|_| self.count(v, &format!("{key}.{k}"), 1, 0))
                .transpose()
        };
        let requests = opt(&r.requests, "requests")?;
        let tokens = opt(&r.tokens, "tokens")?;
        let concurrency = opt(&r.concurrency, "concurrency")?;
        let window = self.window(&r.window, &format!("{key}.window"))?;
        KeyRateLimit::new(requests, tokens, concurrency, window).map_err(|(field, message)| {
            let span = match field {
                "window" => r.window.as_ref().map(Spanned::span),
                _ => None,
            }
            .unwrap_or_else(|| raw.span());
            let k = if field.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{field}")
            };
            self.err(Some(span), k, message)
        })
    }
}

#[cfg(test)]
mod tests;
