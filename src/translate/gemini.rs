//! OpenAI Chat Completions (the pivot) <-> Google Gemini `generateContent`.
//!
//! **Requests** ([`request_to_gemini`]): system (and developer) messages
//! become `systemInstruction`; `assistant` is the `model` role; user images
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
//! use llm_router::translate::gemini::request_to_gemini;
//!
//! let pivot = json!({"model": "gemini-2.5-flash", "messages": [
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": "Hi"}]});
//! let g = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
//! assert_eq!(g["systemInstruction"]["parts"][0]["text"], "Be brief.");
//! assert_eq!(g["contents"][0], json!({"role": "user", "parts": [{"text": "Hi"}]}));
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::convert::{self, ChunkBuilder, Convert};
use crate::body::BoxError;
use crate::error::ProxyError;
use crate::sse::SseParser;
use crate::upstream::limits::check_index;

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
// Requests

/// The Gemini `generateContent` body for a pivot request sent to `model`.
pub fn request_to_gemini(pivot: &Map<String, Value>, model: &str) -> Result<Value, ProxyError> {
    let empty = Vec::new();
    let messages = match pivot.get("messages") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(bad("`messages` must be an array")),
    };
    let signature = wants_thought_signature(model);
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    // What the last content is: function responses are kept apart (Gemini
    // wants them alone in their turn); a user turn holding a later system
    // message takes the user text next to it.
    let mut last = Last::None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                let text = convert::content_text(message.get("content"));
                if text.is_empty() {
                    continue;
                }
                if contents.is_empty() {
                    system.push(json!({"text": text}));
                } else {
                    // Gemini has no system turn: a system message after the
                    // conversation started is user text at its position.
                    let part = json!({"text": format!("<system>\n{text}\n</system>")});
                    match (contents.last_mut(), last) {
                        (Some(turn), Last::User | Last::UserWithSystem) => push_part(turn, part),
                        _ => contents.push(json!({"role": "user", "parts": [part]})),
                    }
                    last = Last::UserWithSystem;
                }
            }
            "user" => {
                let parts = user_parts(message.get("content"), i)?;
                if !parts.is_empty() {
                    match (contents.last_mut(), last) {
                        (Some(turn), Last::UserWithSystem) => {
                            for part in parts {
                                push_part(turn, part);
                            }
                        }
                        _ => {
                            contents.push(json!({"role": "user", "parts": parts}));
                            last = Last::User;
                        }
                    }
                }
            }
            "assistant" => {
                let mut parts = Vec::new();
                let text = convert::content_text(message.get("content"));
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                let calls = message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .chain(message.get("function_call"));
                let mut first = true;
                for call in calls {
                    let f = call.get("function").unwrap_or(call);
                    let name = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(format!("messages[{i}]: a tool call has no name")))?;
                    let args = convert::arguments_object(f.get("arguments"))
                        .map_err(|e| bad(format!("messages[{i}]: {e}")))?;
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    if signature && first {
                        part["thoughtSignature"] = json!(SKIP_THOUGHT_SIGNATURE);
                    }
                    first = false;
                    parts.push(part);
                }
                if !parts.is_empty() {
                    contents.push(json!({"role": "model", "parts": parts}));
                    last = Last::Model;
                }
            }
            "tool" | "function" => {
                let name = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .and_then(|id| names.get(id).cloned())
                    .or_else(|| message.get("name").and_then(Value::as_str).map(str::to_string))
                    .ok_or_else(|| {
                        bad(format!(
                            "messages[{i}]: a tool result whose tool_call_id matches no earlier tool call"
                        ))
                    })?;
                let part =
                    json!({"functionResponse": {"name": name, "response": tool_response(message.get("content"))}});
                match (contents.last_mut(), last) {
                    (Some(turn), Last::Responses) => push_part(turn, part),
                    _ => {
                        contents.push(json!({"role": "user", "parts": [part]}));
                        last = Last::Responses;
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}]: unknown role `{other}` (expected system, developer, user, assistant or tool)"
                )))
            }
        }
    }

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let declarations = function_declarations(pivot)?;
    if !declarations.is_empty() {
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(config) = tool_config(pivot.get("tool_choice").or(pivot.get("function_call"))) {
        out.insert("toolConfig".into(), config);
    }
    let generation = generation_config(pivot)?;
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(out))
}

