//! [`Price`] (USD per million tokens, as providers list them) and [`Cost`]
//! (exact, in integer nano-USD): the arithmetic of an answer's cost.

// Usage counts come from upstreams: every operation on them saturates.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;

use super::Usage;

/// A model's list price, in USD per million tokens, as the providers'
/// pricing pages give it.
///
/// The three optional prices default by one rule: **cached input** and
/// **cache writes** cost what input costs, **reasoning** tokens what output
/// costs (every current provider bills thinking as output; OpenAI does not
/// charge for cache writes, and a provider that reports none never uses the
/// price).
///
/// ```
/// use llm_router::config::Price;
///
/// let p = Price::new(3.0, 15.0).cached_input(0.30).cache_write(3.75);
/// assert_eq!(p.cached_input_or_default(), 0.30);
/// assert_eq!(p.reasoning_or_default(), 15.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    /// Uncached input (prompt) tokens.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache (default: `input`).
    pub cached_input: Option<f64>,
    /// Input tokens written to the prompt cache (default: `input`).
    pub cache_write: Option<f64>,
    /// Reasoning (thinking) tokens of the output (default: `output`).
    pub reasoning: Option<f64>,
}

impl Price {
    /// Input and output prices; the others take their defaults.
    pub const fn new(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cached_input: None,
            cache_write: None,
            reasoning: None,
        }
    }

    /// With a price for cached input tokens.
    pub const fn cached_input(mut self, usd: f64) -> Price {
        self.cached_input = Some(usd);
        self
    }

    /// With a price for cache-write tokens.
    pub const fn cache_write(mut self, usd: f64) -> Price {
        self.cache_write = Some(usd);
        self
    }

    /// With a price for reasoning tokens.
    pub const fn reasoning(mut self, usd: f64) -> Price {
        self.reasoning = Some(usd);
        self
    }

    /// The cached-input price, or its default (`input`).
    pub fn cached_input_or_default(&self) -> f64 {
        self.cached_input.unwrap_or(self.input)
    }

    /// The cache-write price, or its default (`input`).
    pub fn cache_write_or_default(&self) -> f64 {
        self.cache_write.unwrap_or(self.input)
    }

    /// The reasoning price, or its default (`output`).
    pub fn reasoning_or_default(&self) -> f64 {
        self.reasoning.unwrap_or(self.output)
    }

    /// The cost of an answer's usage:
    ///
    /// - input: `(prompt − cached − cache_write) × input + cached ×
    ///   cached_input + cache_write × cache_write`
    /// - output: `(completion − reasoning) × output + reasoning × reasoning`
    ///
    /// [`Usage`] counts the way OpenAI does — `prompt_tokens` includes the
    /// cached and cache-written tokens (Anthropic's are folded in),
    /// `completion_tokens` the reasoning ones — so each token is priced
    /// once. Each product is exact (pico-USD per token × tokens, in 128
    /// bits); the sum is rounded to the nearest nano-USD and saturates.
    ///
    /// ```
    /// use llm_router::config::Price;
    /// use llm_router::__private::usage::Usage;
    ///
    /// let sonnet = Price::new(3.0, 15.0).cached_input(0.30).cache_write(3.75);
    /// let usage = Usage {
    ///     prompt_tokens: 1_000, cached_tokens: 600, cache_write_tokens: 300,
    ///     completion_tokens: 200, ..Usage::default()
    /// };
    /// // 100 × $3 + 600 × $0.30 + 300 × $3.75 + 200 × $15, per million
    /// assert_eq!(sonnet.cost(&usage).nano_usd(), 300_000 + 180_000 + 1_125_000 + 3_000_000);
    /// assert_eq!(sonnet.cost(&usage).to_string(), "0.004605");
    /// ```
    pub fn cost(&self, usage: &Usage) -> Cost {
        let r = Rates::of(self);
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let written = usage
            .cache_write_tokens
            .min(usage.prompt_tokens.saturating_sub(cached));
        let uncached = usage
            .prompt_tokens
            .saturating_sub(cached)
            .saturating_sub(written);
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let answer = usage.completion_tokens.saturating_sub(reasoning);
        Cost::of_pico([
            (uncached, r.input),
            (cached, r.cached_input),
            (written, r.cache_write),
            (answer, r.output),
            (reasoning, r.reasoning),
        ])
    }

    /// The most `input` uncached input tokens and `output` output tokens
    /// can cost (output at the dearer of the output and reasoning prices):
    /// what a budget reserves before the answer is known.
    ///
    /// ```
    /// use llm_router::config::Price;
    ///
    /// let p = Price::new(2.5, 10.0);
    /// assert_eq!(p.estimate(1_000, 4_096).nano_usd(), 2_500_000 + 40_960_000);
    /// ```
    pub fn estimate(&self, input: u64, output: u64) -> Cost {
        let r = Rates::of(self);
        Cost::of_pico([(input, r.input), (output, r.output.max(r.reasoning))])
    }
}

