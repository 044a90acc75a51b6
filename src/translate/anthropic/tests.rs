//! Unit tests of the Anthropic translation: golden fixtures from
//! `tests/fixtures/anthropic/` (written from the providers' API references),
//! streams fed whole and one byte per chunk, round trips, rejections.

use super::*;
use crate::body::{BoxError, ProxyBody};
use crate::sse::SseEvent;
use crate::sse::SseParser;
use crate::translate::body::EventTranscoder;
use crate::translate::body::SseTranscode;
use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::Map;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("a JSON object")
}

/// Set every `created` to 0 (it is the translation's clock).
fn zero_created(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("created") {
            o.insert("created".into(), Value::from(0));
        }
    }
}

/// A stream as `[{"event": NAME?, "data": JSON | "[DONE]"}]`.
fn events_of(text: &[u8]) -> Value {
    let mut parser = SseParser::new(1 << 20);
    parser.push(text);
    let mut out = Vec::new();
    let mut take = |e: SseEvent| {
        if e.data.is_empty() {
            return;
        }
        let mut data = if e.is_done() {
            Value::from("[DONE]")
        } else {
            serde_json::from_slice(&e.data).unwrap_or_else(|err| {
                panic!(
                    "bad event data ({err}): {}",
                    String::from_utf8_lossy(&e.data)
                )
            })
        };
        zero_created(&mut data);
        let mut item = json!({"data": data});
        if let Some(name) = e.event {
            item["event"] = Value::from(name);
        }
        out.push(item);
    };
    while let Some(e) = parser.next_event().unwrap() {
        take(e);
    }
    if let Some(e) = parser.finish() {
        take(e);
    }
    Value::Array(out)
}

async fn transcode<T: EventTranscoder>(input: &str, chunk: usize, t: T) -> Bytes {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = input
        .as_bytes()
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = ProxyBody::new(StreamBody::new(futures_util::stream::iter(frames)));
    SseTranscode::new(body, t)
        .collect()
        .await
        .unwrap()
        .to_bytes()
}

