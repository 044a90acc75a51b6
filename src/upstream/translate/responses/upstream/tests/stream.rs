//! The stream translation: a golden stream in the shapes of openai-python's
//! `ResponseStreamEvent` types, fed at every split point; failures, errors
//! and the edge cases.

use super::*;

/// One Responses SSE event, as the API writes it (`event:` and `data:`).
fn ev(out: &mut String, data: Value) {
    let kind = data["type"].as_str().unwrap().to_string();
    out.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
}

fn in_progress_response() -> Value {
    json!({
        "id": "resp_68b1", "object": "response", "created_at": 1755000000,
        "status": "in_progress", "background": false, "error": null,
        "incomplete_details": null, "instructions": "Be brief.", "max_output_tokens": null,
        "model": "gpt-5-2025-08-07", "output": [], "parallel_tool_calls": true,
        "previous_response_id": null, "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                   "strict": false}],
        "top_p": 1.0, "truncation": "disabled", "usage": null, "user": null, "metadata": {},
    })
}

/// A realistic stream: reasoning summary (two parts), text, a function
/// call, usage; with the events a translation ignores.
pub(super) fn golden_input() -> String {
    let mut s = String::new();
    let mut n = 0;
    let mut e = |s: &mut String, mut v: Value| {
        v["sequence_number"] = json!(n);
        n += 1;
        ev(s, v);
    };
    e(
        &mut s,
        json!({"type": "response.created", "response": in_progress_response()}),
    );
    e(
        &mut s,
        json!({"type": "response.in_progress", "response": in_progress_response()}),
    );
    let rs = json!({"id": "rs_1", "type": "reasoning", "summary": []});
    e(
        &mut s,
        json!({"type": "response.output_item.added", "output_index": 0, "item": rs}),
    );
    for (k, pieces) in [
        (0, ["**Checking weather**\n\n", "The user wants Paris."]),
        (1, ["**Calling**\n\n", "Use get_weather."]),
    ] {
        e(
            &mut s,
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": k, "part": {"type": "summary_text", "text": ""}}),
        );
        for p in pieces {
            e(
                &mut s,
                json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": k, "delta": p, "obfuscation": "xyz"}),
            );
        }
        let all = pieces.concat();
        e(
            &mut s,
            json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0, "summary_index": k, "text": all}),
        );
        e(
            &mut s,
            json!({"type": "response.reasoning_summary_part.done", "item_id": "rs_1", "output_index": 0, "summary_index": k, "part": {"type": "summary_text", "text": all}}),
        );
    }
    e(
        &mut s,
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": [
        {"type": "summary_text", "text": "**Checking weather**\n\nThe user wants Paris."},
        {"type": "summary_text", "text": "**Calling**\n\nUse get_weather."}]}}),
    );
    e(
        &mut s,
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
    );
    e(
        &mut s,
        json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}),
    );
    for d in ["Let me ", "check ", "the weather — één moment."] {
        e(
            &mut s,
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": d, "logprobs": [], "obfuscation": "ab"}),
        );
    }
    let text = "Let me check the weather — één moment.";
    e(
        &mut s,
        json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": text, "logprobs": []}),
    );
    e(
        &mut s,
        json!({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text}}),
    );
    e(
        &mut s,
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]}}),
    );
    let fc = json!({"id": "fc_1", "type": "function_call", "status": "in_progress", "arguments": "", "call_id": "call_Xy1", "name": "get_weather"});
    e(
        &mut s,
        json!({"type": "response.output_item.added", "output_index": 2, "item": fc}),
    );
    for d in ["{\"city\":", "\"Paris\"}"] {
        e(
            &mut s,
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": d, "obfuscation": "q"}),
        );
    }
    let args = "{\"city\":\"Paris\"}";
    e(
        &mut s,
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": args, "name": "get_weather"}),
    );
    let mut done_fc = fc.clone();
    done_fc["status"] = json!("completed");
    done_fc["arguments"] = json!(args);
    e(
        &mut s,
        json!({"type": "response.output_item.done", "output_index": 2, "item": done_fc}),
    );
    let mut completed = in_progress_response();
    completed["status"] = json!("completed");
    completed["output"] = json!([{"id": "rs_1", "type": "reasoning", "summary": []}, {"id": "msg_1", "type": "message"}, done_fc]);
    completed["usage"] = json!({"input_tokens": 81, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 145, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 226});
    e(
        &mut s,
        json!({"type": "response.completed", "response": completed}),
    );
    s
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-68b1", "object": "chat.completion.chunk", "created": 1755000000,
           "model": "gpt-5-2025-08-07",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

