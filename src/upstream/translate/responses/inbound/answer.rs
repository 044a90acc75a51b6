//! The Response object: the request settings it echoes, its output items,
//! its usage, and a whole `chat.completion` turned into one.

use serde_json::{json, Map, Value};

use super::{hex_id, NAMESPACE_SEPARATOR};
use crate::upstream::translate::convert::now;

/// What a Response object repeats of its request, and the namespace
/// functions whose flattened names are split back.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    /// The request's `model`, until the answer names its own.
    pub(super) model: String,
    /// Echoed request settings, in the Response object's order.
    settings: Map<String, Value>,
    /// The same settings but `service_tier`, serialized once (`"k":v,...`)
    /// for the Response objects a stream writes.
    settings_json: Vec<u8>,
    /// The request's `service_tier` (the answer's wins).
    service_tier: Value,
    /// (flattened name, namespace, name).
    namespaced: Vec<(String, String, String)>,
}

/// The request settings a Response object repeats, with their defaults.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "parallel_tool_calls",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
    "metadata",
];

impl Echo {
    pub(crate) fn new(request: &Map<String, Value>) -> Echo {
        let mut settings = Map::new();
        for key in ECHOED {
            let given = request.get(*key).filter(|v| !v.is_null()).cloned();
            let value = match (*key, given) {
                ("text", Some(Value::Object(mut text))) => {
                    if text.get("format").is_none_or(Value::is_null) {
                        text.insert("format".into(), json!({"type": "text"}));
                    }
                    Value::Object(text)
                }
                (_, Some(v)) => v,
                ("parallel_tool_calls", None) => Value::Bool(true),
                ("reasoning", None) => json!({"effort": null, "summary": null}),
                ("text", None) => json!({"format": {"type": "text"}}),
                ("tool_choice", None) => Value::from("auto"),
                ("tools", None) => json!([]),
                ("truncation", None) => Value::from("disabled"),
                ("metadata", None) => json!({}),
                (_, None) => Value::Null,
            };
            settings.insert((*key).to_string(), value);
        }
        let mut namespaced = Vec::new();
        for tool in request
            .get("tools")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if tool.get("type").and_then(Value::as_str) != Some("namespace") {
                continue;
            }
            let Some(ns) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            for inner in tool
                .get("tools")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if let Some(name) = inner.get("name").and_then(Value::as_str) {
                    namespaced.push((
                        format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
                        ns.to_string(),
                        name.to_string(),
                    ));
                }
            }
        }
        let mut settings_json = Vec::new();
        for (key, value) in &settings {
            if key == "service_tier" {
                continue;
            }
            if !settings_json.is_empty() {
                settings_json.push(b',');
            }
            // Writing JSON into memory cannot fail.
            let _ = serde_json::to_writer(&mut settings_json, key);
            settings_json.push(b':');
            let _ = serde_json::to_writer(&mut settings_json, value);
        }
        Echo {
            model: request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            service_tier: settings.get("service_tier").cloned().unwrap_or(Value::Null),
            settings,
            settings_json,
            namespaced,
        }
    }

    /// A called function's pivot name as (name, namespace).
    pub(super) fn split_name<'a>(&'a self, flat: &'a str) -> (&'a str, Option<&'a str>) {
        match self.namespaced.iter().find(|(f, _, _)| f == flat) {
            Some((_, ns, name)) => (name, Some(ns)),
            None => (flat, None),
        }
    }

    /// A `function_call` output item.
    pub(super) fn call_item(
        &self,
        id: &str,
        status: &str,
        arguments: &str,
        call_id: &str,
        flat_name: &str,
    ) -> Value {
        let (name, namespace) = self.split_name(flat_name);
        let mut item = json!({
            "id": id,
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": call_id,
            "name": name,
        });
        if let Some(ns) = namespace {
            set(&mut item, "namespace", Value::from(ns));
        }
        item
    }

    /// The Response object.
    pub(super) fn response(&self, mut r: Parts<'_>) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), Value::from(r.id));
        out.insert("object".into(), Value::from("response"));
        out.insert("created_at".into(), Value::from(r.created_at));
        if r.status == "completed" {
            out.insert("completed_at".into(), Value::from(now()));
        }
        out.insert("status".into(), Value::from(r.status));
        out.insert("background".into(), Value::Bool(false));
        out.insert("error".into(), std::mem::take(&mut r.error));
        out.insert(
            "incomplete_details".into(),
            r.incomplete
                .map_or(Value::Null, |reason| json!({"reason": reason})),
        );
        for (key, value) in &self.settings {
            match key.as_str() {
                "service_tier" => {
                    let tier = r.service_tier.map_or_else(|| value.clone(), Value::from);
                    out.insert(key.clone(), tier);
                }
                "parallel_tool_calls" => {
                    // Before it, in the Response object's order.
                    out.insert("model".into(), Value::from(r.model));
                    out.insert("output".into(), Value::Array(std::mem::take(&mut r.output)));
                    out.insert(key.clone(), value.clone());
                    out.insert("previous_response_id".into(), Value::Null);
                }
                "temperature" => {
                    // Nothing is stored.
                    out.insert("store".into(), Value::Bool(false));
                    out.insert(key.clone(), value.clone());
                }
                "user" => {
                    out.insert("usage".into(), std::mem::take(&mut r.usage));
                    out.insert(key.clone(), value.clone());
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        Value::Object(out)
    }

    /// [`response`](Self::response) written straight into `out` as JSON
    /// (the same fields; the echoed settings serialized once per stream).
    pub(super) fn write_response(&self, r: &Parts<'_>, out: &mut Vec<u8>) {
        fn field(out: &mut Vec<u8>, key: &str, value: &impl serde::Serialize) {
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            // Writing JSON into memory cannot fail.
            let _ = serde_json::to_writer(&mut *out, value);
            out.push(b',');
        }
        out.push(b'{');
        field(out, "id", &r.id);
        out.extend_from_slice(b"\"object\":\"response\",");
        field(out, "created_at", &r.created_at);
        if r.status == "completed" {
            field(out, "completed_at", &now());
        }
        field(out, "status", &r.status);
        out.extend_from_slice(b"\"background\":false,");
        field(out, "error", &r.error);
        match r.incomplete {
            Some(reason) => field(out, "incomplete_details", &json!({"reason": reason})),
            None => out.extend_from_slice(b"\"incomplete_details\":null,"),
        }
        field(out, "model", &r.model);
        field(out, "output", &r.output);
        out.extend_from_slice(b"\"previous_response_id\":null,\"store\":false,");
        field(out, "usage", &r.usage);
        match r.service_tier {
            Some(tier) => field(out, "service_tier", &tier),
            None => field(out, "service_tier", &self.service_tier),
        }
        if self.settings_json.is_empty() {
            out.pop();
        } else {
            out.extend_from_slice(&self.settings_json);
        }
        out.push(b'}');
    }

    /// A whole `chat.completion` as a Response object.
    pub(crate) fn response_of_completion(&self, completion: &Value) -> Value {
        let choice = completion
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            })
            .unwrap_or(&Value::Null);
        let message = choice.get("message").unwrap_or(&Value::Null);
        let (status, incomplete) = status_of(choice.get("finish_reason").and_then(Value::as_str));
        let mut output = Vec::new();

        let text_of = |key: &str| -> String {
            match message.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                _ => String::new(),
            }
        };
        let mut reasoning = text_of("reasoning_content");
        if reasoning.is_empty() {
            reasoning = text_of("reasoning");
        }
        if !reasoning.is_empty() {
            output.push(reasoning_item(&hex_id("rs"), "completed", &reasoning));
        }
        let text = text_of("content");
        let refusal = text_of("refusal");
        let mut content = Vec::new();
        if !text.is_empty() {
            let logprobs = logprobs_from_openai(
                choice
                    .get("logprobs")
                    .and_then(|l| l.get("content"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            );
            content.push(text_part(&text, logprobs));
        }
        if !refusal.is_empty() {
            content.push(refusal_part(&refusal));
        }
        if !content.is_empty() {
            output.push(message_item(&hex_id("msg"), "completed", content));
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let f = call.get("function").unwrap_or(&Value::Null);
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or_else(|| hex_id("call"), str::to_string);
            let name = f.get("name").and_then(Value::as_str).unwrap_or("");
            output.push(self.call_item(&hex_id("fc"), "completed", &arguments, &call_id, name));
        }
        if incomplete.is_some() {
            // The last text is cut; a call stays `completed` (the AI SDK
            // reads no other status of a call).
            if let Some(last) = output.last_mut().filter(|i| i["type"] != "function_call") {
                set(last, "status", Value::from("incomplete"));
            }
        }
        let model = completion
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.model);
        self.response(Parts {
            id: &hex_id("resp"),
            created_at: completion
                .get("created")
                .and_then(Value::as_u64)
                .unwrap_or_else(now),
            status,
            model,
            output,
            usage: usage_from_openai(completion.get("usage").unwrap_or(&Value::Null)),
            incomplete,
            error: Value::Null,
            service_tier: completion.get("service_tier").and_then(Value::as_str),
        })
    }
}

