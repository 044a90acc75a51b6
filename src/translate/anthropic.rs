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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::body::{is_event_stream, map_json, map_sse, write_event, EventTranscoder};
use super::convert::upstream_name;
use crate::body::ProxyBody;
use crate::error::{anthropic_error_type, openai_error_type, ProxyError};
use crate::sse::SseEvent;
use crate::upstream::limits::{check_index, IndexTooLarge};

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

fn is_null_or_absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

// ---------------------------------------------------------------------------
// Requests: OpenAI (pivot) -> Anthropic

/// Fields of an OpenAI request that Anthropic cannot express, when set to
/// anything but their neutral value.
fn reject_inexpressible(body: &Map<String, Value>) -> Result<(), ProxyError> {
    if let Some(n) = body.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(unsupported("`n` greater than 1"));
        }
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("`logprobs`"));
    }
    if body
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 0)
    {
        return Err(unsupported("`top_logprobs`"));
    }
    if body
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(unsupported("`logit_bias`"));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if body
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|x| x != 0.0)
        {
            return Err(unsupported(format!("`{key}`")));
        }
    }
    if !is_null_or_absent(body.get("audio"))
        || body
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x != "text"))
    {
        return Err(unsupported("audio output (`audio` / `modalities`)"));
    }
    for key in ["functions", "function_call"] {
        if !is_null_or_absent(body.get(key)) {
            return Err(unsupported(format!(
                "the legacy `{key}` parameter (use `tools`)"
            )));
        }
    }
    for key in ["prediction", "web_search_options"] {
        if !is_null_or_absent(body.get(key)) {
            return Err(unsupported(format!("`{key}`")));
        }
    }
    Ok(())
}

/// `data:MEDIA;base64,DATA` -> (media type, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

fn image_block(url: &str, where_: &str) -> Result<Value, ProxyError> {
    if let Some((media, data)) = parse_data_url(url) {
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media, "data": data},
        }));
    }
    if url.starts_with("data:") {
        return Err(unsupported(format!(
            "{where_}: an image data URL that is not base64"
        )));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid(format!(
        "{where_}: `image_url.url` must be an http(s) URL or a base64 data URL"
    )))
}

/// Content parts of a user (or tool) message as Anthropic blocks.
fn user_blocks(content: Option<&Value>, where_: &str) -> Result<Vec<Value>, ProxyError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![text_block(s)]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(format!(
                "{where_}: `content` must be a string or an array of parts"
            )))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{where_}.content[{j}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let mut block = match kind {
            "text" => text_block(part.get("text").and_then(Value::as_str).unwrap_or("")),
            "image_url" => {
                let url = match part.get("image_url") {
                    Some(Value::String(u)) => u.as_str(),
                    Some(o) => o.get("url").and_then(Value::as_str).unwrap_or(""),
                    None => "",
                };
                image_block(url, &here)?
            }
            "file" => {
                let file = part.get("file").unwrap_or(&Value::Null);
                let data = file.get("file_data").and_then(Value::as_str);
                match data.and_then(parse_data_url) {
                    Some(("application/pdf", data)) => json!({
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
                    }),
                    _ => {
                        return Err(unsupported(format!(
                            "{here}: a `file` part other than base64 PDF data (`file_id` included)"
                        )))
                    }
                }
            }
            other => {
                return Err(unsupported(format!(
                    "{here}: the content part type `{other}`"
                )))
            }
        };
        if let (Some(cache), Some(obj)) = (part.get("cache_control"), block.as_object_mut()) {
            obj.insert("cache_control".into(), cache.clone());
        }
        blocks.push(block);
    }
    Ok(blocks)
}

/// Text of a system/developer message: a string, or text parts.
fn system_blocks(content: Option<&Value>, where_: &str) -> Result<Vec<Value>, ProxyError> {
    let blocks = user_blocks(content, where_)?;
    if blocks.iter().any(|b| b["type"] != "text") {
        return Err(unsupported(format!(
            "{where_}: non-text content in a system message"
        )));
    }
    Ok(blocks)
}

