//! Responses request -> Chat Completions request (see [`super`] for the table).

use serde_json::{json, Map, Value};

use super::tools::{tool_choice, Tools};
use super::{invalid, unsupported, HOSTED_TOOLS, NAMESPACE_SEPARATOR};
use crate::error::ProxyError;

/// Parameters the pivot maps or passes.
const MAPPED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "user",
    "safety_identifier",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "stream",
    "background",
];

/// Parameters that need the stateful Responses API: a 400 when set.
const STATEFUL: &[&str] = &[
    "previous_response_id",
    "conversation",
    "prompt",
    "context_management",
    "moderation",
];

/// Pure hints, dropped.
const HINTS: &[&str] = &[
    "metadata",
    "store",
    "include",
    "client_metadata",
    "truncation",
    "stream_options",
    "max_tool_calls",
    "prompt_cache_options",
];

fn needs_responses_api(what: &str) -> ProxyError {
    unsupported(format!(
        "{what} is not supported by this backend: it needs the Responses API of a backend with api = \"responses\""
    ))
}

/// A value that is there and not `null`.
pub(super) fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

pub(super) fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    here: &str,
) -> Result<Option<&'a str>, ProxyError> {
    match present(obj.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{here}: `{key}` must be a string"))),
    }
}

pub(super) fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    here: &str,
) -> Result<&'a str, ProxyError> {
    optional_str(obj, key, here)?.ok_or_else(|| invalid(format!("{here}: `{key}` is required")))
}

pub(super) fn as_object<'a>(
    v: &'a Value,
    here: &str,
) -> Result<&'a Map<String, Value>, ProxyError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{here}: must be an object")))
}

/// Hosted tool types in the request that a translated backend cannot run
/// (removed by [`request_to_openai`]), in order, deduplicated: e.g.
/// `["web_search"]`. Empty when none.
pub fn dropped_tools(body: &Map<String, Value>) -> Vec<String> {
    let mut dropped: Vec<String> = Vec::new();
    if let Some(Value::Array(tools)) = body.get("tools") {
        for kind in tools
            .iter()
            .filter_map(|t| t.get("type").and_then(Value::as_str))
        {
            if HOSTED_TOOLS.contains(&kind) && !dropped.iter().any(|d| d == kind) {
                dropped.push(kind.to_string());
            }
        }
    }
    dropped
}

