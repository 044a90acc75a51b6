use std::sync::{Arc, Mutex};

use http_body::Body as _;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn anthropic(v: Value) -> u64 {
    estimate(CountFormat::Anthropic, &obj(v))
}

fn responses(v: Value) -> u64 {
    estimate(CountFormat::Responses, &obj(v))
}

fn fixture_body(text: &str) -> Map<String, Value> {
    let request: Value = serde_json::from_str(text).unwrap();
    obj(request["body"].clone())
}

/// The thread that the last off-thread count ran on (see `estimate_response`).
pub(super) static COUNT_THREAD: Mutex<Option<String>> = Mutex::new(None);

pub(super) fn note_count_thread() {
    let name = std::thread::current().name().map(str::to_owned);
    *COUNT_THREAD.lock().unwrap() = name;
}

// o200k_base counts, checked against tiktoken-rs's `encode_ordinary`.
const KNOWN: &[(&str, u64)] = &[
    ("", 0),
    ("hello world", 2),
    ("Hello, world!", 4),
    ("Be brief.", 3),
    ("The quick brown fox jumps over the lazy dog.", 10),
    ("get_weather", 2),
    ("Get the weather for a city.", 7),
    (r#"{"city":"Paris"}"#, 5),
    (
        r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        19,
    ),
    ("Sunny, 21 C", 5),
    (r#""hi""#, 3),
    ("你好，世界", 3),
    ("Let me think.", 4),
    (r#"{"type":"web_search"}"#, 6),
];

#[test]
fn known_strings_have_their_o200k_counts() {
    for (text, tokens) in KNOWN {
        assert_eq!(count_text(text), *tokens, "{text:?}");
    }
}

#[test]
fn one_anthropic_message() {
    // 2 for the text, 4 for the message, 3 to prime the reply.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]});
    assert_eq!(anthropic(body), 9);
    let blocks = json!({"model": "m", "messages": [{"role": "user",
        "content": [{"type": "text", "text": "hello world"}]}]});
    assert_eq!(anthropic(blocks), 9);
}

#[test]
fn empty_bodies_count_nothing() {
    assert_eq!(anthropic(json!({})), 0);
    assert_eq!(
        anthropic(json!({"model": "m", "messages": [], "tools": []})),
        0
    );
    assert_eq!(responses(json!({})), 0);
    assert_eq!(
        responses(json!({"model": "m", "input": [], "instructions": ""})),
        0
    );
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

#[test]
fn anthropic_conversation_with_a_tool_is_counted_exactly() {
    let body = json!({
        "model": "claude-x",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hello, world!"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me think."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 C"}]}
        ],
        "tools": [{"name": "get_weather", "description": "Get the weather for a city.",
                   "input_schema": weather_schema()}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "someone"}
    });
    let system = MESSAGE_OVERHEAD + 3;
    let user = MESSAGE_OVERHEAD + 4;
    let assistant = MESSAGE_OVERHEAD + 4 + 2 + 5;
    let result = MESSAGE_OVERHEAD + 5;
    let tools = ANTHROPIC_TOOL_PROMPT + TOOL_OVERHEAD + 2 + 7 + 19;
    assert_eq!(
        anthropic(body.clone()),
        system + user + assistant + result + REPLY_PRIMING + tools
    );
    // Forcing a tool: Anthropic's shorter tool prompt.
    let mut forced = body;
    forced["tool_choice"] = json!({"type": "any"});
    assert_eq!(
        anthropic(forced),
        system + user + assistant + result + REPLY_PRIMING + tools - ANTHROPIC_TOOL_PROMPT
            + ANTHROPIC_TOOL_PROMPT_FORCED
    );
}

#[test]
fn responses_conversation_with_a_tool_is_counted_exactly() {
    let body = json!({
        "model": "gpt-x",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Hello, world!"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 C"}
        ],
        "tools": [{"type": "function", "name": "get_weather",
                   "description": "Get the weather for a city.", "parameters": weather_schema()}],
        "reasoning": {"effort": "low"},
        "store": false
    });
    let instructions = MESSAGE_OVERHEAD + 3;
    let user = MESSAGE_OVERHEAD + 4;
    let call = MESSAGE_OVERHEAD + 2 + 5;
    let output = MESSAGE_OVERHEAD + 5;
    let tools = TOOL_OVERHEAD + 2 + 7 + 19;
    assert_eq!(
        responses(body),
        instructions + user + call + output + REPLY_PRIMING + tools
    );
}

#[test]
fn responses_string_input_and_parts() {
    assert_eq!(responses(json!({"input": "hello world"})), 9);
    let parts = json!({"input": [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "hello world"},
        {"type": "input_text", "text": "Be brief."}]}]});
    assert_eq!(responses(parts), MESSAGE_OVERHEAD + 2 + 3 + REPLY_PRIMING);
}