fn tool_use_block(call: &Value, where_: &str) -> Result<Value, ProxyError> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(unsupported(format!(
            "{where_}: the tool call type `{kind}`"
        )));
    }
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = function.get("name").and_then(Value::as_str).unwrap_or("");
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(invalid(format!(
                    "{where_}: the arguments of tool call `{name}` are not a JSON object"
                )))
            }
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "{where_}: the arguments of tool call `{name}` are not a JSON object"
            )))
        }
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| fresh_id("toolu"));
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// Text of an assistant message as blocks (refusals become text).
fn assistant_blocks(content: Option<&Value>, where_: &str) -> Result<Vec<Value>, ProxyError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_block(s)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                let text = match kind {
                    "text" => part.get("text"),
                    "refusal" => part.get("refusal"),
                    other => {
                        return Err(unsupported(format!(
                            "{where_}.content[{j}]: the assistant content part type `{other}`"
                        )))
                    }
                };
                let text = text.and_then(Value::as_str).unwrap_or("");
                if !text.is_empty() {
                    blocks.push(text_block(text));
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid(format!(
            "{where_}: `content` must be a string or an array of parts"
        ))),
    }
}

/// Append blocks to the conversation, merging with the last turn when it
/// has the same role (Anthropic alternates user and assistant turns).
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn tools_to_anthropic(tools: &[Value]) -> Result<Vec<Value>, ProxyError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                return Err(unsupported(format!("tools[{i}]: the tool type `{kind}`")));
            }
            let f = tool.get("function").unwrap_or(&Value::Null);
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("tools[{i}]: `function.name` is required")))?;
            let mut out = Map::new();
            out.insert("name".into(), Value::from(name));
            if let Some(d) = f.get("description").filter(|d| d.is_string()) {
                out.insert("description".into(), d.clone());
            }
            let schema = match f.get("parameters") {
                Some(p @ Value::Object(_)) => p.clone(),
                _ => json!({"type": "object", "properties": {}}),
            };
            out.insert("input_schema".into(), schema);
            if let Some(cache) = tool.get("cache_control") {
                out.insert("cache_control".into(), cache.clone());
            }
            Ok(Value::Object(out))
        })
        .collect()
}

fn tool_choice_to_anthropic(choice: &Value) -> Result<Value, ProxyError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            other => Err(invalid(format!("unknown `tool_choice` \"{other}\""))),
        },
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (kind, name) {
                ("function", Some(name)) => Ok(json!({"type": "tool", "name": name})),
                _ => Err(unsupported(format!("the `tool_choice` type `{kind}`"))),
            }
        }
        _ => Err(invalid("`tool_choice` must be a string or an object")),
    }
}

/// The system instruction standing in for `response_format` (Anthropic has
/// no JSON mode in the stable API).
fn response_format_instruction(format: &Value) -> Result<Option<String>, ProxyError> {
    let kind = format.get("type").and_then(Value::as_str).unwrap_or("text");
    match kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(
            "Respond only with a single valid JSON object, with no text, explanation or code fence before or after it."
                .into(),
        )),
        "json_schema" => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec.get("schema").cloned().unwrap_or_else(|| json!({}));
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .map(|n| format!(" (\"{n}\")"))
                .unwrap_or_default();
            Ok(Some(format!(
                "Respond only with a single valid JSON object that conforms to the following JSON schema{name}, with no text, explanation or code fence before or after it.\nJSON schema: {schema}"
            )))
        }
        other => Err(unsupported(format!("the `response_format` type `{other}`"))),
    }
}

/// The thinking budget standing in for `reasoning_effort`.
fn thinking_budget(effort: &str) -> Result<Option<u64>, ProxyError> {
    match effort {
        "none" | "minimal" => Ok(None),
        "low" => Ok(Some(1024)),
        "medium" => Ok(Some(4096)),
        "high" => Ok(Some(16384)),
        other => Err(invalid(format!("unknown `reasoning_effort` \"{other}\""))),
    }
}