/// A price in pico-USD per token (= micro-USD per million tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rates {
    input: u64,
    output: u64,
    cached_input: u64,
    cache_write: u64,
    reasoning: u64,
}

impl Rates {
    fn of(price: &Price) -> Rates {
        Rates {
            input: pico_per_token(price.input),
            output: pico_per_token(price.output),
            cached_input: pico_per_token(price.cached_input_or_default()),
            cache_write: pico_per_token(price.cache_write_or_default()),
            reasoning: pico_per_token(price.reasoning_or_default()),
        }
    }
}

/// USD per million tokens as pico-USD per token, rounded to the nearest;
/// a negative or non-finite price (which the config refuses) is 0, a huge
/// one saturates.
fn pico_per_token(usd_per_million: f64) -> u64 {
    if usd_per_million.is_finite() && usd_per_million > 0.0 {
        // `as` saturates from f64.
        (usd_per_million * 1e6).round() as u64
    } else {
        0
    }
}

/// A cost in nano-USD (10⁻⁹ USD): exact integer arithmetic, so that spend
/// adds up the same everywhere (budgets keep it in Redis as an integer).
/// `Display` writes it in USD, exactly (`"0.000123"`).
///
/// ```
/// use llm_router::config::Cost;
///
/// let c = Cost::from_nano_usd(123_000);
/// assert_eq!(c.to_string(), "0.000123");
/// assert_eq!(c.usd(), 0.000123);
/// assert_eq!(Cost::from_nano_usd(1_500_000_000).to_string(), "1.5");
/// assert_eq!(Cost::ZERO.to_string(), "0");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost(u64);

impl Cost {
    /// Nothing.
    pub const ZERO: Cost = Cost(0);

    /// A cost of `nano` nano-USD.
    pub const fn from_nano_usd(nano: u64) -> Cost {
        Cost(nano)
    }

    /// In nano-USD.
    pub const fn nano_usd(self) -> u64 {
        self.0
    }

    /// In USD, for display and metrics (not for sums that must be exact).
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The sum, saturating.
    pub const fn saturating_add(self, other: Cost) -> Cost {
        Cost(self.0.saturating_add(other.0))
    }