/// The kind of the last content of a Gemini request being built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    None,
    Model,
    /// A user turn of function responses (nothing else may join it).
    Responses,
    /// A user turn of the client's content.
    User,
    /// A user turn holding a mid-conversation system message.
    UserWithSystem,
}

fn push_part(turn: &mut Value, part: Value) {
    if let Some(parts) = turn.get_mut("parts").and_then(Value::as_array_mut) {
        parts.push(part);
    }
}

/// A tool result as Gemini's `response` object: a JSON object as it is,
/// anything else as `{"content": ...}`.
fn tool_response(content: Option<&Value>) -> Value {
    let text = convert::content_text(content);
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    }
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, ProxyError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| content_part(p, i))
            .collect::<Result<Vec<_>, _>>(),
        Some(_) => Err(bad(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

fn content_part(part: &Value, i: usize) -> Result<Value, ProxyError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"text": part.get("text").and_then(Value::as_str).unwrap_or("")})),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages[{i}]: an image_url part has no url")))?;
            Ok(media_part(url, guess_image_type(url)))
        }
        Some("input_audio") => {
            let audio = part.get("input_audio");
            let data = audio
                .and_then(|a| a.get("data"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages[{i}]: an input_audio part has no data")))?;
            let format = audio
                .and_then(|a| a.get("format"))
                .and_then(Value::as_str)
                .unwrap_or("wav");
            Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
        }
        Some("file") => {
            let data = part
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(format!(
                        "messages[{i}]: Gemini takes files as `file_data` data URLs, not file ids"
                    ))
                })?;
            Ok(media_part(data, "application/pdf"))
        }
        other => Err(bad(format!(
            "messages[{i}]: content part type `{}` cannot be sent to Gemini",
            other.unwrap_or("(none)")
        ))),
    }
}

fn media_part(url: &str, fallback_type: &str) -> Value {
    match convert::parse_data_url(url) {
        Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
        None => json!({"fileData": {"mimeType": fallback_type, "fileUri": url}}),
    }
}

fn guess_image_type(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".heic") {
        "image/heic"
    } else {
        "image/jpeg"
    }
}

fn function_declarations(pivot: &Map<String, Value>) -> Result<Vec<Value>, ProxyError> {
    let mut out = Vec::new();
    let tools = pivot
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let functions = pivot
        .get("functions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for tool in tools.chain(functions) {
        let kind = tool.get("type").and_then(Value::as_str);
        if kind.is_some_and(|k| k != "function") {
            return Err(bad(format!(
                "tools of type `{}` cannot be sent to Gemini",
                kind.unwrap_or_default()
            )));
        }
        let f = tool.get("function").unwrap_or(tool);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a tool has no function name"))?;
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if let Some(desc) = f.get("description").and_then(Value::as_str) {
            d.insert("description".into(), json!(desc));
        }
        if let Some(params) = f.get("parameters") {
            let has_properties = params
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            if has_properties || params.get("type").and_then(Value::as_str) != Some("object") {
                d.insert("parameters".into(), clean_schema(params));
            }
        }
        out.push(Value::Object(d));
    }
    Ok(out)
}

