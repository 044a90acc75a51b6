//! A Responses client served through the pivot (see [`super`]): a
//! `POST /v1/responses` request becomes a Chat Completions request
//! ([`request_to_openai`]), and the pivot's answer (a `chat.completion`, a
//! `chat.completion.chunk` event stream, or an OpenAI error) becomes a
//! Response object or the Responses event stream ([`answer_from_openai`]).
//!
//! # Requests
//!
//! | Responses | pivot (Chat Completions) |
//! | --- | --- |
//! | `model` | `model` (as is) |
//! | `instructions` (a string) | a leading `system` message |
//! | `input` as a string | one `user` message |
//! | `message` items (also items with a `role` and no `type`), roles `system` / `developer` | `system` messages (one text part: a string; several: text parts) |
//! | role `user`: `input_text`, `input_image` (`image_url`, `detail`), `input_file` (`file_data` / `file_id`, `filename`), `input_audio` | `text`, `image_url`, `file`, `input_audio` parts |
//! | role `assistant`: `output_text` (or `input_text`) / `refusal` parts | `content` (the texts joined) / `refusal` |
//! | `function_call` items (`call_id`, `name`, `namespace`, `arguments`) | assistant `tool_calls` (`id` = `call_id`); consecutive calls, and a call right after an assistant message, join one assistant message |
//! | `function_call_output` (`output` a string or parts) | a `tool` message (`tool_call_id` = `call_id`; one text: a string, several: text parts); its images / files go to one `user` message after the run of tool messages (a tool message carries text only) |
//! | `tools`: `function` (`name`, `description`, `parameters`, `strict`) | `function` tools |
//! | `tools`: `namespace` (`name`, `description`, `tools`) | one `function` tool per nested function, named `<namespace>__<name>`, its description prefixed with the namespace's |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, name}` | the same (a name in a namespace is flattened) |
//! | `tool_choice` `{type: allowed_tools, mode, tools}` | `tools` narrowed to the allowed functions, `tool_choice` = `mode` |
//! | `parallel_tool_calls` | `parallel_tool_calls` (only with tools) |
//! | `text.format` `json_schema` (`name`, `schema`, `description`, `strict`) / `json_object` / `text` | `response_format` `json_schema` / `json_object` / nothing |
//! | `text.verbosity` | `verbosity` |
//! | `reasoning.effort` | `reasoning_effort` (as given) |
//! | `max_output_tokens` | `max_completion_tokens` |
//! | `top_logprobs` | `logprobs: true` + `top_logprobs` |
//! | `temperature`, `top_p`, `user`, `service_tier`, `prompt_cache_key`, `prompt_cache_retention` | the same |
//! | `safety_identifier` | `user` (when there is no `user`) |
//! | `stream: true` | `stream: true`, `stream_options: {include_usage: true}` (the usage goes into `response.completed`) |
//!
//! **Removed** and reported by [`dropped_tools`] (the integrator names them in
//! the `x-llm-router-dropped` header): the tools [`HOSTED_TOOLS`] that the
//! Responses API runs itself or answers with its own item types (web and file
//! search, code interpreter, computer use, image generation, MCP, tool search,
//! `local_shell`, `shell`, `apply_patch`), which no translated backend can run.
//! When that leaves no tool, `tool_choice` and `parallel_tool_calls` go too.
//!
//! **Dropped** as pure hints (nothing for a stateless Chat Completions call
//! to do with them): `metadata`, `store` (nothing is stored), `include`,
//! `client_metadata`, `truncation`, `background: false`, `stream_options`,
//! `max_tool_calls` (it counts hosted tool calls only), `prompt_cache_options`,
//! `reasoning.summary` / `generate_summary` / `context`, a tool's
//! `allowed_callers` / `defer_loading` / `output_schema`, items' `id` /
//! `status` / `phase`; `reasoning` input items (opaque reasoning, encrypted for
//! the model that wrote it) and `web_search_call` items (the record of a hosted
//! search; its findings are in the message after it).
//!
//! **Refused** with a 400 (code `unsupported_feature`) naming them: `previous_response_id`,
//! `conversation`, `prompt`, `background: true`, `context_management`,
//! `moderation` (they need the Responses API of a backend with
//! `api = "responses"`); `item_reference` and every other item type (e.g.
//! `compaction`, `custom_tool_call`); `custom` (freeform) tools, also inside a
//! namespace; unknown tool types; a `tool_choice` naming a hosted or custom
//! tool, or `required` / a function when no tool remains; `input_image` with a
//! `file_id`; `input_file` with a `file_url`; `reasoning.mode` other than
//! `standard`; unknown top-level parameters (code `unknown_parameter`, all
//! of them named).
//! Malformed requests are a 400 with code `invalid_request` naming the path
//! (`input[3].content[0]`); the dropped hints are type-checked too (some are
//! echoed in the Response).
//!
//! # Answers
//!
//! A `chat.completion` becomes a Response object: `id` `resp_<hex>`,
//! `object` `response`, `created_at` (the completion's `created`),
//! `completed_at`, `status` `completed`, or `incomplete` with
//! `incomplete_details.reason` `max_output_tokens` (`finish_reason` `length`)
//! or `content_filter` (`content_filter`) — then the last output item is
//! `incomplete` too, unless it is a call (a call is always `completed`: the
//! AI SDK parses no other status of a finished call). The answer's `model`
//! (else the request's). `output` items in this order: a `reasoning` item
//! (`rs_…`, the `reasoning_content` / `reasoning` text as one
//! `summary_text`), a `message` item (`msg_…`, an `output_text` part with
//! `annotations: []` and the `logprobs`, then a `refusal` part), one
//! `function_call` item per tool call (`fc_…`, `call_id` = the call's `id`; a
//! flattened `<namespace>__<name>` split back into `name` and `namespace`).
//! Nothing (no empty message) when the answer is empty. `usage`
//! (`input_tokens`, `input_tokens_details.cached_tokens` /
//! `cache_write_tokens`, `output_tokens`,
//! `output_tokens_details.reasoning_tokens`, `total_tokens`) is always an
//! object, zeros when the backend reported none (the AI SDK requires it).
//! The request's settings are echoed (`instructions`, `max_output_tokens`,
//! `max_tool_calls`, `parallel_tool_calls` (default `true`), `prompt_cache_key`,
//! `reasoning` (default `{effort: null, summary: null}`), `safety_identifier`,
//! `service_tier` (the answer's when it has one), `temperature`, `text`
//! (default format `text`), `tool_choice` (default `auto`), `tools` as sent
//! (hosted ones included), `top_logprobs`, `top_p`, `truncation` (default
//! `disabled`), `user`, `metadata` (default `{}`)), with `background: false`,
//! `store: false` (nothing is stored), `previous_response_id: null`, `error:
//! null`. Error answers (non-2xx) pass through unchanged: the OpenAI error
//! format is the Responses one. A 2xx body that is not JSON passes too.
//!
//! A `chat.completion.chunk` stream becomes the Responses event stream
//! ([`ResponsesStream`], `event: TYPE` + `data: JSON`, every event with
//! `type` and `sequence_number` counting from 0): `response.created` and
//! `response.in_progress` (status `in_progress`, `output: []`, `usage: null`)
//! at the first upstream event, then per output item in order (an item is
//! closed when the next one starts, or at the finish reason):
//!
//! | item | events |
//! | --- | --- |
//! | reasoning (`delta.reasoning_content` / `reasoning`) | `output_item.added`, `reasoning_summary_part.added`, `reasoning_summary_text.delta`…, `reasoning_summary_text.done`, `reasoning_summary_part.done`, `output_item.done` |
//! | message (`delta.content`, `delta.refusal`) | `output_item.added`, per part `content_part.added`, `output_text.delta`… (with the chunk's `logprobs`) or `refusal.delta`…, `output_text.done` / `refusal.done`, `content_part.done`; `output_item.done` |
//! | each tool call | `output_item.added` (status `in_progress`, `arguments: ""`), `function_call_arguments.delta`…, `function_call_arguments.done` (with the un-flattened `name`), `output_item.done` |
//!
//! then `response.completed` (or `response.incomplete`) with the whole
//! Response object, at `[DONE]` or at a clean end after a finish reason (the
//! usage chunk after the finish reason is waited for). An upstream error
//! event becomes `error` (`code`, `message`, `param`, and the same in a
//! nested `error` object with its `type`: openai-python reads the first,
//! the API sends and the AI SDK reads the second) then `response.failed`
//! (`error: {code, message}` with the upstream's code, which Codex acts on:
//! `context_length_exceeded`, `insufficient_quota`, `rate_limit_exceeded`).
//! An upstream that ends without a finish reason and without `[DONE]` gets
//! nothing more (the stream guard reports it). A tool call delta whose call
//! was already closed (an upstream interleaving its calls) ends the stream
//! with `error` + `response.failed` rather than a silently cut call; a call
//! `index` is bounded by [`check_index`](crate::upstream::limits::check_index);
//! a new index, or a new `id` under the index of the open call, starts a new
//! call (an `id` repeated on every delta does not); a call without an `id`
//! gets `call_<hex>`.
//!
//! The terminal event must carry the whole output, so the stream keeps the
//! text, arguments and log probabilities it has sent, up to
//! [`MAX_ACCUMULATED`] bytes (plus a small cost per item); a longer answer
//! ends with `error` (code `response_too_large`) and `response.failed`
//! rather than a truncated copy.
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::responses::inbound::{dropped_tools, request_to_openai};
//!
//! let request = json!({
//!     "model": "gpt-5",
//!     "instructions": "Be brief.",
//!     "input": "Hi",
//!     "tools": [{"type": "web_search"}],
//!     "max_output_tokens": 100,
//! });
//! let request = request.as_object().unwrap();
//! let chat = request_to_openai(request).unwrap();
//! assert_eq!(chat["messages"], json!([
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"},
//! ]));
//! assert_eq!(chat["max_completion_tokens"], 100);
//! assert!(chat.get("tools").is_none());
//! assert_eq!(dropped_tools(request), ["web_search"]);
//! ```
//!
//! ```
//! use http_body_util::BodyExt;
//! use serde_json::{json, Value};
//! use llm_router::__private::translate::responses::inbound::answer_from_openai;
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let request = json!({"model": "m", "input": "Hi"});
//! let completion = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
//!     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
//!                  "finish_reason": "stop"}],
//!     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
//! let answer = http::Response::new(ProxyBody::full(completion.to_string()));
//! let answer = answer_from_openai(request.as_object().unwrap(), answer);
//! let bytes = answer.into_body().collect().await.unwrap().to_bytes();
//! let response: Value = serde_json::from_slice(&bytes).unwrap();
//! assert_eq!(response["object"], "response");
//! assert_eq!(response["status"], "completed");
//! assert_eq!(response["output"][0]["content"][0]["text"], "Hello");
//! assert_eq!(response["usage"]["total_tokens"], 4);
//! # }
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod answer;
mod request;
mod stream;
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
mod tools;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use http::Response;
use serde_json::{Map, Value};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::upstream::translate::body::{is_event_stream, map_json, map_sse};

