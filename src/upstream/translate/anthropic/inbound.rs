//! Requests: Anthropic Messages (a client's) -> OpenAI Chat Completions (the pivot).

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use serde_json::{json, Map, Value};

use super::{invalid, is_null_or_absent, unsupported};
use crate::error::ProxyError;

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

/// The text of a system prompt — the top-level `system`, a `role: "system"`
/// message or a `mid_conv_system` block — as pivot content: a string, or
/// text parts when there are several blocks (`cache_control` stays behind).
/// `None` when there is no text.
fn system_content(content: Option<&Value>, where_: &str) -> Result<Option<Value>, ProxyError> {
    let blocks = match content {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return Ok(Some(Value::from(s.as_str()))),
        Some(Value::Array(blocks)) => blocks,
        Some(_) => {
            return Err(invalid(format!(
                "{where_}: a system prompt must be a string or text blocks"
            )))
        }
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        if block.get("type").and_then(Value::as_str) != Some("text") {
            return Err(unsupported(format!(
                "{where_}[{j}]: a non-text block in a system prompt"
            )));
        }
        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
        parts.push(json!({"type": "text", "text": text}));
    }
    Ok(match parts.as_slice() {
        [] => None,
        [only] => only.get("text").cloned(),
        _ => Some(Value::Array(parts)),
    })
}

/// A `role: "system"` message (Anthropic's mid-conversation system message)
/// as a pivot `system` message at the same position. Returns the effort its
/// per-turn `output_config` asks for, if any.
fn system_message(
    message: &Value,
    here: &str,
    out: &mut Vec<Value>,
) -> Result<Option<&'static str>, ProxyError> {
    if let Some(content) = system_content(message.get("content"), &format!("{here}.content"))? {
        out.push(json!({"role": "system", "content": content}));
    }
    let mut effort = None;
    match message.get("output_config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(config)) => {
            for (key, value) in config {
                match (key.as_str(), value) {
                    (_, Value::Null) => {}
                    ("effort", Value::String(e)) => effort = Some(effort_level(e)?),
                    _ => {
                        return Err(unsupported(format!("`{here}.output_config.{key}`")));
                    }
                }
            }
        }
        Some(_) => {
            return Err(invalid(format!(
                "{here}: `output_config` must be an object"
            )))
        }
    }
    Ok(effort)
}

/// One Anthropic `user` or `assistant` message as one or more OpenAI
/// messages.
fn message_to_openai(message: &Value, here: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{here}: `role` is required")))?;
    if role != "user" && role != "assistant" {
        return Err(invalid(format!(
            "{here}: unknown role `{role}` (expected `user`, `assistant` or `system`)"
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
        let mut m = Map::new();
        m.insert("role".into(), Value::from("assistant"));
        if calls.is_empty() {
            m.insert("content".into(), Value::from(text));
        } else {
            let content = if text.is_empty() {
                Value::Null
            } else {
                Value::from(text)
            };
            m.insert("content".into(), content);
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        out.push(Value::Object(m));
        return Ok(());
    }
    // A user turn: tool results first (each its own `tool` message, right
    // after the assistant's calls), then the rest in order: user content,
    // and a `mid_conv_system` block as a system message between.
    let mut parts = Vec::new();
    let mut rest = Vec::new();
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
            "mid_conv_system" => {
                let content = system_content(block.get("content"), &format!("{where_}.content"))?;
                if let Some(content) = content {
                    flush_user(&mut parts, &mut rest);
                    rest.push(json!({"role": "system", "content": content}));
                }
            }
            other => {
                return Err(unsupported(format!(
                    "{where_}: the content block type `{other}`"
                )))
            }
        }
    }
    flush_user(&mut parts, &mut rest);
    out.append(&mut rest);
    Ok(())
}

/// The user content parts gathered so far as one user message.
fn flush_user(parts: &mut Vec<Value>, out: &mut Vec<Value>) {
    let content = match parts.as_slice() {
        [] => return,
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            only.get("text").cloned().unwrap_or_default()
        }
        _ => Value::Array(std::mem::take(parts)),
    };
    parts.clear();
    out.push(json!({"role": "user", "content": content}));
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
    if let Some(content) = system_content(body.get("system"), "`system`")? {
        messages.push(json!({"role": "system", "content": content}));
    }
    let input = match body.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("`messages` must be an array")),
    };
    // The effort a system message after the last assistant turn asks for.
    let mut turn_effort = None;
    for (i, message) in input.iter().enumerate() {
        let here = format!("messages[{i}]");
        match message.get("role").and_then(Value::as_str) {
            Some("system") => {
                if let Some(effort) = system_message(message, &here, &mut messages)? {
                    turn_effort = Some(effort);
                }
            }
            Some("assistant") => {
                turn_effort = None;
                message_to_openai(message, &here, &mut messages)?;
            }
            _ => message_to_openai(message, &here, &mut messages)?,
        }
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
    if let Some(effort) = reasoning_effort(body, turn_effort)? {
        out.insert("reasoning_effort".into(), Value::from(effort));
    }
    if let Some(format) = output_format(body)? {
        out.insert("response_format".into(), format);
    }
    Ok(out)
}

