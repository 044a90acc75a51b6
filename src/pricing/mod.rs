//! Prices and costs: the price catalog ([`Pricing`]: built-in list prices
//! for the current OpenAI, Anthropic and Gemini models, overridden and
//! extended by `[pricing]`), a model's [`Price`] in USD per million tokens,
//! and the [`Cost`] of an answer's usage in exact integer nano-USD.
//!
//! The catalog is built from the config when the stack is built and shared
//! (`Arc`). The upstream edge looks up the price of the model each attempt
//! is sent to and puts it into the answer's
//! [`UsageSlot`](crate::usage::UsageSlot), so whoever reads the usage (the
//! `x-llm-router-cost-usd` header, `log`, `metrics`, budgets) reads its cost
//! for the model that answered.
//!
//! See [`Pricing`] for an example.

mod catalog;

pub use crate::usage::{Cost, Price};

use crate::usage::Usage;
use crate::FastMap;

/// What a model the catalog has no price for costs (`[pricing] unknown`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum UnknownModel {
    /// It has no price (`"refuse"`, the default): its answers carry no
    /// cost, and a budgeted key may not use it — never counted as free.
    #[default]
    Refuse,
    /// It costs this.
    Price(Price),
}

/// `[pricing]`: the prices of the config (by model name) over the built-in
/// ones, the rule for models without a price, and the output a budget
/// reserves for a request that names no `max_tokens`.
#[derive(Clone, Debug, PartialEq)]
pub struct PricingConfig {
    /// Model name and price; a name of the built-in catalog is overridden.
    pub prices: Vec<(String, Price)>,
    /// The price of a model without one.
    pub unknown: UnknownModel,
    /// Output tokens assumed for a request without `max_tokens` /
    /// `max_output_tokens` (when a budget estimates a request).
    pub default_max_tokens: u32,
}

impl PricingConfig {
    /// Default `default_max_tokens`.
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            prices: Vec::new(),
            unknown: UnknownModel::Refuse,
            default_max_tokens: Self::DEFAULT_MAX_TOKENS,
        }
    }
}

/// Model names longer than this have no price (a client's name is
/// untrusted: its look-up stays bounded).
const MAX_NAME: usize = 256;

/// The price catalog: the built-in list prices of the current OpenAI,
/// Anthropic and Gemini models with `[pricing]`'s over them (see
/// [`price`](Pricing::price) for how a model's price is found).
///
/// ```
/// use llm_router::config::{Price, Pricing, PricingConfig, UnknownModel};
/// use llm_router::__private::usage::Usage;
///
/// let pricing = Pricing::new(&PricingConfig {
///     prices: vec![("my-model".into(), Price::new(1.0, 4.0))],
///     unknown: UnknownModel::Refuse,
///     ..PricingConfig::default()
/// });
/// // Dated names find their family.
/// assert_eq!(pricing.price("gpt-4o-2024-08-06"), pricing.price("gpt-4o"));
/// assert_eq!(pricing.price("claude-sonnet-4-20250514").unwrap().input, 3.0);
/// assert_eq!(pricing.price("my-model").unwrap().output, 4.0);
/// assert_eq!(pricing.price("some-other-model"), None);
///
/// let usage = Usage { prompt_tokens: 1_000, completion_tokens: 500, ..Usage::default() };
/// assert_eq!(pricing.cost("my-model", &usage).unwrap().to_string(), "0.003");
/// ```
#[derive(Clone, Debug)]
pub struct Pricing {
    /// By lower-case name: the built-in prices, then the config's over them.
    prices: FastMap<String, Price>,
    unknown: Option<Price>,
    default_max_tokens: u32,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing::builtin()
    }
}

impl Pricing {
    /// The built-in prices alone; models without a price are refused.
    pub fn builtin() -> Pricing {
        Pricing::new(&PricingConfig::default())
    }

    /// The built-in prices with `config`'s over them.
    pub fn new(config: &PricingConfig) -> Pricing {
        let mut prices: FastMap<String, Price> = FastMap::default();
        for (name, price) in catalog::BUILT_IN {
            prices.insert((*name).to_string(), *price);
        }
        for (name, price) in &config.prices {
            prices.insert(name.to_ascii_lowercase(), *price);
        }
        Pricing {
            prices,
            unknown: match config.unknown {
                UnknownModel::Refuse => None,
                UnknownModel::Price(price) => Some(price),
            },
            default_max_tokens: config.default_max_tokens,
        }
    }

    /// The price of `model`, found by this rule (case-insensitive):
    ///
    /// 1. the catalog's entry of that exact name;
    /// 2. else, without a provider prefix (what comes before the last `/`:
    ///    `openai/gpt-4o`, `models/gemini-2.5-pro`), the longest catalog
    ///    name that is the model's name or starts it and is followed by `-`,
    ///    `@` or `:` — so a dated or versioned name takes its family's
    ///    price (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-20250514`
    ///    → `claude-sonnet-4`, `claude-3-5-sonnet@20240620` →
    ///    `claude-3-5-sonnet`, `gemini-2.0-flash-001` → `gemini-2.0-flash`),
    ///    and `gpt-4o-mini-…` finds `gpt-4o-mini` before `gpt-4o`;
    /// 3. else `[pricing] unknown`: its price, or `None` (`"refuse"`).
    ///
    /// Names longer than 256 bytes go straight to 3.
    pub fn price(&self, model: &str) -> Option<Price> {
        self.listed(model).or(self.unknown)
    }