/// An OpenAI Chat Completions request as an Anthropic Messages request
/// (the `model` is copied; the provider swaps in the target's).
pub fn request_from_openai(body: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    reject_inexpressible(body)?;
    let messages = match body.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("`messages` must be an array")),
    };
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let here = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{here}: `role` is required")))?;
        let content = message.get("content");
        match role {
            "system" | "developer" => system.extend(system_blocks(content, &here)?),
            "user" => push_turn(&mut turns, "user", user_blocks(content, &here)?),
            "assistant" => {
                if !is_null_or_absent(message.get("function_call")) {
                    return Err(unsupported(format!(
                        "{here}: the legacy `function_call` (use `tool_calls`)"
                    )));
                }
                if !is_null_or_absent(message.get("audio")) {
                    return Err(unsupported(format!("{here}: assistant `audio`")));
                }
                let mut blocks = assistant_blocks(content, &here)?;
                if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_use_block(call, &format!("{here}.tool_calls[{j}]"))?);
                    }
                }
                if !blocks.is_empty() {
                    push_turn(&mut turns, "assistant", blocks);
                }
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{here}: `tool_call_id` is required")))?;
                let mut result = json!({"type": "tool_result", "tool_use_id": id});
                match content {
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(Value::String(s)) => result["content"] = Value::from(s.as_str()),
                    other => {
                        let blocks = user_blocks(other, &here)?;
                        if blocks.iter().any(|b| b["type"] == "document") {
                            return Err(unsupported(format!("{here}: a file in a tool result")));
                        }
                        if !blocks.is_empty() {
                            result["content"] = Value::Array(blocks);
                        }
                    }
                }
                push_turn(&mut turns, "user", vec![result]);
            }
            "function" => {
                return Err(unsupported(format!(
                    "{here}: the legacy `function` role (use `tool`)"
                )))
            }
            other => return Err(invalid(format!("{here}: unknown role `{other}`"))),
        }
    }

    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), Value::from(max_tokens));

    if let Some(format) = body.get("response_format").filter(|f| !f.is_null()) {
        if let Some(instruction) = response_format_instruction(format)? {
            system.push(text_block(&instruction));
        }
    }
    match system.len() {
        0 => {}
        1 if system[0].get("cache_control").is_none() => {
            out.insert("system".into(), system[0]["text"].clone());
        }
        _ => {
            out.insert("system".into(), Value::Array(system));
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    out.insert("messages".into(), Value::Array(messages));

    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    for key in ["top_p", "top_k"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stream) = body.get("stream").and_then(Value::as_bool) {
        out.insert("stream".into(), Value::Bool(stream));
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }

    let tools = match body.get("tools") {
        Some(Value::Array(t)) if !t.is_empty() => tools_to_anthropic(t)?,
        _ => Vec::new(),
    };
    if !tools.is_empty() {
        let mut choice = match body.get("tool_choice").filter(|c| !c.is_null()) {
            Some(c) => tool_choice_to_anthropic(c)?,
            None => json!({"type": "auto"}),
        };
        if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
            && choice["type"] != "none"
        {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
        out.insert("tools".into(), Value::Array(tools));
        out.insert("tool_choice".into(), choice);
    }

    if let Some(effort) = body.get("reasoning_effort").and_then(Value::as_str) {
        if let Some(budget) = thinking_budget(effort)? {
            if max_tokens <= 1024 {
                return Err(unsupported(
                    "`reasoning_effort` with `max_tokens` of 1024 or less (Anthropic's smallest thinking budget is 1024)",
                ));
            }
            let budget = budget.min(max_tokens - 1);
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Requests: Anthropic -> OpenAI (pivot)

fn image_part(block: &Value, where_: &str) -> Result<Value, ProxyError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png");
            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
            Ok(
                json!({"type": "image_url", "image_url": {"url": format!("data:{media};base64,{data}")}}),
            )
        }
        Some("url") => {
            let url = source.get("url").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        other => Err(unsupported(format!(
            "{where_}: the image source type `{}`",
            other.unwrap_or("?")
        ))),
    }
}

fn document_part(block: &Value, where_: &str) -> Result<Value, ProxyError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("application/pdf");
            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
            let name = block
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({"type": "file", "file": {
                "filename": name,
                "file_data": format!("data:{media};base64,{data}"),
            }}))
        }
        Some("text") => {
            let text = source.get("data").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"type": "text", "text": text}))
        }
        other => Err(unsupported(format!(
            "{where_}: the document source type `{}`",
            other.unwrap_or("?")
        ))),
    }
}