/// Set `key` of an object (nothing for another value).
pub(super) fn set(target: &mut Value, key: &str, value: Value) {
    if let Some(obj) = target.as_object_mut() {
        obj.insert(key.to_string(), value);
    }
}

/// The parts of a Response object that are not echoed.
pub(super) struct Parts<'a> {
    pub(super) id: &'a str,
    pub(super) created_at: u64,
    pub(super) status: &'a str,
    pub(super) model: &'a str,
    pub(super) output: Vec<Value>,
    pub(super) usage: Value,
    pub(super) incomplete: Option<&'static str>,
    pub(super) error: Value,
    pub(super) service_tier: Option<&'a str>,
}

/// The Response `status` and `incomplete_details.reason` of a finish reason.
pub(super) fn status_of(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

pub(super) fn reasoning_item(id: &str, status: &str, text: &str) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    json!({"id": id, "type": "reasoning", "status": status, "summary": summary})
}

pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "content": content, "role": "assistant"})
}

pub(super) fn text_part(text: &str, logprobs: Vec<Value>) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": logprobs, "text": text})
}

pub(super) fn refusal_part(refusal: &str) -> Value {
    json!({"type": "refusal", "refusal": refusal})
}

/// Chat `logprobs.content` entries as Responses `logprobs`.
pub(super) fn logprobs_from_openai(entries: &[Value]) -> Vec<Value> {
    fn one(e: &Value, nested: bool) -> Value {
        let mut out = json!({
            "token": e.get("token").cloned().unwrap_or_else(|| Value::from("")),
            "bytes": e.get("bytes").filter(|b| b.is_array()).cloned().unwrap_or_else(|| json!([])),
            "logprob": e.get("logprob").filter(|l| l.is_number()).cloned().unwrap_or_else(|| Value::from(0.0)),
        });
        if nested {
            let top: Vec<Value> = e
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|t| t.iter().map(|x| one(x, false)).collect())
                .unwrap_or_default();
            set(&mut out, "top_logprobs", Value::Array(top));
        }
        out
    }
    entries.iter().map(|e| one(e, true)).collect()
}

/// Chat `usage` as Responses `usage` (zeros when the backend reported
/// none: the AI SDK requires the object).
pub(super) fn usage_from_openai(usage: &Value) -> Value {
    let n = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_u64);
    let input = n(Some(usage), "prompt_tokens").unwrap_or(0);
    let output = n(Some(usage), "completion_tokens").unwrap_or(0);
    let prompt_details = usage.get("prompt_tokens_details");
    let cached = n(prompt_details, "cached_tokens").unwrap_or(0);
    let written = n(prompt_details, "cache_write_tokens")
        .or_else(|| n(prompt_details, "cache_creation_tokens"))
        .unwrap_or(0);
    let reasoning = n(usage.get("completion_tokens_details"), "reasoning_tokens").unwrap_or(0);
    let total = n(Some(usage), "total_tokens").unwrap_or_else(|| input.saturating_add(output));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total,
    })
}
