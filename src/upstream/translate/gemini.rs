//! OpenAI Chat Completions (the pivot) <-> Google Gemini `generateContent`.
//!
//! **Requests** ([`request_to_gemini`]): system (and developer) messages
//! before the conversation become `systemInstruction` (see the table for
//! later ones); `assistant` is the `model` role; user images
//! given as `data:` URLs become `inlineData` (other URLs `fileData`); tools
//! become `functionDeclarations` (their JSON schemas reduced to the subset
//! Gemini accepts), `tool_choice` becomes `toolConfig`; assistant
//! `tool_calls` become `functionCall` parts and `tool` messages
//! `functionResponse` parts (consecutive results in one turn, as Gemini
//! wants for parallel calls); `temperature`, `top_p`, `max_tokens` /
//! `max_completion_tokens`, `stop`, `n`, `seed`, the penalties and
//! `response_format` (`json_object`, `json_schema`) go into
//! `generationConfig`. Gemini 3 models want the thought signature of earlier
//! function calls back; a stateless proxy does not have it, so replayed calls
//! carry Google's documented `skip_thought_signature_validator` value.
//!
//! | pivot | Gemini |
//! | --- | --- |
//! | `system` / `developer` messages before any user, assistant or tool message | `systemInstruction`, one part per text part |
//! | a `system` / `developer` message after the conversation started (an Anthropic client's mid-conversation system message, a Responses client's later `developer` item) | a user text part `<system>\n…\n</system>` at its position: joined to the user turn before it (and the user text after it joins that turn), or a user turn of its own after a turn of function responses, which Gemini wants to hold only the responses (Gemini has no system turn; consecutive user turns are left as they come, as before) |
//! | `tool` messages in a row | one user turn of `functionResponse` parts, nothing else |
//! | `reasoning_effort` | not sent: Gemini models pick their own thinking, and a `thinkingConfig` is a 400 on models that cannot think (a hint: the model decides) |
//!
//! **Answers** ([`answer_to_openai`], [`GeminiStream`]): text parts become
//! the content (thought parts are left out), `functionCall` parts become
//! `tool_calls` with generated ids; `STOP` is `stop` (`tool_calls` when the
//! model called a function), `MAX_TOKENS` is `length`, and `SAFETY`,
//! `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII` and
//! `IMAGE_SAFETY` are `content_filter`. **A prompt blocked by Gemini's
//! safety filters** (`promptFeedback.blockReason`, no candidates) is answered
//! with status 200, `finish_reason: "content_filter"`, no content and a
//! `refusal` naming the block reason — the same in streamed answers, whose
//! status has long been sent by then. `usageMetadata` becomes `usage`
//! (`cachedContentTokenCount` as `prompt_tokens_details.cached_tokens`,
//! `thoughtsTokenCount` counted in `completion_tokens` and as
//! `completion_tokens_details.reasoning_tokens`).
//!
//! **Errors** ([`error_to_openai`]) keep their status and Gemini's message;
//! a token-limit 400 gets the `context_length_exceeded` code.
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::gemini::request_to_gemini;
//!
//! let pivot = json!({"model": "gemini-2.5-flash", "messages": [
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"}]});
//! let g = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
//! assert_eq!(g["systemInstruction"]["parts"][0]["text"], "Be brief.");
//! assert_eq!(g["contents"][0], json!({"role": "user", "parts": [{"text": "Hi"}]}));
//! ```

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::convert::{self, ChunkBuilder, Convert};
use crate::body::BoxError;
use crate::error::ProxyError;
use crate::sse::SseParser;
use crate::upstream::limits::check_index;

mod request;

pub use request::{clean_schema, request_from_gemini, request_to_gemini};

/// The thought signature Google documents for replayed function calls whose
/// real signature is unknown.
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

fn bad(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("invalid_request", message)
}

/// Whether `model` validates thought signatures of replayed function calls
/// (Gemini 3 and later, and the `-latest` aliases that may point there).
fn wants_thought_signature(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    let Some(rest) = name.strip_prefix("gemini-") else {
        return false;
    };
    if name.ends_with("-latest") {
        return true;
    }
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|m| m >= 3)
}

// ---------------------------------------------------------------------------
// Answers