/// The chunks of [`golden_input`], exactly.
pub(super) fn golden_output() -> Vec<Value> {
    let null = Value::Null;
    vec![
        chunk(json!({"role": "assistant", "content": ""}), null.clone()),
        chunk(
            json!({"reasoning_content": "**Checking weather**\n\n"}),
            null.clone(),
        ),
        chunk(
            json!({"reasoning_content": "The user wants Paris."}),
            null.clone(),
        ),
        chunk(
            json!({"reasoning_content": "\n\n**Calling**\n\n"}),
            null.clone(),
        ),
        chunk(
            json!({"reasoning_content": "Use get_weather."}),
            null.clone(),
        ),
        chunk(json!({"content": "Let me "}), null.clone()),
        chunk(json!({"content": "check "}), null.clone()),
        chunk(
            json!({"content": "the weather — één moment."}),
            null.clone(),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_Xy1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            null.clone(),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            null.clone(),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            null.clone(),
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-68b1", "object": "chat.completion.chunk", "created": 1755000000,
               "model": "gpt-5-2025-08-07", "choices": [],
               "usage": {"prompt_tokens": 81, "completion_tokens": 145, "total_tokens": 226,
                         "prompt_tokens_details": {"cached_tokens": 0},
                         "completion_tokens_details": {"reasoning_tokens": 64}}}),
        json!("[DONE]"),
    ]
}

/// Output events: each must be `data: ...\n\n`; `[DONE]` as a string.
pub(super) fn events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("UTF-8 output");
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e}"));
            assert!(!data.contains('\n'));
            if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

/// Run `input`, cut into `pieces`, through a transcoder as
/// [`SseTranscode`](crate::upstream::translate::body::SseTranscode) does.
fn run_pieces(t: &mut ResponsesToOpenAiStream, pieces: &[&[u8]]) -> Vec<u8> {
    let mut parser = SseParser::new(1 << 20);
    let mut out = BytesMut::new();
    for piece in pieces {
        parser.push(piece);
        while let Some(e) = parser.next_event().unwrap() {
            t.event(&e, &mut out);
        }
    }
    if let Some(e) = parser.finish() {
        t.event(&e, &mut out);
    }
    t.finish(&mut out);
    out.to_vec()
}

fn run(input: &str, include_usage: bool) -> Vec<Value> {
    events(&run_pieces(
        &mut ResponsesToOpenAiStream::new(include_usage),
        &[input.as_bytes()],
    ))
}

#[test]
fn golden_stream() {
    assert_eq!(run(&golden_input(), true), golden_output());
}

#[test]
fn any_chunking_gives_the_same_bytes() {
    let input = golden_input();
    let bytes = input.as_bytes();
    let whole = run_pieces(&mut ResponsesToOpenAiStream::new(true), &[bytes]);
    // One byte per piece splits at every byte at once; two pieces split
    // at every fifth byte (every byte costs half a minute in debug builds).
    for at in (0..=bytes.len()).step_by(5) {
        let (a, b) = bytes.split_at(at);
        let got = run_pieces(&mut ResponsesToOpenAiStream::new(true), &[a, b]);
        assert_eq!(got, whole, "split at {at}");
    }
    for size in [1, 2, 3, 5, 7, 64, 1000] {
        let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
        let got = run_pieces(&mut ResponsesToOpenAiStream::new(true), &pieces);
        assert_eq!(got, whole, "chunks of {size}");
    }
}

#[test]
fn without_include_usage_there_is_no_usage_chunk() {
    let mut want = golden_output();
    want.remove(want.len() - 2);
    assert_eq!(run(&golden_input(), false), want);
}

fn created() -> Value {
    json!({"type": "response.created", "sequence_number": 0, "response": in_progress_response()})
}

fn stream_of(events: &[Value]) -> String {
    let mut s = String::new();
    for e in events {
        ev(&mut s, e.clone());
    }
    s
}

#[test]
fn failed_responses_and_errors_end_the_stream_with_an_error_event() {
    let mut failed = in_progress_response();
    failed["status"] = json!("failed");
    failed["error"] = json!({"code": "server_error", "message": "The model failed."});
    let text = json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": "Hi", "logprobs": []});
    let out = run(
        &stream_of(&[
            created(),
            text.clone(),
            json!({"type": "response.failed", "sequence_number": 3, "response": failed}),
            text.clone(),
        ]),
        true,
    );
    assert_eq!(
        out,
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hi"}), Value::Null),
            json!({"error": {"message": "The model failed.", "type": "server_error", "param": null, "code": "server_error"}}),
        ]
    );

    // The documented `error` event, and the nested shape some servers send.
    for error in [
        json!({"type": "error", "sequence_number": 2, "code": "rate_limit_exceeded", "message": "Slow down.", "param": null}),
        json!({"type": "error", "sequence_number": 2, "error": {"type": "rate_limit_exceeded", "message": "Slow down."}}),
    ] {
        let out = run(
            &stream_of(&[created(), text.clone(), error, text.clone()]),
            true,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[2],
            json!({"error": {"message": "Slow down.", "type": "server_error", "param": null, "code": "rate_limit_exceeded"}})
        );
    }
    // A context-length failure keeps the code failover recognises.
    let error = json!({"type": "error", "code": null, "message": "Your input exceeds the context window of this model."});
    let out = run(&stream_of(&[created(), error]), true);
    assert_eq!(out[1]["error"]["code"], "context_length_exceeded");
}