#[test]
fn namespace_tools_count_their_inner_tools() {
    let inner = json!({"type": "function", "name": "get_weather",
        "description": "Get the weather for a city.", "parameters": weather_schema()});
    let flat = responses(json!({"tools": [inner.clone()]}));
    let namespaced = responses(
        json!({"tools": [{"type": "namespace", "name": "get_weather",
        "description": "Get the weather for a city.", "tools": [inner]}]}),
    );
    assert_eq!(namespaced, flat + TOOL_OVERHEAD + 2 + 7);
    // Hosted tools: their JSON text.
    assert_eq!(
        responses(json!({"tools": [{"type": "web_search"}]})),
        TOOL_OVERHEAD + 6
    );
}

#[test]
fn structured_output_schemas_count() {
    let schema = weather_schema();
    let r = json!({"input": "hello world",
        "text": {"format": {"type": "json_schema", "name": "get_weather", "schema": schema}}});
    assert_eq!(responses(r), 9 + 2 + 19);
    let a = json!({"messages": [{"role": "user", "content": "hello world"}],
        "output_config": {"format": {"type": "json_schema", "schema": weather_schema()}}});
    assert!(anthropic(a) > 9 + 19);
    // Plain-text format: nothing.
    assert_eq!(
        responses(json!({"input": "hello world", "text": {"format": {"type": "text"}}})),
        9
    );
}

#[test]
fn thinking_counts_in_the_last_assistant_turn_only() {
    let thinking = json!({"type": "thinking", "thinking": "The quick brown fox jumps over the lazy dog.",
        "signature": "sig"});
    let turn = |content: Value| json!({"role": "assistant", "content": content});
    let user = json!({"role": "user", "content": "hello world"});
    let earlier = json!({"messages": [user, turn(json!([thinking, {"type": "text", "text": "hello world"}])),
        user, turn(json!([{"type": "text", "text": "hello world"}]))]});
    let last = json!({"messages": [user, turn(json!([{"type": "text", "text": "hello world"}])),
        user, turn(json!([thinking, {"type": "text", "text": "hello world"}]))]});
    assert_eq!(anthropic(last), anthropic(earlier) + 10);
}

