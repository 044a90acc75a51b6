//! Tests of XML tool emulation: the scanner, the request rewrite and the
//! answer rewrite, whole and streamed.

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;

use serde_json::{json, Map, Value};

use super::scanner::push_text;
use super::stream::XmlStream;
use super::*;
use crate::upstream::translate::convert::Convert;

fn call(name: &str, arguments: &str) -> Piece {
    Piece::Call(XmlCall {
        name: name.into(),
        arguments: arguments.into(),
    })
}

fn text(t: &str) -> Piece {
    Piece::Text(t.into())
}

/// Feed `input` in pieces of `size` bytes (at char boundaries), merge the output.
fn scan_in_chunks(input: &str, cuts: &[usize]) -> Vec<Piece> {
    let mut scanner = XmlScanner::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        if cut < start || !input.is_char_boundary(cut) {
            continue;
        }
        for p in scanner.push(&input[start..cut]) {
            match p {
                Piece::Text(t) => push_text(&mut out, t),
                c => out.push(c),
            }
        }
        start = cut;
    }
    for p in scanner.finish() {
        match p {
            Piece::Text(t) => push_text(&mut out, t),
            c => out.push(c),
        }
    }
    out
}

const BOTH: &str = "Checking é. <tool_call><name>get_weather</name><arguments>{\"city\": \"Paris\"}</arguments></tool_call>\n<use_mcp_tool><server_name>s</server_name><tool_name>search</tool_name><arguments>{\"q\":\"a<b\"}</arguments></use_mcp_tool> done";

