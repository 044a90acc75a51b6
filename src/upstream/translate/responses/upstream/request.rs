//! Requests: the pivot (a Chat Completions request) as a Responses API
//! request. The mapping is tabled in the [parent module](super).

// Client bytes pass through here: no unchecked indexing, slicing or
// arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use serde_json::{json, Map, Value};

use crate::error::ProxyError;

fn unsupported(what: impl std::fmt::Display) -> ProxyError {
    ProxyError::bad_request(
        "unsupported_feature",
        format!(
            "{what} cannot be expressed in the OpenAI Responses API, which this backend is called through"
        ),
    )
}

fn invalid(message: impl Into<String>) -> ProxyError {
    ProxyError::bad_request("invalid_request", message)
}

fn absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Top-level fields this module maps, checks or drops. Every other field is
/// copied as is (the two APIs share `temperature`, `top_p`, `user`,
/// `metadata`, `service_tier`, `prompt_cache_key`, `safety_identifier`, ...),
/// so the backend judges what it does not know.
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "response_format",
    "verbosity",
    "reasoning_effort",
    "max_completion_tokens",
    "max_tokens",
    "stream",
    "stream_options",
    "store",
    "logprobs",
    "top_logprobs",
    "n",
    "stop",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "audio",
    "modalities",
    "functions",
    "function_call",
    "prediction",
    "web_search_options",
    "input",
    "instructions",
];

/// Fields of a Chat Completions request that the Responses API cannot
/// express, when set to anything but their neutral value.
fn reject_inexpressible(body: &Map<String, Value>) -> Result<(), ProxyError> {
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported("`n` greater than 1"));
    }
    let stop_set = match body.get("stop") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if stop_set {
        return Err(unsupported(
            "`stop` (the Responses API has no stop sequences)",
        ));
    }
    if let Some(what) = crate::upstream::translate::convert::chat_only_parameter(body) {
        return Err(unsupported(what));
    }
    for key in ["input", "instructions"] {
        if !absent(body.get(key)) {
            return Err(invalid(format!(
                "`{key}` is a Responses API parameter, not a Chat Completions one: send `messages`"
            )));
        }
    }
    Ok(())
}

/// The text of a system, developer or tool message: a string, or text parts
/// (one piece each).
fn text_pieces(content: Option<&Value>, where_: &str) -> Result<Vec<String>, ProxyError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(
                |(j, part)| match part.get("type").and_then(Value::as_str).unwrap_or("text") {
                    "text" => Ok(part
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()),
                    other => Err(unsupported(format!(
                        "{where_}.content[{j}]: a `{other}` part in this role's message"
                    ))),
                },
            )
            .collect(),
        Some(_) => Err(invalid(format!(
            "{where_}: `content` must be a string or an array of parts"
        ))),
    }
}

fn input_text(text: &str) -> Value {
    json!({"type": "input_text", "text": text})
}

/// A user content part as a Responses input content part.
fn user_part(part: &Value, here: &str) -> Result<Value, ProxyError> {
    match part.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => Ok(input_text(
            part.get("text").and_then(Value::as_str).unwrap_or(""),
        )),
        "image_url" => {
            let (url, detail) = match part.get("image_url") {
                Some(Value::String(u)) => (Some(u.as_str()), None),
                Some(o) => (
                    o.get("url").and_then(Value::as_str),
                    o.get("detail").and_then(Value::as_str),
                ),
                None => (None, None),
            };
            let url = url
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid(format!("{here}: `image_url.url` is required")))?;
            Ok(json!({"type": "input_image", "image_url": url, "detail": detail.unwrap_or("auto")}))
        }
        "file" => {
            let file = part.get("file").unwrap_or(&Value::Null);
            let mut out = Map::new();
            out.insert("type".into(), Value::from("input_file"));
            if let Some(data) = file.get("file_data").and_then(Value::as_str) {
                let data = if data.starts_with("data:") {
                    data.to_string()
                } else {
                    // Chat Completions takes PDFs only; bare base64 is one.
                    format!("data:application/pdf;base64,{data}")
                };
                let name = file
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("document.pdf");
                out.insert("filename".into(), Value::from(name));
                out.insert("file_data".into(), Value::from(data));
            } else if let Some(id) = file.get("file_id").and_then(Value::as_str) {
                out.insert("file_id".into(), Value::from(id));
            } else {
                return Err(invalid(format!(
                    "{here}: a `file` part needs `file.file_data` or `file.file_id`"
                )));
            }
            Ok(Value::Object(out))
        }
        "input_audio" => Err(unsupported(format!("{here}: audio input (`input_audio`)"))),
        other => Err(unsupported(format!(
            "{here}: the content part type `{other}`"
        ))),
    }
}

fn user_content(content: Option<&Value>, where_: &str) -> Result<Vec<Value>, ProxyError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![input_text(s)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| user_part(part, &format!("{where_}.content[{j}]")))
            .collect(),
        Some(_) => Err(invalid(format!(
            "{where_}: `content` must be a string or an array of parts"
        ))),
    }
}

