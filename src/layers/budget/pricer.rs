//! [`Pricer`]: what a dollar budget needs of a price catalog — the cost of
//! an estimate and of an answer's usage, in nano-dollars. The configured
//! catalog ([`Pricing`](crate::config::Pricing), which the stack gives the
//! layer) is one; two simple ones are [`NoPrices`] (every model unpriced,
//! the layer's default when composed in code) and [`FixedPrices`].

use std::collections::HashMap;
use std::fmt;

use crate::usage::Usage;

/// Prices models for dollar budgets, in integer nano-dollars (10⁻⁹ USD).
/// `None` means the model has no price: a client with a dollar budget is
/// then refused (400 `model_not_priced`), never counted as free.
///
/// ```
/// use llm_router::layers::budget::{FixedPrices, Pricer, Usage};
///
/// // $2 per million input tokens, $8 per million output tokens.
/// let prices = FixedPrices::new().price("gpt-x", 2.0, 8.0);
/// assert_eq!(prices.estimate_nanos("gpt-x", 1_000, 500), Some(2_000 * 1_000 + 8_000 * 500));
/// let usage = Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, ..Usage::default() };
/// assert_eq!(prices.cost_nanos("gpt-x", &usage), Some(2_000 * 10 + 8_000 * 5));
/// assert_eq!(prices.cost_nanos("other", &usage), None);
/// ```
pub trait Pricer: Send + Sync + fmt::Debug {
    /// The most a request may cost: `input_tokens` in and
    /// `max_output_tokens` out.
    fn estimate_nanos(&self, model: &str, input_tokens: u64, max_output_tokens: u64)
        -> Option<u64>;

    /// The cost of an answer's usage.
    fn cost_nanos(&self, model: &str, usage: &Usage) -> Option<u64>;
}

/// No model has a price: every request of a dollar budget is refused.
/// The default until a price catalog is configured.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrices;

/// The configured price catalog (`[pricing]` over the built-in prices):
/// a model it cannot price is unpriced, so a dollar budget refuses it.
impl Pricer for crate::pricing::Pricing {
    fn estimate_nanos(&self, model: &str, input: u64, output: u64) -> Option<u64> {
        self.price(model)
            .map(|price| price.estimate(input, output).nano_usd())
    }

    fn cost_nanos(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.cost(model, usage).map(crate::usage::Cost::nano_usd)
    }
}

impl Pricer for NoPrices {
    fn estimate_nanos(&self, _model: &str, _input: u64, _output: u64) -> Option<u64> {
        None
    }

    fn cost_nanos(&self, _model: &str, _usage: &Usage) -> Option<u64> {
        None
    }
}

/// Prices per model name, in dollars per million input and output tokens
/// (cached input priced as input). See [`Pricer`] for an example.
#[derive(Clone, Debug, Default)]
pub struct FixedPrices {
    /// Nano-dollars per million tokens: (input, output).
    prices: HashMap<String, (u64, u64)>,
}

impl FixedPrices {
    /// No prices yet.
    pub fn new() -> Self {
        FixedPrices::default()
    }

    /// Price `model` at `input` and `output` dollars per million tokens
    /// (negative or non-finite prices count as 0).
    pub fn price(mut self, model: &str, input: f64, output: f64) -> Self {
        // Per million tokens, in nano-dollars: `as` saturates.
        let nanos = |usd: f64| (usd.max(0.0) * 1e9).round() as u64;
        self.prices
            .insert(model.to_string(), (nanos(input), nanos(output)));
        self
    }

    fn cost(&self, model: &str, input: u64, output: u64) -> Option<u64> {
        let (i, o) = *self.prices.get(model)?;
        let total = (u128::from(input).saturating_mul(u128::from(i)))
            .saturating_add(u128::from(output).saturating_mul(u128::from(o)));
        // Rounded up: a budget is never under-charged by rounding.
        Some(u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }
}

impl Pricer for FixedPrices {
    fn estimate_nanos(&self, model: &str, input: u64, output: u64) -> Option<u64> {
        self.cost(model, input, output)
    }

    fn cost_nanos(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.cost(model, usage.prompt_tokens, usage.completion_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_prices_dollar_budgets() {
        let catalog = crate::pricing::Pricing::builtin();
        // gpt-4o: $2.50 in, $10 out per million tokens.
        assert_eq!(
            catalog.estimate_nanos("gpt-4o", 1_000_000, 0),
            Some(2_500_000_000)
        );
        assert_eq!(catalog.estimate_nanos("gpt-4o", 0, 1_000), Some(10_000_000));
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            ..Usage::default()
        };
        assert_eq!(catalog.cost_nanos("gpt-4o", &usage), Some(3_500_000));
        assert_eq!(catalog.estimate_nanos("no-such-model-here", 1, 1), None);
    }

    #[test]
    fn fixed_prices_round_up_and_saturate() {
        let p = FixedPrices::new()
            .price("cheap", 0.0375, 0.15)
            .price("huge", f64::MAX, 1.0)
            .price("free", -1.0, f64::NAN);
        // 1 token at $0.0375/M is 37.5 nano-dollars: 38.
        assert_eq!(p.estimate_nanos("cheap", 1, 0), Some(38));
        assert_eq!(p.estimate_nanos("huge", u64::MAX, u64::MAX), Some(u64::MAX));
        assert_eq!(p.estimate_nanos("free", 1_000, 1_000), Some(0));
        assert_eq!(NoPrices.estimate_nanos("cheap", 1, 1), None);
        assert_eq!(NoPrices.cost_nanos("cheap", &Usage::default()), None);
    }
}
