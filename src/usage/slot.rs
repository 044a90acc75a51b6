//! [`UsageSlot`]: where an answer's usage lands, with the price of the
//! model that answered, and what an answer is charged (the one rule of a
//! stream cut short, or of an answer without usage under a budget).

// Counts come from upstreams and clients: every operation on them saturates.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{Cost, Price, Usage};

/// Where an answer's usage lands once seen; in the answer's extensions.
///
/// The upstream edge reads usage out of answers (and puts this slot in
/// them) only for requests that carry [`UsageWanted`](super::UsageWanted):
/// a layer that reads the slot inserts that marker on its way in. Each
/// attempt has its own slot, made with the price of the model that attempt
/// was sent to, so the slot of the answer that reaches the client gives the
/// usage and [cost](UsageSlot::cost) of the model that answered. Two handles
/// are equal when they are the same slot (one attempt's).
///
/// [`get`](UsageSlot::get) is **the** rule of what an answer is charged —
/// the `budget` layer settles by it, the log record, the metrics and the
/// cost header read it:
///
/// - the usage the upstream reported, once final (a stream's final usage,
///   a JSON answer's `usage`);
/// - an **estimate** for a stream cut short (the client went away, the
///   upstream broke or went quiet) before its final usage, and — when a
///   budget reserved for the request — for any answer that ended without
///   usage (a budget never counts an answer as free):
///   - input: the prompt tokens the upstream reported (Anthropic reports
///     them first), else the request's input estimate: the tokenizer's
///     count a budget reserved, else the request's text (messages, system,
///     instructions, prompt, tool arguments — not images or files) at 4
///     bytes a token;
///   - output: the larger of the output the upstream reported and what was
///     delivered at 4 bytes a token — the text sent to the client (content,
///     reasoning, refusals, tool arguments), or when a budget reserved,
///     every byte sent (framing included), at most the output it reserved;
///   - cached, cache-written and reasoning tokens as reported (at most the
///     input and output).
///
/// Without a budget, an answer that ended without usage (an OpenAI stream
/// without `stream_options.include_usage`) has none. An error answer is
/// never estimated: it costs what its upstream reported, if anything.
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
    /// The request's text, in estimated tokens (a guarded stream's).
    input_estimate: AtomicU64,
    /// Bytes of text delivered to the client (a guarded stream's).
    delivered: AtomicU64,
    /// What a budget reserved for the request, once it did.
    reserved: OnceLock<Reserved>,
    /// Bytes of the answer sent to the client, framing included (counted
    /// by the budget that reserved).
    sent: AtomicU64,
}

/// A budget's reservation, in tokens.
#[derive(Clone, Copy, Debug)]
struct Reserved {
    input: u64,
    output: u64,
}

/// A guarded stream whose final usage has not been seen.
const UNDER_WAY: u8 = 1;
/// A guarded stream that reported its final usage or ended complete.
const SETTLED: u8 = 2;