/// Feed a stream fixture whole and one byte per chunk: both must give the
/// expected events, and the same bytes.
async fn check_stream<T: EventTranscoder>(input: &str, expected: &str, make: impl Fn() -> T) {
    let whole = transcode(&fixture(input), usize::MAX, make()).await;
    let bytewise = transcode(&fixture(input), 1, make()).await;
    let got = events_of(&whole);
    let want = json_fixture(expected);
    assert_eq!(
        got,
        want,
        "{input} -> {expected}:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    assert_eq!(events_of(&bytewise), got, "{input} split at every byte");
    // Every event is framed as `event:` (Anthropic) / `data:` lines ending in a blank line.
    assert!(whole.ends_with(b"\n\n"));
}

#[test]
fn golden_openai_request_to_anthropic() {
    let got = request_from_openai(obj(&json_fixture("openai_request_tools.json"))).unwrap();
    assert_eq!(
        Value::Object(got),
        json_fixture("anthropic_request_from_openai.json")
    );
}

#[test]
fn golden_anthropic_request_to_openai() {
    let got = request_to_openai(obj(&json_fixture("anthropic_request_tools.json"))).unwrap();
    assert_eq!(
        Value::Object(got),
        json_fixture("openai_request_from_anthropic.json")
    );
}

#[test]
fn golden_anthropic_response_to_openai() {
    let mut got = response_to_openai(&json_fixture("anthropic_response_tool_use.json"));
    assert!(got["created"].as_u64().unwrap() > 1_700_000_000);
    zero_created(&mut got);
    assert_eq!(got, json_fixture("openai_response_from_anthropic.json"));
}

#[test]
fn golden_openai_response_to_anthropic() {
    let got = response_from_openai(&json_fixture("openai_response_tool_calls.json"));
    assert_eq!(got, json_fixture("anthropic_response_from_openai.json"));
}

#[tokio::test]
async fn golden_anthropic_stream_to_openai_chunks() {
    check_stream(
        "anthropic_stream_tool_use.sse",
        "openai_stream_from_anthropic.json",
        || AnthropicToOpenAiStream::new(true),
    )
    .await;
    check_stream(
        "anthropic_stream_error.sse",
        "openai_stream_from_anthropic_error.json",
        || AnthropicToOpenAiStream::new(false),
    )
    .await;
}

#[tokio::test]
async fn anthropic_stream_without_usage_request_has_no_usage_chunk() {
    let out = transcode(
        &fixture("anthropic_stream_tool_use.sse"),
        7,
        AnthropicToOpenAiStream::new(false),
    )
    .await;
    let events = events_of(&out);
    let events = events.as_array().unwrap();
    assert!(events.iter().all(|e| e["data"].get("usage").is_none()));
    assert_eq!(events.last().unwrap()["data"], "[DONE]");
    assert_eq!(
        events[events.len() - 2]["data"]["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn golden_openai_stream_to_anthropic_events() {
    check_stream(
        "openai_stream_tool_calls.sse",
        "anthropic_stream_from_openai.json",
        OpenAiToAnthropicStream::new,
    )
    .await;
    check_stream(
        "openai_stream_tool_first.sse",
        "anthropic_stream_from_openai_tool_first.json",
        OpenAiToAnthropicStream::new,
    )
    .await;
    check_stream(
        "openai_stream_error.sse",
        "anthropic_stream_from_openai_error.json",
        OpenAiToAnthropicStream::new,
    )
    .await;
}

#[tokio::test]
async fn openai_stream_finished_without_done_still_completes() {
    let input = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                 data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
    let out = events_of(&transcode(input, 3, OpenAiToAnthropicStream::new()).await);
    let names: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(out[4]["data"]["delta"]["stop_reason"], "max_tokens");

    // Cut before any finish: no message_stop (the guard reports it).
    let cut = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let out = events_of(&transcode(cut, 5, OpenAiToAnthropicStream::new()).await);
    assert!(out
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] != "message_stop" && e["event"] != "message_delta"));
}

#[tokio::test]
async fn openai_empty_answer_and_reasoning() {
    let out = events_of(&transcode("data: [DONE]\n\n", 1, OpenAiToAnthropicStream::new()).await);
    let names: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);

    let input = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n\
                 data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"answer\"},\"finish_reason\":\"stop\"}]}\n\n\
                 data: [DONE]\n\n";
    let out = events_of(&transcode(input, 4, OpenAiToAnthropicStream::new()).await);
    assert_eq!(out[1]["data"]["content_block"]["type"], "thinking");
    assert_eq!(out[2]["data"]["delta"]["thinking"], "think");
    assert_eq!(out[3]["event"], "content_block_stop");
    assert_eq!(out[4]["data"]["content_block"]["type"], "text");
    assert_eq!(out[4]["data"]["index"], 1);
}

#[tokio::test]
async fn openai_tool_ids_repeated_or_reused_index() {
    // A server that repeats the id on every delta, then reuses index 0 for
    // a second call with a new id.
    let mk = |id: &str, args: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": id, "type": "function", "function": {"name": "f", "arguments": args}}]}}]})
        )
    };
    let input = format!(
        "{}{}{}data: [DONE]\n\n",
        mk("a", "{\"x\":"),
        mk("a", "1}"),
        mk("b", "{}")
    );
    let out = events_of(&transcode(&input, 2, OpenAiToAnthropicStream::new()).await);
    let starts: Vec<&Value> = out
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "content_block_start")
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["data"]["content_block"]["id"], "a");
    assert_eq!(starts[1]["data"]["content_block"]["id"], "b");
    assert_eq!(starts[1]["data"]["index"], 1);
}

#[test]
fn finish_and_stop_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(finish_reason_from_stop(stop), finish);
    }
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        assert_eq!(stop_reason_from_finish(finish), stop);
    }
}

fn openai(v: Value) -> Result<Map<String, Value>, ProxyError> {
    request_from_openai(obj(&v))
}

#[test]
fn defaults_and_simple_mappings() {
    let a = openai(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 77, "stop": "STOP", "temperature": 1.7, "n": 1, "logprobs": false,
        "presence_penalty": 0, "seed": 3, "store": false}),
    )
    .unwrap();
    assert_eq!(a["max_tokens"], 77);
    assert_eq!(a["stop_sequences"], json!(["STOP"]));
    assert_eq!(a["temperature"], 1.0, "clamped to Anthropic's range");
    assert!(a.get("system").is_none());
    assert!(a.get("tools").is_none() && a.get("tool_choice").is_none());
    for key in ["seed", "store", "n", "logprobs", "presence_penalty"] {
        assert!(a.get(key).is_none(), "{key}");
    }

    let a = openai(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert_eq!(a["max_tokens"], DEFAULT_MAX_TOKENS);
    assert!(a.get("stream").is_none());
}

