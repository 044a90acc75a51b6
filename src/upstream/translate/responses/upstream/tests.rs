//! Unit tests of the pivot <-> Responses API translation: request mappings
//! and refusals (Claude Code's captured requests included, through the
//! pivot), JSON answers, and streams fed at every split point.

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::*;
use crate::error::ProxyError;
use crate::sse::SseParser;
use crate::upstream::translate::body::EventTranscoder;

fn req(v: Value) -> Result<Map<String, Value>, ProxyError> {
    request_from_openai(v.as_object().expect("an object"))
}

fn ok(v: Value) -> Value {
    Value::Object(req(v).expect("translated"))
}

// ---------------------------------------------------------------------------
// Requests

#[test]
fn messages_become_instructions_and_items() {
    let r = ok(json!({"model": "gpt-5", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}, {"type": "text", "text": "Be kind."}]},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
            {"type": "file", "file": {"file_data": "JVBE"}},
            {"type": "file", "file": {"file_id": "file-1"}}]},
        {"role": "assistant", "content": "Let me look.", "reasoning_content": "hmm", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"at\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": {"at": 2}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "dog"}]},
        {"role": "system", "content": "Answer now."},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat"}, {"type": "refusal", "refusal": "no dogs"}]},
        {"role": "assistant", "content": null, "refusal": "Sorry."},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Thanks"}]}));
    assert_eq!(r["model"], "gpt-5");
    assert_eq!(r["instructions"], "Be brief.\n\nUse tools.\n\nBe kind.");
    let text = |t: &str| json!({"type": "input_text", "text": t});
    assert_eq!(
        r["input"],
        json!([
            {"type": "message", "role": "user", "content": [
                text("What is this?"),
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                {"type": "input_file", "filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                {"type": "input_file", "file_id": "file-1"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{\"at\":1}"},
            {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": "{\"at\":2}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
            {"type": "function_call_output", "call_id": "call_2", "output": "a dog"},
            {"type": "message", "role": "system", "content": [text("Answer now.")]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "A cat"}, {"type": "refusal", "refusal": "no dogs"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "Sorry."}]},
            {"type": "message", "role": "user", "content": [text("Thanks")]},
        ])
    );
    // Nothing is stored unless asked; no sampling defaults are invented.
    assert_eq!(r["store"], false);
    assert_eq!(
        r.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["model", "instructions", "input", "store"]
    );
}

#[test]
fn parameters_map() {
    let r = ok(json!({
        "model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "F", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}, "strict": true}},
            {"type": "function", "function": {"name": "h"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
        "verbosity": "low", "reasoning_effort": "high",
        "max_completion_tokens": 500, "max_tokens": 9,
        "temperature": 0.5, "top_p": 0.9, "user": "u1", "service_tier": "flex",
        "metadata": {"k": "v"}, "store": true, "prompt_cache_key": "pk", "safety_identifier": "s1",
        "logprobs": true, "top_logprobs": 3, "stream": true,
        "stream_options": {"include_usage": true}, "seed": 7, "n": 1,
        "modalities": ["text"], "presence_penalty": 0, "frequency_penalty": 0.0,
        "logit_bias": {}, "stop": null, "top_k": 40, "audio": null,
    }));
    assert_eq!(
        r["tools"],
        json!([
            {"type": "function", "name": "f", "description": "F", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": false},
            {"type": "function", "name": "g", "parameters": {"type": "object"}, "strict": true},
            {"type": "function", "name": "h", "parameters": {"type": "object", "properties": {}}, "strict": false}])
    );
    assert_eq!(r["tool_choice"], json!({"type": "function", "name": "f"}));
    assert_eq!(r["parallel_tool_calls"], false);
    assert_eq!(
        r["text"],
        json!({"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"})
    );
    assert_eq!(r["reasoning"], json!({"effort": "high"}));
    assert_eq!(r["max_output_tokens"], 500);
    assert_eq!(r["include"], json!(["message.output_text.logprobs"]));
    assert_eq!(r["top_logprobs"], 3);
    assert_eq!(r["stream"], true);
    assert_eq!(r["store"], true);
    // Shared fields and unknown ones, as they are.
    for (k, v) in [
        ("temperature", json!(0.5)),
        ("top_p", json!(0.9)),
        ("user", json!("u1")),
        ("service_tier", json!("flex")),
        ("metadata", json!({"k": "v"})),
        ("prompt_cache_key", json!("pk")),
        ("safety_identifier", json!("s1")),
        ("top_k", json!(40)),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    // Dropped hints and neutral values.
    for k in [
        "stream_options",
        "seed",
        "n",
        "modalities",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "stop",
        "audio",
        "logprobs",
        "max_tokens",
        "max_completion_tokens",
        "messages",
        "response_format",
        "verbosity",
        "reasoning_effort",
    ] {
        assert!(r.get(k).is_none(), "{k} should be gone");
    }

    let tc = |choice: Value| {
        ok(json!({"model": "m", "messages": [], "tool_choice": choice}))["tool_choice"].clone()
    };
    assert_eq!(tc(json!("auto")), "auto");
    assert_eq!(tc(json!("none")), "none");
    assert_eq!(tc(json!("required")), "required");
    assert_eq!(
        tc(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}})
        ),
        json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]})
    );
    let rf =
        |f: Value| ok(json!({"model": "m", "messages": [], "response_format": f}))["text"].clone();
    assert_eq!(
        rf(json!({"type": "json_object"})),
        json!({"format": {"type": "json_object"}})
    );
    assert_eq!(
        rf(json!({"type": "text"})),
        json!({"format": {"type": "text"}})
    );
    // `reasoning_effort` joins a `reasoning` object the request carries.
    let r = ok(
        json!({"model": "m", "messages": [], "reasoning": {"summary": "auto"}, "reasoning_effort": "low"}),
    );
    assert_eq!(r["reasoning"], json!({"summary": "auto", "effort": "low"}));
    // max_tokens alone; logprobs false asks for nothing.
    let r = ok(
        json!({"model": "m", "messages": [], "max_tokens": 64, "logprobs": false, "stream": false}),
    );
    assert_eq!(r["max_output_tokens"], 64);
    assert!(r.get("include").is_none());
    assert_eq!(r["stream"], false);
}