/// About 4 bytes of text a token.
fn tokens_of_text(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

impl PartialEq for UsageSlot {
    fn eq(&self, other: &UsageSlot) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UsageSlot {}

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

    /// The usage the answer is charged: as reported, or the estimate of the
    /// [type's docs](UsageSlot).
    pub fn get(&self) -> Option<Usage> {
        let reported = self.reported();
        let reserved = self.0.reserved.get().copied();
        let cut = self.0.stream.load(Ordering::Acquire) == UNDER_WAY;
        let reported = match (reported, cut, reserved) {
            (Some(usage), false, _) => return Some(usage),
            (None, false, None) => return None,
            (reported, _, _) => reported.unwrap_or_default(),
        };
        let prompt = match reported.prompt_tokens {
            0 => reserved.map_or_else(
                || self.0.input_estimate.load(Ordering::Relaxed),
                |r| r.input,
            ),
            n => n,
        };
        let text = self.0.delivered.load(Ordering::Relaxed);
        let delivered = match reserved {
            None => tokens_of_text(text),
            Some(r) => tokens_of_text(self.0.sent.load(Ordering::Relaxed).max(text)).min(r.output),
        };
        let completion = reported.completion_tokens.max(delivered);
        let cached = reported.cached_tokens.min(prompt);
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: cached,
            cache_write_tokens: reported
                .cache_write_tokens
                .min(prompt.saturating_sub(cached)),
            reasoning_tokens: reported.reasoning_tokens.min(completion),
        })
    }

    /// The usage as the upstream reported it, without the estimate
    /// [`get`](Self::get) makes: what an attempt that did not answer is
    /// charged (nothing, when it reported nothing).
    pub fn reported(&self) -> Option<Usage> {
        *self.0.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`get`](Self::get) gives an estimate.
    pub fn is_estimate(&self) -> bool {
        self.0.stream.load(Ordering::Acquire) == UNDER_WAY
            || (self.0.reserved.get().is_some() && self.reported().is_none())
    }

    /// The price of the model that answered, if it has one.
    pub fn price(&self) -> Option<Price> {
        self.0.price
    }

    /// The cost of the usage, when both are known.
    pub fn cost(&self) -> Option<Cost> {
        Some(self.0.price?.cost(&self.get()?))
    }

    /// The cost of the usage the upstream [reported](Self::reported), when
    /// both are known.
    pub fn reported_cost(&self) -> Option<Cost> {
        Some(self.0.price?.cost(&self.reported()?))
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

    /// A budget reserved `input` tokens in (the tokenizer's count) and at
    /// most `output` out for the request: from now on [`get`](Self::get)
    /// estimates with them (see the [type's docs](UsageSlot)). The first
    /// reservation stays. Not for an error answer.
    #[cfg_attr(not(feature = "access"), allow(dead_code))]
    pub(crate) fn reserve(&self, input: u64, output: u64) {
        let _ = self.0.reserved.set(Reserved { input, output });
    }

    /// `bytes` more bytes of the answer went to the client, framing
    /// included (the budget that reserved counts them).
    #[cfg_attr(not(feature = "access"), allow(dead_code))]
    pub(crate) fn sent(&self, bytes: u64) {
        if bytes > 0 {
            // Wrapping is out of reach: a u64 of bytes.
            self.0.sent.fetch_add(bytes, Ordering::Relaxed);
        }
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
    fn a_budget_reservation_makes_the_one_rule_with_its_cap() {
        let u = |slot: &UsageSlot| {
            let u = slot.get().unwrap();
            (u.prompt_tokens, u.completion_tokens, u.total_tokens)
        };
        // A cut stream under a budget: the tokenizer's input it reserved,
        // every byte sent (framing included), at most the output reserved.
        let slot = UsageSlot::priced(None);
        slot.begin_stream(120);
        slot.reserve(100, 50);
        slot.delivered(8);
        slot.sent(40);
        assert_eq!(u(&slot), (100, 10, 110));
        assert!(slot.is_estimate());
        slot.sent(1 << 20);
        assert_eq!(u(&slot), (100, 50, 150));
        // Output the upstream reported is never capped; its input is taken.
        slot.set(Usage {
            prompt_tokens: 80,
            completion_tokens: 70,
            cached_tokens: 500,
            reasoning_tokens: 90,
            ..Usage::default()
        });
        let got = slot.get().unwrap();
        assert_eq!(
            (got.prompt_tokens, got.completion_tokens, got.cached_tokens),
            (80, 70, 80)
        );
        assert_eq!(got.reasoning_tokens, 70);
        // Its final usage: as reported, whatever went out.
        slot.settle();
        assert_eq!(slot.get().unwrap().completion_tokens, 70);
        assert_eq!(slot.get(), slot.reported());
        assert!(!slot.is_estimate());
        // The first reservation stays.
        slot.reserve(1, 1);
        assert_eq!(slot.reported().unwrap().prompt_tokens, 80);

        // An answer that ended without usage: none, unless a budget reserved.
        let slot = UsageSlot::default();
        slot.sent(10);
        assert_eq!(slot.get(), None);
        slot.reserve(8, 100);
        assert_eq!(u(&slot), (8, 3, 11));
        // Nothing went out: the input.
        let slot = UsageSlot::default();
        slot.reserve(8, 100);
        assert_eq!(u(&slot), (8, 0, 8));
        // A stream that ended complete without usage, under a budget.
        let slot = UsageSlot::default();
        slot.begin_stream(999);
        slot.reserve(7, 4);
        slot.delivered(3);
        slot.sent(9);
        slot.settle();
        assert_eq!(u(&slot), (7, 3, 10));
        // Without a budget the same stream has none.
        let slot = UsageSlot::default();
        slot.begin_stream(999);
        slot.delivered(3);
        slot.settle();
        assert_eq!(slot.get(), None);
    }

    #[test]
    fn slots_are_equal_when_they_are_the_same_one() {
        let a = UsageSlot::default();
        assert_eq!(a, a.clone());
        assert_ne!(a, UsageSlot::default());
        a.set(Usage {
            prompt_tokens: 1_000,
            ..Usage::default()
        });
        // An estimate is never a reported cost.
        let priced = UsageSlot::priced(Some(Price::new(1.0, 1.0)));
        priced.begin_stream(1_000);
        assert!(priced.cost().is_some());
        assert_eq!(priced.reported_cost(), None);
        priced.set(Usage {
            prompt_tokens: 1_000,
            ..Usage::default()
        });
        assert_eq!(priced.reported_cost().unwrap().nano_usd(), 1_000_000);
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
