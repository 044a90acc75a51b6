//! The request side of XML tool emulation: tools and tool settings become a
//! system prompt, and earlier tool calls and results become text.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::upstream::translate::convert;

/// Whether a pivot request has anything XML emulation rewrites (tools, tool
/// settings, or tool calls and results in its history).
pub fn needs_rewrite(body: &Map<String, Value>) -> bool {
    const KEYS: &[&str] = &[
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
    ];
    if KEYS.iter().any(|k| body.contains_key(*k)) {
        return true;
    }
    body.get("messages")
        .and_then(Value::as_array)
        .is_some_and(|messages| {
            messages.iter().any(|m| {
                matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("tool" | "function")
                ) || m.get("tool_calls").is_some()
                    || m.get("function_call").is_some()
            })
        })
}

/// Rewrite a pivot request for XML emulation with `template` (see the
/// [module docs](super)).
pub fn rewrite_request(body: &mut Map<String, Value>, template: &str) {
    let tools = body.remove("tools");
    let functions = body.remove("functions");
    let tool_choice = body.remove("tool_choice");
    let function_call = body.remove("function_call");
    body.remove("parallel_tool_calls");

    // The tools offered: name, description, parameters.
    let mut offered: Vec<(String, Option<String>, Option<Value>)> = Vec::new();
    for tool in tools.iter().chain(functions.iter()).flat_map(|t| match t {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        _ => Vec::new(),
    }) {
        let f = tool.get("function").unwrap_or(tool);
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            offered.push((
                name.to_string(),
                f.get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                f.get("parameters").cloned(),
            ));
        }
    }

    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        *messages = rewrite_history(std::mem::take(messages));
        let choice = tool_choice.or(function_call);
        if !offered.is_empty() && !is_none_choice(choice.as_ref()) {
            let prompt = build_prompt(template, &offered, choice.as_ref());
            add_system_prompt(messages, prompt);
        }
    }
}

fn is_none_choice(choice: Option<&Value>) -> bool {
    choice.and_then(Value::as_str) == Some("none")
}

/// The system prompt: the template with the tool list, plus what `tool_choice` asks for.
fn build_prompt(
    template: &str,
    offered: &[(String, Option<String>, Option<Value>)],
    choice: Option<&Value>,
) -> String {
    let mut list = String::from("<tools>\n");
    for (name, description, parameters) in offered {
        list.push_str("<tool><name>");
        list.push_str(name);
        list.push_str("</name>");
        if let Some(d) = description.as_deref().filter(|d| !d.is_empty()) {
            list.push_str("<description>");
            list.push_str(d);
            list.push_str("</description>");
        }
        list.push_str("<parameters>");
        match parameters {
            Some(p) => list.push_str(&p.to_string()),
            None => list.push_str(r#"{"type":"object","properties":{}}"#),
        }
        list.push_str("</parameters></tool>\n");
    }
    list.push_str("</tools>");
    let mut prompt = if template.contains("{tools}") {
        template.replace("{tools}", &list)
    } else {
        format!("{template}\n\n{list}")
    };
    match choice {
        Some(Value::String(s)) if s == "required" => {
            prompt.push_str("\n\nYou must call at least one tool in this answer.");
        }
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            if let Some(name) = name {
                prompt.push_str(&format!(
                    "\n\nYou must call the tool `{name}` in this answer."
                ));
            }
        }
        _ => {}
    }
    prompt
}

/// Put the prompt into the leading system message (appended), or a new one.
fn add_system_prompt(messages: &mut Vec<Value>, prompt: String) {
    if let Some(first) = messages.first_mut() {
        let role = first.get("role").and_then(Value::as_str);
        if matches!(role, Some("system" | "developer")) {
            match first.get_mut("content") {
                Some(Value::String(s)) => {
                    if !s.is_empty() {
                        s.push_str("\n\n");
                    }
                    s.push_str(&prompt);
                    return;
                }
                Some(Value::Array(parts)) => {
                    parts.push(json!({"type": "text", "text": prompt}));
                    return;
                }
                _ => {}
            }
        }
    }
    messages.insert(0, json!({"role": "system", "content": prompt}));
}

/// The XML text of one call.
pub fn call_xml(name: &str, arguments: &str) -> String {
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    format!("<tool_call><name>{name}</name><arguments>{arguments}</arguments></tool_call>")
}

/// Assistant tool calls as text; tool results as user messages.
fn rewrite_history(messages: Vec<Value>) -> Vec<Value> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    // Whether the last message out is a user message made of tool results.
    let mut results_open = false;
    for mut message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match role.as_str() {
            "assistant" => {
                let calls = message.as_object_mut().and_then(|m| m.remove("tool_calls"));
                let legacy = message
                    .as_object_mut()
                    .and_then(|m| m.remove("function_call"));
                let mut xml = Vec::new();
                for call in calls
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .chain(legacy.iter())
                {
                    let f = call.get("function").unwrap_or(call);
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    let arguments = match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v @ Value::Object(_)) => v.to_string(),
                        _ => String::new(),
                    };
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    xml.push(call_xml(name, &arguments));
                }
                if !xml.is_empty() {
                    let text = convert::content_text(message.get("content"));
                    let mut content = text.trim_end().to_string();
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str(&xml.join("\n"));
                    if let Some(m) = message.as_object_mut() {
                        m.insert("content".into(), Value::String(content));
                    }
                }
                results_open = false;
                out.push(message);
            }
            "tool" | "function" => {
                let name = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .and_then(|id| names.get(id))
                    .map(String::as_str)
                    .or_else(|| message.get("name").and_then(Value::as_str))
                    .unwrap_or("tool")
                    .to_string();
                let result = convert::content_text(message.get("content"));
                let text = format!(
                    "<tool_result><name>{name}</name><result>{result}</result></tool_result>"
                );
                match out.last_mut() {
                    Some(last) if results_open => {
                        if let Some(Value::String(s)) = last.get_mut("content") {
                            s.push('\n');
                            s.push_str(&text);
                        }
                    }
                    _ => {
                        out.push(json!({"role": "user", "content": text}));
                        results_open = true;
                    }
                }
            }
            _ => {
                results_open = false;
                out.push(message);
            }
        }
    }
    out
}