#[test]
fn inexpressible_requests_are_400s_naming_the_parameter() {
    let base = || json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let cases = [
        (with("n", json!(2)), "`n`"),
        (with("stop", json!("END")), "`stop`"),
        (with("stop", json!(["a", "b"])), "`stop`"),
        (with("logit_bias", json!({"50256": -100})), "`logit_bias`"),
        (with("presence_penalty", json!(0.5)), "`presence_penalty`"),
        (with("frequency_penalty", json!(-1)), "`frequency_penalty`"),
        (
            with("audio", json!({"voice": "alloy", "format": "wav"})),
            "`audio`",
        ),
        (with("modalities", json!(["text", "audio"])), "`modalities`"),
        (with("functions", json!([{"name": "f"}])), "`functions`"),
        (with("function_call", json!("auto")), "`function_call`"),
        (
            with("prediction", json!({"type": "content", "content": "x"})),
            "`prediction`",
        ),
        (
            with("web_search_options", json!({})),
            "`web_search_options`",
        ),
        (with("input", json!("Hi")), "`input`"),
        (with("instructions", json!("Be brief")), "`instructions`"),
        (
            with(
                "tools",
                json!([{"type": "custom", "custom": {"name": "c"}}]),
            ),
            "tools[0]",
        ),
        (
            with(
                "tool_choice",
                json!({"type": "custom", "custom": {"name": "c"}}),
            ),
            "`tool_choice`",
        ),
        (
            with("response_format", json!({"type": "grammar"})),
            "`response_format`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "messages[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "c", "input": "x"}}]}]}),
            "messages[0].tool_calls[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}]}),
            "`function_call`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "`tool_call_id`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "critic", "content": "x"}]}),
            "`critic`",
        ),
    ];
    for (body, named) in cases {
        let e = req(body.clone()).expect_err(&body.to_string());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(
            e.to_string().contains(named),
            "{body}: {e} should name {named}"
        );
    }
}

/// Claude Code's request as the pivot. A branch whose Anthropic
/// translation refuses `role: "system"` inside `messages` gets them spliced
/// in as pivot system messages, at their place.
fn pivot_of_anthropic(body: &Value) -> Map<String, Value> {
    if let Ok(pivot) =
        crate::upstream::translate::anthropic::request_to_openai(body.as_object().unwrap())
    {
        return pivot;
    }
    let mut head = body.clone();
    head["messages"] = json!([]);
    let mut pivot =
        crate::upstream::translate::anthropic::request_to_openai(head.as_object().unwrap())
            .expect("the request without its messages");
    let mut messages = pivot["messages"].as_array().unwrap().clone();
    for m in body["messages"].as_array().unwrap() {
        if m["role"] == "system" {
            messages.push(json!({"role": "system", "content": m["content"]}));
        } else {
            let one = json!({"messages": [m]});
            let t =
                crate::upstream::translate::anthropic::request_to_openai(one.as_object().unwrap())
                    .expect("one message");
            messages.extend(t["messages"].as_array().unwrap().iter().cloned());
        }
    }
    pivot.insert("messages".into(), Value::Array(messages));
    pivot
}

