//! Token usage of an answer, streamed or not, for limits, metrics and logs.
//!
//! The upstream edge puts a [`UsageSlot`] into every answer's extensions and
//! fills it as the body goes by: the stream guard reads the usage chunk of a
//! streamed answer, [`UsageTap`] the `usage` object of a JSON one. Outer
//! layers wrap the body to learn when it ends, then read the slot — nothing
//! parses the answer twice.
//!
//! ```
//! use llm_router::__private::usage::{Usage, UsageSlot};
//!
//! let slot = UsageSlot::default();
//! slot.set(Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, ..Usage::default() });
//! assert_eq!(slot.get().unwrap().total_tokens, 5);
//! ```
//!
//! Usage is normalized to OpenAI's terms whatever the dialect: Anthropic's
//! `input_tokens` exclude cached tokens, so `prompt_tokens` is
//! `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`;
//! `cached_tokens` is OpenAI's `prompt_tokens_details.cached_tokens` or
//! Anthropic's `cache_read_input_tokens`, `cache_write_tokens` Anthropic's
//! `cache_creation_input_tokens` (`prompt_tokens_details.cache_write_tokens`
//! in OpenAI's shape). `completion_tokens` includes the reasoning tokens,
//! as OpenAI counts them (`reasoning_tokens`, from
//! `completion_tokens_details` or the Responses API's
//! `output_tokens_details`). Each token is in exactly one of: uncached
//! prompt, cached, cache-written, answer, reasoning — the split a
//! [`Price`] prices.
//!
//! ```
//! use llm_router::__private::usage::usage_of_json;
//!
//! let u = usage_of_json(br#"{"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":90,"cache_creation_input_tokens":20}}"#).unwrap();
//! assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens, u.total()), (120, 5, 90, 20, 125));
//! let u = usage_of_json(br#"{"usage":{"prompt_tokens":9,"completion_tokens":50,"total_tokens":59,"completion_tokens_details":{"reasoning_tokens":40}}}"#).unwrap();
//! assert_eq!((u.completion_tokens, u.reasoning_tokens), (50, 40));
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use bytes::{Bytes, BytesMut};
use http_body::Body;
use serde::Deserialize;

use crate::body::{opaque_body, BoxError, End, Observe, Observer};

mod cost;
mod slot;

pub use cost::{Cost, Price};
pub use slot::UsageSlot;

/// Tokens in and out, normalized across providers (see the module docs of `usage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(from = "RawUsage")]
pub struct Usage {
    /// Tokens of the prompt, cached and cache-written ones included.
    pub prompt_tokens: u64,
    /// Tokens of the answer, reasoning ones included.
    pub completion_tokens: u64,
    /// Their sum (0 when the upstream left it out; see [`Usage::total`]).
    pub total_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Answer tokens spent reasoning (OpenAI's
    /// `completion_tokens_details.reasoning_tokens`, the Responses API's
    /// `output_tokens_details.reasoning_tokens`, Gemini's
    /// `thoughtsTokenCount`).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// Every usage field of the dialects, as received.
#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    /// This type's own serialized names.
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// The Responses API's name for it.
    #[serde(default)]
    input_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    /// The Responses API's name for it.
    #[serde(default)]
    output_tokens_details: Option<CompletionDetails>,
    // Anthropic's fields, named here rather than through `#[serde(flatten)]`
    // (which buffers every field of the object first: twice the work).
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    /// Cache writes in OpenAI's shape (as OpenRouter reports them, and as
    /// the proxy's translations carry Anthropic's).
    #[serde(default, alias = "cache_creation_tokens")]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<RawUsage> for Usage {
    fn from(raw: RawUsage) -> Usage {
        let anthropic = AnthropicUsage {
            input_tokens: raw.input_tokens,
            output_tokens: raw.output_tokens,
            cache_read_input_tokens: raw.cache_read_input_tokens,
            cache_creation_input_tokens: raw.cache_creation_input_tokens,
        }
        .usage();
        let (prompt, input) = (&raw.prompt_tokens_details, &raw.input_tokens_details);
        let cached = prompt
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(input.as_ref().and_then(|d| d.cached_tokens))
            .or(raw.cached_tokens);
        let written = prompt
            .as_ref()
            .and_then(|d| d.cache_write_tokens)
            .or(input.as_ref().and_then(|d| d.cache_write_tokens))
            .or(raw.cache_write_tokens);
        let reasoning = raw
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .or(raw.output_tokens_details.and_then(|d| d.reasoning_tokens))
            .or(raw.reasoning_tokens);
        Usage {
            prompt_tokens: raw.prompt_tokens.unwrap_or(anthropic.prompt_tokens),
            completion_tokens: raw.completion_tokens.unwrap_or(anthropic.completion_tokens),
            total_tokens: raw.total_tokens.unwrap_or(0),
            cached_tokens: cached.unwrap_or(anthropic.cached_tokens),
            cache_write_tokens: written.unwrap_or(anthropic.cache_write_tokens),
            reasoning_tokens: reasoning.unwrap_or(0),
        }
    }
}

/// Anthropic's usage fields. A stream sends them in pieces — the input in
/// `message_start`, the output (and sometimes the final input) in
/// `message_delta` — and [`merge`](AnthropicUsage::merge) puts them together.
///
/// ```
/// use llm_router::__private::usage::AnthropicUsage;
///
/// let mut u: AnthropicUsage = serde_json::from_str(r#"{"input_tokens":7,"output_tokens":1}"#).unwrap();
/// u.merge(&serde_json::from_str(r#"{"output_tokens":20}"#).unwrap());
/// assert_eq!(u.usage().prompt_tokens, 7);
/// assert_eq!(u.usage().completion_tokens, 20);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens (cumulative in a stream).
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Take the fields a later event carries (a zero never hides a count
    /// already seen, except for the output, which only grows).
    pub fn merge(&mut self, later: &AnthropicUsage) {
        fn take(mine: &mut Option<u64>, later: Option<u64>) {
            if let Some(n) = later {
                if n > 0 || mine.is_none() {
                    *mine = Some(n);
                }
            }
        }
        take(&mut self.input_tokens, later.input_tokens);
        take(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        take(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        if later.output_tokens.is_some() {
            self.output_tokens = later.output_tokens;
        }
    }

    /// In OpenAI's terms.
    pub fn usage(&self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        // Upstream numbers: saturating, never overflowing.
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(written);
        let completion = self.output_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: cached,
            cache_write_tokens: written,
            reasoning_tokens: 0,
        }
    }
}

impl Usage {
    /// `total_tokens`, or the sum when the upstream left it out.
    pub fn total(&self) -> u64 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.prompt_tokens.saturating_add(self.completion_tokens)
        }
    }
}

