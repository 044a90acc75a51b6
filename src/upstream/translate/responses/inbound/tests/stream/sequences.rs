//! The event sequences of each kind of content: the golden text, tool call
//! and usage, any chunking of it, reasoning, refusal, a cut answer, log
//! probabilities, and the stream through the body wrapper.

use http::Response;
use http_body_util::BodyExt;

use super::*;
use crate::upstream::translate::responses::inbound::answer_from_openai;
use crate::ProxyBody;

#[test]
fn golden_text_tool_call_and_usage() {
    let out = events(&transcode(&request(), &golden_input(), &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let n = normalized(&out);
    let created = &n[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["model"], "up-model");
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(n[1]["response"], *created);
    assert_eq!(
        n[2],
        json!({"type": "response.output_item.added", "output_index": 0, "item": {
            "id": "id1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"},
            "sequence_number": 2})
    );
    assert_eq!(
        n[3],
        json!({"type": "response.content_part.added", "item_id": "id1", "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}, "sequence_number": 3})
    );
    assert_eq!(
        n[4],
        json!({"type": "response.output_text.delta", "item_id": "id1", "output_index": 0, "content_index": 0,
               "delta": "Hel", "logprobs": [], "sequence_number": 4})
    );
    assert_eq!(
        n[6],
        json!({"type": "response.output_text.done", "item_id": "id1", "output_index": 0, "content_index": 0,
               "text": "Hello", "logprobs": [], "sequence_number": 6})
    );
    assert_eq!(
        n[9],
        json!({"type": "response.output_item.added", "output_index": 1, "item": {
            "id": "id2", "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": "id3", "name": "get_weather"}, "sequence_number": 9})
    );
    assert_eq!(out[9]["item"]["call_id"], "call_1");
    assert_eq!(
        n[12],
        json!({"type": "response.function_call_arguments.done", "item_id": "id2", "output_index": 1,
               "arguments": "{\"city\":\"Paris\"}", "name": "get_weather", "sequence_number": 12})
    );
    assert_eq!(n[13]["item"]["status"], "completed");
    let done = &n[14]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["incomplete_details"], Value::Null);
    assert_eq!(done["output"].as_array().unwrap().len(), 2);
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 16})
    );
    assert_eq!(done["tools"], request()["tools"]);
}

#[test]
fn any_chunking_gives_the_same_events() {
    let inputs = [
        golden_input(),
        [
            chunk(json!({"reasoning_content": "Let me"}), None),
            chunk(json!({"reasoning_content": " think"}), None),
            chunk(json!({"content": "Ok é ✓"}), None),
            chunk(json!({"refusal": "No"}), None),
            chunk(json!({}), Some("length")),
        ]
        .concat()
        .replace("\n\n", "\r\n\r\n"),
    ];
    for input in inputs {
        let expected = normalized(&events(&transcode(&request(), &input, &[])));
        // Size 1 cuts at every byte.
        for size in 1..=24 {
            let cuts: Vec<usize> = (size..input.len()).step_by(size).collect();
            let got = normalized(&events(&transcode(&request(), &input, &cuts)));
            assert_eq!(got, expected, "chunks of {size}");
        }
        // One cut anywhere (every byte of the first 600, then every 7th).
        let cuts = (1..input.len().min(600)).chain((600..input.len()).step_by(7));
        for cut in cuts {
            let got = normalized(&parse(&transcode(&request(), &input, &[cut])));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }
}

#[test]
fn reasoning_refusal_and_length() {
    let input = [
        chunk(
            json!({"role": "assistant", "reasoning_content": "Let me"}),
            None,
        ),
        chunk(json!({"reasoning": " think"}), None),
        chunk(json!({"content": "Ok"}), None),
        chunk(json!({"refusal": "No"}), None),
        chunk(json!({}), Some("length")),
        DONE.to_string(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(out[2]["item"]["type"], "reasoning");
    assert_eq!(out[2]["item"]["summary"], json!([]));
    assert_eq!(out[6]["text"], "Let me think");
    assert_eq!(
        out[8]["item"]["summary"],
        json!([{"type": "summary_text", "text": "Let me think"}])
    );
    assert_eq!(out[8]["item"]["status"], "completed");
    assert_eq!(out[14]["content_index"], 1);
    assert_eq!(out[14]["part"], json!({"type": "refusal", "refusal": ""}));
    assert_eq!(out[18]["item"]["status"], "incomplete");
    let r = &out[19]["response"];
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    // No usage from the backend: zeros (the AI SDK requires the object).
    assert_eq!(r["usage"]["total_tokens"], 0);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        r["output"][1]["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "Ok"},
               {"type": "refusal", "refusal": "No"}])
    );
    assert!(r.get("completed_at").is_none());

    // Cut inside a tool call: the call stays `completed`.
    let cut = [
        chunk(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}), None),
        chunk(json!({}), Some("length")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &cut, &[]));
    let last = out.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["output"][0]["status"], "completed");
    assert_eq!(last["response"]["output"][0]["arguments"], "{\"ci");

    let filtered = [
        chunk(json!({"content": "x"}), None),
        chunk(json!({}), Some("content_filter")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &filtered, &[]));
    let last = out.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
}

#[test]
fn stream_logprobs() {
    let mut c: Value = serde_json::from_str(
        chunk(json!({"content": "Hi"}), None)
            .trim_start_matches("data: ")
            .trim(),
    )
    .unwrap();
    c["choices"][0]["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]}]});
    let input = format!("data: {c}\n\n{DONE}");
    let out = events(&transcode(&request(), &input, &[]));
    let delta = out
        .iter()
        .find(|e| e["type"] == "response.output_text.delta")
        .unwrap();
    let expected = json!([{"token": "Hi", "bytes": [72, 105], "logprob": -0.5,
                           "top_logprobs": [{"token": "Hi", "bytes": [72, 105], "logprob": -0.5}]}]);
    assert_eq!(delta["logprobs"], expected);
    let done = out
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["logprobs"], expected);
}

#[tokio::test]
async fn answer_from_openai_streams_event_streams() {
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .header("content-length", "999")
        .body(ProxyBody::full(golden_input()))
        .unwrap();
    let response = answer_from_openai(&obj(request()), response);
    assert!(response.headers().get("content-length").is_none());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let out = events(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(out.len(), 15);
    assert_eq!(out[14]["type"], "response.completed");
}
