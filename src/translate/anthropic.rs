//! Anthropic Messages <-> OpenAI Chat Completions (the pivot).
//!
//! Requests, answers, errors and streamed events, both ways:
//!
//! | pivot (OpenAI) | Anthropic |
//! | --- | --- |
//! | `system` / `developer` messages | `system` (text blocks, in order) |
//! | `user` content parts: `text`, `image_url` (data URL or http URL), `file` (PDF data) | `text`, `image` (`base64` / `url` source), `document` blocks |
//! | assistant `tool_calls` (arguments as a JSON string) | `tool_use` blocks (`input` object) |
//! | `tool` messages (consecutive ones merged) | `tool_result` blocks at the start of one user turn |
//! | `tools` (`type: function`) / `tool_choice` `auto`, `none`, `required`, named | `tools` (`input_schema`) / `tool_choice` `auto`, `none`, `any`, `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `max_completion_tokens` / `max_tokens` (absent: [`DEFAULT_MAX_TOKENS`]) | `max_tokens` |
//! | `stop` | `stop_sequences` |
//! | `temperature` (0–2, clamped to Anthropic's 0–1), `top_p`, `top_k` | the same |
//! | `user` | `metadata.user_id` |
//! | `reasoning_effort` low / medium / high | `thinking` with a 1024 / 4096 / 16384 token budget (kept below `max_tokens`) |
//! | `response_format` `json_object` / `json_schema` | a system instruction asking for JSON only (with the schema) |
//! | `finish_reason` `stop` / `length` / `tool_calls` / `content_filter` | `stop_reason` `end_turn` (or `stop_sequence`) / `max_tokens` / `tool_use` / `refusal` |
//! | `usage.prompt_tokens` (cached included), `prompt_tokens_details.cached_tokens` | `usage.input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` |
//! | `reasoning_content` | `thinking` blocks |
//!
//! What one side cannot express is a 400 naming it, never silently dropped:
//! `n` > 1, `logprobs`, `logit_bias`, non-zero `presence_penalty` /
//! `frequency_penalty`, audio input or output, legacy `functions`, a tool type
//! other than `function`, a content part other than text / image / PDF file
//! (towards Anthropic); server tools (`web_search_…`, `bash_…`, …), MCP
//! servers, images inside a tool result, document URLs (towards OpenAI).
//! Dropped on purpose because they carry no meaning for the other side:
//! message `name`s, `cache_control` hints towards OpenAI, `seed`, `store`,
//! OpenAI's `metadata`, `service_tier`, earlier `thinking` blocks towards
//! OpenAI (only Anthropic can read its signed reasoning). A `tool_result`
//! with `is_error` reaches OpenAI prefixed with `Error: `.
//!
//! Streams are translated event by event ([`AnthropicToOpenAiStream`],
//! [`OpenAiToAnthropicStream`]) with bounded memory.
//!
//! ```
//! use serde_json::{json, Value};
//! use llm_router::translate::anthropic::request_from_openai;
//!
//! let openai = json!({"model": "claude", "messages": [
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"}]});
//! let a = request_from_openai(openai.as_object().unwrap()).unwrap();
//! assert_eq!(a["system"], "Be brief.");
//! assert_eq!(a["max_tokens"], 4096);
//! assert_eq!(a["messages"][0]["content"][0]["text"], "Hi");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::error::ProxyError;

mod answer;
mod inbound;
mod stream;
mod upstream;

pub use answer::{
    answer_from_openai, answer_to_openai, error_from_openai, error_to_openai,
    finish_reason_from_stop, response_from_openai, response_to_openai, stop_reason_from_finish,
};
pub use inbound::request_to_openai;
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
pub use upstream::request_from_openai;

/// `max_tokens` sent to Anthropic when an OpenAI client sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The `anthropic-version` header sent when the client sent none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

fn unsupported(what: impl std::fmt::Display) -> ProxyError {
    ProxyError::bad_request(
        "unsupported_feature",
        format!("{what} cannot be translated between the OpenAI and Anthropic formats"),
    )
}

fn invalid(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("invalid_request", message)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn fresh_id(prefix: &str) -> String {
    format!(
        "{prefix}_llmrouter_{:x}{:04x}",
        now(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// `v[key] = value` for an object (built here, so always one), without
/// `IndexMut`'s panic path.
fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.into(), value);
    }
}

fn is_null_or_absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