#[test]
fn images_and_documents_are_flat_or_by_size() {
    let image = |source: Value| json!({"messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]});
    let base = MESSAGE_OVERHEAD + REPLY_PRIMING;
    let png =
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=".repeat(1000)});
    assert_eq!(anthropic(image(png)), base + IMAGE_TOKENS);
    assert_eq!(
        anthropic(image(
            json!({"type": "url", "url": "https://example.com/a.png"})
        )),
        base + IMAGE_TOKENS
    );

    let document = |source: Value| json!({"messages": [{"role": "user", "content": [{"type": "document", "source": source}]}]});
    let small_pdf =
        json!({"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"});
    assert_eq!(anthropic(document(small_pdf)), base + PDF_TOKENS_PER_CHUNK);
    // 140,000 base64 characters: 105,000 bytes, two started chunks of 100 KiB.
    let big_pdf =
        json!({"type": "base64", "media_type": "application/pdf", "data": "A".repeat(140_000)});
    assert_eq!(
        anthropic(document(big_pdf)),
        base + 2 * PDF_TOKENS_PER_CHUNK
    );
    assert_eq!(
        anthropic(document(
            json!({"type": "url", "url": "https://example.com/a.pdf"})
        )),
        base + FLAT_DOCUMENT_TOKENS
    );
    assert_eq!(
        anthropic(document(
            json!({"type": "text", "media_type": "text/plain", "data": "hello world"})
        )),
        base + 2
    );
    assert_eq!(
        anthropic(document(
            json!({"type": "content", "content": [{"type": "text", "text": "hello world"}]})
        )),
        base + 2
    );

    let part = |p: Value| json!({"input": [{"role": "user", "content": [p]}]});
    assert_eq!(
        responses(part(
            json!({"type": "input_image", "image_url": "data:image/png;base64,AAAA"})
        )),
        base + IMAGE_TOKENS
    );
    assert_eq!(
        responses(part(
            json!({"type": "input_image", "image_url": "https://x/y.png", "detail": "low"})
        )),
        base + IMAGE_LOW_DETAIL_TOKENS
    );
    assert_eq!(
        responses(part(json!({"type": "input_file", "filename": "report.pdf",
            "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}))),
        base + 2 + PDF_TOKENS_PER_CHUNK
    );
    assert_eq!(
        responses(part(json!({"type": "input_file", "file_id": "file-1"}))),
        base + FLAT_DOCUMENT_TOKENS
    );
}

#[test]
fn unknown_blocks_and_items_count_as_json_text() {
    let block = json!({"type": "web_search"});
    let a = json!({"messages": [{"role": "user", "content": [block]}]});
    assert_eq!(anthropic(a), MESSAGE_OVERHEAD + REPLY_PRIMING + 6);
    let r = json!({"input": [{"type": "web_search"}]});
    assert_eq!(responses(r), MESSAGE_OVERHEAD + REPLY_PRIMING + 6);
    // Anthropic server tools: their JSON text.
    let server = json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert_eq!(
        anthropic(server),
        ANTHROPIC_TOOL_PROMPT + TOOL_OVERHEAD + 15
    );
}

#[test]
fn more_text_means_more_tokens() {
    let sentence = "The quick brown fox jumps over the lazy dog. ";
    let mut previous = 0;
    for n in [1, 2, 10, 100] {
        let text = sentence.repeat(n);
        let a = anthropic(json!({"messages": [{"role": "user", "content": text}]}));
        let r = responses(json!({"input": text}));
        assert!(a > previous, "{n}: {a} <= {previous}");
        assert_eq!(a, r);
        previous = a;
    }
    let one = json!({"messages": [{"role": "user", "content": "hello world"}]});
    let two = json!({"messages": [{"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "hello world"}]});
    assert!(anthropic(two) > anthropic(one.clone()));
    let mut with_tool = one.clone();
    with_tool["tools"] = json!([{"name": "t", "input_schema": {"type": "object"}}]);
    assert!(anthropic(with_tool) > anthropic(one));
}

#[test]
fn claude_code_fixtures_give_plausible_counts() {
    let first_text =
        include_str!("../../tests/fixtures/agent-requests/claude-code-messages-first-turn.json");
    let next_text =
        include_str!("../../tests/fixtures/agent-requests/claude-code-messages-tool-result.json");
    let first = fixture_body(first_text);
    let next = fixture_body(next_text);
    let first_tokens = estimate(CountFormat::Anthropic, &first);
    let next_tokens = estimate(CountFormat::Anthropic, &next);
    let bytes = serde_json::to_string(&first).unwrap().len() as u64;
    // 24 tools with JSON schemas, three system blocks, placeholder texts.
    assert!(first_tokens > 2000, "{first_tokens}");
    assert!(first_tokens < bytes / 2, "{first_tokens} of {bytes} bytes");
    assert!(
        next_tokens > first_tokens,
        "{next_tokens} <= {first_tokens}"
    );
}

#[test]
fn codex_fixtures_give_plausible_counts() {
    let first_text =
        include_str!("../../tests/fixtures/agent-requests/codex-responses-first-turn.json");
    let next_text =
        include_str!("../../tests/fixtures/agent-requests/codex-responses-tool-result-turn.json");
    let first = fixture_body(first_text);
    let next = fixture_body(next_text);
    let first_tokens = estimate(CountFormat::Responses, &first);
    let next_tokens = estimate(CountFormat::Responses, &next);
    let bytes = serde_json::to_string(&first).unwrap().len() as u64;
    // 9 tools (one a namespace), four message items.
    assert!(first_tokens > 1000, "{first_tokens}");
    assert!(first_tokens < bytes / 2, "{first_tokens} of {bytes} bytes");
    assert!(
        next_tokens > first_tokens,
        "{next_tokens} <= {first_tokens}"
    );
}

#[test]
fn odd_shapes_never_panic() {
    let deep = {
        let mut v = json!({"type": "tool_result", "content": "hello world"});
        for _ in 0..100 {
            v = json!({"type": "tool_result", "content": [v]});
        }
        v
    };
    let anthropic_bodies = [
        json!({"messages": "hello world"}),
        json!({"messages": [1, null, "x", {"content": 3}, {"role": "user"}]}),
        json!({"messages": [{"role": "user", "content": [1, "two", null, {"type": 5}]}]}),
        json!({"messages": [{"role": "user", "content": [deep]}]}),
        json!({"system": {"text": "x"}, "tools": {"name": "t"}, "output_format": 3}),
        json!({"system": [{"type": "text", "text": 3}], "tools": [null, 1, {"input_schema": 2}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "document"},
            {"type": "document", "source": 3}, {"type": "document", "source": {"type": "base64"}},
            {"type": "image"}, {"type": "tool_use"}, {"type": "redacted_thinking", "data": 1}]}]}),
    ];
    for body in anthropic_bodies {
        let _ = anthropic(body);
    }
    let responses_bodies = [
        json!({"input": 3, "instructions": {"a": 1}, "tools": "x", "text": {"format": 1}}),
        json!({"input": [1, null, "x", {"type": 5}, {"content": {"a": 1}}], "instructions": [1]}),
        json!({"input": [{"type": "reasoning", "summary": [1, {"type": "summary_text"}], "content": 4}]}),
        json!({"tools": [null, {"type": "namespace", "tools": [{"type": "namespace",
            "tools": [{"type": "function"}]}]}, {"type": "namespace", "tools": 3}]}),
        json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_data": 3},
            {"type": "input_image", "detail": 1}]}]}),
    ];
    for body in responses_bodies {
        let _ = responses(body);
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("text"),
            Just("image"),
            Just("document"),
            Just("tool_use"),
            Just("tool_result"),
            Just("thinking"),
            Just("message"),
            Just("function_call"),
            Just("function_call_output"),
            Just("reasoning"),
            Just("namespace"),
            Just("function"),
            Just("input_file"),
            Just("base64"),
            Just("content"),
            Just("user"),
            Just("assistant"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type"),
                        Just("content"),
                        Just("text"),
                        Just("source"),
                        Just("data"),
                        Just("role"),
                        Just("tools"),
                        Just("input"),
                        Just("output"),
                        Just("name"),
                        Just("summary"),
                        Just("messages"),
                        Just("system"),
                        Just("instructions"),
                    ]
                    .prop_map(str::to_owned),
                    inner,
                ),
                0..6,
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any JSON in any field: no panic, the same count twice, bounded by a
    /// generous multiple of the body's size (flat images and documents aside).
    #[test]
    fn any_json_is_counted_without_panic(
        system in arbitrary_json(), messages in arbitrary_json(), tools in arbitrary_json()
    ) {
        let mut body = Map::new();
        body.insert("system".into(), system.clone());
        body.insert("messages".into(), messages.clone());
        body.insert("tools".into(), tools.clone());
        body.insert("instructions".into(), system);
        body.insert("input".into(), messages);
        for format in [CountFormat::Anthropic, CountFormat::Responses] {
            let n = estimate(format, &body);
            prop_assert_eq!(n, estimate(format, &body));
        }
    }
}

#[test]
fn text_size_check_stops_at_the_limit() {
    let small = obj(json!({"messages": [{"role": "user", "content": "hello world"}]}));
    assert!(!text_exceeds(&small, INLINE_TEXT_LIMIT));
    let big =
        obj(json!({"messages": [{"role": "user", "content": "a".repeat(INLINE_TEXT_LIMIT + 1)}]}));
    assert!(text_exceeds(&big, INLINE_TEXT_LIMIT));
    let many = obj(json!({"input": vec![json!({"text": "abcdefgh"}); 4096]}));
    assert!(text_exceeds(&many, INLINE_TEXT_LIMIT));
}

async fn answer(response: Response<ProxyBody>) -> (Response<()>, Value) {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn assert_estimate_head(head: &Response<()>) {
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(head.headers()[ESTIMATE_HEADER], "true");
}

#[tokio::test]
async fn local_answers_have_the_client_formats_and_the_header() {
    let a = obj(json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]}));
    let r = obj(json!({"model": "m", "input": "hello world"}));
    // Load the tokenizer first: small bodies are then counted inline.
    let _ = count_text("warm up");

    let response = estimate_response(CountFormat::Anthropic, Arc::new(a));
    assert_eq!(response.body().size_hint().exact(), Some(18)); // counted already
    let (head, json) = answer(response).await;
    assert_estimate_head(&head);
    assert_eq!(json, json!({"input_tokens": 9}));

    let (head, json) = answer(estimate_response(CountFormat::Responses, Arc::new(r))).await;
    assert_estimate_head(&head);
    assert_eq!(
        json,
        json!({"object": "response.input_tokens", "input_tokens": 9})
    );
}