#[test]
fn both_forms_with_text_around() {
    assert_eq!(
        parse_text(BOTH),
        vec![
            text("Checking é. "),
            call("get_weather", r#"{"city":"Paris"}"#),
            call("search", r#"{"q":"a<b"}"#),
            text("done"),
        ]
    );
}

#[test]
fn a_tag_split_at_every_position() {
    let whole = parse_text(BOTH);
    for cut in 0..=BOTH.len() {
        assert_eq!(scan_in_chunks(BOTH, &[cut]), whole, "cut at {cut}");
    }
    for a in 0..BOTH.len() {
        for b in (a..BOTH.len()).step_by(7) {
            assert_eq!(scan_in_chunks(BOTH, &[a, b]), whole, "cuts at {a}, {b}");
        }
    }
    // One byte (char) at a time.
    let cuts: Vec<usize> = (0..BOTH.len()).collect();
    assert_eq!(scan_in_chunks(BOTH, &cuts), whole);
}

#[test]
fn text_streams_before_a_possible_tag() {
    let mut s = XmlScanner::new();
    assert_eq!(s.push("Hello <"), vec![text("Hello ")]);
    assert_eq!(s.push("tool"), vec![]);
    assert_eq!(s.push("box> a < b"), vec![text("<toolbox> a < b")]);
    assert_eq!(s.push(" x<"), vec![text(" x")]);
    assert_eq!(s.finish(), vec![text("<")]);
}

#[test]
fn malformed_degrades_to_text() {
    for bad in [
        "<tool_call><name>f</name><arguments>{not json}</arguments></tool_call>",
        "<tool_call><arguments>{}</arguments></tool_call>",
        "<tool_call><name></name></tool_call>",
        "<tool_call><name>f</name><arguments>[1,2]</arguments></tool_call>",
        "<tool_call><name>f</name><arguments>{\"a\":1}</tool_call>",
        "<use_mcp_tool><name>f</name></use_mcp_tool>",
    ] {
        assert_eq!(parse_text(bad), vec![text(bad)], "{bad}");
        let input = format!("a {bad} b");
        assert_eq!(parse_text(&input), vec![text(&input)], "{input}");
    }
    // Unclosed and unparseable: plain text at the end.
    assert_eq!(
        parse_text("x <tool_call><name>f"),
        vec![text("x <tool_call><name>f")]
    );
}

#[test]
fn lenient_forms() {
    assert_eq!(
        parse_text("<tool_call>\n  <name> f </name>\n  <arguments>\n{\"a\": [1, 2]}\n  </arguments>\n</tool_call>"),
        vec![call("f", r#"{"a":[1,2]}"#)]
    );
    assert_eq!(
        parse_text("<tool_call><name>f</name></tool_call>"),
        vec![call("f", "{}")]
    );
    assert_eq!(
        parse_text(
            "<tool_call><name>f</name><arguments><![CDATA[{\"a\":1}]]></arguments></tool_call>"
        ),
        vec![call("f", r#"{"a":1}"#)]
    );
    assert_eq!(
        parse_text("<tool_call><name>f</name><arguments>{&quot;a&quot;:&quot;&lt;&quot;}</arguments></tool_call>"),
        vec![call("f", r#"{"a":"<"}"#)]
    );
    // Unclosed at the end but complete inside: a call.
    assert_eq!(
        parse_text("<tool_call><name>f</name><arguments>{\"a\":1}</arguments>"),
        vec![call("f", r#"{"a":1}"#)]
    );
    // Arguments whose JSON holds a closing tag of their own.
    assert_eq!(
        parse_text(
            "<tool_call><name>f</name><arguments>{\"h\":\"</arguments>\"}</arguments></tool_call>"
        ),
        vec![call("f", r#"{"h":"</arguments>"}"#)]
    );
}

#[test]
fn held_tag_is_bounded() {
    let mut s = XmlScanner::new();
    assert!(s
        .push("<tool_call><name>f</name><arguments>{\"a\":\"")
        .is_empty());
    let big = "x".repeat(MAX_TAG);
    let out = s.push(&big);
    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], Piece::Text(t) if t.starts_with("<tool_call>")));
    assert_eq!(
        s.push("\"}</arguments></tool_call>"),
        vec![text("\"}</arguments></tool_call>")]
    );
}

fn openai_body(messages: Value, extra: Value) -> Map<String, Value> {
    let mut body = json!({"model": "m", "messages": messages});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.as_object().unwrap().clone()
}

#[test]
fn request_rewrite() {
    let mut body = openai_body(
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "21C"},
            {"role": "tool", "tool_call_id": "c2", "content": "25C"},
            {"role": "user", "content": "Thanks"}
        ]),
        json!({
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": true
        }),
    );
    assert!(needs_rewrite(&body));
    rewrite_request(&mut body, DEFAULT_TEMPLATE);
    assert!(!body.contains_key("tools"));
    assert!(!body.contains_key("tool_choice"));
    assert!(!body.contains_key("parallel_tool_calls"));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.starts_with("Be brief.\n\nYou can call tools."));
    assert!(system.contains("<tool><name>get_weather</name><description>Current weather</description><parameters>{\"type\":\"object\""));
    assert!(system.contains("<tool_call><name>TOOL_NAME</name>"));
    assert!(system.ends_with("You must call at least one tool in this answer."));
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(
        messages[2]["content"],
        "<tool_call><name>get_weather</name><arguments>{\"city\":\"Paris\"}</arguments></tool_call>\n<tool_call><name>get_weather</name><arguments>{\"city\":\"Rome\"}</arguments></tool_call>"
    );
    assert!(messages[2].get("tool_calls").is_none());
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(
        messages[3]["content"],
        "<tool_result><name>get_weather</name><result>21C</result></tool_result>\n<tool_result><name>get_weather</name><result>25C</result></tool_result>"
    );
    assert!(messages.iter().all(|m| m["role"] != "tool"));
    assert_eq!(messages[4]["content"], "Thanks");
    // The history parses back into the same calls.
    let parsed = parse_text(messages[2]["content"].as_str().unwrap());
    assert_eq!(
        parsed,
        vec![
            call("get_weather", r#"{"city":"Paris"}"#),
            call("get_weather", r#"{"city":"Rome"}"#)
        ]
    );
}

#[test]
fn request_rewrite_template_and_choices() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let mut body = openai_body(
        json!([{"role": "user", "content": "hi"}]),
        json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}}}),
    );
    rewrite_request(&mut body, "Custom tools: {tools} -- end");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.starts_with("Custom tools: <tools>\n<tool><name>f</name><parameters>"));
    assert!(system.contains("</tools> -- end"));
    assert!(system.ends_with("You must call the tool `f` in this answer."));

    // tool_choice none: no prompt, but the tools still go.
    let mut body = openai_body(
        json!([{"role": "user", "content": "hi"}]),
        json!({"tools": tools, "tool_choice": "none"}),
    );
    rewrite_request(&mut body, DEFAULT_TEMPLATE);
    assert!(!body.contains_key("tools"));
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);

    // A template without the placeholder gets the list appended.
    let mut body = openai_body(json!([]), json!({"tools": tools}));
    rewrite_request(&mut body, "Use tools.");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("Use tools.\n\n<tools>"));

    let plain = openai_body(json!([{"role": "user", "content": "hi"}]), json!({}));
    assert!(!needs_rewrite(&plain));
}

#[test]
fn json_answer_rewrite() {
    let body = json!({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "On it.\n<tool_call><name>f</name><arguments>{\"a\":1}</arguments></tool_call>"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    });
    let out: Value = serde_json::from_slice(&rewrite_answer(body.to_string().as_bytes())).unwrap();
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "On it.");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "f");
    assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(out["usage"]["total_tokens"], 3);

    let plain = br#"{"choices":[{"message":{"content":"no <b>tags</b>"},"finish_reason":"stop"}]}"#;
    assert_eq!(&rewrite_answer(plain)[..], &plain[..]);
    assert_eq!(&rewrite_answer(b"not json")[..], b"not json");
}