/// The OpenAI `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: Option<&str>, called_tools: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI `usage` from Gemini `usageMetadata`.
pub fn usage(meta: &Value) -> Value {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    // Counts come from the upstream: saturating, never overflowing.
    let prompt = n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount"));
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount").saturating_add(thoughts);
    let total = meta
        .get("totalTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(prompt.saturating_add(completion));
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    });
    if let Some(cached) = meta.get("cachedContentTokenCount").and_then(Value::as_u64) {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if meta.get("thoughtsTokenCount").is_some() {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": thoughts});
    }
    usage
}

fn block_message(feedback: &Value) -> Option<String> {
    let reason = feedback.get("blockReason").and_then(Value::as_str)?;
    Some(format!(
        "The prompt was blocked by Gemini's safety filters (blockReason: {reason})."
    ))
}

/// A Gemini `generateContent` answer as an OpenAI `chat.completion` from
/// `model` (Gemini's `modelVersion` wins when present).
pub fn answer_to_openai(answer: &Value, model: &str) -> Value {
    let model = answer
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(model);
    let mut choices = Vec::new();
    for (position, candidate) in answer
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut text = String::new();
        let mut calls = Vec::new();
        for part in candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.push_str(t);
            }
            if let Some(call) = part.get("functionCall") {
                calls.push(tool_call(call, None));
            }
        }
        let reason = candidate.get("finishReason").and_then(Value::as_str);
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
            "refusal": null,
        });
        let called = !calls.is_empty();
        if called {
            message["tool_calls"] = Value::Array(calls);
        }
        choices.push(json!({
            "index": candidate.get("index").and_then(Value::as_u64).unwrap_or(position as u64),
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(reason, called),
        }));
    }
    if choices.is_empty() {
        let feedback = answer.get("promptFeedback").unwrap_or(&Value::Null);
        let (refusal, finish) = match block_message(feedback) {
            Some(m) => (json!(m), "content_filter"),
            None => (Value::Null, "stop"),
        };
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "refusal": refusal},
            "logprobs": null,
            "finish_reason": finish,
        }));
    }
    let mut out = json!({
        "id": answer.get("responseId").and_then(Value::as_str).map_or_else(convert::completion_id, |id| format!("chatcmpl-{id}")),
        "object": "chat.completion",
        "created": convert::now(),
        "model": model,
        "choices": choices,
    });
    if let Some(meta) = answer.get("usageMetadata") {
        out["usage"] = usage(meta);
    }
    out
}

/// An OpenAI tool call for a Gemini `functionCall` (its own `id` kept when
/// it has one); with `index` for a streamed delta.
fn tool_call(call: &Value, index: Option<usize>) -> Value {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(convert::call_id, str::to_string);
    let mut v = json!({
        "id": id,
        "type": "function",
        "function": {
            "name": call.get("name").and_then(Value::as_str).unwrap_or_default(),
            "arguments": call.get("args").cloned().unwrap_or(json!({})).to_string(),
        }
    });
    if let Some(i) = index {
        v["index"] = json!(i);
    }
    v
}

/// A Gemini error answer (`{"error":{"code","message","status"}}`, or a list
/// of them) as an OpenAI error body with the same status.
pub fn error_to_openai(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().and_then(|i| i.get("error")),
        other => other.get("error"),
    });
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = convert::snippet(body);
            if text.is_empty() {
                format!("Gemini answered {status}")
            } else {
                text
            }
        });
    let code = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "upstream_error".into());
    convert::openai_error(status, &code, &message)
}

#[derive(Default, Clone)]
struct CandidateState {
    started: bool,
    calls: usize,
    finished: bool,
}

/// Gemini's `streamGenerateContent?alt=sse` events in, OpenAI
/// `chat.completion.chunk` events out: the role first, text deltas, each
/// function call as one tool call delta, the finish reason, then — when the
/// upstream ends after a finish — the usage chunk (when asked for) and
/// `[DONE]`. A stream that ends without a finish reason gets no `[DONE]`, so
/// the stream guard reports it incomplete.
pub struct GeminiStream {
    parser: SseParser,
    chunks: ChunkBuilder,
    named: bool,
    include_usage: bool,
    /// By candidate index, each below [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX).
    candidates: BTreeMap<usize, CandidateState>,
    usage: Option<Value>,
    failed: bool,
}

impl std::fmt::Debug for GeminiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiStream")
            .field("model", &self.chunks.model)
            .finish_non_exhaustive()
    }
}

