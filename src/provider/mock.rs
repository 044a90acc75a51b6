//! The `mock` provider: answers locally, in exact OpenAI format, with no
//! network and no key — so a new user sees the proxy work at once, and tests
//! have a deterministic backend.
//!
//! - chat completions echo the last user message (text parts joined),
//!   streamed word by word when `stream: true` (with a usage chunk when
//!   `stream_options.include_usage` is set); `max_tokens` /
//!   `max_completion_tokens` cut the echo and give `finish_reason: "length"`;
//! - a client that forces a tool call (`tool_choice` `"required"` or a named
//!   function) gets one, unless the conversation ends with a tool result:
//!   the named (else the first) function, with arguments made from its
//!   schema's required properties (`"echo"`, 1, true) — so SDKs' tool loops
//!   can be driven end to end;
//! - Anthropic Messages and Responses requests (`/v1/messages`,
//!   `/v1/responses`) are answered the same way from the pivot, and
//!   translated back by the upstream edge; token counts are estimated;
//! - legacy completions echo the prompt;
//! - embeddings return one deterministic unit vector per input (1536
//!   dimensions, or `dimensions`), as floats or as base64 (`encoding_format`,
//!   which the official SDKs set by default).
//!
//! Tokens are counted as whitespace-separated words. Every answer carries
//! the header `x-llm-router-mock: true` ([`MOCK_HEADER`]).
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::provider::{mock::Mock, Call, Outbound, Provider};
//! use llm_router::request::{Endpoint, LlmRequest};
//! use llm_router::routing::{Backend, Target};
//!
//! let target = Target::new(Arc::new(Backend::builder("m", Arc::new(Mock)).build().unwrap()), None);
//! let request = LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"echo","messages":[{"role":"user","content":"hello there"}]}"#).unwrap();
//! let headers = http::HeaderMap::new();
//! let call = Call { request: &request, target: &target, headers: &headers, client_credential: None };
//! assert!(matches!(Mock.prepare(&call).unwrap(), Outbound::Local(_)));
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde_json::{json, Map, Value};

use super::{Call, ModelListing, Outbound, Provider};
use crate::body::{BoxError, ProxyBody};
use crate::error::{json_response, ProxyError};
use crate::request::{Endpoint, LlmRequest};

/// The local echo provider. See the [module docs](crate::provider::mock).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock;

/// Default embedding size (that of `text-embedding-3-small`).
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 1536;

impl Provider for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        None
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        let model = call.target.upstream_model(request.model()).to_string();
        let response = match request.endpoint() {
            Endpoint::ChatCompletions => chat(request, &model),
            Endpoint::Completions => completion(request, &model),
            Endpoint::Embeddings => embeddings(request, &model)?,
            Endpoint::CountTokens | Endpoint::InputTokens => {
                return Ok(match super::local_count(call)? {
                    Outbound::Local(response) => Outbound::Local(marked(response)),
                    other => other,
                });
            }
            // Anthropic and Responses clients: answered from the pivot,
            // translated back by the upstream edge.
            Endpoint::Messages | Endpoint::Responses => {
                let pivot = crate::translate::pivot_request(request, call.target)?.into_owned();
                chat(
                    &LlmRequest::from_value(Endpoint::ChatCompletions, Value::Object(pivot))?,
                    &model,
                )
            }
        };
        Ok(Outbound::Local(marked(response)))
    }

    fn respond(&self, _call: &Call<'_>, response: Response<ProxyBody>) -> Response<ProxyBody> {
        response
    }

    /// [`MODELS`], without asking anyone.
    fn model_list(&self, _backend: &crate::routing::Backend) -> Result<ModelListing, ProxyError> {
        Ok(ModelListing::Fixed(MODELS))
    }
}

/// The models the mock reports for `GET /v1/models` (it answers any name).
pub const MODELS: &[&str] = &["echo"];