/// The content of a `tool_result` block as the content of a `tool` message.
fn tool_result_content(block: &Value, where_: &str) -> Result<String, ProxyError> {
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            for (k, item) in items.iter().enumerate() {
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        texts.push(item.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    other => {
                        return Err(unsupported(format!(
                            "{where_}.content[{k}]: a `{}` block inside a tool result",
                            other.unwrap_or("?")
                        )))
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => return Err(invalid(format!("{where_}: bad `content`"))),
    };
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        return Ok(format!("Error: {text}"));
    }
    Ok(text)
}

/// One Anthropic message as one or more OpenAI messages.
fn message_to_openai(message: &Value, here: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{here}: `role` is required")))?;
    if role != "user" && role != "assistant" {
        return Err(invalid(format!(
            "{here}: unknown role `{role}` (use `system` for instructions)"
        )));
    }
    let blocks = match message.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(format!(
                "{here}: `content` must be a string or an array of blocks"
            )))
        }
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut calls = Vec::new();
        for (j, block) in blocks.iter().enumerate() {
            match block.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
                "tool_use" => {
                    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                    calls.push(json!({
                        "id": block.get("id").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {
                            "name": block.get("name").cloned().unwrap_or(Value::Null),
                            "arguments": input.to_string(),
                        },
                    }));
                }
                // Signed reasoning only Anthropic can read back.
                "thinking" | "redacted_thinking" => {}
                other => {
                    return Err(unsupported(format!(
                        "{here}.content[{j}]: the content block type `{other}`"
                    )))
                }
            }
        }
        let mut m = json!({"role": "assistant"});
        if calls.is_empty() {
            m["content"] = Value::from(text);
        } else {
            m["content"] = if text.is_empty() {
                Value::Null
            } else {
                Value::from(text)
            };
            m["tool_calls"] = Value::Array(calls);
        }
        out.push(m);
        return Ok(());
    }
    // A user turn: tool results first (each its own `tool` message, right
    // after the assistant's calls), then the rest as one user message.
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let where_ = format!("{here}.content[{j}]");
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "tool_result" => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{where_}: `tool_use_id` is required")))?;
                let content = tool_result_content(block, &where_)?;
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            "text" => parts.push(json!({
                "type": "text",
                "text": block.get("text").and_then(Value::as_str).unwrap_or(""),
            })),
            "image" => parts.push(image_part(block, &where_)?),
            "document" => parts.push(document_part(block, &where_)?),
            other => {
                return Err(unsupported(format!(
                    "{where_}: the content block type `{other}`"
                )))
            }
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = if parts.len() == 1 && parts[0]["type"] == "text" {
        parts[0]["text"].clone()
    } else {
        Value::Array(parts)
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn tools_to_openai(tools: &[Value]) -> Result<Vec<Value>, ProxyError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            match tool.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(unsupported(format!(
                        "tools[{i}]: the server tool type `{other}`"
                    )))
                }
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("tools[{i}]: `name` is required")))?;
            let mut function = Map::new();
            function.insert("name".into(), Value::from(name));
            if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
                function.insert("description".into(), d.clone());
            }
            let schema = tool
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            function.insert("parameters".into(), schema);
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