/// An assistant message's text and refusal as `output_text` / `refusal`
/// parts.
fn assistant_content(message: &Value, where_: &str) -> Result<Vec<Value>, ProxyError> {
    let mut parts = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                parts.push(json!({"type": "output_text", "text": s}));
            }
        }
        Some(Value::Array(items)) => {
            for (j, part) in items.iter().enumerate() {
                match part.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            parts.push(json!({"type": "output_text", "text": text}));
                        }
                    }
                    "refusal" => {
                        let text = part.get("refusal").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            parts.push(json!({"type": "refusal", "refusal": text}));
                        }
                    }
                    other => {
                        return Err(unsupported(format!(
                            "{where_}.content[{j}]: the assistant content part type `{other}`"
                        )))
                    }
                }
            }
        }
        Some(_) => {
            return Err(invalid(format!(
                "{where_}: `content` must be a string or an array of parts"
            )))
        }
    }
    if let Some(refusal) = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        if !parts.iter().any(|p| p["type"] == "refusal") {
            parts.push(json!({"type": "refusal", "refusal": refusal}));
        }
    }
    Ok(parts)
}

/// An assistant tool call as a `function_call` item.
fn function_call_item(call: &Value, where_: &str) -> Result<Value, ProxyError> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(unsupported(format!(
            "{where_}: the tool call type `{kind}`"
        )));
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{where_}: `id` is required")))?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{where_}: `function.name` is required")))?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(json!({"type": "function_call", "call_id": id, "name": name, "arguments": arguments}))
}

/// `messages` as `instructions` (the leading system and developer
/// messages) and `input` items.
fn conversation(messages: &[Value]) -> Result<(Option<String>, Vec<Value>), ProxyError> {
    let mut instructions: Vec<String> = Vec::new();
    let mut items = Vec::with_capacity(messages.len());
    let mut leading = true;
    for (i, message) in messages.iter().enumerate() {
        let here = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{here}: `role` is required")))?;
        if !matches!(role, "system" | "developer") {
            leading = false;
        }
        match role {
            "system" | "developer" => {
                let pieces = text_pieces(message.get("content"), &here)?;
                if leading {
                    instructions.extend(pieces.into_iter().filter(|p| !p.is_empty()));
                } else {
                    let content: Vec<Value> = pieces.iter().map(|p| input_text(p)).collect();
                    items.push(json!({"type": "message", "role": role, "content": content}));
                }
            }
            "user" => {
                let content = user_content(message.get("content"), &here)?;
                items.push(json!({"type": "message", "role": "user", "content": content}));
            }
            "assistant" => {
                for key in ["audio", "function_call"] {
                    if !absent(message.get(key)) {
                        return Err(unsupported(format!("{here}: the assistant `{key}`")));
                    }
                }
                let content = assistant_content(message, &here)?;
                if !content.is_empty() {
                    items.push(json!({"type": "message", "role": "assistant", "content": content}));
                }
                match message.get("tool_calls") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(calls)) => {
                        for (j, call) in calls.iter().enumerate() {
                            items.push(function_call_item(
                                call,
                                &format!("{here}.tool_calls[{j}]"),
                            )?);
                        }
                    }
                    Some(_) => {
                        return Err(invalid(format!("{here}: `tool_calls` must be an array")))
                    }
                }
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{here}: `tool_call_id` is required")))?;
                let output = text_pieces(message.get("content"), &here)?.concat();
                items.push(json!({"type": "function_call_output", "call_id": id, "output": output}));
            }
            "function" => {
                return Err(unsupported(format!(
                    "{here}: the legacy `function` role (use `tool`)"
                )))
            }
            other => {
                return Err(invalid(format!(
                "{here}: unknown role `{other}` (expected system, developer, user, assistant or tool)"
            )))
            }
        }
    }
    let instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    Ok((instructions, items))
}

fn tools(tools: &[Value]) -> Result<Vec<Value>, ProxyError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "function" {
                return Err(unsupported(format!("tools[{i}]: the tool type `{kind}`")));
            }
            let f = tool.get("function").unwrap_or(&Value::Null);
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("tools[{i}]: `function.name` is required")))?;
            let mut out = Map::new();
            out.insert("type".into(), Value::from("function"));
            out.insert("name".into(), Value::from(name));
            if let Some(d) = f.get("description").filter(|d| d.is_string()) {
                out.insert("description".into(), d.clone());
            }
            let parameters = f
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            out.insert("parameters".into(), parameters);
            // Chat Completions functions are not strict unless asked; the
            // Responses API's are, unless told otherwise.
            let strict = f.get("strict").and_then(Value::as_bool).unwrap_or(false);
            out.insert("strict".into(), Value::Bool(strict));
            Ok(Value::Object(out))
        })
        .collect()
}

