//! Anthropic Messages <-> OpenAI Chat Completions (the pivot).
//!
//! Requests, answers, errors and streamed events, both ways:
//!
//! | pivot (OpenAI) | Anthropic |
//! | --- | --- |
//! | leading `system` / `developer` messages | `system` (text blocks, in order; a string for one block without `cache_control`) |
//! | a later `system` / `developer` message (towards Anthropic) | lifted into `system`, after the earlier blocks: Anthropic's stable API has no system turn |
//! | a `system` message at the same position (towards the pivot) | a `role: "system"` message inside `messages` (string or text blocks), or a `mid_conv_system` block in a user turn (placed after the turn's tool results) |
//! | `user` content parts: `text`, `image_url` (data URL or http URL), `file` (PDF data) | `text`, `image` (`base64` / `url` source), `document` blocks |
//! | assistant `tool_calls` (arguments as a JSON string) | `tool_use` blocks (`input` object) |
//! | `tool` messages (consecutive ones merged) | `tool_result` blocks at the start of one user turn |
//! | `tools` (`type: function`) / `tool_choice` `auto`, `none`, `required`, named | `tools` (`input_schema`) / `tool_choice` `auto`, `none`, `any`, `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `max_completion_tokens` / `max_tokens` (towards Anthropic; absent: [`DEFAULT_MAX_TOKENS`]); `max_tokens` (towards the pivot — the OpenAI provider renames it for reasoning models, see [`super::reasoning`]) | `max_tokens` |
//! | `stop` | `stop_sequences` |
//! | `temperature` (0–2, clamped to Anthropic's 0–1), `top_p`, `top_k` | the same |
//! | `user` | `metadata.user_id` |
//! | `reasoning_effort` low / medium / high (towards Anthropic) | `thinking` with a 1024 / 4096 / 16384 token budget (kept below `max_tokens`) |
//! | `reasoning_effort` low / medium / high / high / high (towards the pivot) | `output_config.effort` low / medium / high / xhigh / max — with `thinking` `adaptive`, `enabled` or absent. OpenAI's top level every reasoning model takes is `high`, hence `xhigh` and `max` as `high`. The effort of a `role: "system"` message's `output_config` after the last assistant turn wins over the request's |
//! | `reasoning_effort` low (< 2048) / medium (< 8192) / high | `thinking: {type: "enabled", budget_tokens}` without an effort |
//! | no `reasoning_effort` (the model's default) | `thinking` `adaptive` without an effort; `thinking` `disabled` (any effort) |
//! | `response_format` `json_object` / `json_schema` (towards Anthropic) | a system instruction asking for JSON only (with the schema) |
//! | `response_format` `json_schema` named `output` (towards the pivot) | `output_config.format` (or the beta's top-level `output_format`) `{type: "json_schema", schema}` |
//! | `finish_reason` `stop` / `length` / `tool_calls` / `content_filter` | `stop_reason` `end_turn` (or `stop_sequence`) / `max_tokens` / `tool_use` / `refusal` |
//! | `usage.prompt_tokens` (cached included), `prompt_tokens_details.cached_tokens`, `prompt_tokens_details.cache_write_tokens` | `usage.input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens` |
//! | `reasoning_content` | `thinking` blocks |
//!
//! What one side cannot express is a 400 naming it, never silently dropped:
//! `n` > 1, `logprobs`, `logit_bias`, non-zero `presence_penalty` /
//! `frequency_penalty`, audio input or output, legacy `functions`, a tool type
//! other than `function`, a content part other than text / image / PDF file
//! (towards Anthropic); server tools (`web_search_…`, `bash_…`, …), MCP
//! servers, images inside a tool result, document URLs, a non-text block in
//! a system prompt, `output_config` keys other than `effort`, `format` and
//! `task_budget`, an output format other than `json_schema`, an unknown
//! `thinking.type` or effort (towards OpenAI).
//! Dropped on purpose because they carry no meaning for the other side:
//! message `name`s, `cache_control` hints towards OpenAI, `seed`, `store`,
//! OpenAI's `metadata`, `service_tier`, earlier `thinking` blocks towards
//! OpenAI (only Anthropic can read its signed reasoning), `thinking.display`,
//! `output_config.task_budget` (advisory: a countdown of the agent loop's
//! tokens that only Anthropic shows its model), and `context_management`
//! (server-side context editing — clearing old thinking or tool results —
//! that no other backend does: a hint about the prompt's upkeep, not about
//! the answer). A `tool_result` with `is_error`
//! reaches OpenAI prefixed with `Error: `.
//!
//! The translation lives in submodules: requests towards Anthropic
//! (`upstream`), Anthropic clients' requests towards the pivot (`inbound`),
//! whole answers and errors (`answer`) and streams (`stream`).
//!
//! Streams are translated event by event ([`AnthropicToOpenAiStream`],
//! [`OpenAiToAnthropicStream`]) with bounded memory.
//!
//! ```
//! use serde_json::{json, Value};
//! use llm_router::__private::translate::anthropic::request_from_openai;
//!
//! let openai = json!({"model": "claude", "messages": [
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"}]});
//! let a = request_from_openai(openai.as_object().unwrap()).unwrap();
//! assert_eq!(a["system"], "Be brief.");
//! assert_eq!(a["max_tokens"], 4096);
//! assert_eq!(a["messages"][0]["content"][0]["text"], "Hi");
//! ```
//!
//! And the other way, from an Anthropic client such as Claude Code:
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::anthropic::request_to_openai;
//!
//! let anthropic = json!({"model": "claude", "max_tokens": 64000,
//!     "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"},
//!     "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
//!     "messages": [
//!         {"role": "user", "content": "Hi"},
//!         {"role": "system", "content": "The background task finished."}]});
//! let pivot = request_to_openai(anthropic.as_object().unwrap()).unwrap();
//! assert_eq!(pivot["messages"][1], json!({"role": "system", "content": "The background task finished."}));
//! assert_eq!(pivot["reasoning_effort"], "high");
//! assert_eq!(pivot["max_tokens"], 64000);
//! assert!(pivot.get("context_management").is_none());
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
mod agent_tests;
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