/// The Responses request as a Chat Completions (pivot) request. `model` is
/// copied as is. See the [module docs](super) for what maps, what is
/// dropped and what is refused.
pub fn request_to_openai(body: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    check_keys(body)?;
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }

    let mut messages = Vec::new();
    match present(body.get("instructions")) {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(invalid("`instructions` must be a string")),
    }
    match present(body.get("input")) {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => convert_input(items, &mut messages)?,
        Some(_) => {
            return Err(invalid(
                "`input` must be a string or an array of input items",
            ))
        }
        None => return Err(invalid("`input` is required")),
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Tools::from_request(body)?;
    let choice = tool_choice(present(body.get("tool_choice")), &mut tools)?;
    if tools.chat.is_empty() {
        if let Some(choice) = choice.filter(|c| c != "auto" && c != "none") {
            return Err(unsupported(format!(
                "`tool_choice` {choice} needs a tool, and the request has none this backend can run (hosted tools are removed)"
            )));
        }
    } else {
        let chat: Vec<Value> = tools.chat.into_iter().map(|(_, t)| t).collect();
        out.insert("tools".into(), Value::Array(chat));
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
        match present(body.get("parallel_tool_calls")) {
            None => {}
            Some(Value::Bool(b)) => {
                out.insert("parallel_tool_calls".into(), Value::Bool(*b));
            }
            Some(_) => return Err(invalid("`parallel_tool_calls` must be a boolean")),
        }
    }

    if let Some(v) = present(body.get("max_output_tokens")) {
        let n = v
            .as_u64()
            .ok_or_else(|| invalid("`max_output_tokens` must be a non-negative integer"))?;
        out.insert("max_completion_tokens".into(), Value::from(n));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = present(body.get(key)) {
            if !v.is_number() {
                return Err(invalid(format!("`{key}` must be a number")));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = present(body.get("top_logprobs")) {
        let n = v
            .as_u64()
            .ok_or_else(|| invalid("`top_logprobs` must be a non-negative integer"))?;
        out.insert("logprobs".into(), Value::Bool(true));
        out.insert("top_logprobs".into(), Value::from(n));
    }
    let top = |key: &str| optional_str(body, key, "the request");
    let user = top("user")?.or(top("safety_identifier")?);
    if let Some(user) = user {
        out.insert("user".into(), Value::from(user));
    }
    for key in ["service_tier", "prompt_cache_key", "prompt_cache_retention"] {
        if let Some(v) = top(key)? {
            out.insert(key.into(), Value::from(v));
        }
    }
    text_config(body, &mut out)?;
    reasoning(body, &mut out)?;
    match present(body.get("stream")) {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(invalid("`stream` must be a boolean")),
    }
    Ok(out)
}

/// Every top-level key is mapped, a dropped hint, or refused by name.
fn check_keys(body: &Map<String, Value>) -> Result<(), ProxyError> {
    let mut unknown = Vec::new();
    for (key, value) in body {
        let key = key.as_str();
        if key == "background" {
            match value {
                Value::Null | Value::Bool(false) => {}
                Value::Bool(true) => return Err(needs_responses_api("`background: true`")),
                _ => return Err(invalid("`background` must be a boolean")),
            }
        } else if STATEFUL.contains(&key) {
            let empty = match value {
                Value::Null => true,
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !empty {
                return Err(needs_responses_api(&format!("`{key}`")));
            }
        } else if HINTS.contains(&key) {
            hint_type(key, value)?;
        } else if !MAPPED.contains(&key) {
            unknown.push(format!("`{key}`"));
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ProxyError::bad_request(
            "unknown_parameter",
            format!(
                "unknown Responses parameter {} (not translatable for this backend)",
                unknown.join(", ")
            ),
        ))
    }
}

/// A dropped hint still has its type (some are echoed in the Response).
fn hint_type(key: &str, value: &Value) -> Result<(), ProxyError> {
    let (ok, expected) = match key {
        "metadata" | "client_metadata" | "stream_options" | "prompt_cache_options" => {
            (value.is_object(), "an object")
        }
        "store" => (value.is_boolean(), "a boolean"),
        "include" => (value.is_array(), "an array"),
        "max_tool_calls" => (value.is_u64(), "a non-negative integer"),
        "truncation" => (
            matches!(value.as_str(), Some("auto" | "disabled")),
            "\"auto\" or \"disabled\"",
        ),
        _ => (true, ""),
    };
    if ok || value.is_null() {
        Ok(())
    } else {
        Err(invalid(format!("`{key}` must be {expected}")))
    }
}

fn text_config(body: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ProxyError> {
    let Some(text) = present(body.get("text")) else {
        return Ok(());
    };
    let text = as_object(text, "`text`")?;
    if let Some(format) = present(text.get("format")) {
        let format = as_object(format, "`text.format`")?;
        match required_str(format, "type", "`text.format`")? {
            "text" => {}
            "json_object" => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            "json_schema" => {
                let here = "`text.format`";
                let mut spec = Map::new();
                spec.insert(
                    "name".into(),
                    Value::from(required_str(format, "name", here)?),
                );
                if let Some(d) = optional_str(format, "description", here)? {
                    spec.insert("description".into(), Value::from(d));
                }
                match present(format.get("schema")) {
                    Some(s @ Value::Object(_)) => {
                        spec.insert("schema".into(), s.clone());
                    }
                    _ => return Err(invalid("`text.format`: `schema` must be an object")),
                }
                match present(format.get("strict")) {
                    None => {}
                    Some(Value::Bool(b)) => {
                        spec.insert("strict".into(), Value::Bool(*b));
                    }
                    Some(_) => return Err(invalid("`text.format`: `strict` must be a boolean")),
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": spec}),
                );
            }
            other => {
                return Err(unsupported(format!(
                    "`text.format` of type `{other}` cannot be translated for this backend"
                )))
            }
        }
    }
    if let Some(v) = optional_str(text, "verbosity", "`text`")? {
        out.insert("verbosity".into(), Value::from(v));
    }
    Ok(())
}

fn reasoning(body: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ProxyError> {
    let Some(reasoning) = present(body.get("reasoning")) else {
        return Ok(());
    };
    let reasoning = as_object(reasoning, "`reasoning`")?;
    if let Some(effort) = optional_str(reasoning, "effort", "`reasoning`")? {
        out.insert("reasoning_effort".into(), Value::from(effort));
    }
    match optional_str(reasoning, "mode", "`reasoning`")? {
        None | Some("standard") => Ok(()),
        Some(other) => Err(unsupported(format!(
            "`reasoning.mode` \"{other}\" cannot be translated for this backend"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Input items

/// `input` items as chat messages, appended to `out`.
fn convert_input(items: &[Value], out: &mut Vec<Value>) -> Result<(), ProxyError> {
    // Images and files of tool outputs: one user message after the run of
    // tool messages (a tool message carries text only).
    let mut media: Vec<Value> = Vec::new();
    // The last message is an assistant turn that function calls may join.
    let mut assistant_open = false;
    for (i, item) in items.iter().enumerate() {
        let here = format!("input[{i}]");
        let obj = as_object(item, &here)?;
        let kind = match present(obj.get("type")) {
            Some(Value::String(s)) => s.as_str(),
            None if obj.contains_key("role") => "message",
            None => return Err(invalid(format!("{here}: `type` is required"))),
            Some(_) => return Err(invalid(format!("{here}: `type` must be a string"))),
        };
        // Dropped: opaque reasoning, and records of hosted searches.
        if kind == "reasoning" || kind == "web_search_call" {
            continue;
        }
        if kind != "function_call_output" && !media.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(&mut media)}));
            assistant_open = false;
        }
        match kind {
            "message" => {
                let message = message(obj, &here)?;
                assistant_open = message.get("role").and_then(Value::as_str) == Some("assistant");
                out.push(message);
            }
            "function_call" => {
                let call_id = required_str(obj, "call_id", &here)?;
                let name = required_str(obj, "name", &here)?;
                let name = match optional_str(obj, "namespace", &here)? {
                    Some(ns) if !ns.is_empty() => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
                    _ => name.to_string(),
                };
                let arguments = required_str(obj, "arguments", &here)?;
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                });
                match out.last_mut().and_then(Value::as_object_mut) {
                    Some(last) if assistant_open => match last.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            last.insert("tool_calls".into(), json!([call]));
                        }
                    },
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
                assistant_open = true;
            }
            "function_call_output" => {
                let call_id = required_str(obj, "call_id", &here)?;
                let content = tool_output(obj.get("output"), &here, &mut media)?;
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
                assistant_open = false;
            }
            "item_reference" => {
                return Err(needs_responses_api(&format!(
                    "{here}: an `item_reference` item"
                )))
            }
            other => {
                return Err(unsupported(format!(
                    "{here}: the item type `{other}` cannot be translated for this backend"
                )))
            }
        }
    }
    if !media.is_empty() {
        out.push(json!({"role": "user", "content": media}));
    }
    Ok(())
}

/// The output of a `function_call_output`: its text as the tool message's
/// content (one text: a string; several: text parts), its images and files
/// appended to `media`.
fn tool_output(
    output: Option<&Value>,
    here: &str,
    media: &mut Vec<Value>,
) -> Result<Value, ProxyError> {
    let parts = match output {
        Some(Value::String(s)) => return Ok(Value::from(s.as_str())),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(format!(
                "{here}: `output` must be a string or an array of parts"
            )))
        }
    };
    let mut texts = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{here}.output[{j}]");
        let obj = as_object(part, &here)?;
        match required_str(obj, "type", &here)? {
            "input_text" => texts.push(Value::from(required_str(obj, "text", &here)?)),
            _ => media.push(user_part(obj, &here)?),
        }
    }
    Ok(text_content(texts))
}

/// Text parts as a message content: one text as a string, several as text
/// parts, none as an empty string.
fn text_content(mut texts: Vec<Value>) -> Value {
    if texts.len() <= 1 {
        return texts.pop().unwrap_or_else(|| Value::from(""));
    }
    Value::Array(
        texts
            .into_iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect(),
    )
}

fn message(obj: &Map<String, Value>, here: &str) -> Result<Value, ProxyError> {
    let role = required_str(obj, "role", here)?;
    let content = present(obj.get("content"));
    let parts = match content {
        Some(Value::String(s)) => {
            let role = if role == "developer" { "system" } else { role };
            if !matches!(role, "system" | "user" | "assistant") {
                return Err(unknown_role(here, role));
            }
            return Ok(json!({"role": role, "content": s}));
        }
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(format!(
                "{here}: `content` must be a string or an array of parts"
            )))
        }
    };
    let part = |j: usize| -> Result<(String, &Map<String, Value>, &str), ProxyError> {
        let here = format!("{here}.content[{j}]");
        let obj = parts
            .get(j)
            .map(|p| as_object(p, &here))
            .transpose()?
            .ok_or_else(|| invalid(format!("{here}: missing")))?;
        let kind = required_str(obj, "type", &here)?;
        Ok((here, obj, kind))
    };
    match role {
        "system" | "developer" => {
            let mut texts = Vec::new();
            for j in 0..parts.len() {
                let (here, obj, kind) = part(j)?;
                if kind != "input_text" {
                    return Err(unsupported(format!(
                        "{here}: a `{kind}` part in a {role} message cannot be translated (text only)"
                    )));
                }
                texts.push(Value::from(required_str(obj, "text", &here)?));
            }
            Ok(json!({"role": "system", "content": text_content(texts)}))
        }
        "user" => {
            let mut content = Vec::with_capacity(parts.len());
            for j in 0..parts.len() {
                let (here, obj, _) = part(j)?;
                content.push(user_part(obj, &here)?);
            }
            Ok(json!({"role": "user", "content": content}))
        }
        "assistant" => {
            let mut text = String::new();
            let mut refusal = String::new();
            for j in 0..parts.len() {
                let (here, obj, kind) = part(j)?;
                match kind {
                    "output_text" | "input_text" => text.push_str(required_str(obj, "text", &here)?),
                    "refusal" => refusal.push_str(required_str(obj, "refusal", &here)?),
                    other => {
                        return Err(unsupported(format!(
                            "{here}: a `{other}` part in an assistant message cannot be translated for this backend"
                        )))
                    }
                }
            }
            let mut m = json!({"role": "assistant", "content": text});
            if !refusal.is_empty() {
                super::answer::set(&mut m, "refusal", Value::from(refusal));
            }
            Ok(m)
        }
        other => Err(unknown_role(here, other)),
    }
}

