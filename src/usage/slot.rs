//! [`UsageSlot`]: where an answer's usage lands, with the price of the
//! model that answered, and what a stream cut short is charged.

// Counts come from upstreams and clients: every operation on them saturates.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::{Cost, Price, Usage};

/// Where an answer's usage lands once seen; in the answer's extensions.
///
/// The upstream edge reads usage out of answers (and puts this slot in
/// them) only for requests that carry [`UsageWanted`](super::UsageWanted):
/// a layer that reads the slot inserts that marker on its way in. Each
/// attempt has its own slot, made with the price of the model that attempt
/// was sent to, so the slot of the answer that reaches the client gives the
/// usage and [cost](UsageSlot::cost) of the model that answered.
///
/// **A stream cut short** — the client went away, the upstream broke or
/// went quiet — before the upstream reported its final usage is charged an
/// estimate, read from [`get`](UsageSlot::get) once the stream ended:
///
/// - input: the prompt tokens the upstream reported (Anthropic reports them
///   first), else the request's text (messages, system, instructions,
///   prompt, tool arguments — not images or files) at 4 bytes a token;
/// - output: the larger of the output the upstream reported and the text
///   delivered to the client (content, reasoning, refusals, tool arguments)
///   at 4 bytes a token;
/// - cached, cache-written and reasoning tokens as reported.
///
/// A stream that ended complete without reporting usage (an OpenAI stream
/// without `stream_options.include_usage`) has none.
///
/// ```
/// use llm_router::config::Price;
/// use llm_router::__private::usage::{Usage, UsageSlot};
///
/// let slot = UsageSlot::priced(Some(Price::new(2.5, 10.0)));
/// slot.set(Usage { prompt_tokens: 1_000, completion_tokens: 100, ..Usage::default() });
/// assert_eq!(slot.cost().unwrap().to_string(), "0.0035");
/// assert_eq!(UsageSlot::default().cost(), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct UsageSlot(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    usage: Mutex<Option<Usage>>,
    /// The price of the model the attempt was sent to.
    price: Option<Price>,
    /// 0 (not a stream: the usage as read), [`UNDER_WAY`] or [`SETTLED`].
    stream: AtomicU8,
    /// The request's text, in estimated tokens.
    input_estimate: AtomicU64,
    /// Bytes of text delivered to the client.
    delivered: AtomicU64,
}

/// A guarded stream whose final usage has not been seen.
const UNDER_WAY: u8 = 1;
/// A guarded stream that reported its final usage or ended complete.
const SETTLED: u8 = 2;

/// About 4 bytes of text a token.
fn tokens_of_text(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

impl UsageSlot {
    /// A slot for an answer of a model with `price` (`None`: unpriced).
    pub fn priced(price: Option<Price>) -> Self {
        UsageSlot(Arc::new(Shared {
            price,
            ..Shared::default()
        }))
    }

    /// Record the usage.
    pub fn set(&self, usage: Usage) {
        *self.0.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
    }

    /// The usage: as reported, or for a stream cut short before its final
    /// usage, the estimate of the [type's docs](UsageSlot).
    pub fn get(&self) -> Option<Usage> {
        let reported = *self.0.usage.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.stream.load(Ordering::Acquire) != UNDER_WAY {
            return reported;
        }
        let reported = reported.unwrap_or_default();
        let prompt = match reported.prompt_tokens {
            0 => self.0.input_estimate.load(Ordering::Relaxed),
            n => n,
        };
        let delivered = tokens_of_text(self.0.delivered.load(Ordering::Relaxed));
        let completion = reported.completion_tokens.max(delivered);
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            ..reported
        })
    }

    /// The usage as the upstream reported it, without the estimate
    /// [`get`](Self::get) makes for a stream cut short (the `budget` layer
    /// applies its own rule, bounded by its reservation).
    pub fn reported(&self) -> Option<Usage> {
        *self.0.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`get`](Self::get) gives an estimate (a stream cut short).
    pub fn is_estimate(&self) -> bool {
        self.0.stream.load(Ordering::Acquire) == UNDER_WAY
    }

    /// The price of the model that answered, if it has one.
    pub fn price(&self) -> Option<Price> {
        self.0.price
    }

    /// The cost of the usage, when both are known.
    pub fn cost(&self) -> Option<Cost> {
        Some(self.0.price?.cost(&self.get()?))
    }

    /// A guarded stream begins; its request's text is `input_tokens` (an
    /// estimate, used if the stream is cut short before reporting any).
    pub(crate) fn begin_stream(&self, input_tokens: u64) {
        self.0.input_estimate.store(input_tokens, Ordering::Relaxed);
        self.0.stream.store(UNDER_WAY, Ordering::Release);
    }

    /// `bytes` more bytes of text went to the client.
    pub(crate) fn delivered(&self, bytes: u64) {
        if bytes > 0 {
            // Wrapping is out of reach: a u64 of bytes.
            self.0.delivered.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The stream reported its final usage, or ended complete: its usage is
    /// what was reported.
    pub(crate) fn settle(&self) {
        self.0.stream.store(SETTLED, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_cut_short_is_estimated() {
        let slot = UsageSlot::priced(Some(Price::new(1.0, 2.0)));
        slot.begin_stream(120);
        slot.delivered(10);
        slot.delivered(0);
        slot.delivered(7);
        // Nothing reported: the request's text in, 17 bytes (5 tokens) out.
        let u = slot.get().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (120, 5, 125)
        );
        assert!(slot.is_estimate());
        assert_eq!(slot.cost().unwrap().nano_usd(), 120 * 1000 + 5 * 2000);
        // Anthropic's first event reports the input (and a token of output).
        slot.set(Usage {
            prompt_tokens: 300,
            completion_tokens: 1,
            cached_tokens: 200,
            ..Usage::default()
        });
        let u = slot.get().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (300, 5, 200)
        );
        // The final usage: what the upstream reported, whatever was delivered.
        slot.set(Usage {
            prompt_tokens: 300,
            completion_tokens: 3,
            ..Usage::default()
        });
        slot.settle();
        assert!(!slot.is_estimate());
        assert_eq!(slot.get().unwrap().completion_tokens, 3);
    }

    #[test]
    fn answers_that_are_not_streams_are_as_reported() {
        let slot = UsageSlot::default();
        slot.delivered(100);
        assert_eq!(slot.get(), None);
        assert_eq!(slot.price(), None);
        slot.set(Usage {
            prompt_tokens: 1,
            ..Usage::default()
        });
        assert_eq!(slot.get().unwrap().prompt_tokens, 1);
        // Unpriced: no cost.
        assert_eq!(slot.cost(), None);
    }

    #[test]
    fn huge_counts_saturate() {
        let slot = UsageSlot::priced(Some(Price::new(1.0, 1.0)));
        slot.begin_stream(u64::MAX);
        slot.delivered(u64::MAX);
        let u = slot.get().unwrap();
        assert_eq!(u.total_tokens, u64::MAX);
        assert!(slot.cost().is_some());
    }
}