/// Set on a request by a layer that reads the answer's [`UsageSlot`]
/// (`metrics`, `log`, `rate_limit` with a token budget). Without it the
/// upstream edge does not look for usage in the answer at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageWanted;

/// Set on a request by a layer that asked the upstream for stream usage on
/// the client's behalf: the usage-only chunk is then kept from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageRequestedByProxy;

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Usage>,
}

/// Parse the `usage` object of a JSON answer.
///
/// Answers put `usage` last, so the object is looked for from the end and
/// only it is parsed; the whole document is parsed only when that fails.
pub fn usage_of_json(body: &[u8]) -> Option<Usage> {
    const KEY: &[u8] = b"\"usage\"";
    // Built once: building a searcher costs about as much as a search.
    static FINDER: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(KEY));
    let mut before = body;
    while let Some(at) = FINDER.rfind(before) {
        let (head, rest) = before.split_at_checked(at).unwrap_or((&[], before));
        let rest = rest.get(KEY.len()..).unwrap_or_default();
        let rest = rest.trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":") {
            let mut values = serde_json::Deserializer::from_slice(value).into_iter::<Usage>();
            if let Some(Ok(usage)) = values.next() {
                return Some(usage);
            }
        }
        before = head;
    }
    serde_json::from_slice::<WithUsage>(body).ok()?.usage
}

/// Passes a JSON answer through frame by frame, keeping a copy (up to a cap)
/// to read its `usage` at the end.
#[derive(Debug)]
pub struct UsageTap<B: Body>(Observe<B, ReadUsage>);

impl<B: Body> UsageTap<B> {
    /// Tap `inner`, keeping at most `cap` bytes.
    pub fn new(inner: B, slot: UsageSlot, cap: usize) -> Self {
        let read = ReadUsage {
            kept: Kept::Nothing,
            cap,
            slot,
        };
        UsageTap(Observe::new(inner, read))
    }
}

opaque_body!(impl[B] UsageTap<B> where B: Body<Data = Bytes> + Unpin, B::Error: Into<BoxError>);

/// Keeps the answer (none once it grows past `cap`) and reads its usage when
/// all of it went out; a failed or dropped answer is not read.
#[derive(Debug)]
struct ReadUsage {
    kept: Kept,
    cap: usize,
    slot: UsageSlot,
}

/// What [`ReadUsage`] kept of the answer so far.
#[derive(Debug)]
enum Kept {
    Nothing,
    /// The first frame, shared, not copied: most answers come in one.
    One(Bytes),
    /// Frames copied together.
    Many(BytesMut),
    /// More than the cap: not read.
    Over,
}

