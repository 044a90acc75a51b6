//! Unit tests of the Gemini translation.

use super::*;
use crate::upstream::translate::convert::testing::{
    assert_stream, canonical_ids, json_fixture, normalize,
};

fn answer_fixture(name: &str) {
    let upstream = json_fixture(&format!("gemini/{name}.gemini.json"));
    let mut got = answer_to_openai(&upstream, "gemini-2.5-flash");
    normalize(&mut got);
    assert_eq!(
        got,
        json_fixture(&format!("gemini/{name}.openai.json")),
        "{name}"
    );
}

#[test]
fn golden_request() {
    let pivot = json_fixture("gemini/request_tools.openai.json");
    let got = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
    assert_eq!(got, json_fixture("gemini/request_tools.gemini.json"));
}

#[test]
fn golden_answers() {
    answer_fixture("answer_text");
    answer_fixture("answer_tools");
    answer_fixture("answer_blocked");
}

#[test]
fn golden_error() {
    let got = error_to_openai(
        StatusCode::BAD_REQUEST,
        &crate::upstream::translate::convert::testing::fixture("gemini/error_context.gemini.json"),
    );
    assert_eq!(got, json_fixture("gemini/error_context.openai.json"));
}

#[test]
fn golden_streams_whole_and_byte_by_byte() {
    for name in ["stream_text", "stream_tools", "stream_blocked"] {
        assert_stream(
            || GeminiStream::new("gemini-2.5-flash", true),
            &format!("gemini/{name}.gemini.sse"),
            &format!("gemini/{name}.openai.json"),
        );
    }
}

#[test]
fn stream_usage_only_when_asked() {
    let input =
        crate::upstream::translate::convert::testing::fixture("gemini/stream_text.gemini.sse");
    let events = crate::upstream::translate::convert::testing::run(
        GeminiStream::new("gemini-2.5-flash", false),
        &input,
        5,
    );
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[test]
fn stream_without_finish_gets_no_done() {
    let input = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}]}\r\n\r\n";
    let events =
        crate::upstream::translate::convert::testing::run(GeminiStream::new("g", true), input, 3);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e != "[DONE]"));
    // An error event mid-stream becomes an OpenAI error event.
    let input = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}\n\ndata: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n";
    let events =
        crate::upstream::translate::convert::testing::run(GeminiStream::new("g", true), input, 4);
    let last = events.last().unwrap();
    assert_eq!(last["error"]["message"], "The model is overloaded.");
    assert_eq!(last["error"]["code"], "unavailable");
}

#[test]
fn round_trip_keeps_messages_and_tools() {
    let pivot = json_fixture("gemini/request_tools.openai.json");
    let gemini = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap();
    let back = request_from_gemini(&gemini, "weather-bot");
    assert_eq!(
        canonical_ids(&back["messages"]),
        canonical_ids(&pivot["messages"])
    );
    // A tool without parameters loses its empty schema on the way.
    let mut tools = pivot["tools"].clone();
    tools[1]["function"]
        .as_object_mut()
        .unwrap()
        .remove("parameters");
    assert_eq!(back["tools"], tools);
    for key in [
        "tool_choice",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "response_format",
    ] {
        assert_eq!(back[key], pivot[key], "{key}");
    }
}

fn gemini(messages: Value) -> Value {
    let pivot = json!({"model": "g", "messages": messages});
    request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap()
}

