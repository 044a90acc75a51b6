//! `[pricing]`: the raw table and its conversion into [`PricingConfig`].
//!
//! ```toml
//! [pricing]
//! "my-model" = { input = 1.0, output = 4.0, cached_input = 0.25, cache_write = 1.25 }
//! unknown = "refuse"          # or { input = .., output = .. }
//! default_max_tokens = 4096
//! ```
//!
//! Every key but `unknown` and `default_max_tokens` names a model; prices
//! are USD per million tokens.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::raw::explain_serde_error;
use super::{ConfigError, Loader};
use crate::pricing::{Price, PricingConfig, UnknownModel};

/// `[pricing]` as written: model names (and the two settings) to values.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct RawPricing(BTreeMap<String, Spanned<toml::Value>>);

/// One price, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: Option<f64>,
    output: Option<f64>,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    reasoning: Option<f64>,
}

/// The dearest price accepted, in USD per million tokens (far above any
/// listed one; it keeps the arithmetic's rates meaningful).
const MAX_PRICE: f64 = 1_000_000.0;

/// The largest `default_max_tokens`.
const MAX_DEFAULT_MAX_TOKENS: i64 = 100_000_000;

impl Loader<'_> {
    pub(super) fn pricing(&self, raw: Option<&RawPricing>) -> Result<PricingConfig, ConfigError> {
        let mut config = PricingConfig::default();
        let Some(RawPricing(entries)) = raw else {
            return Ok(config);
        };
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, value) in entries {
            let span = Some(value.span());
            match name.as_str() {
                "unknown" => {
                    config.unknown = match value.get_ref() {
                        toml::Value::String(s) if s == "refuse" => UnknownModel::Refuse,
                        toml::Value::Table(_) => {
                            UnknownModel::Price(self.price(value, "pricing.unknown")?)
                        }
                        _ => return Err(self.err(
                            span,
                            "pricing.unknown",
                            "must be \"refuse\" or a price such as { input = 1.0, output = 4.0 } \
                                 (USD per million tokens)",
                        )),
                    }
                }
                "default_max_tokens" => {
                    config.default_max_tokens = match value.get_ref() {
                        toml::Value::Integer(n) if (1..=MAX_DEFAULT_MAX_TOKENS).contains(n) => {
                            u32::try_from(*n).unwrap_or(u32::MAX)
                        }
                        _ => {
                            return Err(self.err(
                                span,
                                "pricing.default_max_tokens",
                                format!(
                            "must be a whole number of tokens from 1 to {MAX_DEFAULT_MAX_TOKENS}"
                        ),
                            ))
                        }
                    }
                }
                _ => {
                    let key = format!("pricing.\"{name}\"");
                    let model = name.trim();
                    if model.is_empty() {
                        return Err(self.err(span, key, "a model name cannot be empty"));
                    }
                    if !matches!(value.get_ref(), toml::Value::Table(_)) {
                        return Err(self.err(
                            span,
                            key,
                            "must be a price such as { input = 1.0, output = 4.0 } (USD per \
                             million tokens), or is `unknown` / `default_max_tokens` misspelled?",
                        ));
                    }
                    let lower = model.to_ascii_lowercase();
                    if let Some(first) = seen.get(&lower) {
                        return Err(self.err(
                            span,
                            key,
                            format!("`{model}` is priced twice (as `{first}`; names ignore case)"),
                        ));
                    }
                    seen.insert(lower, name);
                    config
                        .prices
                        .push((model.to_string(), self.price(value, &key)?));
                }
            }
        }
        Ok(config)
    }

    /// A price table: `input` and `output` required, all within range.
    fn price(&self, value: &Spanned<toml::Value>, key: &str) -> Result<Price, ConfigError> {
        let span = Some(value.span());
        let raw: RawPrice = value
            .get_ref()
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| {
                self.err(span.clone(), key, explain_serde_error(key, e.message()))
            })?;
        let check = |field: &str, v: Option<f64>| -> Result<Option<f64>, ConfigError> {
            match v {
                Some(v) if !(v.is_finite() && (0.0..=MAX_PRICE).contains(&v)) => Err(self.err(
                    span.clone(),
                    format!("{key}.{field}"),
                    format!("`{v}` is not a price: USD per million tokens, from 0 to {MAX_PRICE}"),
                )),
                v => Ok(v),
            }
        };
        let required = |field: &str, v: Option<f64>| -> Result<f64, ConfigError> {
            check(field, v)?.ok_or_else(|| {
                self.err(
                    span.clone(),
                    format!("{key}.{field}"),
                    "is missing: a price needs `input` and `output` (USD per million tokens)",
                )
            })
        };
        Ok(Price {
            input: required("input", raw.input)?,
            output: required("output", raw.output)?,
            cached_input: check("cached_input", raw.cached_input)?,
            cache_write: check("cache_write", raw.cache_write)?,
            reasoning: check("reasoning", raw.reasoning)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const MIN: &str = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";

    fn parse(pricing: &str) -> Result<PricingConfig, ConfigError> {
        Config::parse(&format!("{MIN}\n{pricing}"), Path::new("c.toml"), &|_| None)
            .map(|c| c.pricing)
    }

    fn error(pricing: &str) -> String {
        parse(pricing).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        assert_eq!(parse("").unwrap(), PricingConfig::default());
        assert_eq!(parse("[pricing]\n").unwrap(), PricingConfig::default());
    }

    #[test]
    fn prices_unknown_and_default_max_tokens() {
        let c = parse(
            "[pricing]\n\"my-model\" = { input = 1.0, output = 4, cached_input = 0.25, cache_write = 1.25, reasoning = 8 }\n\
             \"gpt-4o\" = { input = 2, output = 8 }\n\
             unknown = { input = 0.5, output = 1.5 }\ndefault_max_tokens = 1000\n",
        )
        .unwrap();
        assert_eq!(
            c.prices,
            vec![
                ("gpt-4o".to_string(), Price::new(2.0, 8.0)),
                (
                    "my-model".to_string(),
                    Price::new(1.0, 4.0)
                        .cached_input(0.25)
                        .cache_write(1.25)
                        .reasoning(8.0)
                ),
            ]
        );
        assert_eq!(c.unknown, UnknownModel::Price(Price::new(0.5, 1.5)));
        assert_eq!(c.default_max_tokens, 1000);
        let c = parse("[pricing]\nunknown = \"refuse\"\n").unwrap();
        assert_eq!(c.unknown, UnknownModel::Refuse);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        // MIN has 7 lines, then a blank one: `[pricing]` is line 9.
        assert_eq!(
            error("[pricing]\n\"m\" = { input = 1.0, outptu = 2.0 }\n"),
            "c.toml:10: pricing.\"m\": unknown key `outptu` (did you mean `output`?); expected one of \
             `input`, `output`, `cached_input`, `cache_write`, `reasoning`"
        );
        assert_eq!(
            error("[pricing]\n\"m\" = { input = 1.0 }\n"),
            "c.toml:10: pricing.\"m\".output: is missing: a price needs `input` and `output` (USD per million tokens)"
        );
        assert!(error("[pricing]\n\"m\" = { input = -1.0, output = 1 }\n")
            .starts_with("c.toml:10: pricing.\"m\".input: `-1` is not a price"));
        assert!(error("[pricing]\n\"m\" = { input = \"1\", output = 1 }\n")
            .starts_with("c.toml:10: pricing.\"m\": "));
        assert!(error("[pricing]\nunknown = \"free\"\n")
            .starts_with("c.toml:10: pricing.unknown: must be \"refuse\" or a price"));
        assert!(error("[pricing]\nunknown = { input = 1 }\n")
            .starts_with("c.toml:10: pricing.unknown.output: is missing"));
        assert!(error("[pricing]\ndefault_max_tokens = 0\n")
            .starts_with("c.toml:10: pricing.default_max_tokens: must be a whole number"));
        assert!(error("[pricing]\ndefault_max_token = 10\n")
            .contains("or is `unknown` / `default_max_tokens` misspelled?"));
        assert!(error(
            "[pricing]\n\"M\" = { input = 1, output = 1 }\n\"m\" = { input = 1, output = 1 }\n"
        )
        .contains("is priced twice"));
    }
}