/// The header on every answer of the mock (`x-llm-router-mock: true`), so
/// that a client can tell an echo from a model's answer.
pub const MOCK_HEADER: &str = "x-llm-router-mock";

fn marked(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response.headers_mut().insert(
        http::HeaderName::from_static(MOCK_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id(prefix: &str) -> String {
    format!("{prefix}-mock-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message's `content` (a string, or text parts joined).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn max_tokens(body: &Map<String, Value>) -> Option<usize> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Cut `text` to at most `limit` words; the flag says whether it was cut.
fn truncate_words(text: &str, limit: Option<usize>) -> (String, bool) {
    match limit {
        Some(limit) if text.split_whitespace().count() > limit => (
            text.split_whitespace()
                .take(limit)
                .collect::<Vec<_>>()
                .join(" "),
            true,
        ),
        _ => (text.to_string(), false),
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// One chat answer's envelope: its id, time, model and prompt size.
struct ChatAnswer<'a> {
    id: String,
    created: u64,
    model: &'a str,
    prompt_tokens: u64,
}

impl ChatAnswer<'_> {
    /// The `chat.completion` with this message.
    fn completion(
        &self,
        message: Value,
        finish: &str,
        completion_tokens: u64,
    ) -> Response<ProxyBody> {
        json_response(
            StatusCode::OK,
            &json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "llm-router-mock",
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
                "usage": usage(self.prompt_tokens, completion_tokens),
            }),
        )
    }

    /// A `chat.completion.chunk` with this delta.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "llm-router-mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// These chunks as a stream, ending with the usage chunk when asked.
    fn stream(
        &self,
        mut events: Vec<Value>,
        body: &Map<String, Value>,
        completion_tokens: u64,
    ) -> Response<ProxyBody> {
        if include_usage(body) {
            events.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "llm-router-mock",
                "choices": [],
                "usage": usage(self.prompt_tokens, completion_tokens),
            }));
        }
        sse_response(events)
    }
}

fn chat(request: &LlmRequest, model: &str) -> Response<ProxyBody> {
    let body = request.body();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| count_tokens(&content_text(m.get("content"))))
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let (echo, cut) = truncate_words(&last_user, max_tokens(body));
    let finish = if cut { "length" } else { "stop" };
    let completion_tokens = count_tokens(&echo);
    let answer = ChatAnswer {
        id: next_id("chatcmpl"),
        created: now(),
        model,
        prompt_tokens,
    };
    if let Some((name, arguments)) = forced_tool_call(body, messages) {
        return tool_call(request, &answer, &name, &arguments);
    }
    if !request.is_stream() {
        return answer.completion(
            json!({"role": "assistant", "content": echo, "refusal": null}),
            finish,
            completion_tokens,
        );
    }
    let mut events = vec![answer.chunk(json!({"role": "assistant", "content": ""}), None)];
    for piece in words_with_spaces(&echo) {
        events.push(answer.chunk(json!({"content": piece}), None));
    }
    events.push(answer.chunk(json!({}), Some(finish)));
    answer.stream(events, body, completion_tokens)
}

/// The call the mock makes when the client forces one (`tool_choice`
/// `"required"` or a named function) and the conversation does not end with
/// a tool result: the function named (else the first one), with arguments
/// made from its schema's required properties (`"echo"` for strings, 1 for
/// numbers, true for booleans, null otherwise).
fn forced_tool_call(body: &Map<String, Value>, messages: &[Value]) -> Option<(String, String)> {
    let named = match body.get("tool_choice")? {
        Value::String(s) if s == "required" => None,
        Value::Object(o) => Some(
            o.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?,
        ),
        _ => return None,
    };
    if messages.last()?.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let tools = body.get("tools")?.as_array()?;
    let function = tools
        .iter()
        .filter_map(|t| t.get("function"))
        .find(|f| named.is_none_or(|n| f.get("name").and_then(Value::as_str) == Some(n)))?;
    let name = function.get("name")?.as_str()?.to_string();
    let schema = function.get("parameters");
    let properties = schema.and_then(|s| s.get("properties"));
    let mut arguments = Map::new();
    for required in schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let kind = properties
            .and_then(|p| p.get(required))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        let value = match kind {
            Some("string") => json!("echo"),
            Some("number" | "integer") => json!(1),
            Some("boolean") => json!(true),
            _ => Value::Null,
        };
        arguments.insert(required.to_string(), value);
    }
    Some((name, Value::Object(arguments).to_string()))
}

