//! Requests: OpenAI Chat Completions (the pivot) -> Anthropic Messages.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use serde_json::{json, Map, Value};

use super::{
    fresh_id, invalid, is_null_or_absent, set, text_block, unsupported, DEFAULT_MAX_TOKENS,
};
use crate::error::ProxyError;

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
    if let Some(what) = crate::upstream::translate::convert::chat_only_parameter(body) {
        return Err(unsupported(what));
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
                    Some(Value::String(s)) => set(&mut result, "content", Value::from(s.as_str())),
                    other => {
                        let blocks = user_blocks(other, &here)?;
                        if blocks.iter().any(|b| b["type"] == "document") {
                            return Err(unsupported(format!("{here}: a file in a tool result")));
                        }
                        if !blocks.is_empty() {
                            set(&mut result, "content", Value::Array(blocks));
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
    match system.as_slice() {
        [] => {}
        [only] if only.get("cache_control").is_none() => {
            let text = only.get("text").cloned().unwrap_or_default();
            out.insert("system".into(), text);
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
            && choice.get("type").and_then(Value::as_str) != Some("none")
        {
            set(&mut choice, "disable_parallel_tool_use", Value::Bool(true));
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
            let budget = budget.min(max_tokens.saturating_sub(1));
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    Ok(out)
}