    /// The price of `model` by steps 1 and 2 of [`price`](Self::price):
    /// `None` for a model the catalog does not list.
    pub fn listed(&self, model: &str) -> Option<Price> {
        if model.len() > MAX_NAME {
            return None;
        }
        // Copied only when it has capitals: this runs on every answer.
        let lower: std::borrow::Cow<'_, str> = if model.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(model.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(model)
        };
        if let Some(price) = self.prices.get(&*lower) {
            return Some(*price);
        }
        let mut name = match lower.rfind('/') {
            Some(slash) => lower.get(slash + 1..)?,
            // Already looked up whole.
            None => match lower.rfind(['-', '@', ':']) {
                Some(cut) if cut > 0 => lower.get(..cut)?,
                _ => return None,
            },
        };
        loop {
            if let Some(price) = self.prices.get(name) {
                return Some(*price);
            }
            match name.rfind(['-', '@', ':']) {
                Some(cut) if cut > 0 => name = name.get(..cut)?,
                _ => return None,
            }
        }
    }

    /// The cost of `usage` on `model`, when it has a price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        Some(self.price(model)?.cost(usage))
    }

    /// Output tokens assumed for a request without `max_tokens`.
    pub fn default_max_tokens(&self) -> u32 {
        self.default_max_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(prices: &[(&str, Price)], unknown: UnknownModel) -> Pricing {
        Pricing::new(&PricingConfig {
            prices: prices.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            unknown,
            ..PricingConfig::default()
        })
    }

    #[test]
    fn exact_dated_and_prefixed_names() {
        let p = Pricing::builtin();
        let input = |m: &str| p.price(m).map(|p| p.input);
        assert_eq!(input("gpt-4o"), Some(2.5));
        assert_eq!(input("GPT-4o"), Some(2.5));
        assert_eq!(input("gpt-4o-2024-08-06"), Some(2.5));
        // A dated entry of its own wins over the family.
        assert_eq!(input("gpt-4o-2024-05-13"), Some(5.0));
        assert_eq!(input("gpt-4o-mini-2024-07-18"), Some(0.15));
        assert_eq!(input("gpt-4.1-nano-2025-04-14"), Some(0.10));
        assert_eq!(input("openai/gpt-4.1-mini"), Some(0.40));
        assert_eq!(input("o3-mini-2025-01-31"), Some(1.10));
        assert_eq!(input("o3-2025-04-16"), Some(2.0));
        assert_eq!(input("claude-sonnet-4-20250514"), Some(3.0));
        assert_eq!(input("claude-opus-4-1-20250805"), Some(15.0));
        assert_eq!(input("claude-opus-4-5-20251101"), Some(5.0));
        assert_eq!(input("claude-3-5-haiku-latest"), Some(0.80));
        assert_eq!(input("claude-3-5-sonnet@20240620"), Some(3.0));
        assert_eq!(input("models/gemini-2.5-pro"), Some(1.25));
        assert_eq!(input("gemini-2.5-flash-lite-preview-06-17"), Some(0.10));
        assert_eq!(input("gemini-2.0-flash-001"), Some(0.10));
        // Not a family member: no boundary after the listed name.
        assert_eq!(input("gpt-4"), None);
        assert_eq!(input("gpt-4-turbo"), None);
        assert_eq!(input("o3x"), None);
        assert_eq!(input("llama3"), None);
        assert_eq!(input(""), None);
        assert_eq!(input("-"), None);
        assert_eq!(input(&"gpt-4o-".repeat(100)), None);
    }

    #[test]
    fn config_prices_override_and_extend() {
        let p = with(
            &[
                ("gpt-4o", Price::new(1.0, 2.0)),
                ("My-Model", Price::new(0.5, 0.5)),
            ],
            UnknownModel::Refuse,
        );
        assert_eq!(p.price("gpt-4o").unwrap().input, 1.0);
        // The override reaches the family's dated names too.
        assert_eq!(p.price("gpt-4o-2024-11-20").unwrap().input, 1.0);
        assert_eq!(p.price("my-model").unwrap().input, 0.5);
        assert_eq!(p.price("my-model-v2").unwrap().input, 0.5);
        assert_eq!(p.price("claude-3-haiku").unwrap().input, 0.25);
    }

    #[test]
    fn unknown_models_refused_or_priced() {
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            ..Usage::default()
        };
        let refuse = Pricing::builtin();
        assert_eq!(refuse.price("local-llama"), None);
        assert_eq!(refuse.cost("local-llama", &usage), None);
        let priced = with(&[], UnknownModel::Price(Price::new(1.0, 2.0)));
        assert_eq!(priced.listed("local-llama"), None);
        assert_eq!(
            priced.cost("local-llama", &usage),
            Some(Cost::from_nano_usd(3_000_000_000))
        );
        // A listed model keeps its own price.
        assert_eq!(priced.price("gpt-4o").unwrap().input, 2.5);
    }

    #[test]
    fn default_max_tokens() {
        assert_eq!(Pricing::builtin().default_max_tokens(), 4096);
        let p = Pricing::new(&PricingConfig {
            default_max_tokens: 100,
            ..PricingConfig::default()
        });
        assert_eq!(p.default_max_tokens(), 100);
    }
}
