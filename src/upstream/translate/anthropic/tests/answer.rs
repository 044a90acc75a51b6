//! Whole answers and errors both ways: the golden fixtures, finish and
//! stop reasons, the body wrappers.

use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::*;
use crate::body::ProxyBody;

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