fn agent_fixture(name: &str) -> Value {
    let text = match name {
        "first-turn" => include_str!("../../../../../tests/fixtures/agent-requests/claude-code-messages-first-turn.json"),
        "tool-result" => include_str!("../../../../../tests/fixtures/agent-requests/claude-code-messages-tool-result.json"),
        _ => include_str!("../../../../../tests/fixtures/agent-requests/claude-code-messages-background-task-system.json"),
    };
    serde_json::from_str::<Value>(text).unwrap()["body"].clone()
}

#[test]
fn claude_code_requests_through_the_pivot() {
    for name in ["first-turn", "tool-result", "background-task-system"] {
        let body = agent_fixture(name);
        let pivot = pivot_of_anthropic(&body);
        let r =
            Value::Object(request_from_openai(&pivot).unwrap_or_else(|e| panic!("{name}: {e}")));
        // The system blocks are the instructions.
        let system: Vec<&str> = body["system"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        assert_eq!(r["instructions"], system.join("\n\n"), "{name}");
        assert_eq!(r["max_output_tokens"], body["max_tokens"], "{name}");
        assert_eq!(r["stream"], true, "{name}");
        assert_eq!(r["store"], false, "{name}");
        assert!(r.get("stream_options").is_none(), "{name}");
        let tools = r["tools"].as_array().unwrap();
        assert_eq!(
            tools.len(),
            body["tools"].as_array().unwrap().len(),
            "{name}"
        );
        for (t, a) in tools.iter().zip(body["tools"].as_array().unwrap()) {
            assert_eq!(t["type"], "function");
            assert_eq!(t["name"], a["name"]);
            assert_eq!(t["parameters"], a["input_schema"]);
            assert_eq!(t["strict"], false);
        }
        // Every output answers a call made before it; a system message
        // inside the conversation stays at its place, as an item.
        let input = r["input"].as_array().unwrap();
        let mut calls = Vec::new();
        for item in input {
            match item["type"].as_str().unwrap() {
                "function_call" => {
                    assert!(item["call_id"].as_str().unwrap().starts_with("toolu_"));
                    serde_json::from_str::<Value>(item["arguments"].as_str().unwrap()).unwrap();
                    calls.push(item["call_id"].clone());
                }
                "function_call_output" => assert!(calls.contains(&item["call_id"]), "{name}"),
                "message" => assert!(
                    ["user", "assistant", "system"].contains(&item["role"].as_str().unwrap())
                ),
                other => panic!("{name}: item type {other}"),
            }
        }
        let systems = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "system")
            .count();
        let system_items = input.iter().filter(|i| i["role"] == "system").count();
        assert_eq!(system_items, systems, "{name}");
        if name != "first-turn" {
            assert!(!calls.is_empty(), "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// JSON answers

fn response(status: &str, output: Value) -> Value {
    json!({
        "id": "resp_abc", "object": "response", "created_at": 1755000000.5,
        "status": status, "error": null, "incomplete_details": null,
        "model": "gpt-5-2025-08-07", "output": output, "service_tier": "default",
        "usage": {"input_tokens": 75, "input_tokens_details": {"cached_tokens": 64},
                  "output_tokens": 120, "output_tokens_details": {"reasoning_tokens": 100},
                  "total_tokens": 195},
    })
}

#[test]
fn a_response_with_text_reasoning_and_calls() {
    let r = response(
        "completed",
        json!([
            {"id": "rs_1", "type": "reasoning", "summary": [
                {"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "Look it up."}]},
            {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": [
                {"type": "output_text", "text": "Let me ", "annotations": []},
                {"type": "output_text", "text": "check.", "annotations": []}]},
            {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"id": "fc_2", "type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}", "status": "completed"},
            {"id": "ws_1", "type": "web_search_call", "status": "completed"}]),
    );
    assert_eq!(
        response_to_openai(&r),
        json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1755000000,
            "model": "gpt-5-2025-08-07", "service_tier": "default",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.", "refusal": null,
                "reasoning_content": "**Plan**\n\nLook it up.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 75, "completion_tokens": 120, "total_tokens": 195,
                      "prompt_tokens_details": {"cached_tokens": 64},
                      "completion_tokens_details": {"reasoning_tokens": 100}},
        })
    );
}

#[test]
fn finish_reasons_refusals_and_logprobs() {
    let message =
        |parts: Value| json!([{"type": "message", "role": "assistant", "content": parts}]);
    let text = message(json!([{"type": "output_text", "text": "Hi", "logprobs": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}]));
    let c = response_to_openai(&response("completed", text.clone()));
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["choices"][0]["message"]["content"], "Hi");
    assert_eq!(c["choices"][0]["message"].get("tool_calls"), None);
    assert_eq!(c["choices"][0]["message"].get("reasoning_content"), None);
    assert_eq!(
        c["choices"][0]["logprobs"],
        json!({"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}], "refusal": null})
    );

    let mut r = response("incomplete", text.clone());
    r["incomplete_details"] = json!({"reason": "max_output_tokens"});
    assert_eq!(
        response_to_openai(&r)["choices"][0]["finish_reason"],
        "length"
    );
    r["incomplete_details"] = json!({"reason": "content_filter"});
    assert_eq!(
        response_to_openai(&r)["choices"][0]["finish_reason"],
        "content_filter"
    );
    // An incomplete answer cut inside a call is `length`, not `tool_calls`.
    let mut r = response(
        "incomplete",
        json!([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a"}]),
    );
    r["incomplete_details"] = json!({"reason": "max_output_tokens"});
    let c = response_to_openai(&r);
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a"
    );

    let c = response_to_openai(&response(
        "completed",
        message(json!([{"type": "refusal", "refusal": "I can't."}])),
    ));
    assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(c["choices"][0]["message"]["refusal"], "I can't.");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");

    // No id, no usage: a fresh id, no usage invented.
    let mut r = response("completed", json!([]));
    r.as_object_mut().unwrap().remove("id");
    r.as_object_mut().unwrap().remove("usage");
    let c = response_to_openai(&r);
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(c.get("usage"), None);
    assert_eq!(c["choices"][0]["message"]["content"], "");
}

#[test]
fn responses_that_did_not_finish_are_errors() {
    let mut r = response("failed", json!([]));
    r["error"] = json!({"code": "server_error", "message": "The model had an error."});
    assert_eq!(
        response_to_openai(&r),
        json!({"error": {"message": "The model had an error.", "type": "server_error", "param": null, "code": "server_error"}})
    );
    let r = response("cancelled", json!([]));
    let e = response_to_openai(&r);
    assert_eq!(e["error"]["code"], "response_cancelled");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`cancelled`"));
    assert_eq!(
        response_to_openai(&response("queued", json!([])))["error"]["code"],
        "response_queued"
    );
}

async fn collect(r: Response<ProxyBody>) -> (StatusCode, String, Bytes) {
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        ct,
        r.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn answers_through_the_body_wrappers() {
    // A Response object.
    let body = serde_json::to_vec(&response("completed", json!([]))).unwrap();
    let r = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(ProxyBody::full(body))
        .unwrap();
    let r = answer_to_openai(r, true);
    assert!(r.headers().get("content-length").is_none());
    let (status, _, out) = collect(r).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-abc");

    // Errors pass through, byte for byte.
    let error = r#"{"error":{"message":"Invalid 'input[2].call_id'.","type":"invalid_request_error","param":"input[2].call_id","code":null}}"#;
    let r = Response::builder()
        .status(400)
        .header("content-type", "application/json")
        .body(ProxyBody::full(error))
        .unwrap();
    let (status, ct, out) = collect(answer_to_openai(r, true)).await;
    assert_eq!(
        (status, ct.as_str(), &out[..]),
        (
            StatusCode::BAD_REQUEST,
            "application/json",
            error.as_bytes()
        )
    );

    // A 2xx that is no Response: as it came.
    let r = Response::builder()
        .status(200)
        .body(ProxyBody::full(error))
        .unwrap();
    let (_, _, out) = collect(answer_to_openai(r, true)).await;
    assert_eq!(&out[..], error.as_bytes());

    // A stream.
    let r = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(ProxyBody::full(golden_input()))
        .unwrap();
    let (status, _, out) = collect(answer_to_openai(r, true)).await;
    assert_eq!(status, 200);
    assert_eq!(events(&out), golden_output());
}

// ---------------------------------------------------------------------------
// Streams

mod stream;
use stream::{events, golden_input, golden_output};