#[test]
fn tool_choice_forms() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let a =
            openai(json!({"model": "m", "messages": [], "tools": tools, "tool_choice": choice}))
                .unwrap();
        assert_eq!(a["tool_choice"], want);
        assert_eq!(
            a["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
        // And back.
        let back = request_to_openai(&a).unwrap();
        assert_eq!(back["tool_choice"], choice);
    }
}

#[test]
fn system_and_developer_messages_join_the_system_prompt() {
    let a = openai(json!({"model": "m", "messages": [
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "again"},
    ]}))
    .unwrap();
    assert_eq!(
        a["system"],
        json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    );
    // Consecutive user turns are merged.
    assert_eq!(a["messages"].as_array().unwrap().len(), 1);
    assert_eq!(a["messages"][0]["content"][1]["text"], "again");
}

#[test]
fn response_format_becomes_a_system_instruction() {
    let a = openai(
        json!({"model": "m", "messages": [{"role": "system", "content": "Be terse."}],
        "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    let system = a["system"].as_array().unwrap();
    assert_eq!(system[0]["text"], "Be terse.");
    assert!(system[1]["text"].as_str().unwrap().contains("JSON object"));

    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    let a = openai(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "num", "schema": schema}}}))
    .unwrap();
    let text = a["system"].as_str().unwrap();
    assert!(
        text.contains("\"num\"") && text.contains(&schema.to_string()),
        "{text}"
    );

    let a =
        openai(json!({"model": "m", "messages": [], "response_format": {"type": "text"}})).unwrap();
    assert!(a.get("system").is_none());
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget() {
    let a = openai(
        json!({"model": "m", "messages": [], "reasoning_effort": "medium", "max_tokens": 2048}),
    )
    .unwrap();
    assert_eq!(
        a["thinking"],
        json!({"type": "enabled", "budget_tokens": 2047})
    );
    let a = openai(json!({"model": "m", "messages": [], "reasoning_effort": "low"})).unwrap();
    assert_eq!(a["thinking"]["budget_tokens"], 1024);
    let e = openai(
        json!({"model": "m", "messages": [], "reasoning_effort": "high", "max_tokens": 500}),
    )
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // Back: a thinking budget becomes an effort.
    let o = request_to_openai(obj(
        &json!({"model": "m", "max_tokens": 9000, "messages": [],
        "thinking": {"type": "enabled", "budget_tokens": 4096}}),
    ))
    .unwrap();
    assert_eq!(o["reasoning_effort"], "medium");
}

#[test]
fn inexpressible_features_are_400s_naming_them() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
            "input_audio",
        ),
        (
            json!({"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "custom",
        ),
        (json!({"messages": [], "n": 2}), "`n`"),
        (json!({"messages": [], "logprobs": true}), "logprobs"),
        (
            json!({"messages": [], "logit_bias": {"1": 5}}),
            "logit_bias",
        ),
        (
            json!({"messages": [], "frequency_penalty": 0.5}),
            "frequency_penalty",
        ),
        (
            json!({"messages": [], "modalities": ["text", "audio"]}),
            "audio",
        ),
        (
            json!({"messages": [], "functions": [{"name": "f"}]}),
            "functions",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            "file",
        ),
        (
            json!({"messages": [], "response_format": {"type": "grammar"}}),
            "grammar",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}),
            "not a JSON object",
        ),
    ];
    for (mut body, name) in cases {
        body["model"] = json!("m");
        let e = request_from_openai(obj(&body)).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert!(e.to_string().contains(name), "{e} should name {name}");
    }
    let anthropic_cases = [
        (
            json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "web_search_20250305",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}]}]}]}),
            "image",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            "url",
        ),
        (
            json!({"messages": [], "mcp_servers": [{"type": "url"}]}),
            "mcp_servers",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]}]}),
            "server_tool_use",
        ),
    ];
    for (mut body, name) in anthropic_cases {
        body["model"] = json!("m");
        let e = request_to_openai(obj(&body)).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert!(e.to_string().contains(name), "{e} should name {name}");
    }
}