impl GeminiStream {
    /// A converter for an answer from `model`; `include_usage` adds the
    /// usage chunk at the end.
    pub fn new(model: &str, include_usage: bool) -> Self {
        GeminiStream {
            parser: SseParser::new(convert::MAX_EVENT),
            chunks: ChunkBuilder::new(model),
            named: false,
            include_usage,
            candidates: BTreeMap::new(),
            usage: None,
            failed: false,
        }
    }

    fn candidate(&mut self, index: usize) -> &mut CandidateState {
        self.candidates.entry(index).or_default()
    }

    fn start(&mut self, index: usize, out: &mut VecDeque<Bytes>) {
        let state = self.candidate(index);
        if !state.started {
            state.started = true;
            out.push_back(self.chunks.chunk(
                index as u64,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
        }
    }

    fn event(&mut self, data: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if data.is_empty() || self.failed {
            return Ok(());
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            tracing::warn!("skipping a Gemini stream event that is not JSON");
            return Ok(());
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    self.response(item, out)?;
                }
            }
            item => self.response(item, out)?,
        }
        Ok(())
    }

    fn response(&mut self, r: Value, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(error) = r.get("error") {
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            out.push_back(convert::sse_data(&error_to_openai(
                status,
                r.to_string().as_bytes(),
            )));
            self.failed = true;
            return Ok(());
        }
        if !self.named {
            self.named = true;
            // Repeated in every chunk: bounded.
            if let Some(m) = convert::upstream_name(r.get("modelVersion")) {
                self.chunks.model = m.to_string();
            }
            if let Some(id) = convert::upstream_name(r.get("responseId")) {
                self.chunks.id = format!("chatcmpl-{id}");
            }
        }
        if let Some(meta) = r.get("usageMetadata") {
            self.usage = Some(usage(meta));
        }
        let candidates = r.get("candidates").and_then(Value::as_array);
        if candidates.is_none_or(|c| c.is_empty()) {
            if let Some(message) = r.get("promptFeedback").and_then(block_message) {
                self.start(0, out);
                out.push_back(self.chunks.chunk(0, json!({"refusal": message}), None));
                out.push_back(self.chunks.chunk(0, json!({}), Some("content_filter")));
                self.candidate(0).finished = true;
            }
            return Ok(());
        }
        for (position, candidate) in candidates.into_iter().flatten().enumerate() {
            let index = match candidate.get("index").and_then(Value::as_u64) {
                Some(i) => check_index(i, "candidate")?,
                None => check_index(u64::try_from(position).unwrap_or(u64::MAX), "candidate")?,
            };
            self.start(index, out);
            for part in candidate
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    if !t.is_empty() {
                        out.push_back(self.chunks.chunk(index as u64, json!({"content": t}), None));
                    }
                }
                if let Some(call) = part.get("functionCall") {
                    let state = self.candidate(index);
                    let n = state.calls;
                    state.calls = n.saturating_add(1);
                    out.push_back(self.chunks.chunk(
                        index as u64,
                        json!({"tool_calls": [tool_call(call, Some(n))]}),
                        None,
                    ));
                }
            }
            if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
                let state = self.candidate(index);
                if !state.finished {
                    state.finished = true;
                    let finish = finish_reason(Some(reason), state.calls > 0);
                    out.push_back(self.chunks.chunk(index as u64, json!({}), Some(finish)));
                }
            }
        }
        Ok(())
    }
}

impl Convert for GeminiStream {
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event()? {
            self.event(&event.data, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(event) = self.parser.finish() {
            self.event(&event.data, out)?;
        }
        let finished = !self.candidates.is_empty()
            && self.candidates.values().all(|c| c.finished || !c.started);
        if finished && !self.failed {
            if let (true, Some(usage)) = (self.include_usage, &self.usage) {
                out.push_back(self.chunks.usage(usage));
            }
            out.push_back(convert::sse_done());
        }
        Ok(())
    }
}

/// Convert a non-streamed Gemini answer body (success) into a `chat.completion` body.
pub(crate) fn convert_answer_body(body: &[u8], model: &str) -> Result<Bytes, BoxError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "Gemini's answer is not JSON ({e}): {}",
            convert::snippet(body)
        )
    })?;
    Ok(Bytes::from(answer_to_openai(&answer, model).to_string()))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