    /// Σ tokens × pico-USD per token, rounded to the nearest nano-USD.
    fn of_pico<const N: usize>(parts: [(u64, u64); N]) -> Cost {
        let pico = parts.iter().fold(0u128, |sum, &(tokens, rate)| {
            // Two u64 factors: the product fits in a u128.
            sum.saturating_add(u128::from(tokens).saturating_mul(u128::from(rate)))
        });
        let nano = pico.saturating_add(500) / 1000;
        Cost(u64::try_from(nano).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000_000;
        let frac = self.0 % 1_000_000_000;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usage(prompt: u64, cached: u64, written: u64, completion: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: cached,
            cache_write_tokens: written,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn plain_input_and_output() {
        let gpt4o = Price::new(2.5, 10.0);
        // 1,000 in at $2.50/M = $0.0025; 500 out at $10/M = $0.005.
        assert_eq!(
            gpt4o.cost(&usage(1_000, 0, 0, 500, 0)),
            Cost::from_nano_usd(7_500_000)
        );
        assert_eq!(gpt4o.cost(&Usage::default()), Cost::ZERO);
    }

    #[test]
    fn cached_tokens_are_priced_apart() {
        let p = Price::new(2.5, 10.0).cached_input(1.25);
        // 600 uncached × 2.5 + 400 cached × 1.25 = 1500 + 500 (micro-USD).
        assert_eq!(p.cost(&usage(1_000, 400, 0, 0, 0)).nano_usd(), 2_000_000);
        // Without a cached price, cached input costs input.
        let q = Price::new(2.5, 10.0);
        assert_eq!(q.cost(&usage(1_000, 400, 0, 0, 0)).nano_usd(), 2_500_000);
    }

    #[test]
    fn cache_writes_and_reasoning() {
        let p = Price::new(3.0, 15.0)
            .cached_input(0.3)
            .cache_write(3.75)
            .reasoning(20.0);
        // in: 100 × 3 + 200 × 0.3 + 700 × 3.75; out: 50 × 15 + 150 × 20.
        let c = p.cost(&usage(1_000, 200, 700, 200, 150));
        assert_eq!(
            c.nano_usd(),
            300_000 + 60_000 + 2_625_000 + 750_000 + 3_000_000
        );
        // Reasoning defaults to the output price.
        let q = Price::new(1.1, 4.4);
        assert_eq!(
            q.cost(&usage(0, 0, 0, 1_000, 800)),
            q.cost(&usage(0, 0, 0, 1_000, 0))
        );
    }

    #[test]
    fn inconsistent_counts_never_price_a_token_twice() {
        // More cached than prompt, more reasoning than completion: clamped.
        let p = Price::new(1.0, 2.0).cached_input(0.5).reasoning(4.0);
        let c = p.cost(&usage(10, 50, 50, 10, 99));
        // 10 cached at $0.50/M and 10 reasoning at $4/M.
        assert_eq!(c.nano_usd(), 10 * 500 + 10 * 4_000);
    }

    #[test]
    fn rounding_to_the_nearest_nano_usd() {
        // $0.01875 per million: 18,750 pico-USD a token.
        let p = Price::new(0.018_75, 0.0);
        assert_eq!(p.cost(&usage(1, 0, 0, 0, 0)).nano_usd(), 19);
        assert_eq!(p.cost(&usage(2, 0, 0, 0, 0)).nano_usd(), 38);
        assert_eq!(p.cost(&usage(1_000_000, 0, 0, 0, 0)).to_string(), "0.01875");
    }

    #[test]
    fn odd_prices_cost_nothing_or_saturate() {
        for bad in [f64::NAN, -1.0, f64::NEG_INFINITY, f64::INFINITY] {
            assert_eq!(pico_per_token(bad), 0, "{bad}");
        }
        assert_eq!(pico_per_token(1e300), u64::MAX);
        let huge = Price::new(1e300, 1e300);
        assert_eq!(
            huge.cost(&usage(u64::MAX, 0, 0, u64::MAX, 0)),
            Cost::from_nano_usd(u64::MAX)
        );
    }

    #[test]
    fn display_is_exact_decimal_usd() {
        for (nano, text) in [
            (0, "0"),
            (1, "0.000000001"),
            (123_000, "0.000123"),
            (1_000_000_000, "1"),
            (12_345_678_901, "12.345678901"),
            (u64::MAX, "18446744073.709551615"),
        ] {
            assert_eq!(Cost::from_nano_usd(nano).to_string(), text);
        }
    }

    #[test]
    fn estimate_takes_the_dearer_output_price() {
        let p = Price::new(1.0, 2.0).reasoning(8.0);
        assert_eq!(p.estimate(1_000, 1_000).nano_usd(), 1_000_000 + 8_000_000);
    }

    proptest! {
        #[test]
        fn cost_never_panics(
            prompt in any::<u64>(), cached in any::<u64>(), written in any::<u64>(),
            completion in any::<u64>(), reasoning in any::<u64>(),
            input in any::<f64>(), output in any::<f64>(), cached_price in any::<f64>(),
        ) {
            let p = Price::new(input, output).cached_input(cached_price);
            let u = usage(prompt, cached, written, completion, reasoning);
            let u = Usage { total_tokens: prompt.saturating_add(completion), ..u };
            let c = p.cost(&u);
            let _ = c.to_string();
            let _ = p.estimate(prompt, completion);
            // Dearer never costs less.
            let dearer = Price { output: p.output.abs() * 2.0, ..p };
            if p.output.is_finite() && p.output > 0.0 && p.output < 1e12 {
                prop_assert!(dearer.cost(&u) >= c);
            }
        }
    }
}