/// The answer calling `name` with `arguments` (JSON text).
fn tool_call(
    request: &LlmRequest,
    answer: &ChatAnswer<'_>,
    name: &str,
    arguments: &str,
) -> Response<ProxyBody> {
    let call_id = next_id("call");
    let completion_tokens = count_tokens(arguments);
    if !request.is_stream() {
        return answer.completion(
            json!({"role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}]}),
            "tool_calls",
            completion_tokens,
        );
    }
    let events = vec![
        answer.chunk(json!({"role": "assistant", "content": null}), None),
        answer.chunk(
            json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        ),
        answer.chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            None,
        ),
        answer.chunk(json!({}), Some("tool_calls")),
    ];
    answer.stream(events, request.body(), completion_tokens)
}

fn completion(request: &LlmRequest, model: &str) -> Response<ProxyBody> {
    let body = request.body();
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    let prompt_tokens = count_tokens(&prompt);
    let (echo, cut) = truncate_words(&prompt, max_tokens(body));
    let finish = if cut { "length" } else { "stop" };
    let completion_tokens = count_tokens(&echo);
    let id = next_id("cmpl");
    let created = now();
    if !request.is_stream() {
        return json_response(
            StatusCode::OK,
            &json!({
                "id": id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": echo, "index": 0, "logprobs": null, "finish_reason": finish}],
                "usage": usage(prompt_tokens, completion_tokens),
            }),
        );
    }
    let chunk = |text: &str, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut events: Vec<Value> = words_with_spaces(&echo)
        .map(|piece| chunk(piece, None))
        .collect();
    events.push(chunk("", Some(finish)));
    if include_usage(body) {
        events.push(json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage(prompt_tokens, completion_tokens),
        }));
    }
    sse_response(events)
}

fn embeddings(request: &LlmRequest, model: &str) -> Result<Response<ProxyBody>, ProxyError> {
    let body = request.body();
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        // Token arrays: one input of integers, or many.
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
            items.iter().map(Value::to_string).collect()
        }
        _ => {
            return Err(ProxyError::bad_request(
                "invalid_input",
                "`input` must be a string, an array of strings, or token arrays",
            ))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_EMBEDDING_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=8192).contains(&n) => n as usize,
            _ => {
                return Err(ProxyError::bad_request(
                    "invalid_dimensions",
                    "`dimensions` must be an integer from 1 to 8192",
                ))
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ProxyError::bad_request(
                "invalid_encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\", not \"{other}\""),
            ))
        }
    };
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            tokens += count_tokens(text).max(1);
            let vector = embed(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::Array(vector.iter().map(|f| json!(f)).collect())
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    ))
}

/// A deterministic unit vector for `text`.
fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a seed, then xorshift64*.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Split into words, each but the first keeping its leading space, so the
/// pieces join back into the exact text.
fn words_with_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest.len() - rest.trim_start().len();
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |i| start + i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

