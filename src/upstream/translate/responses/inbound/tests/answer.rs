//! Whole (JSON) answers: the Response object, its items, usage and echoed
//! settings.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::{obj, sdk};
use crate::upstream::translate::responses::inbound::answer_from_openai;
use crate::ProxyBody;

async fn answer(request: Value, status: u16, body: Value) -> (StatusCode, Value) {
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(ProxyBody::full(body.to_string()))
        .unwrap();
    let response = answer_from_openai(&obj(request), response);
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "up-model",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 2}},
    })
}

fn check_id(v: &Value, prefix: &str) {
    let id = v.as_str().unwrap();
    let hex = id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id}"));
    assert_eq!(hex.len(), 32, "{id}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[tokio::test]
async fn a_text_answer_is_a_complete_response_object() {
    let request = json!({"model": "m", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 100,
                         "temperature": 0.2, "metadata": {"k": "v"}, "store": true,
                         "tools": [{"type": "web_search"}], "text": {"verbosity": "low"}});
    let (status, r) = answer(
        request,
        200,
        completion(
            json!({"role": "assistant", "content": "Hello", "refusal": null}),
            "stop",
        ),
    )
    .await;
    assert_eq!(status, 200);
    sdk::check_response(&r);
    check_id(&r["id"], "resp_");
    check_id(&r["output"][0]["id"], "msg_");
    assert_eq!(r["object"], "response");
    assert_eq!(r["created_at"], 1700000000);
    assert_eq!(r["status"], "completed");
    assert!(r["completed_at"].is_u64());
    assert_eq!(r["model"], "up-model");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(r["previous_response_id"], Value::Null);
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["max_output_tokens"], 100);
    assert_eq!(r["temperature"], 0.2);
    assert_eq!(r["top_p"], Value::Null);
    assert_eq!(r["metadata"], json!({"k": "v"}));
    assert_eq!(r["store"], false);
    assert_eq!(r["tools"], json!([{"type": "web_search"}]));
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["parallel_tool_calls"], true);
    assert_eq!(
        r["text"],
        json!({"verbosity": "low", "format": {"type": "text"}})
    );
    assert_eq!(r["reasoning"], json!({"effort": null, "summary": null}));
    assert!(r.get("output_text").is_none());
    let mut item = r["output"][0].clone();
    item["id"] = json!("msg");
    assert_eq!(
        item,
        json!({"id": "msg", "type": "message", "status": "completed", "role": "assistant", "content": [
            {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"},
        ]})
    );
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
}

#[tokio::test]
async fn reasoning_and_namespaced_calls() {
    let request = json!({"model": "m", "input": "Hi", "tools": [
        {"type": "function", "name": "f"},
        {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "g"}]},
    ], "tool_choice": "required", "reasoning": {"effort": "high", "summary": "auto"}});
    let message = json!({"role": "assistant", "content": null, "reasoning_content": "Think.",
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "ns__g", "arguments": "{\"a\":1}"}},
        {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ]});
    let (_, r) = answer(request, 200, completion(message, "tool_calls")).await;
    sdk::check_response(&r);
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    check_id(&output[0]["id"], "rs_");
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(
        output[0]["summary"],
        json!([{"type": "summary_text", "text": "Think."}])
    );
    check_id(&output[1]["id"], "fc_");
    assert_eq!(output[1]["call_id"], "call_1");
    assert_eq!(output[1]["name"], "g");
    assert_eq!(output[1]["namespace"], "ns");
    assert_eq!(output[1]["arguments"], "{\"a\":1}");
    assert_eq!(output[1]["status"], "completed");
    assert_eq!(output[2]["name"], "f");
    assert!(output[2].get("namespace").is_none());
    assert_eq!(r["tool_choice"], "required");
    assert_eq!(r["reasoning"], json!({"effort": "high", "summary": "auto"}));
    assert_eq!(r["status"], "completed");
}

#[tokio::test]
async fn length_content_filter_and_refusal() {
    let (_, r) = answer(
        json!({"input": "x", "model": "m"}),
        200,
        completion(json!({"role": "assistant", "content": "Trunc"}), "length"),
    )
    .await;
    sdk::check_response(&r);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert!(r.get("completed_at").is_none());
    // Cut in a call: the call stays `completed`.
    let cut = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a"}}]});
    let (_, r) = answer(json!({"input": "x"}), 200, completion(cut, "length")).await;
    sdk::check_response(&r);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["output"][0]["status"], "completed");

    let (_, r) = answer(
        json!({"input": "x"}),
        200,
        completion(
            json!({"role": "assistant", "content": "", "refusal": "I can't."}),
            "content_filter",
        ),
    )
    .await;
    sdk::check_response(&r);
    assert_eq!(r["incomplete_details"], json!({"reason": "content_filter"}));
    assert_eq!(
        r["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't."}])
    );
    // An answer without usage or model.
    let (_, r) = answer(
        json!({"input": "x", "model": "req-model"}),
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}}]}),
    )
    .await;
    sdk::check_response(&r);
    assert_eq!(r["model"], "req-model");
    assert_eq!(r["usage"]["input_tokens"], 0);
    assert_eq!(r["usage"]["total_tokens"], 0);
    assert_eq!(r["output"][0]["content"][0]["text"], "AB");
}

#[tokio::test]
async fn logprobs_are_carried() {
    let mut c = completion(json!({"role": "assistant", "content": "Hi"}), "stop");
    c["choices"][0]["logprobs"] = json!({"content": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
            {"token": "Yo", "logprob": -2.0, "bytes": null},
        ]},
    ]});
    let (_, r) = answer(json!({"input": "x", "top_logprobs": 2}), 200, c).await;
    sdk::check_response(&r);
    assert_eq!(
        r["output"][0]["content"][0]["logprobs"],
        json!([{"token": "Hi", "bytes": [72, 105], "logprob": -0.1, "top_logprobs": [
            {"token": "Hi", "bytes": [72, 105], "logprob": -0.1},
            {"token": "Yo", "bytes": [], "logprob": -2.0},
        ]}])
    );
    assert_eq!(r["top_logprobs"], 2);
}

#[tokio::test]
async fn errors_and_non_json_pass_through_unchanged() {
    let error = json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}});
    let (status, body) = answer(json!({"input": "x"}), 429, error.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(body, error);

    let response = Response::builder()
        .status(200)
        .body(ProxyBody::full("not json"))
        .unwrap();
    let response = answer_from_openai(&obj(json!({"input": "x"})), response);
    let bytes: Bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"not json");
}