#[test]
fn leading_system_messages_are_the_system_instruction() {
    let g = gemini(json!([
        {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "developer", "content": "c"},
        {"role": "system", "content": ""},
        {"role": "user", "content": "hi"},
    ]));
    assert_eq!(
        g["systemInstruction"],
        json!({"parts": [{"text": "a"}, {"text": "b"}, {"text": "c"}]})
    );
    assert_eq!(
        g["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
}

#[test]
fn later_system_messages_are_user_text_at_their_position() {
    // After a user turn: joined to it; the next user text joins too.
    let g = gemini(json!([
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": "now brief"},
        {"role": "user", "content": "next"},
    ]));
    assert_eq!(g["systemInstruction"], json!({"parts": [{"text": "s"}]}));
    assert_eq!(
        g["contents"],
        json!([
            {"role": "user", "parts": [{"text": "hi"}, {"text": "<system>\nx\n\ny\n</system>"}, {"text": "more"}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"role": "user", "parts": [{"text": "<system>\nnow brief\n</system>"}, {"text": "next"}]},
        ])
    );
    // After function responses: a user turn of its own (Gemini wants a
    // function response turn to hold only the responses).
    let g = gemini(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "system", "content": "background task finished"},
        {"role": "assistant", "content": "noted"},
    ]));
    assert!(g.get("systemInstruction").is_none());
    let contents = &g["contents"];
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "done"}}}]})
    );
    assert_eq!(
        contents[3],
        json!({"role": "user", "parts": [{"text": "<system>\nbackground task finished\n</system>"}]})
    );
    assert_eq!(
        contents[4],
        json!({"role": "model", "parts": [{"text": "noted"}]})
    );
    assert_eq!(contents.as_array().unwrap().len(), 5);
}

#[test]
fn thought_signature_on_replayed_calls_of_gemini_3() {
    let pivot = json_fixture("gemini/request_tools.openai.json");
    let got = request_to_gemini(pivot.as_object().unwrap(), "gemini-3-pro-preview").unwrap();
    let parts = got["contents"][1]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["thoughtSignature"], SKIP_THOUGHT_SIGNATURE);
    assert!(parts[1].get("thoughtSignature").is_none());
}

#[test]
fn thought_signature_models() {
    assert!(wants_thought_signature("gemini-3-pro-preview"));
    assert!(wants_thought_signature("models/gemini-3.1-flash"));
    assert!(wants_thought_signature("gemini-flash-latest"));
    assert!(!wants_thought_signature("gemini-2.5-flash"));
    assert!(!wants_thought_signature("gemini-1.5-pro"));
    assert!(!wants_thought_signature("gemma-3-27b-it"));
}

#[test]
fn schema_cleaning() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "when": {"type": ["string", "null"], "format": "date-time"},
            "kind": {"const": "a"},
            "tags": {"type": "array", "items": {"type": "string", "examples": ["x"]}}
        },
        "required": ["url"]
    });
    assert_eq!(
        clean_schema(&schema),
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "when": {"type": "string", "nullable": true, "format": "date-time"},
                "kind": {"enum": ["a"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["url"]
        })
    );
}

#[test]
fn finish_reasons() {
    assert_eq!(finish_reason(Some("STOP"), false), "stop");
    assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
    assert_eq!(finish_reason(Some("MAX_TOKENS"), true), "length");
    for r in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(finish_reason(Some(r), false), "content_filter");
    }
    assert_eq!(finish_reason(Some("OTHER"), false), "stop");
}

#[test]
fn unknown_tool_result_is_400() {
    let pivot = json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
    let e = request_to_gemini(pivot.as_object().unwrap(), "gemini-2.5-flash").unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn errors_keep_message_and_status() {
    let body = br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
    let v = error_to_openai(StatusCode::BAD_REQUEST, body);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(crate::classify::is_context_exceeded(
        v.to_string().as_bytes()
    ));
    let v = error_to_openai(
        StatusCode::TOO_MANY_REQUESTS,
        br#"[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]"#,
    );
    assert_eq!(v["error"]["code"], "resource_exhausted");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let v = error_to_openai(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
    assert_eq!(v["error"]["message"], "<html>bad gateway</html>");
    assert_eq!(v["error"]["code"], "upstream_error");
}

/// Regression: a candidate `index` of u64::MAX overflowed (`index + 1`)
/// and one of 10^12 sized a table by it (+700 MB/s until OOM); both end
/// the stream with an error now, and nothing is allocated for them.
#[test]
fn an_out_of_range_candidate_index_is_an_error_not_a_table() {
    for index in ["128", "1000000000000", "18446744073709551615"] {
        let mut conv = GeminiStream::new("g", false);
        let mut out = VecDeque::new();
        let event = format!(
            "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"Hi\"}}]}},\"index\":{index}}}]}}\n\n"
        );
        let err = conv.push(event.as_bytes(), &mut out).unwrap_err();
        assert!(err.to_string().contains("beyond the limit of 128"), "{err}");
        assert!(conv.candidates.is_empty());
        assert!(out.is_empty());
    }
}