/// A JSON schema reduced to the OpenAPI subset Gemini's `Schema` accepts:
/// unknown keywords go, `["T", "null"]` types become `nullable`, `const`
/// becomes a one-value `enum`.
pub fn clean_schema(schema: &Value) -> Value {
    let Value::Object(m) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in m {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let mut real = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = real.next() {
                        out.insert("type".into(), t.clone());
                    }
                    if types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), json!(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "properties" => {
                if let Value::Object(props) = value {
                    let cleaned: Map<String, Value> = props
                        .iter()
                        .map(|(k, v)| (k.clone(), clean_schema(v)))
                        .collect();
                    out.insert("properties".into(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert("items".into(), clean_schema(value));
            }
            "anyOf" => {
                if let Value::Array(options) = value {
                    out.insert(
                        "anyOf".into(),
                        Value::Array(options.iter().map(clean_schema).collect()),
                    );
                }
            }
            "format" => {
                if matches!(
                    value.as_str(),
                    Some("date-time" | "enum" | "int32" | "int64" | "float" | "double")
                ) {
                    out.insert("format".into(), value.clone());
                }
            }
            "const" => {
                out.insert("enum".into(), json!([value]));
            }
            "description" | "enum" | "nullable" | "required" | "title" | "minItems"
            | "maxItems" | "minimum" | "maximum" | "minLength" | "maxLength" | "pattern"
            | "example" | "default" | "propertyOrdering" | "minProperties" | "maxProperties" => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn tool_config(choice: Option<&Value>) -> Option<Value> {
    let config = match choice? {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" | "any" => json!({"mode": "ANY"}),
            _ => return None,
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return None,
    };
    Some(json!({"functionCallingConfig": config}))
}

fn generation_config(pivot: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    let mut g = Map::new();
    let copy = |g: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = pivot.get(from).filter(|v| !v.is_null()) {
            g.insert(to.into(), v.clone());
        }
    };
    copy(&mut g, "temperature", "temperature");
    copy(&mut g, "top_p", "topP");
    copy(&mut g, "max_tokens", "maxOutputTokens");
    copy(&mut g, "max_completion_tokens", "maxOutputTokens");
    copy(&mut g, "n", "candidateCount");
    copy(&mut g, "seed", "seed");
    copy(&mut g, "presence_penalty", "presencePenalty");
    copy(&mut g, "frequency_penalty", "frequencyPenalty");
    match pivot.get("stop") {
        Some(Value::String(s)) => {
            g.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            g.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(format) = pivot.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                g.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                g.insert("responseMimeType".into(), json!("application/json"));
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .ok_or_else(|| bad("response_format.json_schema.schema is missing"))?;
                g.insert("responseSchema".into(), clean_schema(schema));
            }
            _ => {}
        }
    }
    Ok(g)
}

/// The reverse mapping: a Gemini `generateContent` body as a pivot (OpenAI)
/// request for `model`. Tool call ids are generated (`call_0`, `call_1`, ...)
/// and function responses matched to the calls by name, in order.
pub fn request_from_gemini(gemini: &Value, model: &str) -> Value {
    let mut messages = Vec::new();
    let system: Vec<&str> = gemini
        .pointer("/systemInstruction/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system.join("\n")}));
    }
    let mut next_id = 0;
    let mut open_calls: Vec<(String, String)> = Vec::new(); // (name, id)
    for content in gemini
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if content.get("role").and_then(Value::as_str) == Some("model") {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            let calls: Vec<Value> = parts
                .iter()
                .filter_map(|p| p.get("functionCall"))
                .map(|c| {
                    let id = format!("call_{next_id}");
                    next_id += 1;
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    open_calls.push((name.to_string(), id.clone()));
                    json!({"id": id, "type": "function", "function": {
                        "name": name,
                        "arguments": c.get("args").cloned().unwrap_or(json!({})).to_string()}})
                })
                .collect();
            let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            messages.push(m);
            continue;
        }
        let mut user_parts = Vec::new();
        for part in parts {
            if let Some(r) = part.get("functionResponse") {
                let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = open_calls
                    .iter()
                    .position(|(n, _)| n == name)
                    .map(|i| open_calls.remove(i).1)
                    .unwrap_or_default();
                let response = r.get("response").cloned().unwrap_or(json!({}));
                let content = match response.as_object() {
                    Some(o) if o.len() == 1 && o.get("content").is_some_and(Value::is_string) => {
                        o["content"].clone()
                    }
                    _ => json!(response.to_string()),
                };
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            } else if let Some(t) = part.get("text").and_then(Value::as_str) {
                user_parts.push(json!({"type": "text", "text": t}));
            } else if let Some(d) = part.get("inlineData") {
                let url = format!(
                    "data:{};base64,{}",
                    d.get("mimeType")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    d.get("data").and_then(Value::as_str).unwrap_or_default()
                );
                user_parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            } else if let Some(f) = part.get("fileData") {
                user_parts.push(json!({"type": "image_url", "image_url": {"url": f.get("fileUri").cloned().unwrap_or_default()}}));
            }
        }
        if !user_parts.is_empty() {
            let content = match user_parts.as_slice() {
                [only] if only["type"] == "text" => only["text"].clone(),
                _ => Value::Array(user_parts),
            };
            messages.push(json!({"role": "user", "content": content}));
        }
    }
    let mut out = json!({"model": model, "messages": messages});
    let tools: Vec<Value> = gemini
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .map(|d| {
            let mut f = json!({"name": d.get("name").cloned().unwrap_or_default()});
            if let Some(desc) = d.get("description") {
                f["description"] = desc.clone();
            }
            if let Some(p) = d.get("parameters") {
                f["parameters"] = p.clone();
            }
            json!({"type": "function", "function": f})
        })
        .collect();
    if !tools.is_empty() {
        out["tools"] = Value::Array(tools);
    }
    if let Some(c) = gemini.pointer("/toolConfig/functionCallingConfig") {
        let names = c.get("allowedFunctionNames").and_then(Value::as_array);
        out["tool_choice"] = match (c.get("mode").and_then(Value::as_str), names) {
            (Some("ANY"), Some(n)) if n.len() == 1 => {
                json!({"type": "function", "function": {"name": n[0]}})
            }
            (Some("ANY"), _) => json!("required"),
            (Some("NONE"), _) => json!("none"),
            _ => json!("auto"),
        };
    }
    if let Some(Value::Object(g)) = gemini.get("generationConfig") {
        for (from, to) in [
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("maxOutputTokens", "max_tokens"),
            ("candidateCount", "n"),
            ("seed", "seed"),
            ("presencePenalty", "presence_penalty"),
            ("frequencyPenalty", "frequency_penalty"),
            ("stopSequences", "stop"),
        ] {
            if let Some(v) = g.get(from) {
                out[to] = v.clone();
            }
        }
        match (
            g.get("responseMimeType").and_then(Value::as_str),
            g.get("responseSchema"),
        ) {
            (Some("application/json"), Some(schema)) => {
                out["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}});
            }
            (Some("application/json"), None) => {
                out["response_format"] = json!({"type": "json_object"});
            }
            _ => {}
        }
    }
    out
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
mod tests {
    use super::*;
    use crate::translate::convert::testing::{
        assert_stream, canonical_ids, json_fixture, normalize,
    };

    fn answer_fixture(name: &str) {
        let upstream = json_fixture(&format!("gemini/{name}.gemini.json"));
        let mut got = answer_to_openai(&upstream, "gemini-2.5-flash");
        normalize(&mut got);
        assert_eq!(
            got,
            json_fixture(&format!("gemini/{name}.openai.json")),
            "{name}"
        );
    }

    #[test]
    fn golden_request() {
        let pivot = json_fixture("gemini/request_tools.openai.json");
        let got = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
        assert_eq!(got, json_fixture("gemini/request_tools.gemini.json"));
    }

    #[test]
    fn golden_answers() {
        answer_fixture("answer_text");
        answer_fixture("answer_tools");
        answer_fixture("answer_blocked");
    }

    #[test]
    fn golden_error() {
        let got = error_to_openai(
            StatusCode::BAD_REQUEST,
            &crate::translate::convert::testing::fixture("gemini/error_context.gemini.json"),
        );
        assert_eq!(got, json_fixture("gemini/error_context.openai.json"));
    }

    #[test]
    fn golden_streams_whole_and_byte_by_byte() {
        for name in ["stream_text", "stream_tools", "stream_blocked"] {
            assert_stream(
                || GeminiStream::new("gemini-2.5-flash", true),
                &format!("gemini/{name}.gemini.sse"),
                &format!("gemini/{name}.openai.json"),
            );
        }
    }

    #[test]
    fn stream_usage_only_when_asked() {
        let input = crate::translate::convert::testing::fixture("gemini/stream_text.gemini.sse");
        let events = crate::translate::convert::testing::run(
            GeminiStream::new("gemini-2.5-flash", false),
            &input,
            5,
        );
        assert!(events.iter().all(|e| e.get("usage").is_none()));
        assert_eq!(events.last().unwrap(), "[DONE]");
    }

    #[test]
    fn stream_without_finish_gets_no_done() {
        let input = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}]}\r\n\r\n";
        let events =
            crate::translate::convert::testing::run(GeminiStream::new("g", true), input, 3);
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e != "[DONE]"));
        // An error event mid-stream becomes an OpenAI error event.
        let input = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}\n\ndata: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n";
        let events =
            crate::translate::convert::testing::run(GeminiStream::new("g", true), input, 4);
        let last = events.last().unwrap();
        assert_eq!(last["error"]["message"], "The model is overloaded.");
        assert_eq!(last["error"]["code"], "unavailable");
    }

    #[test]
    fn round_trip_keeps_messages_and_tools() {
        let pivot = json_fixture("gemini/request_tools.openai.json");
        let gemini = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
        let back = request_from_gemini(&gemini, "weather-bot");
        assert_eq!(
            canonical_ids(&back["messages"]),
            canonical_ids(&pivot["messages"])
        );
        // A tool without parameters loses its empty schema on the way.
        let mut tools = pivot["tools"].clone();
        tools[1]["function"]
            .as_object_mut()
            .unwrap()
            .remove("parameters");
        assert_eq!(back["tools"], tools);
        for key in [
            "tool_choice",
            "temperature",
            "top_p",
            "max_tokens",
            "stop",
            "seed",
            "response_format",
        ] {
            assert_eq!(back[key], pivot[key], "{key}");
        }
    }

    #[test]
    fn thought_signature_on_replayed_calls_of_gemini_3() {
        let pivot = json_fixture("gemini/request_tools.openai.json");
        let got = request_to_gemini(pivot.as_object().unwrap(), "gemini-3-pro-preview").unwrap();
        let parts = got["contents"][1]["parts"].as_array().unwrap();
        assert_eq!(parts[0]["thoughtSignature"], SKIP_THOUGHT_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
    }

    #[test]
    fn thought_signature_models() {
        assert!(wants_thought_signature("gemini-3-pro-preview"));
        assert!(wants_thought_signature("models/gemini-3.1-flash"));
        assert!(wants_thought_signature("gemini-flash-latest"));
        assert!(!wants_thought_signature("gemini-2.5-flash"));
        assert!(!wants_thought_signature("gemini-1.5-pro"));
        assert!(!wants_thought_signature("gemma-3-27b-it"));
    }

    #[test]
    fn schema_cleaning() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "kind": {"const": "a"},
                "tags": {"type": "array", "items": {"type": "string", "examples": ["x"]}}
            },
            "required": ["url"]
        });
        assert_eq!(
            clean_schema(&schema),
            json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "when": {"type": "string", "nullable": true, "format": "date-time"},
                    "kind": {"enum": ["a"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["url"]
            })
        );
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("STOP"), false), "stop");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(finish_reason(Some(r), false), "content_filter");
        }
        assert_eq!(finish_reason(Some("OTHER"), false), "stop");
    }

    #[test]
    fn unknown_tool_result_is_400() {
        let pivot = json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
        let e = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn errors_keep_message_and_status() {
        let body = br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        let v = error_to_openai(StatusCode::BAD_REQUEST, body);
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(crate::layers::failover::is_context_exceeded(
            v.to_string().as_bytes()
        ));
        let v = error_to_openai(
            StatusCode::TOO_MANY_REQUESTS,
            br#"[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]"#,
        );
        assert_eq!(v["error"]["code"], "resource_exhausted");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        let v = error_to_openai(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(v["error"]["message"], "<html>bad gateway</html>");
        assert_eq!(v["error"]["code"], "upstream_error");
    }

    /// Regression: a candidate `index` of u64::MAX overflowed (`index + 1`)
    /// and one of 10^12 sized a table by it (+700 MB/s until OOM); both end
    /// the stream with an error now, and nothing is allocated for them.
    #[test]
    fn an_out_of_range_candidate_index_is_an_error_not_a_table() {
        for index in ["128", "1000000000000", "18446744073709551615"] {
            let mut conv = GeminiStream::new("g", false);
            let mut out = VecDeque::new();
            let event = format!(
                "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"Hi\"}}]}},\"index\":{index}}}]}}\n\n"
            );
            let err = conv.push(event.as_bytes(), &mut out).unwrap_err();
            assert!(err.to_string().contains("beyond the limit of 128"), "{err}");
            assert!(conv.candidates.is_empty());
            assert!(out.is_empty());
        }
    }
}