/// OpenAI's `reasoning_effort` for an Anthropic `output_config.effort`:
/// OpenAI's top level that every reasoning model takes is `high`, so
/// `xhigh` and `max` become `high`.
fn effort_level(effort: &str) -> Result<&'static str, ProxyError> {
    match effort {
        "low" => Ok("low"),
        "medium" => Ok("medium"),
        "high" | "xhigh" | "max" => Ok("high"),
        other => Err(invalid(format!(
            "unknown `output_config.effort` \"{other}\" (expected low, medium, high, xhigh or max)"
        ))),
    }
}

/// The pivot's `reasoning_effort` from Anthropic's `thinking` and effort
/// (`output_config.effort`, or `turn_effort` from a system message of the
/// current turn): the effort when there is one, else a `thinking.budget_tokens`
/// banded into low / medium / high; nothing when thinking is `disabled`, or
/// `adaptive` with no effort (the model's default).
fn reasoning_effort(
    body: &Map<String, Value>,
    turn_effort: Option<&'static str>,
) -> Result<Option<&'static str>, ProxyError> {
    let thinking = body.get("thinking").filter(|t| !t.is_null());
    let kind = match thinking {
        None => None,
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some(kind @ ("enabled" | "adaptive" | "disabled")) => Some(kind),
            other => {
                return Err(invalid(format!(
                    "unknown `thinking.type` `{}` (expected enabled, adaptive or disabled)",
                    other.unwrap_or("?")
                )))
            }
        },
    };
    let configured = match body.get("output_config").and_then(|c| c.get("effort")) {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.as_str()),
        Some(_) => return Err(invalid("`output_config.effort` must be a string")),
    };
    let configured = configured.map(effort_level).transpose()?;
    let effort = turn_effort.or(configured);
    Ok(match kind {
        Some("disabled") => None,
        Some("enabled") => effort.or_else(|| {
            let budget = thinking
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Some(match budget {
                0..=2047 => "low",
                2048..=8191 => "medium",
                _ => "high",
            })
        }),
        _ => effort,
    })
}

/// `response_format` for Anthropic's structured outputs
/// (`output_config.format`, or the beta's top-level `output_format`):
/// `{"type": "json_schema", "schema": S}` becomes a `json_schema` format
/// named `output`. `task_budget` is dropped (advisory); any other
/// `output_config` key is a 400 naming it.
fn output_format(body: &Map<String, Value>) -> Result<Option<Value>, ProxyError> {
    let mut format = None;
    match body.get("output_config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(config)) => {
            for (key, value) in config {
                match key.as_str() {
                    // `task_budget` is advisory (the model sees a countdown
                    // of the loop's tokens): a hint no other backend has.
                    "effort" | "task_budget" => {}
                    "format" => format = Some(value).filter(|v| !v.is_null()),
                    _ if value.is_null() => {}
                    other => return Err(unsupported(format!("`output_config.{other}`"))),
                }
            }
        }
        Some(_) => return Err(invalid("`output_config` must be an object")),
    }
    let Some(format) = format.or_else(|| body.get("output_format").filter(|v| !v.is_null())) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {}
        other => {
            return Err(unsupported(format!(
                "the output format type `{}`",
                other.unwrap_or("?")
            )))
        }
    }
    let schema = format
        .get("schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| invalid("`output_config.format.schema` must be a JSON schema object"))?;
    Ok(Some(json!({
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    })))
}