fn tool_choice_to_openai(choice: &Value) -> Result<Value, ProxyError> {
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(json!("auto")),
        Some("none") => Ok(json!("none")),
        Some("any") => Ok(json!("required")),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice.name` is required"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        other => Err(invalid(format!(
            "unknown `tool_choice` type `{}`",
            other.unwrap_or("?")
        ))),
    }
}

/// An Anthropic Messages request as an OpenAI Chat Completions request (the
/// pivot). A streamed request asks for usage (`stream_options.include_usage`):
/// Anthropic streams always carry it.
pub fn request_to_openai(body: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    for key in ["mcp_servers", "container"] {
        if !is_null_or_absent(body.get(key)) {
            return Err(unsupported(format!("`{key}`")));
        }
    }
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let parts: Vec<Value> = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .map(
                    |b| json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()}),
                )
                .collect();
            if parts.len() != blocks.len() {
                return Err(unsupported("a non-text block in `system`"));
            }
            if parts.len() == 1 {
                messages.push(json!({"role": "system", "content": parts[0]["text"]}));
            } else if !parts.is_empty() {
                messages.push(json!({"role": "system", "content": parts}));
            }
        }
        Some(_) => return Err(invalid("`system` must be a string or text blocks")),
    }
    let input = match body.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("`messages` must be an array")),
    };
    for (i, message) in input.iter().enumerate() {
        message_to_openai(message, &format!("messages[{i}]"), &mut messages)?;
    }

    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = body.get("max_tokens").filter(|v| v.is_number()) {
        out.insert("max_tokens".into(), max.clone());
    }
    if let Some(stop) = body.get("stop_sequences").and_then(Value::as_array) {
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop.clone()));
        }
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), Value::from(user));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools_to_openai(tools)?));
            if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) {
                let mapped = tool_choice_to_openai(choice)?;
                out.insert("tool_choice".into(), mapped);
                if choice
                    .get("disable_parallel_tool_use")
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    out.insert("parallel_tool_calls".into(), Value::Bool(false));
                }
            }
        }
    }
    if let Some(thinking) = body.get("thinking").filter(|t| t["type"] == "enabled") {
        let budget = thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let effort = match budget {
            0..=2047 => "low",
            2048..=8191 => "medium",
            _ => "high",
        };
        out.insert("reasoning_effort".into(), Value::from(effort));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Answers

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason_from_stop(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as an Anthropic `stop_reason`.
pub fn stop_reason_from_finish(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Token counts in Anthropic's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tokens {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl Tokens {
    /// Take the fields an Anthropic `usage` object carries (a later event
    /// repeats or completes the earlier ones).
    fn absorb_anthropic(&mut self, usage: &Value) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens").filter(|n| *n > 0) {
            self.input = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
        if let Some(n) = get("cache_read_input_tokens").filter(|n| *n > 0) {
            self.cache_read = n;
        }
        if let Some(n) = get("cache_creation_input_tokens").filter(|n| *n > 0) {
            self.cache_creation = n;
        }
    }

    fn from_openai(usage: &Value) -> Tokens {
        let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let prompt = get(usage, "prompt_tokens");
        let cached = usage
            .get("prompt_tokens_details")
            .map_or(0, |d| get(d, "cached_tokens"))
            .min(prompt);
        Tokens {
            input: prompt - cached,
            output: get(usage, "completion_tokens"),
            cache_read: cached,
            cache_creation: 0,
        }
    }

    fn to_openai(self) -> Value {
        // Counts come from the upstream: saturating, never overflowing.
        let prompt = self
            .input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation);
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt.saturating_add(self.output),
        });
        if self.cache_read > 0 || self.cache_creation > 0 {
            usage["prompt_tokens_details"] = json!({"cached_tokens": self.cache_read});
        }
        usage
    }

    fn to_anthropic(self) -> Value {
        json!({
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
        })
    }
}

/// An Anthropic `message` as an OpenAI `chat.completion`.
pub fn response_to_openai(message: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in message
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "thinking" => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            "tool_use" => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut msg = json!({"role": "assistant", "content": text, "refusal": null});
    if !calls.is_empty() {
        if text.is_empty() {
            msg["content"] = Value::Null;
        }
        msg["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        msg["reasoning_content"] = Value::from(reasoning);
    }
    let stop = message
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut tokens = Tokens::default();
    if let Some(u) = message.get("usage") {
        tokens.absorb_anthropic(u);
    }
    json!({
        "id": message.get("id").cloned().unwrap_or_else(|| Value::from(fresh_id("chatcmpl"))),
        "object": "chat.completion",
        "created": now(),
        "model": message.get("model").cloned().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason_from_stop(stop),
        }],
        "usage": tokens.to_openai(),
    })
}

/// An OpenAI `chat.completion` as an Anthropic `message` (first choice).
pub fn response_from_openai(completion: &Value) -> Value {
    let choice = completion
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let reasoning = message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let text = match message.get("refusal").and_then(Value::as_str) {
        Some(r) if text.is_empty() => r.to_string(),
        _ => text,
    };
    if !text.is_empty() {
        content.push(text_block(&text));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let f = call.get("function").unwrap_or(&Value::Null);
        let input = match f.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            Some(v @ Value::Object(_)) => v.clone(),
            _ => json!({}),
        };
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| fresh_id("toolu")),
            "name": f.get("name").cloned().unwrap_or_default(),
            "input": input,
        }));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let tokens = completion
        .get("usage")
        .map(Tokens::from_openai)
        .unwrap_or_default();
    json!({
        "id": completion.get("id").cloned().unwrap_or_else(|| Value::from(fresh_id("msg"))),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason_from_finish(finish),
        "stop_sequence": null,
        "usage": tokens.to_anthropic(),
    })
}

/// The message of an error body in either format (or its raw text).
fn error_message(body: &[u8]) -> (String, Option<String>) {
    let raw = || {
        let text = String::from_utf8_lossy(&body[..body.len().min(2000)])
            .trim()
            .to_string();
        if text.is_empty() {
            "The upstream answered with an error and no message".to_string()
        } else {
            text
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (raw(), None);
    };
    let error = v.get("error").unwrap_or(&v);
    let kind = error
        .get("type")
        .or_else(|| error.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = match error {
        Value::String(s) => s.clone(),
        _ => error
            .get("message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(raw),
    };
    (message, kind)
}

/// An Anthropic error body as an OpenAI error body (same status).
pub fn error_to_openai(status: StatusCode, body: &[u8]) -> Value {
    let (message, kind) = error_message(body);
    json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": null,
        "code": kind.unwrap_or_else(|| anthropic_error_type(status).to_string()),
    }})
}

/// An OpenAI error body as an Anthropic error body (same status).
pub fn error_from_openai(status: StatusCode, body: &[u8]) -> Value {
    let (message, _) = error_message(body);
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// An Anthropic upstream's answer (message, event stream or error) in the
/// pivot format. `include_usage`: the client asked for a usage chunk.
pub fn answer_to_openai(response: Response<ProxyBody>, include_usage: bool) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return map_json(response, |status, body| {
            to_bytes(&error_to_openai(status, &body))
        });
    }
    if is_event_stream(response.headers()) {
        return map_sse(response, AnthropicToOpenAiStream::new(include_usage));
    }
    map_json(response, |_, body| match serde_json::from_slice(&body) {
        Ok(message) => to_bytes(&response_to_openai(&message)),
        Err(_) => body,
    })
}

/// A pivot answer (completion, chunk stream or error) in Anthropic's format.
pub fn answer_from_openai(response: Response<ProxyBody>) -> Response<ProxyBody> {
    if !response.status().is_success() {
        return map_json(response, |status, body| {
            to_bytes(&error_from_openai(status, &body))
        });
    }
    if is_event_stream(response.headers()) {
        return map_sse(response, OpenAiToAnthropicStream::new());
    }
    map_json(response, |_, body| match serde_json::from_slice(&body) {
        Ok(completion) => to_bytes(&response_from_openai(&completion)),
        Err(_) => body,
    })
}

// ---------------------------------------------------------------------------
// Streams: Anthropic events -> chat.completion.chunk

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A tool call, with its OpenAI `index`.
    Tool(u64),
    Other,
}

/// Anthropic stream events as `chat.completion.chunk` events: the role first
/// (from `message_start`), text and reasoning deltas, tool calls (`index` on
/// every delta, `id`, `type` and `name` on the first), the finish reason
/// (from `message_delta`), a usage chunk when the client asked for one, then
/// `data: [DONE]` (from `message_stop`). An `error` event becomes an OpenAI
/// error event. Completeness is the stream guard's to judge.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    tokens: Tokens,
    /// Open and past blocks by Anthropic index (each below
    /// [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX)).
    blocks: BTreeMap<u64, Block>,
    next_tool: u64,
    finished: bool,
    done: bool,
}

impl AnthropicToOpenAiStream {
    /// A new transcoder; `include_usage` adds the usage chunk.
    pub fn new(include_usage: bool) -> Self {
        AnthropicToOpenAiStream {
            id: String::new(),
            model: String::new(),
            created: now(),
            include_usage,
            tokens: Tokens::default(),
            blocks: BTreeMap::new(),
            next_tool: 0,
            finished: false,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        write_event(out, None, &chunk);
    }

    fn block(&self, index: u64) -> Block {
        self.blocks.get(&index).copied().unwrap_or(Block::Other)
    }

    /// End the stream with an OpenAI error event.
    fn fail(&mut self, out: &mut BytesMut, message: &str) {
        write_event(
            out,
            None,
            &json!({"error": {"message": message, "type": "server_error", "param": null, "code": "upstream_error"}}),
        );
        self.done = true;
    }

    fn handle(&mut self, v: &Value, out: &mut BytesMut) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        if kind == "content_block_start" {
            if let Err(e) = check_index(index, "content block") {
                return self.fail(out, &e.to_string());
            }
        }
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                // Repeated in every chunk: bounded.
                if let Some(id) = upstream_name(m.get("id")) {
                    self.id = id.to_string();
                }
                if let Some(model) = upstream_name(m.get("model")) {
                    self.model = model.to_string();
                }
                if let Some(u) = m.get("usage") {
                    self.tokens.absorb_anthropic(u);
                }
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            "content_block_start" => {
                let cb = v.get("content_block").unwrap_or(&Value::Null);
                let block = match cb.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => {
                        let text = cb.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.chunk(out, json!({"content": text}), None);
                        }
                        Block::Text
                    }
                    "thinking" => {
                        let text = cb.get("thinking").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.chunk(out, json!({"reasoning_content": text}), None);
                        }
                        Block::Thinking
                    }
                    "tool_use" => {
                        let k = self.next_tool;
                        self.next_tool = k.saturating_add(1);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{
                                "index": k,
                                "id": cb.get("id").cloned().unwrap_or(Value::Null),
                                "type": "function",
                                "function": {"name": cb.get("name").cloned().unwrap_or_default(), "arguments": ""},
                            }]}),
                            None,
                        );
                        if let Some(input) = cb
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            self.chunk(
                                out,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": input.to_string()}}]}),
                                None,
                            );
                        }
                        Block::Tool(k)
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| d.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
                match (d.get("type").and_then(Value::as_str), self.block(index)) {
                    (Some("text_delta"), _) => {
                        if let Some(t) = text("text") {
                            self.chunk(out, json!({"content": t}), None);
                        }
                    }
                    (Some("thinking_delta"), _) => {
                        if let Some(t) = text("thinking") {
                            self.chunk(out, json!({"reasoning_content": t}), None);
                        }
                    }
                    (Some("input_json_delta"), Block::Tool(k)) => {
                        if let Some(t) = text("partial_json") {
                            self.chunk(
                                out,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": t}}]}),
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.tokens.absorb_anthropic(u);
                }
                if let Some(stop) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.chunk(out, json!({}), Some(finish_reason_from_stop(stop)));
                    self.finished = true;
                }
            }
            "message_stop" => {
                if !self.finished {
                    self.chunk(out, json!({}), Some("stop"));
                    self.finished = true;
                }
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.tokens.to_openai(),
                    });
                    write_event(out, None, &chunk);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "error" => {
                let e = v.get("error").unwrap_or(&Value::Null);
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("The upstream reported an error");
                let openai_type = match kind {
                    "invalid_request_error" | "not_found_error" | "request_too_large" => {
                        "invalid_request_error"
                    }
                    "authentication_error" => "authentication_error",
                    "permission_error" => "permission_error",
                    "rate_limit_error" => "rate_limit_error",
                    _ => "server_error",
                };
                write_event(
                    out,
                    None,
                    &json!({"error": {"message": message, "type": openai_type, "param": null, "code": kind}}),
                );
                self.done = true;
            }
            // ping, content_block_stop and anything new: nothing to say.
            _ => {}
        }
    }
}

impl EventTranscoder for AnthropicToOpenAiStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() {
            return;
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => self.handle(&v, out),
            Err(_) => tracing::warn!("skipping a malformed event from an Anthropic upstream"),
        }
    }

    fn finish(&mut self, _out: &mut BytesMut) {}
}

// ---------------------------------------------------------------------------
// Streams: chat.completion.chunk -> Anthropic events

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text(u64),
    Thinking(u64),
    Tool { call: u64, index: u64 },
}

impl Open {
    fn index(self) -> u64 {
        match self {
            Open::Text(i) | Open::Thinking(i) | Open::Tool { index: i, .. } => i,
        }
    }
}

/// `chat.completion.chunk` events as the exact Anthropic event sequence:
/// `message_start` (before any block, even when the first chunk is a tool
/// call), then per block `content_block_start`, deltas (`text_delta`,
/// `thinking_delta`, `input_json_delta`) and `content_block_stop`, then
/// `message_delta` (stop reason, usage — held until the usage chunk or
/// `[DONE]`) and `message_stop`. An error event becomes `event: error`.
#[derive(Debug, Default)]
pub struct OpenAiToAnthropicStream {
    started: bool,
    id: String,
    model: String,
    open: Option<Open>,
    next_index: u64,
    /// OpenAI tool call index -> Anthropic block index.
    tools: Vec<(u64, u64)>,
    /// The `id` of the open tool call.
    open_tool_id: Option<String>,
    stop_reason: Option<&'static str>,
    tokens: Option<Tokens>,
    done: bool,
}

impl OpenAiToAnthropicStream {
    /// A new transcoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(out: &mut BytesMut, data: &Value) {
        let name = data.get("type").and_then(Value::as_str);
        write_event(out, name, data);
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = fresh_id("msg");
        }
        let input = self.tokens.map_or(0, |t| t.input);
        Self::emit(
            out,
            &json!({"type": "message_start", "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 0},
            }}),
        );
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some(open) = self.open.take() {
            Self::emit(
                out,
                &json!({"type": "content_block_stop", "index": open.index()}),
            );
        }
    }

    /// Open a new block (closing the current one) and return its index.
    fn open_block(&mut self, out: &mut BytesMut, block: Value) -> u64 {
        self.close(out);
        let index = self.next_index;
        self.next_index = index.saturating_add(1);
        Self::emit(
            out,
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn text(&mut self, out: &mut BytesMut, text: &str) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.open_block(out, json!({"type": "text", "text": ""}));
                self.open = Some(Open::Text(i));
                i
            }
        };
        Self::emit(
            out,
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn thinking(&mut self, out: &mut BytesMut, text: &str) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                let i = self.open_block(
                    out,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        Self::emit(
            out,
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}}),
        );
    }

    fn tool_call(&mut self, out: &mut BytesMut, call: &Value) -> Result<(), IndexTooLarge> {
        let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        check_index(k, "tool call")?;
        let f = call.get("function").unwrap_or(&Value::Null);
        let known = self.tools.iter().find(|(c, _)| *c == k).map(|(_, i)| *i);
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        // Some servers repeat the id on every delta; a different id under
        // the same index is a new call.
        let same_call = id.is_none() || id == self.open_tool_id.as_deref();
        let index = match (self.open, known) {
            (Some(Open::Tool { call: open, index }), _) if open == k && same_call => index,
            (_, Some(index)) if id.is_none() => index,
            _ => {
                let id = id.map(str::to_string).unwrap_or_else(|| fresh_id("toolu"));
                let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                self.open_tool_id = Some(id.clone());
                let index = self.open_block(
                    out,
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
                self.open = Some(Open::Tool { call: k, index });
                self.tools.retain(|(c, _)| *c != k);
                self.tools.push((k, index));
                index
            }
        };
        if let Some(args) = f
            .get("arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            Self::emit(
                out,
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
            );
        }
        Ok(())
    }

    /// `message_delta` and `message_stop`.
    fn complete(&mut self, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.start(out);
        self.close(out);
        let tokens = self.tokens.unwrap_or_default();
        Self::emit(
            out,
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": tokens.to_anthropic(),
            }),
        );
        Self::emit(out, &json!({"type": "message_stop"}));
        self.done = true;
    }

    fn handle(&mut self, v: &Value, out: &mut BytesMut) {
        if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            let kind = match error.get("type").and_then(Value::as_str) {
                Some("invalid_request_error") => "invalid_request_error",
                Some("authentication_error") => "authentication_error",
                Some("permission_error") => "permission_error",
                Some("rate_limit_error") | Some("requests") | Some("tokens") => "rate_limit_error",
                _ => "api_error",
            };
            Self::emit(
                out,
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            );
            self.done = true;
            return;
        }
        if self.id.is_empty() {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                self.id = id.to_string();
            }
        }
        if self.model.is_empty() {
            if let Some(model) = v.get("model").and_then(Value::as_str) {
                self.model = model.to_string();
            }
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.tokens = Some(Tokens::from_openai(usage));
        }
        self.start(out);
        let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            let text = |k: &str| {
                delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
            };
            if let Some(t) = text("reasoning_content").or_else(|| text("reasoning")) {
                self.thinking(out, t);
            }
            if let Some(t) = text("content") {
                self.text(out, t);
            }
            if let Some(t) = text("refusal") {
                self.text(out, t);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    if let Err(e) = self.tool_call(out, call) {
                        Self::emit(
                            out,
                            &json!({"type": "error", "error": {"type": "api_error", "message": e.to_string()}}),
                        );
                        self.done = true;
                        return;
                    }
                }
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(stop_reason_from_finish(finish));
            self.close(out);
        }
    }
}

impl EventTranscoder for OpenAiToAnthropicStream {
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done || event.data.is_empty() {
            return;
        }
        if event.is_done() {
            self.complete(out);
            return;
        }
        match serde_json::from_slice::<Value>(&event.data) {
            Ok(v) => self.handle(&v, out),
            Err(_) => tracing::warn!("skipping a malformed event from an OpenAI-format upstream"),
        }
    }

    /// An upstream that finished its answer but left out `[DONE]` still
    /// gets a complete message; one that did not finish gets nothing more
    /// (the stream guard reports it as incomplete).
    fn finish(&mut self, out: &mut BytesMut) {
        if !self.done && self.stop_reason.is_some() {
            self.complete(out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
