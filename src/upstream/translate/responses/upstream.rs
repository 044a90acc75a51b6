//! A pivot request served by a Responses API backend (see [`super`]): an
//! `openai` backend with `api = "responses"` is called at
//! `POST {base_url}/responses` for Chat Completions clients too (and, through
//! the pivot, Messages clients). [`request_from_openai`] turns the pivot into
//! a Responses request; [`answer_to_openai`] turns the Responses answer (a
//! Response object, the Responses event stream, or an error) back into the
//! pivot.
//!
//! # Requests
//!
//! | pivot (Chat Completions) | Responses API |
//! | --- | --- |
//! | `system` / `developer` messages before the first other message | `instructions` (each text joined with a blank line) |
//! | later `system` / `developer` messages | `message` items with that role, at their position |
//! | `user` content: string, `text`, `image_url` (`url`, `detail`), `file` (`file_data` or `file_id`) | `message` item with `input_text`, `input_image` (`image_url`, `detail`, default `auto`), `input_file` (`filename` (default `document.pdf`), `file_data` as a data URL (bare base64 is taken for a PDF), or `file_id`) |
//! | `assistant` content (string, `text` and `refusal` parts, `refusal`) | `message` item, role `assistant`, `output_text` / `refusal` parts (none when the message has no text) |
//! | assistant `tool_calls` | `function_call` items (`call_id`, `name`, `arguments`) after it |
//! | `tool` messages | `function_call_output` items (`call_id`, `output`: the text) |
//! | `tools` (`type: function`) | `{type: "function", name, description, parameters, strict}`; `strict` is `false` unless asked (the Responses API's default is strict), absent `parameters` an empty object schema |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, function: {name}}` / `allowed_tools` | the same values; `{type: "function", name}`; `{type: "allowed_tools", mode, tools}` |
//! | `response_format` `text` / `json_object` / `json_schema` | `text.format` `{type: "text"}` / `{type: "json_object"}` / `{type: "json_schema", name, description, schema, strict}` |
//! | `verbosity` | `text.verbosity` |
//! | `reasoning_effort` | `reasoning.effort` (merged into a `reasoning` object the request may carry, e.g. `{"summary": "auto"}` to get reasoning summaries back) |
//! | `max_completion_tokens` (else `max_tokens`) | `max_output_tokens` |
//! | `logprobs: true` / `top_logprobs` | `include: ["message.output_text.logprobs"]` / `top_logprobs` |
//! | `store` (absent: `false`, so nothing is kept on the backend's side unless the client asked) | `store` |
//! | `stream` | `stream` |
//! | `temperature`, `top_p`, `user`, `metadata`, `service_tier`, `parallel_tool_calls`, `prompt_cache_key`, `prompt_cache_retention`, `safety_identifier`, and any field not named in this table | copied as they are (the backend judges what it does not know) |
//!
//! Refused with a 400 naming the parameter: `n` > 1, `stop` (the Responses
//! API has no stop sequences), `logit_bias`, non-zero `presence_penalty` /
//! `frequency_penalty`, `audio` and `modalities` with audio, audio input
//! parts, legacy `functions` / `function_call` / `function` messages,
//! `prediction`, `web_search_options`, tools and tool calls of a type other
//! than `function`, and `input` / `instructions` (Responses parameters that a
//! Chat Completions request does not carry). Dropped as hints with no
//! Responses counterpart: `seed`, `stream_options` (a Responses stream always
//! reports usage), `n: 1`, `modalities: ["text"]`, message `name`s and the
//! `reasoning_content` of earlier assistant messages (a chat client has no
//! signed reasoning item to give back).
//!
//! # Answers
//!
//! | Responses API | pivot |
//! | --- | --- |
//! | `id` `resp_X`, `model`, `created_at` | `id` `chatcmpl-X` (fresh without one), `model`, `created` |
//! | `message` items: `output_text` parts (concatenated) / `refusal` parts | `content` / `refusal` (`content` null when there is only a refusal or tool calls) |
//! | `output_text` `logprobs` | `choices[0].logprobs.content` |
//! | `function_call` items | `tool_calls` `{id: call_id, type: "function", function: {name, arguments}}` |
//! | `reasoning` items: `summary` texts, then `content` texts | `reasoning_content` (pieces joined with a blank line) |
//! | `status` `completed` | `finish_reason` `stop`, or `tool_calls` when there are function calls |
//! | `status` `incomplete`, `incomplete_details.reason` `content_filter` / anything else (`max_output_tokens`) | `content_filter` / `length` |
//! | `usage` `input_tokens`, `output_tokens`, `total_tokens`, `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens` | `prompt_tokens`, `completion_tokens`, `total_tokens`, `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens` |
//! | `service_tier` | `service_tier` |
//!
//! Hosted-tool items and annotations are left out: the request never offers
//! hosted tools.
//!
//! **A Response that did not finish** (`status` `failed`, `cancelled`, or
//! still `queued` / `in_progress`) becomes the pivot's error body
//! `{"error": {message, type: "server_error", param: null, code}}` with its
//! `error.message` and `error.code` (else `response_<status>`). Its HTTP status
//! stays the upstream's 2xx: the head goes out before the body is read
//! ([`answer_to_openai`] cannot wait for it), the same reason a streamed
//! failure is an error event. A non-2xx answer is already an OpenAI error
//! body and passes through unchanged.
//!
//! # Streams
//!
//! [`ResponsesToOpenAiStream`], event by event, with bounded memory:
//!
//! | Responses event | `chat.completion.chunk` |
//! | --- | --- |
//! | `response.created` | id, model and `created` for every chunk; delta `{role: "assistant", content: ""}` |
//! | `response.output_text.delta` | delta `content` (with `logprobs`) |
//! | `response.refusal.delta` | delta `refusal` |
//! | `response.reasoning_summary_text.delta`, `response.reasoning_text.delta` | delta `reasoning_content` (a new part starts with a blank line) |
//! | `response.output_item.added` (`function_call`) | delta `tool_calls: [{index: k, id: call_id, type: "function", function: {name, arguments: ""}}]` (the k-th call of the answer) |
//! | `response.function_call_arguments.delta` | delta `tool_calls: [{index: k, function: {arguments}}]` |
//! | `response.function_call_arguments.done`, `response.output_item.done` (`function_call`) | the whole arguments, only when no delta carried them |
//! | `response.completed` / `response.incomplete` | an empty delta with the finish reason, the usage-only chunk (`choices: []`) when `include_usage`, `data: [DONE]` |
//! | `response.failed` / `error` | `data: {"error": {message, type: "server_error", param, code}}`, nothing after it |
//! | anything else (`response.in_progress`, `content_part.*`, `*.done`, hosted tool progress, ...) | nothing |
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::responses::upstream::request_from_openai;
//!
//! let pivot = json!({"model": "gpt-5", "max_tokens": 100, "messages": [
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"}]});
//! let r = request_from_openai(pivot.as_object().unwrap()).unwrap();
//! assert_eq!(r["instructions"], "Be brief.");
//! assert_eq!(r["input"], json!([{"type": "message", "role": "user",
//!     "content": [{"type": "input_text", "text": "Hi"}]}]));
//! assert_eq!(r["max_output_tokens"], 100);
//! assert_eq!(r["store"], false);
//!
//! // What the Responses API cannot express is a 400 naming it.
//! let pivot = json!({"model": "gpt-5", "stop": ["END"], "messages": []});
//! let e = request_from_openai(pivot.as_object().unwrap()).unwrap_err();
//! assert_eq!(e.status(), 400);
//! assert!(e.to_string().contains("`stop`"));
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::Response;
use serde_json::Value;

use crate::body::ProxyBody;
use crate::upstream::translate::body::{is_event_stream, map_json, map_sse};

pub use answer::response_to_openai;
pub use request::request_from_openai;
pub use stream::ResponsesToOpenAiStream;

/// The Responses API answer (a Response object, the Responses event
/// stream, or an error) as the pivot: a `chat.completion`, or
/// `chat.completion.chunk` events ending with `data: [DONE]`.
/// `include_usage` adds the usage-only chunk (`choices: []`) to streams. A
/// non-2xx answer passes through unchanged (it is an OpenAI error already).
pub fn answer_to_openai(response: Response<ProxyBody>, include_usage: bool) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return response;
    }
    if is_event_stream(response.headers()) {
        return map_sse(response, ResponsesToOpenAiStream::new(include_usage));
    }
    map_json(response, |_, body| {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v)
                if v.get("object").and_then(Value::as_str) == Some("response")
                    || v.get("output").is_some_and(Value::is_array) =>
            {
                Bytes::from(serde_json::to_vec(&response_to_openai(&v)).unwrap_or_default())
            }
            // Not a Response (an error body sent with a 2xx, say): as it
            // came, for the client to see.
            _ => body,
        }
    })
}