fn run_stream(input: &[u8], size: usize) -> Vec<Value> {
    let mut conv = XmlStream::default();
    let mut out = VecDeque::new();
    for piece in input.chunks(size) {
        conv.push(piece, &mut out).unwrap();
    }
    conv.finish(&mut out).unwrap();
    let text: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
    let text = String::from_utf8(text).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let d = e.strip_prefix("data: ").unwrap();
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

/// Text, and tool calls with their names and arguments joined.
fn summarize(events: &[Value]) -> (String, Vec<(u64, String, String)>, Option<String>) {
    let mut text = String::new();
    let mut calls: Vec<(u64, String, String)> = Vec::new();
    let mut finish = None;
    for e in events {
        let Some(choice) = e.get("choices").and_then(|c| c.get(0)) else {
            continue;
        };
        if let Some(t) = choice["delta"]["content"].as_str() {
            text.push_str(t);
        }
        for c in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(c["id"].as_str().unwrap().starts_with("call_"));
            calls.push((
                c["index"].as_u64().unwrap(),
                c["function"]["name"].as_str().unwrap().to_string(),
                c["function"]["arguments"].as_str().unwrap().to_string(),
            ));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    (text, calls, finish)
}

#[test]
fn stream_rewrite_any_chunking() {
    let mut input = chunk(json!({"role": "assistant", "content": ""}), None);
    // The model's text, cut into awkward deltas.
    let said = "Sure. <tool_call><name>f</name><arguments>{\"a\":1}</arguments></tool_call><use_mcp_tool><tool_name>g</tool_name><arguments>{}</arguments></use_mcp_tool>";
    for piece in said.as_bytes().chunks(5) {
        input.push_str(&chunk(
            json!({"content": std::str::from_utf8(piece).unwrap()}),
            None,
        ));
    }
    input.push_str(&chunk(json!({}), Some("stop")));
    input.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n");
    input.push_str("data: [DONE]\n\n");
    let whole = run_stream(input.as_bytes(), input.len());
    let (text, calls, finish) = summarize(&whole);
    assert_eq!(text, "Sure. ");
    assert_eq!(
        calls,
        vec![
            (0, "f".to_string(), "{\"a\":1}".to_string()),
            (1, "g".to_string(), "{}".to_string())
        ]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(whole[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(whole[whole.len() - 2]["usage"]["total_tokens"], 3);
    assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
    // No markup reaches the client as text.
    assert!(!text.contains('<'));
    for size in 1..16 {
        let events = run_stream(input.as_bytes(), size);
        assert_eq!(
            summarize(&events),
            (text.clone(), calls.clone(), finish.clone()),
            "size {size}"
        );
    }
}

#[test]
fn stream_without_tags_passes_text() {
    let mut input = chunk(json!({"role": "assistant", "content": ""}), None);
    input.push_str(&chunk(json!({"content": "a <b> c <"}), None));
    input.push_str(&chunk(json!({"content": "tool"}), None));
    input.push_str(&chunk(json!({}), Some("stop")));
    input.push_str("data: [DONE]\n\n");
    let events = run_stream(input.as_bytes(), 3);
    let (text, calls, finish) = summarize(&events);
    assert_eq!(text, "a <b> c <tool");
    assert!(calls.is_empty());
    assert_eq!(finish.as_deref(), Some("stop"));
}

#[test]
fn stream_ended_without_finish_flushes_text() {
    let input = chunk(json!({"content": "x <tool_ca"}), None) + "data: [DONE]\n\n";
    let events = run_stream(input.as_bytes(), 4);
    let (text, _, _) = summarize(&events);
    assert_eq!(text, "x <tool_ca");
    assert_eq!(events.last().unwrap(), &json!("[DONE]"));
}

/// Regression: resuming the search for the closing tag a few bytes
/// before the end sliced the text inside a multi-byte character (a model
/// repeating `<tool_call>€aaaa` panicked the connection).
#[test]
fn a_held_tag_with_multibyte_text_never_panics() {
    for run in 0..12 {
        let piece = format!("€{}", "a".repeat(run));
        let mut scanner = XmlScanner::new();
        let mut text = String::new();
        let mut take = |pieces: Vec<Piece>| {
            for p in pieces {
                match p {
                    Piece::Text(t) => text.push_str(&t),
                    Piece::Call(c) => panic!("no call expected: {c:?}"),
                }
            }
        };
        take(scanner.push("<tool_call>"));
        for _ in 0..40 {
            take(scanner.push(&piece));
        }
        take(scanner.finish());
        assert_eq!(
            text,
            format!("<tool_call>{}", piece.repeat(40)),
            "run {run}"
        );
    }
    // And a call after such text is still found.
    let pieces = parse_text("<tool_call>€€<name>f</name><arguments>{}</arguments></tool_call>");
    assert!(matches!(&pieces[..], [Piece::Call(c)] if c.name == "f"));
}

/// Regression: a choice `index` of u64::MAX overflowed and one of 10^12
/// sized a table by it; both end the stream with an error now.
#[test]
fn an_out_of_range_choice_index_is_an_error_not_a_table() {
    for index in ["128", "1000000000000", "18446744073709551615"] {
        let mut conv = XmlStream::default();
        let mut out = VecDeque::new();
        let event = format!(
            "data: {{\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":\"hi\"}}}}]}}\n\n"
        );
        let err = conv.push(event.as_bytes(), &mut out).unwrap_err();
        assert!(err.to_string().contains("beyond the limit"), "{err}");
        assert!(conv.choices.is_empty());
    }
    let mut conv = XmlStream::default();
    let mut out = VecDeque::new();
    let event = "data: {\"choices\":[{\"index\":127,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    conv.push(event.as_bytes(), &mut out).unwrap();
    assert_eq!(conv.choices.len(), 1);
}