impl Observer for ReadUsage {
    fn on_data(&mut self, data: &Bytes) {
        let total = match &self.kept {
            Kept::Nothing => data.len(),
            Kept::One(kept) => kept.len().saturating_add(data.len()),
            Kept::Many(kept) => kept.len().saturating_add(data.len()),
            Kept::Over => return,
        };
        if total > self.cap {
            self.kept = Kept::Over;
            return;
        }
        self.kept = match std::mem::replace(&mut self.kept, Kept::Over) {
            Kept::Nothing => Kept::One(data.clone()),
            Kept::One(first) => {
                let mut all = BytesMut::with_capacity(total);
                all.extend_from_slice(&first);
                all.extend_from_slice(data);
                Kept::Many(all)
            }
            Kept::Many(mut all) => {
                all.extend_from_slice(data);
                Kept::Many(all)
            }
            Kept::Over => Kept::Over,
        };
    }

    fn on_end(self, end: End<'_>) {
        if !matches!(end, End::Complete) {
            return;
        }
        let usage = match &self.kept {
            Kept::One(body) => usage_of_json(body),
            Kept::Many(body) => usage_of_json(body),
            Kept::Nothing | Kept::Over => None,
        };
        if let Some(usage) = usage {
            self.slot.set(usage);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::body::ProxyBody;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn tap_reads_usage_over_frames_up_to_its_cap() {
        use crate::body::testing::{Script, Step};
        let frames = [
            r#"{"id":"x","usage":{"prompt"#,
            r#"_tokens":4,"completion_tokens":6}}"#,
        ];
        for (cap, read) in [(1024, true), (40, false)] {
            let slot = UsageSlot::default();
            let script = Script::new(frames.map(|f| Step::Data(Bytes::from(f))));
            let tap = UsageTap::new(ProxyBody::new(script), slot.clone(), cap);
            let out = tap.collect().await.unwrap().to_bytes();
            assert_eq!(&out[..], frames.concat().as_bytes());
            assert_eq!(slot.get().map(|u| u.total()), read.then_some(10), "{cap}");
        }
    }

    #[tokio::test]
    async fn tap_reads_usage_and_passes_bytes() {
        let json =
            r#"{"id":"x","usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}"#;
        let slot = UsageSlot::default();
        let tap = UsageTap::new(ProxyBody::full(json), slot.clone(), 1024);
        let out = tap.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], json.as_bytes());
        assert_eq!(slot.get().unwrap().total(), 10);
    }

    #[test]
    fn anthropic_names() {
        let u = usage_of_json(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#).unwrap();
        assert_eq!(u.total(), 7);
    }

    #[test]
    fn cached_tokens_both_dialects() {
        let u = usage_of_json(
            br#"{"usage":{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0}}}"#,
        )
        .unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.total()),
            (100, 64, 105)
        );
        let u = usage_of_json(
            br#"{"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":20,"cache_read_input_tokens":30}}"#,
        )
        .unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens, u.total()), (60, 30, 65));
        assert_eq!(u.cache_write_tokens, 20);
        // The serialized form reads back the same.
        let again: Usage = serde_json::from_value(serde_json::to_value(u).unwrap()).unwrap();
        assert_eq!(again, u);
    }

    #[test]
    fn reasoning_and_cache_writes_every_dialect() {
        // Chat Completions.
        let u = usage_of_json(
            br#"{"usage":{"prompt_tokens":100,"completion_tokens":80,"total_tokens":180,"prompt_tokens_details":{"cached_tokens":10,"cache_write_tokens":30},"completion_tokens_details":{"reasoning_tokens":64}}}"#,
        )
        .unwrap();
        assert_eq!(
            (u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens),
            (10, 30, 64)
        );
        // Responses: input includes the cached tokens, output the reasoning.
        let u = usage_of_json(
            br#"{"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":40},"output_tokens":70,"output_tokens_details":{"reasoning_tokens":50},"total_tokens":170}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                u.reasoning_tokens
            ),
            (100, 40, 70, 50)
        );
        let again: Usage = serde_json::from_value(serde_json::to_value(u).unwrap()).unwrap();
        assert_eq!(again, u);
        // None reported: zeros.
        let u = usage_of_json(br#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#).unwrap();
        assert_eq!((u.cache_write_tokens, u.reasoning_tokens), (0, 0));
    }

    #[test]
    fn anthropic_stream_pieces_merge() {
        let mut u = AnthropicUsage::default();
        for piece in [
            r#"{"input_tokens":472,"output_tokens":2,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}"#,
            r#"{"output_tokens":89,"cache_read_input_tokens":128}"#,
        ] {
            u.merge(&serde_json::from_str(piece).unwrap());
        }
        let n = u.usage();
        assert_eq!(
            (n.prompt_tokens, n.completion_tokens, n.cached_tokens),
            (600, 89, 128)
        );
    }
}
