//! Local input-token estimates for `POST /v1/messages/count_tokens` (Anthropic)
//! and `POST /v1/responses/input_tokens` (OpenAI Responses), answered by the
//! proxy itself for backends that cannot count.
//!
//! Texts are counted with a real tokenizer: OpenAI's `o200k_base` encoding
//! (the GPT-4o / GPT-5 family), through GitHub's linear-time `bpe-openai`,
//! loaded once at the first count. For other models (Claude, Gemini, Llama…)
//! it is an estimate of the right size, not their exact count; the answer says
//! so with the header `x-llm-router-estimate: true`.
//!
//! What counts:
//!
//! | request part | counted as |
//! | --- | --- |
//! | Anthropic `system` (string or text blocks), Responses `instructions` | its text + [`MESSAGE_OVERHEAD`] |
//! | each message (Anthropic `messages[]`, Responses `message` items, a string `input`) | its texts + [`MESSAGE_OVERHEAD`] (chat framing and role, as in OpenAI's cookbook); [`REPLY_PRIMING`] once per request |
//! | `text` blocks, `input_text` / `output_text` / `refusal` parts | their text |
//! | `tool_use` / `server_tool_use`, `function_call` / `custom_tool_call` | name + input (arguments) as JSON text |
//! | `tool_result`, `function_call_output` / `custom_tool_call_output` | their content (string or blocks/parts) |
//! | `thinking` blocks | their text, in the last assistant message only (Anthropic ignores earlier turns' thinking); `redacted_thinking`: a quarter of its data's length there |
//! | `reasoning` items | their `summary` and `content` texts; `encrypted_content` is opaque and not counted |
//! | images (`image`, `input_image`) | [`IMAGE_TOKENS`] each (Anthropic scales an image to at most ~1.15 MP ≈ 1,600 tokens); [`IMAGE_LOW_DETAIL_TOKENS`] for `detail: "low"` |
//! | PDF documents / files given as base64 | [`PDF_TOKENS_PER_CHUNK`] per started [`PDF_CHUNK_BYTES`] of decoded data (Anthropic: 1,500–3,000 text tokens per page plus the page as an image) |
//! | documents / files by URL or file id | [`FLAT_DOCUMENT_TOKENS`] (the proxy cannot see them) |
//! | plain-text documents (`source.type` `text` / `content`) | their text (+ `title`, `context`) |
//! | tool definitions | name + description + JSON schema text (`input_schema`, `parameters`, a custom tool's `format`) + [`TOOL_OVERHEAD`] each; Responses `namespace` tools: each inner tool too; hosted / server tools: their JSON text + [`TOOL_OVERHEAD`] |
//! | Anthropic tools present | + [`ANTHROPIC_TOOL_PROMPT`] (346; 313 with `tool_choice` `any` / `tool`): the tool-use system prompt Anthropic documents |
//! | a structured-output schema (Anthropic `output_config.format` / `output_format`, Responses `text.format`) | its JSON text |
//! | any other block, part or item (`web_search_tool_result`, `mcp_call`, …) | its JSON text |
//!
//! Not counted: the parameters (`model`, `max_tokens`, `thinking`,
//! `reasoning`, `tool_choice`, `metadata`, `stream`, …), `mcp_servers`,
//! `previous_response_id`, `conversation` and `prompt` (stored server-side:
//! the proxy cannot see them), `item_reference` items (their overhead only).
//!
//! Untrusted input never panics: only the shapes above are walked, to a fixed
//! depth (blocks inside a `tool_result`, tools inside a `namespace`, nothing
//! deeper); a value of an unexpected type is counted as its JSON text; the
//! arithmetic saturates. Counting is linear in the text's size (100 KB of
//! text: a few milliseconds in a release build).
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::tokens::{estimate, CountFormat};
//!
//! let body = json!({"model": "claude-x", "messages": [
//!     {"role": "user", "content": "hello world"}]});
//! // "hello world" is 2 tokens, + 4 for the message, + 3 to prime the reply.
//! assert_eq!(estimate(CountFormat::Anthropic, body.as_object().unwrap()), 9);
//!
//! let body = json!({"model": "gpt-x", "input": "hello world", "instructions": "Be brief."});
//! assert_eq!(estimate(CountFormat::Responses, body.as_object().unwrap()), 2 + 4 + 3 + 4 + 3);
//! ```

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod anthropic;
mod cache;
mod responses;
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use serde_json::{Map, Value};