fn named_function(choice: &Value, where_: &str) -> Result<Value, ProxyError> {
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "function" {
        return Err(unsupported(format!("{where_}: the tool type `{kind}`")));
    }
    let name = choice
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{where_}: `function.name` is required")))?;
    Ok(json!({"type": "function", "name": name}))
}

fn tool_choice(choice: &Value) -> Result<Value, ProxyError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" | "none" | "required" => Ok(choice.clone()),
            other => Err(invalid(format!("unknown `tool_choice` `{other}`"))),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => named_function(choice, "tool_choice"),
            Some("allowed_tools") => {
                let allowed = o.get("allowed_tools").unwrap_or(&Value::Null);
                let mode = allowed
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("auto");
                let list = allowed
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .enumerate()
                    .map(|(j, t)| {
                        named_function(t, &format!("tool_choice.allowed_tools.tools[{j}]"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!({"type": "allowed_tools", "mode": mode, "tools": list}))
            }
            other => Err(unsupported(format!(
                "the `tool_choice` type `{}`",
                other.unwrap_or("?")
            ))),
        },
        _ => Err(invalid("`tool_choice` must be a string or an object")),
    }
}

/// `response_format` as the Responses `text.format`.
fn text_format(format: &Value) -> Result<Value, ProxyError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text"})),
        Some("json_object") => Ok(json!({"type": "json_object"})),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`response_format.json_schema.name` is required"))?;
            let mut out = Map::new();
            out.insert("type".into(), Value::from("json_schema"));
            out.insert("name".into(), Value::from(name));
            for key in ["description", "schema", "strict"] {
                if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                    out.insert(key.into(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        other => Err(unsupported(format!(
            "the `response_format` type `{}`",
            other.unwrap_or("?")
        ))),
    }
}

/// Set `out[key][field]`, making `out[key]` an object if it is not one.
fn set_in(out: &mut Map<String, Value>, key: &str, field: &str, value: Value) {
    let mut object = match out.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    object.insert(field.into(), value);
    out.insert(key.into(), Value::Object(object));
}

/// The pivot (Chat Completions) request as a Responses API request. See the
/// [parent module](super) for the mapping.
pub fn request_from_openai(pivot: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    reject_inexpressible(pivot)?;
    let mut out = Map::new();
    if let Some(model) = pivot.get("model") {
        out.insert("model".into(), model.clone());
    }
    let messages = match pivot.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("`messages` must be an array")),
    };
    let (instructions, input) = conversation(messages)?;
    if let Some(instructions) = instructions {
        out.insert("instructions".into(), Value::from(instructions));
    }
    out.insert("input".into(), Value::Array(input));

    // Shared fields (and anything this module does not know) as they are.
    for (key, value) in pivot {
        if !HANDLED.contains(&key.as_str()) && !value.is_null() {
            out.insert(key.clone(), value.clone());
        }
    }

    if let Some(list) = pivot.get("tools").filter(|t| !t.is_null()) {
        let list = list
            .as_array()
            .ok_or_else(|| invalid("`tools` must be an array"))?;
        if !list.is_empty() {
            out.insert("tools".into(), Value::Array(tools(list)?));
        }
    }
    if let Some(choice) = pivot.get("tool_choice").filter(|c| !c.is_null()) {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(format) = pivot.get("response_format").filter(|f| !f.is_null()) {
        let format = text_format(format)?;
        set_in(&mut out, "text", "format", format);
    }
    if let Some(verbosity) = pivot.get("verbosity").filter(|v| !v.is_null()) {
        set_in(&mut out, "text", "verbosity", verbosity.clone());
    }
    if let Some(effort) = pivot.get("reasoning_effort").filter(|v| !v.is_null()) {
        set_in(&mut out, "reasoning", "effort", effort.clone());
    }
    if let Some(max) = pivot
        .get("max_completion_tokens")
        .filter(|v| v.is_number())
        .or_else(|| pivot.get("max_tokens").filter(|v| v.is_number()))
    {
        out.insert("max_output_tokens".into(), max.clone());
    }
    if let Some(stream) = pivot.get("stream").and_then(Value::as_bool) {
        out.insert("stream".into(), Value::Bool(stream));
    }
    // Nothing is kept on the backend's side unless the client asked.
    let store = pivot.get("store").and_then(Value::as_bool).unwrap_or(false);
    out.insert("store".into(), Value::Bool(store));
    if pivot.get("logprobs").and_then(Value::as_bool) == Some(true) {
        let include = out
            .entry("include".to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !include.is_array() {
            *include = Value::Array(Vec::new());
        }
        if let Value::Array(list) = include {
            let wanted = Value::from("message.output_text.logprobs");
            if !list.contains(&wanted) {
                list.push(wanted);
            }
        }
    }
    if let Some(top) = pivot.get("top_logprobs").filter(|v| v.is_number()) {
        out.insert("top_logprobs".into(), top.clone());
    }
    Ok(out)
}
