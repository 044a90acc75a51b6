//! Walks an Anthropic count_tokens body (`system`, `messages`, `tools`, the
//! output schema); the table of what counts is in the parent module.

use serde_json::{Map, Value};

use super::{
    Counter, ANTHROPIC_TOOL_PROMPT, ANTHROPIC_TOOL_PROMPT_FORCED, FLAT_DOCUMENT_TOKENS,
    MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_OVERHEAD,
};

/// How deep blocks are walked: a message's blocks, a `tool_result`'s or a
/// `search_result`'s blocks, a document's `content` blocks. Anything deeper
/// is counted as JSON text.
const MAX_DEPTH: u8 = 3;

pub(super) fn count(c: &mut Counter, body: &Map<String, Value>) {
    let mut conversation = false;
    if let Some(system) = body.get("system") {
        conversation = true;
        c.add(MESSAGE_OVERHEAD);
        content(c, system, false, 1);
    }
    match body.get("messages") {
        Some(Value::Array(messages)) => {
            conversation = conversation || !messages.is_empty();
            let last_assistant = messages
                .iter()
                .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
            for (i, message) in messages.iter().enumerate() {
                c.add(MESSAGE_OVERHEAD);
                match message {
                    Value::Object(m) => {
                        if let Some(blocks) = m.get("content") {
                            content(c, blocks, Some(i) == last_assistant, 1);
                        }
                    }
                    other => c.json(other),
                }
            }
        }
        Some(other) => c.json(other),
        None => {}
    }
    if conversation {
        c.add(REPLY_PRIMING);
    }
    tools(c, body);
    let format = body
        .get("output_config")
        .and_then(|config| config.get("format"))
        .or_else(|| body.get("output_format"));
    if let Some(format) = format {
        c.json(format);
    }
}

/// A `content` (or `system`): a string, or a list of blocks.
/// `last_assistant`: the message is the last assistant turn, whose thinking counts.
fn content(c: &mut Counter, value: &Value, last_assistant: bool, depth: u8) {
    match value {
        Value::String(text) => c.text(text),
        Value::Array(blocks) if depth <= MAX_DEPTH => {
            for b in blocks {
                block(c, b, last_assistant, depth);
            }
        }
        other => c.json(other),
    }
}

fn block(c: &mut Counter, value: &Value, last_assistant: bool, depth: u8) {
    let Some(b) = value.as_object() else {
        return c.json(value);
    };
    let nested = depth.saturating_add(1);
    match b.get("type").and_then(Value::as_str) {
        Some("text") => c.field(b, "text"),
        Some("image") => c.image(None),
        Some("document") => document(c, b, nested),
        Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
            c.field(b, "name");
            if let Some(input) = b.get("input") {
                c.json(input);
            }
        }
        Some("tool_result" | "mcp_tool_result") => {
            if let Some(result) = b.get("content") {
                content(c, result, false, nested);
            }
        }
        Some("search_result") => {
            c.field(b, "title");
            c.field(b, "source");
            if let Some(result) = b.get("content") {
                content(c, result, false, nested);
            }
        }
        Some("thinking") => {
            if last_assistant {
                c.field(b, "thinking");
            }
        }
        Some("redacted_thinking") => {
            if last_assistant {
                if let Some(data) = b.get("data").and_then(Value::as_str) {
                    c.add(super::bytes_estimate(data.len()));
                }
            }
        }
        _ => c.json(value),
    }
}

fn document(c: &mut Counter, b: &Map<String, Value>, depth: u8) {
    c.field(b, "title");
    c.field(b, "context");
    let Some(source) = b.get("source").and_then(Value::as_object) else {
        return c.json_map(b);
    };
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => match source.get("data") {
            Some(Value::String(data)) => c.base64_document(data),
            _ => c.add(FLAT_DOCUMENT_TOKENS),
        },
        Some("text") => c.field(source, "data"),
        Some("content") => {
            if let Some(blocks) = source.get("content") {
                content(c, blocks, false, depth);
            }
        }
        Some("url" | "file") => c.add(FLAT_DOCUMENT_TOKENS),
        _ => c.json_map(source),
    }
}

fn tools(c: &mut Counter, body: &Map<String, Value>) {
    let Some(tools) = body.get("tools") else {
        return;
    };
    let Value::Array(tools) = tools else {
        return c.json(tools);
    };
    if tools.is_empty() {
        return;
    }
    let forced = matches!(
        body.get("tool_choice")
            .and_then(|choice| choice.get("type"))
            .and_then(Value::as_str),
        Some("any" | "tool")
    );
    c.add(if forced {
        ANTHROPIC_TOOL_PROMPT_FORCED
    } else {
        ANTHROPIC_TOOL_PROMPT
    });
    for tool in tools {
        c.add(TOOL_OVERHEAD);
        match tool.as_object() {
            // A client tool: no type (or `custom`), an input schema.
            Some(t)
                if t.contains_key("input_schema")
                    && matches!(t.get("type").and_then(Value::as_str), None | Some("custom")) =>
            {
                c.field(t, "name");
                c.field(t, "description");
                if let Some(schema) = t.get("input_schema") {
                    c.json(schema);
                }
            }
            // A server tool (`web_search_20250305`, `bash_20250124`, ...) or anything else.
            _ => c.json(tool),
        }
    }
}
