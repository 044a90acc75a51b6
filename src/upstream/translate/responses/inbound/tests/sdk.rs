//! The fields the official SDK's models require, with their types
//! (openai-python `src/openai/types/responses/`: `response.py`,
//! `response_output_message.py`, `response_function_tool_call.py`,
//! `response_reasoning_item.py`, `response_usage.py` and the
//! `response_*_event.py` stream events), checked on every emitted object.

use serde_json::Value;

fn int(v: &Value, key: &str) {
    assert!(v[key].is_u64(), "`{key}` must be an integer: {v}");
}

fn string(v: &Value, key: &str) {
    assert!(v[key].is_string(), "`{key}` must be a string: {v}");
}

fn string_or_null(v: &Value, key: &str) {
    assert!(
        v[key].is_string() || v[key].is_null(),
        "`{key}` must be a string or null: {v}"
    );
}

fn number_or_null(v: &Value, key: &str) {
    assert!(
        v[key].is_number() || v[key].is_null(),
        "`{key}` must be a number or null: {v}"
    );
}

fn literal(v: &Value, key: &str, allowed: &[&str]) {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` must be a string: {v}"));
    assert!(
        allowed.contains(&s),
        "`{key}` = {s}, not one of {allowed:?}: {v}"
    );
}

fn array<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` must be an array: {v}"))
}

const STATUSES: &[&str] = &["in_progress", "completed", "incomplete"];

/// A `Response`.
pub(super) fn check_response(r: &Value) {
    string(r, "id");
    assert!(r["created_at"].is_number(), "{r}");
    string(r, "model");
    literal(r, "object", &["response"]);
    for item in array(r, "output") {
        check_item(item);
    }
    assert!(r["parallel_tool_calls"].is_boolean(), "{r}");
    assert!(
        r["tool_choice"].is_string() || r["tool_choice"].is_object(),
        "{r}"
    );
    array(r, "tools");
    literal(
        r,
        "status",
        &[
            "completed",
            "failed",
            "in_progress",
            "cancelled",
            "queued",
            "incomplete",
        ],
    );
    if !r["error"].is_null() {
        // A `Literal` in the model, but the API passes upstream codes
        // (`insufficient_quota`, ...) and the SDK does not validate it.
        string(&r["error"], "code");
        string(&r["error"], "message");
    }
    if !r["incomplete_details"].is_null() {
        literal(
            &r["incomplete_details"],
            "reason",
            &["max_output_tokens", "content_filter"],
        );
    }
    string_or_null(r, "instructions");
    number_or_null(r, "temperature");
    number_or_null(r, "top_p");
    number_or_null(r, "max_output_tokens");
    assert!(r["metadata"].is_object(), "{r}");
    assert!(r["text"]["format"]["type"].is_string(), "{r}");
    assert!(r["reasoning"].is_object(), "{r}");
    assert!(
        r["store"].is_boolean() && r["background"].is_boolean(),
        "{r}"
    );
    assert!(r["previous_response_id"].is_null(), "{r}");
    let u = &r["usage"];
    // Null only while in progress (the AI SDK requires it in the end).
    if r["status"] != "in_progress" || !u.is_null() {
        int(u, "input_tokens");
        int(&u["input_tokens_details"], "cached_tokens");
        int(&u["input_tokens_details"], "cache_write_tokens");
        int(u, "output_tokens");
        int(&u["output_tokens_details"], "reasoning_tokens");
        int(u, "total_tokens");
    }
}

/// A `ResponseOutputItem` of the kinds the translation emits.
pub(super) fn check_item(item: &Value) {
    match item["type"].as_str() {
        Some("message") => {
            string(item, "id");
            literal(item, "role", &["assistant"]);
            literal(item, "status", STATUSES);
            for part in array(item, "content") {
                check_part(part);
            }
        }
        Some("reasoning") => {
            string(item, "id");
            for s in array(item, "summary") {
                literal(s, "type", &["summary_text"]);
                string(s, "text");
            }
            literal(item, "status", STATUSES);
        }
        Some("function_call") => {
            string(item, "id");
            string(item, "arguments");
            string(item, "call_id");
            string(item, "name");
            // The AI SDK parses no other status of a call that is done.
            literal(item, "status", &["in_progress", "completed"]);
            if let Some(ns) = item.get("namespace") {
                assert!(ns.is_string(), "{item}");
            }
        }
        _ => panic!("unexpected output item {item}"),
    }
}

/// A message content part (`ResponseOutputText` or `ResponseOutputRefusal`).
fn check_part(part: &Value) {
    match part["type"].as_str() {
        Some("output_text") => {
            array(part, "annotations");
            string(part, "text");
            for l in array(part, "logprobs") {
                string(l, "token");
                array(l, "bytes");
                assert!(l["logprob"].is_number(), "{l}");
                array(l, "top_logprobs");
            }
        }
        Some("refusal") => string(part, "refusal"),
        _ => panic!("unexpected content part {part}"),
    }
}

/// A `ResponseStreamEvent` of the kinds the translation emits.
pub(super) fn check_event(e: &Value) {
    int(e, "sequence_number");
    let kind = e["type"].as_str().unwrap_or_else(|| panic!("no type: {e}"));
    let item_event = || {
        string(e, "item_id");
        int(e, "output_index");
    };
    match kind {
        "response.created"
        | "response.in_progress"
        | "response.completed"
        | "response.incomplete"
        | "response.failed" => check_response(&e["response"]),
        "error" => {
            // openai-python's `ResponseErrorEvent`, and the API's nested
            // `error` (which the AI SDK reads).
            string(e, "message");
            string_or_null(e, "code");
            string_or_null(e, "param");
            string(&e["error"], "type");
            string(&e["error"], "code");
            string(&e["error"], "message");
            string_or_null(&e["error"], "param");
        }
        "response.output_item.added" | "response.output_item.done" => {
            int(e, "output_index");
            check_item(&e["item"]);
        }
        "response.content_part.added" | "response.content_part.done" => {
            item_event();
            int(e, "content_index");
            check_part(&e["part"]);
        }
        "response.output_text.delta" => {
            item_event();
            int(e, "content_index");
            string(e, "delta");
            for l in array(e, "logprobs") {
                string(l, "token");
                assert!(l["logprob"].is_number(), "{l}");
            }
        }
        "response.output_text.done" => {
            item_event();
            int(e, "content_index");
            string(e, "text");
            array(e, "logprobs");
        }
        "response.refusal.delta" => {
            item_event();
            int(e, "content_index");
            string(e, "delta");
        }
        "response.refusal.done" => {
            item_event();
            int(e, "content_index");
            string(e, "refusal");
        }
        "response.function_call_arguments.delta" => {
            item_event();
            string(e, "delta");
        }
        "response.function_call_arguments.done" => {
            item_event();
            string(e, "arguments");
            string(e, "name");
        }
        "response.reasoning_summary_part.added" | "response.reasoning_summary_part.done" => {
            item_event();
            int(e, "summary_index");
            literal(&e["part"], "type", &["summary_text"]);
            string(&e["part"], "text");
        }
        "response.reasoning_summary_text.delta" => {
            item_event();
            int(e, "summary_index");
            string(e, "delta");
        }
        "response.reasoning_summary_text.done" => {
            item_event();
            int(e, "summary_index");
            string(e, "text");
        }
        other => panic!("unexpected event type {other}: {e}"),
    }
}
