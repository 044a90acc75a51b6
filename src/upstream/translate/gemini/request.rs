//! Requests: the pivot -> Gemini `generateContent`, and back.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{bad, wants_thought_signature, SKIP_THOUGHT_SIGNATURE};
use crate::error::ProxyError;
use crate::upstream::translate::convert;

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
                let texts = system_texts(message.get("content"));
                if texts.is_empty() {
                    continue;
                }
                if contents.is_empty() {
                    system.extend(texts.into_iter().map(|t| json!({"text": t})));
                } else {
                    // Gemini has no system turn: a system message after the
                    // conversation started is user text at its position.
                    let text = texts.join("\n\n");
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
                        set(&mut part, "thoughtSignature", json!(SKIP_THOUGHT_SIGNATURE));
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

/// The non-empty texts of a system message: its string, or each text part.
fn system_texts(content: Option<&Value>) -> Vec<&str> {
    match content {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|t| !t.is_empty())
    .collect()
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

/// `v[key] = value` for an object built here, without `IndexMut`'s panic
/// path.
fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.into(), value);
    }
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
    let mut next_id: u64 = 0;
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
                    next_id = next_id.saturating_add(1);
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    open_calls.push((name.to_string(), id.clone()));
                    json!({"id": id, "type": "function", "function": {
                        "name": name,
                        "arguments": c.get("args").cloned().unwrap_or(json!({})).to_string()}})
                })
                .collect();
            let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                set(&mut m, "tool_calls", Value::Array(calls));
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
                set(&mut f, "description", desc.clone());
            }
            if let Some(p) = d.get("parameters") {
                set(&mut f, "parameters", p.clone());
            }
            json!({"type": "function", "function": f})
        })
        .collect();
    if !tools.is_empty() {
        set(&mut out, "tools", Value::Array(tools));
    }
    if let Some(c) = gemini.pointer("/toolConfig/functionCallingConfig") {
        let names = c.get("allowedFunctionNames").and_then(Value::as_array);
        let choice = match (
            c.get("mode").and_then(Value::as_str),
            names.map(Vec::as_slice),
        ) {
            (Some("ANY"), Some([only])) => {
                json!({"type": "function", "function": {"name": only}})
            }
            (Some("ANY"), _) => json!("required"),
            (Some("NONE"), _) => json!("none"),
            _ => json!("auto"),
        };
        set(&mut out, "tool_choice", choice);
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
                set(&mut out, to, v.clone());
            }
        }
        match (
            g.get("responseMimeType").and_then(Value::as_str),
            g.get("responseSchema"),
        ) {
            (Some("application/json"), Some(schema)) => {
                set(
                    &mut out,
                    "response_format",
                    json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}),
                );
            }
            (Some("application/json"), None) => {
                set(&mut out, "response_format", json!({"type": "json_object"}));
            }
            _ => {}
        }
    }
    out
}
