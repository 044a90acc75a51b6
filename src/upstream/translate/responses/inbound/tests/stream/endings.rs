//! How a stream ends: upstream errors end it with `response.failed`, it
//! completes with or without `[DONE]`, and the text it keeps is bounded.

use super::*;
use crate::upstream::translate::responses::inbound::MAX_ACCUMULATED;

#[test]
fn upstream_errors_end_with_response_failed() {
    let error = r#"data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":"upstream_error"}}"#;
    let input = [
        chunk(json!({"content": "Hi"}), None),
        format!("{error}\n\n"),
        chunk(json!({"content": "more"}), None),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "error",
            "response.failed",
        ]
    );
    assert_eq!(out[5]["code"], "upstream_error");
    assert_eq!(out[5]["message"], "overloaded");
    assert_eq!(out[5]["param"], Value::Null);
    assert_eq!(
        out[5]["error"],
        json!({"type": "server_error", "code": "upstream_error", "message": "overloaded", "param": null})
    );
    let r = &out[6]["response"];
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r["error"],
        json!({"code": "upstream_error", "message": "overloaded"})
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["output"][0]["content"][0]["text"], "Hi");

    // First thing, and a rate limit.
    let error = r#"data: {"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded","param":"x"}}"#;
    let out = events(&transcode(&request(), &format!("{error}\n\n"), &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert_eq!(out[2]["param"], "x");
    assert_eq!(out[2]["error"]["type"], "rate_limit_error");
    assert_eq!(out[3]["response"]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(out[3]["response"]["model"], "req-model");
}

#[test]
fn ends_with_and_without_done() {
    // A finish reason and a clean end: completed (usage taken if it came).
    let input = [
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.completed");
    assert_eq!(out.last().unwrap()["response"]["usage"]["total_tokens"], 16);
    // No finish reason, no [DONE]: the item is left open, nothing terminal.
    let input = chunk(json!({"content": "Hi"}), None);
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.output_text.delta");
    // [DONE] alone still completes; malformed events are skipped.
    let input = [
        "data: {not json\n\n".to_string(),
        chunk(json!({"content": "Hi"}), None),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out.last().unwrap()["type"], "response.completed");
    assert_eq!(
        out.last().unwrap()["response"]["output"][0]["content"][0]["text"],
        "Hi"
    );
    // An empty stream: the whole sequence, no output.
    let out = events(&transcode(&request(), DONE, &[]));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert_eq!(out[2]["response"]["output"], json!([]));
}

#[test]
fn kept_text_is_bounded() {
    let big = "x".repeat(MAX_ACCUMULATED / 2 + 1);
    let input = [
        chunk(json!({"content": big}), None),
        chunk(json!({"content": big}), None),
        DONE.into(),
    ]
    .concat();
    let text = transcode(&request(), &input, &[]);
    let out = events(&text);
    let failed = out.last().unwrap();
    assert_eq!(failed["type"], "response.failed");
    assert_eq!(out[out.len() - 2]["code"], "response_too_large");
    // The failed response does not repeat what went beyond the cap.
    assert!(text.len() < 3 * MAX_ACCUMULATED, "{}", text.len());
}