use crate::body::{BoxError, ProxyBody};
pub use cache::CountCache;

/// Tokens of chat framing per message (start and end markers, the role), as
/// OpenAI's cookbook counts them (3 + 1 for the role).
pub const MESSAGE_OVERHEAD: u64 = 4;
/// Tokens that prime the reply, once per request (OpenAI's cookbook).
pub const REPLY_PRIMING: u64 = 3;
/// Tokens of framing per tool definition, besides its name, description and schema.
pub const TOOL_OVERHEAD: u64 = 8;
/// The tool-use system prompt Anthropic adds when tools are given (its docs:
/// 346 tokens with `tool_choice` `auto` / `none` on current Claude models).
pub const ANTHROPIC_TOOL_PROMPT: u64 = 346;
/// The same with `tool_choice` `any` or `tool`.
pub const ANTHROPIC_TOOL_PROMPT_FORCED: u64 = 313;
/// One image: Anthropic scales images to at most ~1.15 megapixels, which it
/// bills at about (width × height) / 750 ≈ 1,600 tokens.
pub const IMAGE_TOKENS: u64 = 1600;
/// One image sent with `detail: "low"` (OpenAI's flat rate).
pub const IMAGE_LOW_DETAIL_TOKENS: u64 = 85;
/// Decoded bytes of a base64 PDF per [`PDF_TOKENS_PER_CHUNK`].
pub const PDF_CHUNK_BYTES: u64 = 100 * 1024;
/// Tokens per started [`PDF_CHUNK_BYTES`] of a base64 PDF (about one page:
/// 1,500–3,000 text tokens plus the page as an image).
pub const PDF_TOKENS_PER_CHUNK: u64 = 3000;
/// A document or file the proxy cannot see (a URL, a file id).
pub const FLAT_DOCUMENT_TOKENS: u64 = 3000;
/// Above this many bytes of text (keys and strings), [`estimate_response`]
/// counts on tokio's blocking threads rather than inline.
pub const INLINE_TEXT_LIMIT: usize = 16 * 1024;

/// The response header that marks a local estimate.
pub const ESTIMATE_HEADER: &str = "x-llm-router-estimate";

/// Which request shape: an Anthropic count_tokens body (model, messages,
/// system, tools, tool_choice, thinking, ...) or a Responses input_tokens
/// body (model, input, instructions, tools, text, reasoning, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountFormat {
    /// `POST /v1/messages/count_tokens`.
    Anthropic,
    /// `POST /v1/responses/input_tokens`.
    Responses,
}

/// Estimate the input tokens of `body` (sync; CPU proportional to the text
/// size). The first call loads the tokenizer (~60 ms in a release build).
pub fn estimate(format: CountFormat, body: &Map<String, Value>) -> u64 {
    let mut counter = Counter::default();
    match format {
        CountFormat::Anthropic => anthropic::count(&mut counter, body),
        CountFormat::Responses => responses::count(&mut counter, body),
    }
    counter.total
}

