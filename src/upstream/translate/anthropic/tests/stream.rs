//! Streams both ways, fed whole and one byte per chunk: the golden
//! fixtures, unusual upstreams, and out-of-range indexes.

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::*;
use crate::body::{BoxError, ProxyBody};
use crate::upstream::translate::body::{EventTranscoder, SseTranscode};

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

/// The `event:` names of a stream read by [`events_of`].
fn event_names(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn openai_stream_finished_without_done_still_completes() {
    let input = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                 data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
    let out = events_of(&transcode(input, 3, OpenAiToAnthropicStream::new()).await);
    let names = event_names(&out);
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
    let names = event_names(&out);
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
