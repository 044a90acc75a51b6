//! What an upstream can make the proxy hold: one named cap per buffer fed
//! by upstream bytes, and the bound on upstream-chosen indexes.
//!
//! Upstreams are semi-trusted: a misbehaving or compromised one must not be
//! able to grow the proxy's memory or crash a connection. Every buffer that
//! upstream bytes fill is bounded by one of these constants, never by what
//! the upstream sends:
//!
//! | buffer | cap | beyond it |
//! |---|---|---|
//! | one streamed event (SSE event, NDJSON line), every parser | [`MAX_EVENT_BYTES`] | 502 before the commit point, an error event after |
//! | a non-streamed answer collected for translation | [`MAX_JSON_ANSWER_BYTES`] | the body ends with an error |
//! | an error answer collected for translation | [`MAX_ERROR_BODY_BYTES`] | the rest is dropped; the kept start is translated |
//! | stream preamble held before the commit point | [`MAX_PREAMBLE_BYTES`] | committed early |
//! | XML tool text held while a tag may still close | [`MAX_XML_TAG_BYTES`] | sent as plain text |
//! | a JSON answer kept aside to read its usage, or read whole before its head to carry its cost | [`MAX_USAGE_TAP_BYTES`] | usage not read; the answer goes on as it comes, without the cost header |
//! | one streamed event read by the `log` layer for its record | [`MAX_LOG_EVENT_BYTES`] | the rest of the answer's text not logged |
//!
//! Indexes an upstream chooses (OpenAI `choices[].index`, Gemini
//! `candidates[].index`, tool call `index`es, Anthropic content block
//! `index`es) size per-choice state; an index at or beyond [`MAX_INDEX`]
//! ends a stream with an error ([`IndexTooLarge`]) instead of sizing a
//! table by it.
//!
//! ```
//! use llm_router::upstream::limits::{check_index, MAX_INDEX};
//!
//! assert_eq!(check_index(3, "choice").unwrap(), 3);
//! assert!(check_index(MAX_INDEX, "choice").is_err());
//! assert!(check_index(u64::MAX, "choice").is_err());
//! ```

/// Largest single streamed event (an SSE event or an NDJSON line) any
/// parser of upstream bytes accepts (8 MiB).
pub const MAX_EVENT_BYTES: usize = 8 << 20;

/// Largest non-streamed upstream answer collected to be translated (32 MiB).
pub const MAX_JSON_ANSWER_BYTES: usize = 32 << 20;

/// Largest part of an upstream error answer kept to be translated (64 KiB);
/// an error message is never longer, and the rest is dropped.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Most preamble bytes (role-only or empty events) held back before a
/// stream's first content event (1 MiB).
pub const MAX_PREAMBLE_BYTES: usize = 1 << 20;

/// Largest XML tool tag held back while waiting for its end (1 MiB); a
/// longer one goes out as plain text.
pub const MAX_XML_TAG_BYTES: usize = 1 << 20;

/// Largest JSON answer kept aside to read its usage, or held before its
/// head to price it (4 MiB).
pub const MAX_USAGE_TAP_BYTES: usize = 4 << 20;

/// Largest streamed event the `log` layer's tap reads to reassemble an
/// answer's text (1 MiB); a larger one ends the tap (the record says
/// `truncated`).
pub const MAX_LOG_EVENT_BYTES: usize = 1 << 20;

/// Bound (exclusive) of the indexes an upstream chooses: choices and
/// candidates, tool calls of one choice, content blocks of one message.
pub const MAX_INDEX: u64 = 128;

/// An upstream-chosen index at or beyond [`MAX_INDEX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream sent {what} index {index}, beyond the limit of {MAX_INDEX}")]
pub struct IndexTooLarge {
    /// What the index numbers (`choice`, `tool call`, `content block`).
    pub what: &'static str,
    /// The index sent.
    pub index: u64,
}

/// `index` as a `usize` when it is below [`MAX_INDEX`].
pub fn check_index(index: u64, what: &'static str) -> Result<usize, IndexTooLarge> {
    if index < MAX_INDEX {
        usize::try_from(index).map_err(|_| IndexTooLarge { what, index })
    } else {
        Err(IndexTooLarge { what, index })
    }
}
