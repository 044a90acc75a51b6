//! The built-in prices: the providers' published list prices, in USD per
//! million tokens, for their current models.
//!
//! Sources (standard tier, pay as you go; read December 2025):
//! - OpenAI: <https://openai.com/api/pricing/> and
//!   <https://platform.openai.com/docs/pricing> — cached input as listed;
//!   cache writes are not charged (so they default to the input price, and
//!   OpenAI never reports any); reasoning tokens are output tokens.
//! - Anthropic: <https://www.anthropic.com/pricing> and
//!   <https://docs.anthropic.com/en/docs/about-claude/pricing> — cache
//!   writes at the 5-minute price (1.25× input), cache reads 0.1× input;
//!   extended thinking is billed as output.
//! - Google: <https://ai.google.dev/gemini-api/docs/pricing> — the
//!   text/image/video input price, and for Gemini 2.5 Pro the price of
//!   prompts up to 200k tokens; context caching at its per-token price
//!   (storage per hour is not a token price); thinking is billed as output.
//!
//! Prices change: `[pricing]` in `config.toml` overrides any of these by
//! name, and adds models.

use super::Price;

/// `(name, price)`, names in lower case. A dated or versioned name
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`) finds its family here
/// by the rule of [`Pricing::price`](super::Pricing::price); a dated entry
/// is listed only when its price differs from its family's.
pub(super) const BUILT_IN: &[(&str, Price)] = &[
    // ---- OpenAI
    ("gpt-5", Price::new(1.25, 10.0).cached_input(0.125)),
    ("gpt-5.1", Price::new(1.25, 10.0).cached_input(0.125)),
    ("gpt-5-mini", Price::new(0.25, 2.0).cached_input(0.025)),
    ("gpt-5-nano", Price::new(0.05, 0.40).cached_input(0.005)),
    ("gpt-5-pro", Price::new(15.0, 120.0)),
    ("gpt-4.1", Price::new(2.0, 8.0).cached_input(0.50)),
    ("gpt-4.1-mini", Price::new(0.40, 1.60).cached_input(0.10)),
    ("gpt-4.1-nano", Price::new(0.10, 0.40).cached_input(0.025)),
    ("gpt-4o", Price::new(2.50, 10.0).cached_input(1.25)),
    // The first gpt-4o snapshot kept its launch price.
    ("gpt-4o-2024-05-13", Price::new(5.0, 15.0)),
    ("gpt-4o-mini", Price::new(0.15, 0.60).cached_input(0.075)),
    ("o1", Price::new(15.0, 60.0).cached_input(7.50)),
    ("o1-mini", Price::new(1.10, 4.40).cached_input(0.55)),
    ("o1-pro", Price::new(150.0, 600.0)),
    ("o3", Price::new(2.0, 8.0).cached_input(0.50)),
    ("o3-pro", Price::new(20.0, 80.0)),
    ("o3-mini", Price::new(1.10, 4.40).cached_input(0.55)),
    ("o4-mini", Price::new(1.10, 4.40).cached_input(0.275)),
    ("text-embedding-3-small", Price::new(0.02, 0.0)),
    ("text-embedding-3-large", Price::new(0.13, 0.0)),
    ("text-embedding-ada-002", Price::new(0.10, 0.0)),
    // ---- Anthropic
    ("claude-opus-4-5", anthropic(5.0, 25.0, 0.5, 6.25)),
    ("claude-opus-4-1", anthropic(15.0, 75.0, 1.5, 18.75)),
    ("claude-opus-4", anthropic(15.0, 75.0, 1.5, 18.75)),
    ("claude-sonnet-4-5", anthropic(3.0, 15.0, 0.3, 3.75)),
    ("claude-sonnet-4", anthropic(3.0, 15.0, 0.3, 3.75)),
    ("claude-haiku-4-5", anthropic(1.0, 5.0, 0.1, 1.25)),
    ("claude-3-7-sonnet", anthropic(3.0, 15.0, 0.3, 3.75)),
    ("claude-3-5-sonnet", anthropic(3.0, 15.0, 0.3, 3.75)),
    ("claude-3-5-haiku", anthropic(0.8, 4.0, 0.08, 1.0)),
    ("claude-3-opus", anthropic(15.0, 75.0, 1.5, 18.75)),
    ("claude-3-haiku", anthropic(0.25, 1.25, 0.03, 0.3)),
    // ---- Google Gemini
    ("gemini-2.5-pro", Price::new(1.25, 10.0).cached_input(0.125)),
    (
        "gemini-2.5-flash",
        Price::new(0.30, 2.50).cached_input(0.03),
    ),
    (
        "gemini-2.5-flash-lite",
        Price::new(0.10, 0.40).cached_input(0.01),
    ),
    (
        "gemini-2.0-flash",
        Price::new(0.10, 0.40).cached_input(0.025),
    ),
    ("gemini-2.0-flash-lite", Price::new(0.075, 0.30)),
];

/// An Anthropic price: input, output, cache read (a tenth of input) and
/// 5-minute cache write (1.25× input), as listed.
const fn anthropic(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
    Price::new(input, output)
        .cached_input(cache_read)
        .cache_write(cache_write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Pricing;

    /// Published prices, checked one by one (USD per million tokens).
    #[test]
    fn published_prices() {
        let p = Pricing::builtin();
        let price = |m: &str| p.price(m).unwrap_or_else(|| panic!("{m} has no price"));
        // OpenAI
        let gpt4o = price("gpt-4o");
        assert_eq!(
            (gpt4o.input, gpt4o.output, gpt4o.cached_input),
            (2.5, 10.0, Some(1.25))
        );
        let mini = price("gpt-4o-mini");
        assert_eq!(
            (mini.input, mini.output, mini.cached_input),
            (0.15, 0.6, Some(0.075))
        );
        let gpt41 = price("gpt-4.1");
        assert_eq!(
            (gpt41.input, gpt41.output, gpt41.cached_input),
            (2.0, 8.0, Some(0.5))
        );
        let o4 = price("o4-mini");
        assert_eq!((o4.input, o4.output), (1.1, 4.4));
        let gpt5 = price("gpt-5");
        assert_eq!(
            (gpt5.input, gpt5.output, gpt5.cached_input),
            (1.25, 10.0, Some(0.125))
        );
        // Anthropic
        let sonnet = price("claude-sonnet-4");
        assert_eq!(
            (
                sonnet.input,
                sonnet.output,
                sonnet.cached_input,
                sonnet.cache_write
            ),
            (3.0, 15.0, Some(0.3), Some(3.75))
        );
        let opus = price("claude-opus-4-1");
        assert_eq!(
            (opus.input, opus.output, opus.cache_write),
            (15.0, 75.0, Some(18.75))
        );
        let haiku = price("claude-3-5-haiku");
        assert_eq!(
            (haiku.input, haiku.output, haiku.cached_input),
            (0.8, 4.0, Some(0.08))
        );
        // Gemini
        let pro = price("gemini-2.5-pro");
        assert_eq!((pro.input, pro.output), (1.25, 10.0));
        let flash = price("gemini-2.5-flash");
        assert_eq!((flash.input, flash.output), (0.3, 2.5));
        let lite = price("gemini-2.0-flash");
        assert_eq!((lite.input, lite.output), (0.1, 0.4));
    }

    #[test]
    fn names_are_lower_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for (name, price) in BUILT_IN {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(seen.insert(*name), "{name} twice");
            assert!(price.input >= 0.0 && price.output >= 0.0, "{name}");
        }
    }
}