#[test]
fn incomplete_refusal_and_logprobs() {
    let mut incomplete = in_progress_response();
    incomplete["status"] = json!("incomplete");
    incomplete["incomplete_details"] = json!({"reason": "max_output_tokens"});
    incomplete["usage"] = json!({"input_tokens": 5, "output_tokens": 7, "total_tokens": 12});
    let lp = json!([{"token": "Hi", "logprob": -0.5, "top_logprobs": [{"token": "Hey", "logprob": -1.2}]}]);
    let out = run(
        &stream_of(&[
            created(),
            json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hi", "logprobs": lp}),
            json!({"type": "response.refusal.delta", "output_index": 0, "content_index": 1, "delta": "No."}),
            json!({"type": "response.reasoning_text.delta", "output_index": 1, "content_index": 0, "delta": "think"}),
            json!({"type": "response.incomplete", "response": incomplete}),
        ]),
        true,
    );
    let mut with_lp = chunk(json!({"content": "Hi"}), Value::Null);
    with_lp["choices"][0]["logprobs"] = json!({"content": lp, "refusal": null});
    assert_eq!(
        out,
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            with_lp,
            chunk(json!({"refusal": "No."}), Value::Null),
            chunk(json!({"reasoning_content": "think"}), Value::Null),
            chunk(json!({}), json!("length")),
            json!({"id": "chatcmpl-68b1", "object": "chat.completion.chunk", "created": 1755000000,
                   "model": "gpt-5-2025-08-07", "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}),
            json!("[DONE]"),
        ]
    );
}

#[test]
fn arguments_sent_once_whatever_events_carry_them() {
    let mut completed = in_progress_response();
    completed["status"] = json!("completed");
    let call = |id: &str, args: &str| json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"), "name": "f", "arguments": args});
    let out = run(
        &stream_of(&[
            created(),
            // Only `.done` carries the arguments.
            json!({"type": "response.output_item.added", "output_index": 0, "item": call("a", "")}),
            json!({"type": "response.function_call_arguments.done", "output_index": 0, "arguments": "{\"x\":1}"}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": call("a", "{\"x\":1}")}),
            // Deltas, then `.done` repeating them.
            json!({"type": "response.output_item.added", "output_index": 1, "item": call("b", "")}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"}),
            json!({"type": "response.function_call_arguments.done", "output_index": 1, "arguments": "{}"}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": call("b", "{}")}),
            // Never announced: the done item is the whole call.
            json!({"type": "response.output_item.done", "output_index": 2, "item": call("c", "{\"y\":2}")}),
            // A delta for an item that is no call: nothing.
            json!({"type": "response.function_call_arguments.delta", "output_index": 9, "delta": "{}"}),
            json!({"type": "response.completed", "response": completed}),
        ]),
        false,
    );
    let deltas: Vec<Value> = out[1..out.len() - 2]
        .iter()
        .map(|c| c["choices"][0]["delta"]["tool_calls"][0].clone())
        .collect();
    let head = |i: u64, id: &str| json!({"index": i, "id": format!("call_{id}"), "type": "function", "function": {"name": "f", "arguments": ""}});
    let args = |i: u64, a: &str| json!({"index": i, "function": {"arguments": a}});
    assert_eq!(
        deltas,
        vec![
            head(0, "a"),
            args(0, "{\"x\":1}"),
            head(1, "b"),
            args(1, "{}"),
            head(2, "c"),
            args(2, "{\"y\":2}")
        ]
    );
    assert_eq!(
        out[out.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn too_many_calls_end_the_stream_with_an_error() {
    let mut events = vec![created()];
    for i in 0..200 {
        events.push(json!({"type": "response.output_item.added", "output_index": i,
            "item": {"type": "function_call", "call_id": format!("c{i}"), "name": "f", "arguments": ""}}));
    }
    let out = run(&stream_of(&events), true);
    let limit = crate::upstream::limits::MAX_INDEX as usize;
    assert_eq!(out.len(), 1 + limit + 1);
    assert_eq!(out.last().unwrap()["error"]["type"], "server_error");
    assert!(out.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tool call index"));
}

#[test]
fn odd_upstreams_do_not_break_the_stream() {
    let mut completed = in_progress_response();
    completed["status"] = json!("completed");
    // No response.created; junk; an event named only by `event:`; [DONE].
    let input = format!(
        "data: not json\n\n: keep-alive\n\nevent: response.output_text.delta\ndata: {}\n\ndata: [DONE]\n\nevent: response.completed\ndata: {}\n\n",
        json!({"delta": "Hi"}),
        json!({"type": "response.completed", "response": completed}),
    );
    let out = run(&input, false);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(out[1]["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(out[2]["choices"][0]["finish_reason"], "stop");
    // One id for the whole answer.
    assert!(out[0]["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(out[..3].iter().all(|c| c["id"] == out[0]["id"]));
    assert_eq!(out[3], "[DONE]");
    // An upstream that stops early just stops: the guard judges it.
    let out = run(&stream_of(&[created()]), true);
    assert_eq!(out.len(), 1);
}