#[test]
fn documents_and_errors_in_tool_results() {
    let o = request_to_openai(obj(&json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true},
        ]}]})))
    .unwrap();
    let messages = o["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "tool", "tool_call_id": "t1", "content": "Error: boom"})
    );
    assert_eq!(
        messages[1]["content"][0]["file"]["file_data"],
        "data:application/pdf;base64,JVBER"
    );
    // And the PDF back to Anthropic.
    let a = request_from_openai(&o).unwrap();
    assert_eq!(a["messages"][0]["content"][1]["type"], "document");
    assert_eq!(a["messages"][0]["content"][1]["source"]["data"], "JVBER");
}

/// Normalize an OpenAI request's messages for comparison: a string content
/// and one text part are the same thing; consecutive user texts are one turn.
fn normalized_messages(body: &Map<String, Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in body["messages"].as_array().unwrap() {
        let mut m = m.clone();
        if let Some(parts) = m["content"].as_array() {
            if parts.len() == 1 && parts[0]["type"] == "text" {
                m["content"] = parts[0]["text"].clone();
            }
        }
        if m["content"] == "" && m.get("tool_calls").is_some() {
            m["content"] = Value::Null;
        }
        out.push(m);
    }
    out
}

/// Varied OpenAI requests survive OpenAI -> Anthropic -> OpenAI with their
/// messages and tools; varied Anthropic requests survive the other way.
#[test]
fn round_trips_keep_messages_and_tools() {
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "description": format!("tool {name}"),
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}})
    };
    let call = |id: &str, name: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
    let image = |url: &str| json!({"type": "image_url", "image_url": {"url": url}});
    let conversations = vec![
        vec![json!({"role": "user", "content": "hello"})],
        vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": "q1"}),
            json!({"role": "assistant", "content": "a1"}),
            json!({"role": "user", "content": "q2"}),
        ],
        vec![
            json!({"role": "user", "content": [{"type": "text", "text": "look"}, image("data:image/gif;base64,R0lGOD"), image("https://e.x/i.png")]}),
        ],
        vec![
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [call("c1", "get", json!({"a": "x"}))]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
            json!({"role": "assistant", "content": "It is sunny."}),
        ],
        vec![
            json!({"role": "system", "content": "s"}),
            json!({"role": "user", "content": "two at once"}),
            json!({"role": "assistant", "content": "ok", "tool_calls": [
                call("c1", "get", json!({"a": "1"})), call("c2", "put", json!({"a": "2", "nested": {"k": [1, 2]}}))]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "r1"}),
            json!({"role": "tool", "tool_call_id": "c2", "content": "r2"}),
            json!({"role": "user", "content": "thanks – ünïcödé ✓"}),
        ],
    ];
    let tool_sets = [vec![], vec![tool("get")], vec![tool("get"), tool("put")]];
    let mut checked = 0;
    for messages in &conversations {
        for tools in &tool_sets {
            for stream in [false, true] {
                let mut body = json!({"model": "m", "messages": messages, "max_tokens": 100, "stream": stream});
                if !tools.is_empty() {
                    body["tools"] = Value::Array(tools.clone());
                    body["tool_choice"] = json!("auto");
                }
                let original = obj(&body).clone();
                let there = request_from_openai(&original).unwrap();
                let back = request_to_openai(&there).unwrap();
                assert_eq!(
                    normalized_messages(&back),
                    normalized_messages(&original),
                    "messages of {body}"
                );
                assert_eq!(back.get("tools"), original.get("tools"), "tools of {body}");
                assert_eq!(back.get("tool_choice"), original.get("tool_choice"));
                assert_eq!(back["max_tokens"], 100);
                assert_eq!(back.get("stream").is_some(), stream);

                // And the Anthropic form survives the other way round.
                let again = request_from_openai(&back).unwrap();
                assert_eq!(
                    again["messages"], there["messages"],
                    "anthropic side of {body}"
                );
                assert_eq!(again.get("tools"), there.get("tools"));
                assert_eq!(again.get("system"), there.get("system"));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, conversations.len() * tool_sets.len() * 2);
}

#[test]
fn answers_round_trip() {
    let original = json_fixture("anthropic_response_tool_use.json");
    let back = response_from_openai(&response_to_openai(&original));
    assert_eq!(back["content"], original["content"]);
    assert_eq!(back["stop_reason"], original["stop_reason"]);
    assert_eq!(back["usage"], original["usage"]);
    assert_eq!(back["model"], original["model"]);
}

#[test]
fn errors_both_ways() {
    let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011"}"#;
    let e = error_to_openai(StatusCode::BAD_REQUEST, anthropic);
    assert_eq!(
        e,
        json!({"error": {"message": "max_tokens: Field required", "type": "invalid_request_error",
            "param": null, "code": "invalid_request_error"}})
    );
    let e = error_to_openai(
        StatusCode::from_u16(529).unwrap(),
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(e["error"]["type"], "server_error");
    assert_eq!(e["error"]["code"], "overloaded_error");

    let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let e = error_from_openai(StatusCode::UNAUTHORIZED, openai);
    assert_eq!(
        e,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided"}})
    );
    let e = error_from_openai(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
    assert_eq!(e["error"]["type"], "api_error");
    assert_eq!(e["error"]["message"], "<html>bad gateway</html>");
    let e = error_from_openai(StatusCode::NOT_FOUND, b"");
    assert_eq!(e["error"]["type"], "not_found_error");
}

async fn collect(r: Response<ProxyBody>) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn whole_answers_through_the_body_wrappers() {
    let ok = Response::builder()
        .header("content-type", "application/json")
        .body(ProxyBody::full(fixture("anthropic_response_tool_use.json")))
        .unwrap();
    let (status, v) = collect(answer_to_openai(ok, false)).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "chat.completion");

    let err = Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .body(ProxyBody::full(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        ))
        .unwrap();
    let (status, v) = collect(answer_to_openai(err, false)).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let ok = Response::builder()
        .header("content-type", "application/json")
        .body(ProxyBody::full(fixture("openai_response_tool_calls.json")))
        .unwrap();
    let (_, v) = collect(answer_from_openai(ok)).await;
    assert_eq!(v, json_fixture("anthropic_response_from_openai.json"));

    let sse = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ProxyBody::full(fixture("openai_stream_tool_calls.sse")))
        .unwrap();
    let r = answer_from_openai(sse);
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        events_of(&bytes),
        json_fixture("anthropic_stream_from_openai.json")
    );
}

