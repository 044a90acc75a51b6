//! Walks a Responses input_tokens body (`instructions`, `input`, `tools`,
//! `text.format`); the table of what counts is in the parent module.

use serde_json::{Map, Value};

use super::{Counter, FLAT_DOCUMENT_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_OVERHEAD};

pub(super) fn count(c: &mut Counter, body: &Map<String, Value>) {
    let mut conversation = false;
    match body.get("instructions") {
        Some(Value::String(text)) if !text.is_empty() => {
            conversation = true;
            c.add(MESSAGE_OVERHEAD);
            c.text(text);
        }
        // A Response object's `instructions` may be a list of input items.
        Some(Value::Array(items)) => {
            conversation = conversation || !items.is_empty();
            items.iter().for_each(|i| item(c, i));
        }
        Some(Value::String(_) | Value::Null) | None => {}
        Some(other) => c.json(other),
    }
    match body.get("input") {
        Some(Value::String(text)) => {
            conversation = true;
            c.add(MESSAGE_OVERHEAD);
            c.text(text);
        }
        Some(Value::Array(items)) => {
            conversation = conversation || !items.is_empty();
            items.iter().for_each(|i| item(c, i));
        }
        Some(Value::Null) | None => {}
        Some(other) => c.json(other),
    }
    if conversation {
        c.add(REPLY_PRIMING);
    }
    match body.get("tools") {
        Some(Value::Array(tools)) => tools.iter().for_each(|t| tool(c, t, true)),
        Some(Value::Null) | None => {}
        Some(other) => c.json(other),
    }
    let format = body
        .get("text")
        .and_then(|text| text.get("format"))
        .and_then(Value::as_object);
    if let Some(format) = format {
        if format.get("type").and_then(Value::as_str) == Some("json_schema") {
            c.field(format, "name");
            c.field(format, "description");
            if let Some(schema) = format.get("schema") {
                c.json(schema);
            }
        }
    }
}

/// One input item.
fn item(c: &mut Counter, value: &Value) {
    c.add(MESSAGE_OVERHEAD);
    let Some(it) = value.as_object() else {
        return c.json(value);
    };
    match it.get("type").and_then(Value::as_str) {
        // A message (the type may be left out: `{"role": "user", "content": "..."}`).
        None | Some("message") => parts(c, it.get("content")),
        Some("function_call") => {
            c.field(it, "name");
            c.field(it, "arguments");
        }
        Some("custom_tool_call") => {
            c.field(it, "name");
            c.field(it, "input");
        }
        Some("function_call_output" | "custom_tool_call_output") => parts(c, it.get("output")),
        // `encrypted_content` is opaque: not counted.
        Some("reasoning") => {
            for key in ["summary", "content"] {
                if let Some(Value::Array(list)) = it.get(key) {
                    list.iter().for_each(|p| part(c, p));
                }
            }
        }
        // Stored server-side: the proxy cannot see it.
        Some("item_reference") => {}
        _ => c.json(value),
    }
}

/// A message's `content` or a call output's `output`: a string or a list of parts.
fn parts(c: &mut Counter, value: Option<&Value>) {
    match value {
        Some(Value::String(text)) => c.text(text),
        Some(Value::Array(list)) => list.iter().for_each(|p| part(c, p)),
        Some(other) => c.json(other),
        None => {}
    }
}

fn part(c: &mut Counter, value: &Value) {
    let Some(p) = value.as_object() else {
        return c.json(value);
    };
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "summary_text" | "reasoning_text") => {
            c.field(p, "text");
        }
        Some("refusal") => c.field(p, "refusal"),
        Some("input_image") => c.image(p.get("detail").and_then(Value::as_str)),
        Some("input_file") => {
            c.field(p, "filename");
            match p.get("file_data") {
                Some(Value::String(data)) => c.base64_document(data),
                _ => c.add(FLAT_DOCUMENT_TOKENS),
            }
        }
        _ => c.json(value),
    }
}

/// One tool definition; `top`: not inside a `namespace` (namespaces do not nest).
fn tool(c: &mut Counter, value: &Value, top: bool) {
    c.add(TOOL_OVERHEAD);
    let Some(t) = value.as_object() else {
        return c.json(value);
    };
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {
            c.field(t, "name");
            c.field(t, "description");
            if let Some(schema) = t.get("parameters") {
                c.json(schema);
            }
        }
        Some("custom") => {
            c.field(t, "name");
            c.field(t, "description");
            if let Some(format) = t.get("format") {
                c.json(format);
            }
        }
        Some("namespace") if top => {
            c.field(t, "name");
            c.field(t, "description");
            match t.get("tools") {
                Some(Value::Array(tools)) => tools.iter().for_each(|inner| tool(c, inner, false)),
                Some(other) => c.json(other),
                None => {}
            }
        }
        // Hosted tools (`web_search`, `file_search`, `mcp`, ...) and anything else.
        _ => c.json(value),
    }
}