/// The local answer: 200, `content-type: application/json`,
/// `x-llm-router-estimate: true`, body `{"input_tokens": N}` (Anthropic) or
/// `{"object": "response.input_tokens", "input_tokens": N}` (Responses).
///
/// The head is ready at once. The body is counted inline when the request
/// holds little text and the tokenizer is loaded; otherwise on tokio's
/// blocking threads (`spawn_blocking`), and the body resolves when counting
/// finishes.
///
/// ```
/// use std::sync::Arc;
/// use http_body_util::BodyExt;
/// use llm_router::__private::tokens::{estimate_response, CountFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = serde_json::json!({"model": "m", "input": "hello world"});
/// let body = Arc::new(body.as_object().unwrap().clone());
/// let response = estimate_response(CountFormat::Responses, body);
/// assert_eq!(response.headers()["x-llm-router-estimate"], "true");
/// let bytes = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(&bytes[..], br#"{"object":"response.input_tokens","input_tokens":9}"#);
/// # }
/// ```
pub fn estimate_response(
    format: CountFormat,
    body: Arc<Map<String, Value>>,
) -> Response<ProxyBody> {
    let inline = tokenizer_loaded() && !text_exceeds(&body, INLINE_TEXT_LIMIT);
    let proxy_body = if inline {
        ProxyBody::full(answer_bytes(format, estimate(format, &body)))
    } else {
        let frame = async move {
            let tokens = match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || {
                        #[cfg(test)]
                        tests::note_count_thread();
                        estimate(format, &body)
                    })
                    .await
                    .map_err(|e| -> BoxError { Box::new(e) })?,
                // Not in a runtime (only when polled by hand): count here.
                Err(_) => estimate(format, &body),
            };
            Ok::<_, BoxError>(Frame::data(answer_bytes(format, tokens)))
        };
        ProxyBody::new(StreamBody::new(futures_util::stream::once(frame)))
    };
    let mut response = Response::new(proxy_body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ESTIMATE_HEADER, HeaderValue::from_static("true"));
    response
}

fn answer_bytes(format: CountFormat, tokens: u64) -> Bytes {
    Bytes::from(match format {
        CountFormat::Anthropic => format!(r#"{{"input_tokens":{tokens}}}"#),
        CountFormat::Responses => {
            format!(r#"{{"object":"response.input_tokens","input_tokens":{tokens}}}"#)
        }
    })
}

// ---------------------------------------------------------------------------
// The tokenizer

static TOKENIZER: OnceLock<&'static bpe_openai::Tokenizer> = OnceLock::new();

fn tokenizer() -> &'static bpe_openai::Tokenizer {
    TOKENIZER.get_or_init(bpe_openai::o200k_base)
}

/// Load the tokenizer on a thread of its own, unless it is loaded: its
/// tables take ~60 ms and ~70 MiB to build, which a request that needs a
/// count (a budget's admission) would otherwise wait for on a runtime
/// thread. The stack calls this when it builds a `budget` layer.
pub fn warm_up() {
    if tokenizer_loaded() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("tokenizer-load".into())
        .spawn(|| {
            tokenizer();
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "the tokenizer will load on first use");
    }
}

fn tokenizer_loaded() -> bool {
    TOKENIZER.get().is_some()
}

/// Counts of texts seen lately (agent clients send the conversation again
/// on every turn).
static COUNTS: OnceLock<CountCache> = OnceLock::new();

/// The o200k_base token count of `text` (remembered for a while, see
/// [`CountCache`]). Should the tokenizer ever panic, the count falls back to
/// a byte estimate (4 bytes a token) instead.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    COUNTS
        .get_or_init(CountCache::default)
        .count(text, count_fresh)
}

/// [`count_text`] without the cache.
fn count_fresh(text: &str) -> u64 {
    match catch_unwind(AssertUnwindSafe(|| tokenizer().count(text))) {
        Ok(n) => u64::try_from(n).unwrap_or(u64::MAX),
        Err(_) => bytes_estimate(text.len()),
    }
}

/// Whether [`estimate`] of `body` is cheap enough to run inline on a
/// request's path: the tokenizer is loaded and the body holds at most
/// [`INLINE_TEXT_LIMIT`] bytes of text. Otherwise count on tokio's blocking
/// threads, as [`estimate_response`] does.
pub fn counts_inline(body: &Map<String, Value>) -> bool {
    tokenizer_loaded() && !text_exceeds(body, INLINE_TEXT_LIMIT)
}

/// About 4 bytes a token.
pub fn bytes_estimate(len: usize) -> u64 {
    u64::try_from(len.div_ceil(4)).unwrap_or(u64::MAX)
}