/// Feed `text` (SSE) through `t`, everything it wrote.
fn transcode_all(t: &mut impl EventTranscoder, text: &str) -> String {
    let mut parser = SseParser::new(1 << 20);
    parser.push(text.as_bytes());
    let mut out = BytesMut::new();
    while let Some(e) = parser.next_event().unwrap() {
        t.event(&e, &mut out);
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// Regression: content block and tool call indexes chosen by the upstream
/// sized tables without bound (one entry per event); beyond the limit the
/// stream now ends with an error event, and nothing more is kept.
#[test]
fn out_of_range_indexes_end_the_stream_with_an_error_event() {
    for index in ["128", "1000000000000", "18446744073709551615"] {
        let mut t = AnthropicToOpenAiStream::new(false);
        let text = transcode_all(
            &mut t,
            &format!(
                "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
                 event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n"
            ),
        );
        assert!(
            text.contains("\"error\"") && text.contains("beyond the limit"),
            "{text}"
        );
        assert!(t.blocks.is_empty(), "nothing kept after the error");

        let mut t = OpenAiToAnthropicStream::new();
        let text = transcode_all(
            &mut t,
            &format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{index},\"id\":\"c\",\"function\":{{\"name\":\"f\",\"arguments\":\"\"}}}}]}}}}]}}\n\n"
            ),
        );
        assert!(
            text.contains("event: error") && text.contains("beyond the limit"),
            "{text}"
        );
        assert!(t.tools.is_empty());
    }
    // Repeated starts of the same block keep one entry.
    let mut t = AnthropicToOpenAiStream::new(false);
    let start = "data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    transcode_all(&mut t, &start.repeat(1000));
    assert_eq!(t.blocks.len(), 1);
}