fn sse_response(events: Vec<Value>) -> Response<ProxyBody> {
    let mut chunks: VecDeque<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .collect();
    chunks.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    let mut response = Response::new(ProxyBody::new(Chunks(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A body that yields prepared chunks, one frame each.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::routing::{Backend, Target};
    use http_body_util::BodyExt;
    use std::sync::Arc;

    async fn run(endpoint: Endpoint, body: &str) -> (Response<()>, Bytes) {
        let target = Target::new(
            Arc::new(Backend::builder("m", Arc::new(Mock)).build().unwrap()),
            None,
        );
        let request = LlmRequest::parse(endpoint, body.as_bytes()).unwrap();
        let headers = http::HeaderMap::new();
        let call = Call {
            request: &request,
            target: &target,
            headers: &headers,
            client_credential: None,
        };
        let Outbound::Local(r) = Mock.prepare(&call).unwrap() else {
            panic!("mock went upstream")
        };
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }

    #[tokio::test]
    async fn every_answer_is_marked() {
        for (endpoint, body) in [
            (
                Endpoint::ChatCompletions,
                r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#,
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"model":"echo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
            (
                Endpoint::Messages,
                r#"{"model":"echo","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
            (Endpoint::Responses, r#"{"model":"echo","input":"hi"}"#),
            (Endpoint::Completions, r#"{"model":"echo","prompt":"hi"}"#),
            (Endpoint::Embeddings, r#"{"model":"echo","input":"hi"}"#),
            (
                Endpoint::CountTokens,
                r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#,
            ),
        ] {
            let (r, _) = run(endpoint, body).await;
            assert_eq!(r.headers()[MOCK_HEADER], "true", "{body}");
        }
    }

    #[tokio::test]
    async fn chat_echoes_last_user_message() {
        let (_, b) = run(
            Endpoint::ChatCompletions,
            r#"{"model":"echo","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"world"}]}]}"#,
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "echo");
        assert_eq!(v["choices"][0]["message"]["content"], "hello world");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 6);
        assert_eq!(v["usage"]["completion_tokens"], 2);
        assert_eq!(v["usage"]["total_tokens"], 8);
    }

    #[tokio::test]
    async fn chat_stream_word_by_word_with_usage() {
        let (r, b) = run(
            Endpoint::ChatCompletions,
            r#"{"model":"echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two  three"}]}"#,
        )
        .await;
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = String::from_utf8(b.to_vec()).unwrap();
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap())
            .collect();
        assert_eq!(*events.last().unwrap(), "[DONE]");
        let parsed: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
        let joined: String = parsed
            .iter()
            .filter_map(|e| e["choices"].get(0)?["delta"]["content"].as_str())
            .collect();
        assert_eq!(joined, "one two  three");
        let usage = parsed.last().unwrap();
        assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        assert_eq!(
            parsed[parsed.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[tokio::test]
    async fn max_tokens_cuts_with_length() {
        let (_, b) = run(
            Endpoint::ChatCompletions,
            r#"{"model":"echo","max_tokens":2,"messages":[{"role":"user","content":"a b c d"}]}"#,
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "a b");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
    }

    #[tokio::test]
    async fn completions_echo_prompt() {
        let (_, b) = run(
            Endpoint::Completions,
            r#"{"model":"m","prompt":"say this"}"#,
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "say this");
    }

    #[tokio::test]
    async fn embeddings_shape_float_and_base64() {
        let (_, b) = run(
            Endpoint::Embeddings,
            r#"{"model":"e","input":["a","b"],"dimensions":4}"#,
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["data"][1]["index"], 1);
        let emb = v["data"][0]["embedding"].as_array().unwrap();
        assert_eq!(emb.len(), 4);
        let norm: f64 = emb.iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-3);

        let (_, b) = run(
            Endpoint::Embeddings,
            r#"{"model":"e","input":"a","encoding_format":"base64"}"#,
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.len(), DEFAULT_EMBEDDING_DIMENSIONS * 4);
        // Same input, same vector.
        let first = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        assert_eq!(first, embed("a", DEFAULT_EMBEDDING_DIMENSIONS)[0]);
    }

    #[test]
    fn pieces_rejoin() {
        let t = "  lead and   gaps ";
        assert_eq!(words_with_spaces(t).collect::<String>(), t);
    }
}