pub use request::{dropped_tools, request_to_openai};
pub use stream::ResponsesStream;

/// Joins a namespace and a function name into one function name:
/// `<namespace>__<name>`.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Tool types that the Responses API runs itself (or answers with item types
/// of its own): removed from a translated request and reported by
/// [`dropped_tools`].
pub const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "computer",
    "computer_use",
    "computer_use_preview",
    "image_generation",
    "mcp",
    "tool_search",
    "programmatic_tool_calling",
    "local_shell",
    "shell",
    "apply_patch",
];

/// Most text, arguments and log probabilities a streamed answer keeps to
/// repeat in its `.done` events and in `response.completed` (4 MiB); beyond
/// it the stream ends with `response.failed`.
pub const MAX_ACCUMULATED: usize = 4 << 20;

/// The pivot answer (a `chat.completion` JSON, a `chat.completion.chunk` SSE
/// stream, or an OpenAI error) as the Responses answer for `request` (the
/// client's Responses request body: its settings are echoed in the Response
/// object, and its `namespace` tools un-flatten the calls). Error answers
/// (non-2xx) pass through unchanged; a 2xx body that is not JSON too.
pub fn answer_from_openai(
    request: &Map<String, Value>,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return response;
    }
    let echo = answer::Echo::new(request);
    if is_event_stream(response.headers()) {
        return map_sse(response, ResponsesStream::with_echo(echo));
    }
    map_json(response, move |_, body| {
        match serde_json::from_slice::<Value>(&body) {
            Ok(completion) if completion.is_object() => {
                let response = echo.response_of_completion(&completion);
                serde_json::to_vec(&response)
                    .map(bytes::Bytes::from)
                    .unwrap_or(body)
            }
            _ => body,
        }
    })
}

fn invalid(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("invalid_request", message)
}

fn unsupported(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("unsupported_feature", message)
}

/// `<prefix>_<32 hex digits>` (ids, not secrets).
fn hex_id(prefix: &str) -> String {
    let a = RandomState::new().build_hasher().finish();
    let b = RandomState::new().build_hasher().finish();
    format!("{prefix}_{a:016x}{b:016x}")
}