/// The keys whose strings are text a model reads, in every client format:
/// message `content` and `text` parts, `system`, `instructions`, `input`,
/// `prompt`, tool call `arguments`, `thinking`, `refusal`, `summary`.
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "system",
    "instructions",
    "input",
    "prompt",
    "arguments",
    "thinking",
    "refusal",
    "summary",
];

/// A quick estimate of a request's input tokens, without the tokenizer: the
/// bytes of its text ([`TEXT_KEYS`]; not images, files, tool schemas or
/// parameters) at 4 bytes a token. What a stream cut short before its
/// upstream reported the prompt's tokens is charged for its input (see
/// [`UsageSlot`](crate::usage::UsageSlot)). Iterative, linear in the body.
pub(crate) fn text_estimate(body: &Map<String, Value>) -> u64 {
    let is_text = |key: &str| TEXT_KEYS.contains(&key);
    let mut size = 0usize;
    let mut stack: Vec<(&Value, bool)> = body.iter().map(|(k, v)| (v, is_text(k))).collect();
    while let Some((value, text)) = stack.pop() {
        match value {
            Value::String(s) if text => size = size.saturating_add(s.len()),
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, text))),
            Value::Object(map) => stack.extend(map.iter().map(|(k, v)| (v, is_text(k)))),
            _ => {}
        }
    }
    bytes_estimate(size)
}

/// Whether the keys and strings of `value` add up to more than `limit` bytes.
/// Iterative (no recursion), and stops as soon as the limit is passed.
fn text_exceeds(body: &Map<String, Value>, limit: usize) -> bool {
    let mut size = 0usize;
    let mut stack: Vec<&Value> = Vec::new();
    for (key, value) in body {
        size = size.saturating_add(key.len());
        stack.push(value);
    }
    while let Some(value) = stack.pop() {
        if size > limit {
            return true;
        }
        match value {
            Value::String(s) => size = size.saturating_add(s.len()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, value) in map {
                    size = size.saturating_add(key.len());
                    stack.push(value);
                }
            }
            Value::Number(_) => size = size.saturating_add(8),
            Value::Bool(_) | Value::Null => size = size.saturating_add(4),
        }
    }
    size > limit
}

/// The running count, saturating.
#[derive(Default)]
struct Counter {
    total: u64,
}

impl Counter {
    fn add(&mut self, tokens: u64) {
        self.total = self.total.saturating_add(tokens);
    }

    fn text(&mut self, text: &str) {
        self.add(count_text(text));
    }

    /// A string's text; anything else as its JSON text.
    fn text_or_json(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.text(s),
            other => self.json(other),
        }
    }

    /// `value` as compact JSON text (how a schema or arguments reach a model).
    fn json(&mut self, value: &Value) {
        match value {
            Value::Null => {}
            // With its quotes and escapes, like any JSON value.
            Value::String(s) => self.text(&serde_json::to_string(s).unwrap_or_default()),
            other => self.text(&other.to_string()),
        }
    }

    /// An object as compact JSON text.
    fn json_map(&mut self, object: &Map<String, Value>) {
        self.text(&serde_json::to_string(object).unwrap_or_default());
    }

    /// A string field's text, if present.
    fn field(&mut self, object: &Map<String, Value>, key: &str) {
        if let Some(value) = object.get(key) {
            self.text_or_json(value);
        }
    }

    fn image(&mut self, detail: Option<&str>) {
        self.add(if detail == Some("low") {
            IMAGE_LOW_DETAIL_TOKENS
        } else {
            IMAGE_TOKENS
        });
    }

    /// A base64 PDF (or any binary document): by its decoded size.
    fn base64_document(&mut self, data: &str) {
        // A data URL's header is not data.
        let payload = data.split_once(";base64,").map_or(data, |(_, rest)| rest);
        let decoded = u64::try_from((payload.len() / 4).saturating_mul(3)).unwrap_or(u64::MAX);
        let chunks = decoded.div_ceil(PDF_CHUNK_BYTES).max(1);
        self.add(chunks.saturating_mul(PDF_TOKENS_PER_CHUNK));
    }
}