#[test]
fn large_bodies_are_counted_on_the_blocking_pool() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("count-blocking-pool")
        .build()
        .unwrap();
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(2000);
    let body = Arc::new(obj(
        json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
    ));
    let expected = estimate(CountFormat::Anthropic, &body);
    // 10 tokens a sentence, and the final space.
    assert_eq!(expected, 2000 * 10 + 1 + MESSAGE_OVERHEAD + REPLY_PRIMING);
    *COUNT_THREAD.lock().unwrap() = None;

    let response = estimate_response(CountFormat::Anthropic, body);
    // The head is there at once; the body is not counted yet.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[ESTIMATE_HEADER], "true");
    assert_eq!(response.body().size_hint().exact(), None);
    assert!(COUNT_THREAD.lock().unwrap().is_none());

    let (head, json) = runtime.block_on(answer(response));
    assert_estimate_head(&head);
    assert_eq!(json, json!({"input_tokens": expected}));
    assert_eq!(
        COUNT_THREAD.lock().unwrap().as_deref(),
        Some("count-blocking-pool")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn large_responses_body_in_a_multi_thread_runtime() {
    let text = "hello world ".repeat(4000);
    let body = Arc::new(obj(json!({"input": [{"role": "user", "content": text}]})));
    let expected = estimate(CountFormat::Responses, &body);
    let (head, json) = answer(estimate_response(CountFormat::Responses, body)).await;
    assert_estimate_head(&head);
    assert_eq!(
        json,
        json!({"object": "response.input_tokens", "input_tokens": expected})
    );
}

#[test]
fn polled_outside_a_runtime_counts_in_place() {
    let text = "hello world ".repeat(4000);
    let body = Arc::new(obj(json!({"input": text})));
    let expected = estimate(CountFormat::Responses, &body);
    let mut response_body = estimate_response(CountFormat::Responses, body).into_body();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let frame = match std::pin::Pin::new(&mut response_body).poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap(),
        other => panic!("not ready: {other:?}"),
    };
    let json: Value = serde_json::from_slice(&frame).unwrap();
    assert_eq!(json["input_tokens"], expected);
}

#[test]
fn text_estimate_counts_text_not_data() {
    let body = obj(json!({
        "model": "a-long-model-name-that-is-not-text",
        "system": "12345678",
        "messages": [
            {"role": "user", "content": "abcd"},
            {"role": "user", "content": [
                {"type": "text", "text": "efgh"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAAAAAAAAAAAAAAAAAA"}},
                {"type": "image", "source": {"type": "base64", "data": "AAAAAAAAAAAAAAAAAAAAAAAA"}}
            ]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\":1}"}}]}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"description": "xxxxxxxxxxxxxxxx"}}}],
        "max_tokens": 100
    }));
    // 8 + 4 + 4 + 7 bytes of text: 23 bytes, 6 tokens.
    assert_eq!(super::text_estimate(&body), 6);
    assert_eq!(
        super::text_estimate(&obj(json!({"input": ["ab", "cd"]}))),
        1
    );
    assert_eq!(super::text_estimate(&Map::new()), 0);
}