fn unknown_role(here: &str, role: &str) -> ProxyError {
    invalid(format!(
        "{here}: unknown role `{role}` (expected user, assistant, system or developer)"
    ))
}

/// A user content part (or an image / file of a tool output) as a chat part.
fn user_part(obj: &Map<String, Value>, here: &str) -> Result<Value, ProxyError> {
    match required_str(obj, "type", here)? {
        "input_text" => Ok(json!({"type": "text", "text": required_str(obj, "text", here)?})),
        "input_image" => {
            let Some(url) = optional_str(obj, "image_url", here)? else {
                if present(obj.get("file_id")).is_some() {
                    return Err(unsupported(format!(
                        "{here}: an `input_image` with a `file_id` cannot be translated for this backend (send `image_url`, a URL or a data URL)"
                    )));
                }
                return Err(invalid(format!("{here}: `image_url` is required")));
            };
            let mut image = json!({"url": url});
            if let Some(detail) = optional_str(obj, "detail", here)? {
                super::answer::set(&mut image, "detail", Value::from(detail));
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" => {
            let mut file = Map::new();
            if let Some(data) = optional_str(obj, "file_data", here)? {
                file.insert("file_data".into(), Value::from(data));
            } else if let Some(id) = optional_str(obj, "file_id", here)? {
                file.insert("file_id".into(), Value::from(id));
            } else if present(obj.get("file_url")).is_some() {
                return Err(unsupported(format!(
                    "{here}: an `input_file` with a `file_url` cannot be translated for this backend (send `file_data`)"
                )));
            } else {
                return Err(invalid(format!(
                    "{here}: `file_data` or `file_id` is required"
                )));
            }
            if let Some(name) = optional_str(obj, "filename", here)? {
                file.insert("filename".into(), Value::from(name));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        "input_audio" => match present(obj.get("input_audio")) {
            Some(audio @ Value::Object(_)) => {
                Ok(json!({"type": "input_audio", "input_audio": audio}))
            }
            _ => Err(invalid(format!("{here}: `input_audio` must be an object"))),
        },
        other => Err(unsupported(format!(
            "{here}: the content part type `{other}` cannot be translated for this backend"
        ))),
    }
}
