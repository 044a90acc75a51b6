//! End-to-end tests of the provider adapters and XML tool emulation: an
//! OpenAI client talks to the real proxy, which talks to mock upstreams that
//! speak Gemini's API, Ollama's native API, or an OpenAI-compatible API
//! without tool support (`tools = "xml"`).

mod support;

use http::StatusCode;
use serde_json::{json, Value};

use support::{
    bounded, client, json_of, model, openai_backend, MockUpstream, Proxy, Reply, SseReader, Step,
    DONE,
};

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    bounded("the proxy's answer", http.post(url).json(body).send())
        .await
        .expect("request failed")
}

/// Every event of a streamed answer: JSON values, `[DONE]` as a string.
async fn events_of(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut reader = SseReader::new(response);
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().await {
        let payload = event
            .trim_end()
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"));
        out.push(if payload == "[DONE]" {
            json!("[DONE]")
        } else {
            serde_json::from_str(payload).expect("event JSON")
        });
    }
    out
}

/// The text, the tool calls (index, name, arguments; ids checked) and the
/// finish reason of a chunk stream.
fn summarize(events: &[Value]) -> (String, Vec<(u64, String, String)>, Option<String>) {
    let mut text = String::new();
    let mut calls = Vec::new();
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
            assert!(
                c["id"].as_str().is_some_and(|id| !id.is_empty()),
                "tool call without id: {c}"
            );
            assert_eq!(c["type"], "function");
            calls.push((
                c["index"].as_u64().expect("index"),
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

/// The usage of the usage-only chunk, if any.
fn usage_of(events: &[Value]) -> Option<Value> {
    events
        .iter()
        .find(|e| e.get("usage").is_some_and(|u| !u.is_null()))
        .map(|e| e["usage"].clone())
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

/// A conversation that already went through one tool call.
fn history_with_a_tool_call() -> Value {
    json!([
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"},
        {"role": "user", "content": "And in Rome?"}
    ])
}

fn backend(name: &str, provider: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nprovider = \"{provider}\"\nbase_url = \"{base_url}\"\n{extra}\n"
    )
}

// ---------------------------------------------------------------------------
// Gemini

fn gemini_answer_with_calls() -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 9, "totalTokenCount": 49, "cachedContentTokenCount": 16},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_to_gemini_with_tools() {
    let upstream = MockUpstream::start(
        "gemini",
        Reply::Json(StatusCode::OK, gemini_answer_with_calls()),
    )
    .await;
    let config = [
        backend(
            "g",
            "gemini",
            &format!("http://{}", upstream.addr()),
            "api_key = \"gk-test\"",
        ),
        model("weather", "g", Some("gemini-2.5-flash")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "weather",
        "messages": history_with_a_tool_call(),
        "tools": weather_tools(),
        "tool_choice": "auto",
        "max_tokens": 100,
    });
    let response = post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;

    // The upstream got Gemini's format, key and path.
    let sent = upstream.only_request();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some("gk-test"));
    assert_eq!(sent.header("authorization"), None);
    let g = sent.json();
    assert_eq!(
        g["systemInstruction"]["parts"][0]["text"],
        "You are a weather assistant."
    );
    assert_eq!(g["contents"].as_array().unwrap().len(), 4);
    assert_eq!(
        g["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
    );
    assert_eq!(
        g["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"content": "21 C, sunny"}})
    );
    assert_eq!(
        g["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(g["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    assert_eq!(g["generationConfig"]["maxOutputTokens"], 100);

    // The client got OpenAI's format.
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gemini-2.5-flash");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(answer["usage"]["prompt_tokens"], 40);
    assert_eq!(answer["usage"]["completion_tokens"], 9);
    assert_eq!(answer["usage"]["total_tokens"], 49);
    assert_eq!(
        answer["usage"]["prompt_tokens_details"]["cached_tokens"],
        16
    );
}

fn gemini_event(value: Value) -> String {
    // Gemini separates its events with CRLF.
    format!("data: {value}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_to_gemini_streamed() {
    let first = gemini_event(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Rome is "}]}, "index": 0}],
        "modelVersion": "gemini-2.5-flash", "responseId": "s1"
    }));
    let second = gemini_event(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "sunny. "},
            {"functionCall": {"name": "get_weather", "args": {"city": "Milan"}}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 6, "totalTokenCount": 16},
        "modelVersion": "gemini-2.5-flash", "responseId": "s1"
    }));
    // The second event arrives split in the middle.
    let (a, b) = second.split_at(37);
    let upstream = MockUpstream::start(
        "gemini",
        Reply::Script(vec![
            Step::Send(first),
            Step::Send(a.to_string()),
            Step::Send(b.to_string()),
        ]),
    )
    .await;
    let config = [
        backend(
            "g",
            "gemini",
            &format!("http://{}", upstream.addr()),
            "api_key = \"gk-test\"",
        ),
        model("weather", "g", Some("gemini-2.5-flash")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "weather", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": weather_tools(),
    });
    let events =
        events_of(post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await).await;
    assert_eq!(
        upstream.only_request().path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[0]["object"], "chat.completion.chunk");
    let (text, calls, finish) = summarize(&events);
    assert_eq!(text, "Rome is sunny. ");
    assert_eq!(
        calls,
        vec![(
            0,
            "get_weather".to_string(),
            "{\"city\":\"Milan\"}".to_string()
        )]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(
        usage_of(&events),
        Some(json!({"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}))
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_errors_keep_status_and_context_phrase() {
    let upstream = MockUpstream::with_handler("gemini", |r| {
        if r.json()["contents"][0]["parts"][0]["text"] == "long" {
            Reply::Json(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}),
            )
        } else {
            Reply::Json(
                StatusCode::FORBIDDEN,
                json!({"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}}),
            )
        }
    })
    .await;
    let config = [
        backend("g", "gemini", &format!("http://{}", upstream.addr()), ""),
        model("gem", "g", Some("gemini-2.5-flash")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "long"}]});
    let response = post_json(&http, &url, &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let v = json_of(response).await;
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exceeds the maximum number of tokens"));

    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_json(&http, &url, &body).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let v = json_of(response).await;
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(v["error"]["code"], "permission_denied");
    assert_eq!(
        v["error"]["message"],
        "Method doesn't allow unregistered callers."
    );
    // No key configured: none sent.
    assert!(upstream.requests()[0].header("x-goog-api-key").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_blocked_prompt_is_a_content_filter_finish() {
    let upstream = MockUpstream::start(
        "gemini",
        Reply::Json(
            StatusCode::OK,
            json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}),
        ),
    )
    .await;
    let config = [
        backend("g", "gemini", &format!("http://{}", upstream.addr()), ""),
        model("gem", "g", Some("gemini-2.5-flash")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "bad"}]});
    let response = post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let v = json_of(response).await;
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(v["choices"][0]["message"]["content"].is_null());
    assert!(v["choices"][0]["message"]["refusal"]
        .as_str()
        .unwrap()
        .contains("SAFETY"));
}

// ---------------------------------------------------------------------------
// Ollama

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_to_ollama_with_tools() {
    let upstream = MockUpstream::start(
        "ollama",
        Reply::Json(
            StatusCode::OK,
            json!({
                "model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
                "message": {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}
                ]},
                "done_reason": "stop", "done": true, "prompt_eval_count": 30, "eval_count": 12
            }),
        ),
    )
    .await;
    let config = [
        backend("o", "ollama", &format!("http://{}", upstream.addr()), ""),
        model("local", "o", Some("llama3.2")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "local",
        "messages": history_with_a_tool_call(),
        "tools": weather_tools(),
        "temperature": 0.1,
        "max_completion_tokens": 64,
    });
    let response = post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;

    let sent = upstream.only_request();
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.header("authorization"), None);
    let o = sent.json();
    assert_eq!(o["model"], "llama3.2");
    assert_eq!(o["stream"], false);
    assert_eq!(o["options"], json!({"temperature": 0.1, "num_predict": 64}));
    assert_eq!(o["tools"], weather_tools());
    assert_eq!(
        o["messages"][2]["tool_calls"],
        json!([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    );
    assert_eq!(
        o["messages"][3],
        json!({"role": "tool", "content": "21 C, sunny", "tool_name": "get_weather"})
    );

    assert_eq!(answer["model"], "llama3.2");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_to_ollama_streamed() {
    let lines = concat!(
        "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Rome \"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"is sunny.\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Milan\"}}}]},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":20,\"eval_count\":7}\n",
    );
    // Network chunks that cut lines anywhere.
    let steps: Vec<Step> = lines
        .as_bytes()
        .chunks(29)
        .map(|c| Step::Send(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let upstream = MockUpstream::start("ollama", Reply::Script(steps)).await;
    let config = [
        backend("o", "ollama", &format!("http://{}", upstream.addr()), ""),
        model("local", "o", Some("llama3.2")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "local", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": weather_tools(),
    });
    let events =
        events_of(post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await).await;
    assert_eq!(upstream.only_request().json()["stream"], true);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let (text, calls, finish) = summarize(&events);
    assert_eq!(text, "Rome is sunny.");
    assert_eq!(
        calls,
        vec![(
            0,
            "get_weather".to_string(),
            "{\"city\":\"Milan\"}".to_string()
        )]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(
        usage_of(&events),
        Some(json!({"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}))
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_stream_without_usage_unless_asked_and_errors() {
    let upstream = MockUpstream::with_handler("ollama", |r| {
        if r.json()["model"] == "missing" {
            Reply::Json(
                StatusCode::NOT_FOUND,
                json!({"error": "model \"missing\" not found, try pulling it first"}),
            )
        } else {
            Reply::Script(vec![Step::Send(
                "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":false}\n{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":1,\"eval_count\":1}\n".into(),
            )])
        }
    })
    .await;
    let config = [
        backend("o", "ollama", &format!("http://{}", upstream.addr()), ""),
        model("*", "o", Some("*")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let events = events_of(post_json(&http, &url, &body).await).await;
    assert!(usage_of(&events).is_none());
    assert_eq!(summarize(&events).2.as_deref(), Some("length"));

    let body = json!({"model": "missing", "messages": [{"role": "user", "content": "x"}]});
    let response = post_json(&http, &url, &body).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let v = json_of(response).await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
}

// ---------------------------------------------------------------------------
// XML tool emulation

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "plain-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    })
}

/// The upstream's view of an XML-emulated request: no tools, no tool role,
/// the prompt in the system message, the history as text.
fn assert_xml_request(sent: &Value) {
    assert!(sent.get("tools").is_none(), "tools went upstream: {sent}");
    assert!(sent.get("tool_choice").is_none());
    let messages = sent["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["role"] != "tool"));
    assert!(messages.iter().all(|m| m.get("tool_calls").is_none()));
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are a weather assistant."),
        "{system}"
    );
    assert!(
        system.contains("<tool_call><name>TOOL_NAME</name><arguments>"),
        "{system}"
    );
    assert!(system.contains(
        "<tool><name>get_weather</name><description>Current weather for a city</description>"
    ));
    assert_eq!(
        messages[2]["content"],
        "<tool_call><name>get_weather</name><arguments>{\"city\":\"Paris\"}</arguments></tool_call>"
    );
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(
        messages[3]["content"],
        "<tool_result><name>get_weather</name><result>21 C, sunny</result></tool_result>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_tools_non_streamed() {
    let upstream = MockUpstream::start(
        "plain",
        Reply::Json(
            StatusCode::OK,
            completion("I will look it up.\n<tool_call><name>get_weather</name><arguments>{\"city\": \"Rome\"}</arguments></tool_call>"),
        ),
    )
    .await;
    let config = [
        openai_backend("plain", &upstream.base_url(), "tools = \"xml\""),
        model("plain", "plain", Some("plain-model")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body =
        json!({"model": "plain", "messages": history_with_a_tool_call(), "tools": weather_tools()});
    let response = post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;

    let sent = upstream.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.model(), "plain-model");
    assert_xml_request(&sent.json());

    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "I will look it up.");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(answer["usage"]["total_tokens"], 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_tools_streamed_tag_split_across_chunks() {
    let said = "Let me check. <use_mcp_tool><tool_name>get_weather</tool_name><arguments>{\"city\":\"Rome\"}</arguments></use_mcp_tool>\n<tool_call><name>get_weather</name><arguments>{\"city\":\"Milan\"}</arguments></tool_call>";
    let mut steps = vec![Step::Send(support::role_chunk("plain-model"))];
    // Deltas of 6 characters: every tag is cut somewhere.
    let chars: Vec<char> = said.chars().collect();
    for piece in chars.chunks(6) {
        let text: String = piece.iter().collect();
        steps.push(Step::Send(support::chunk("plain-model", &text, None)));
    }
    steps.push(Step::Send(support::chunk("plain-model", "", Some("stop"))));
    steps.push(Step::Send(support::usage_chunk("plain-model", 50, 20)));
    steps.push(Step::Send(DONE.to_string()));
    let upstream = MockUpstream::start("plain", Reply::Script(steps)).await;
    let config = [
        openai_backend("plain", &upstream.base_url(), "tools = \"xml\""),
        model("plain", "plain", Some("plain-model")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({
        "model": "plain", "stream": true, "stream_options": {"include_usage": true},
        "messages": history_with_a_tool_call(), "tools": weather_tools(),
    });
    let events =
        events_of(post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await).await;
    assert_xml_request(&upstream.only_request().json());

    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let (text, calls, finish) = summarize(&events);
    assert_eq!(text, "Let me check. ");
    assert!(!text.contains('<'), "markup reached the client: {text}");
    assert_eq!(
        calls,
        vec![
            (
                0,
                "get_weather".to_string(),
                "{\"city\":\"Rome\"}".to_string()
            ),
            (
                1,
                "get_weather".to_string(),
                "{\"city\":\"Milan\"}".to_string()
            ),
        ]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage_of(&events).unwrap()["total_tokens"], 70);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_tools_malformed_is_text_and_template_is_configurable() {
    let bad =
        "Try <tool_call><name>get_weather</name><arguments>{city: Rome}</arguments></tool_call>";
    let upstream = MockUpstream::with_handler("plain", move |r| {
        if r.json()["stream"] == true {
            Reply::Script(vec![
                Step::Send(support::chunk("plain-model", &bad[..20], None)),
                Step::Send(support::chunk("plain-model", &bad[20..], None)),
                Step::Send(support::chunk("plain-model", "", Some("stop"))),
                Step::Send(DONE.to_string()),
            ])
        } else {
            Reply::Json(StatusCode::OK, completion(bad))
        }
    })
    .await;
    let config = [
        openai_backend("plain", &upstream.base_url(), "tools = \"xml\""),
        model("plain", "plain", Some("plain-model")),
        "[tools]\nxml_prompt_template = \"Call tools like <tool_call>. Tools: {tools}\"\n"
            .to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let messages = json!([{"role": "user", "content": "Weather in Rome?"}]);

    let body = json!({"model": "plain", "messages": messages, "tools": weather_tools()});
    let answer = json_of(post_json(&http, &url, &body).await).await;
    assert_eq!(answer["choices"][0]["message"]["content"], bad);
    assert!(answer["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let sent = upstream.requests()[0].json();
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        system.starts_with(
            "Call tools like <tool_call>. Tools: <tools>\n<tool><name>get_weather</name>"
        ),
        "{system}"
    );

    let body =
        json!({"model": "plain", "stream": true, "messages": messages, "tools": weather_tools()});
    let events = events_of(post_json(&http, &url, &body).await).await;
    let (text, calls, finish) = summarize(&events);
    assert_eq!(text, bad);
    assert!(calls.is_empty());
    assert_eq!(finish.as_deref(), Some("stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_tools_leave_plain_requests_alone() {
    let upstream = MockUpstream::start(
        "plain",
        Reply::Json(StatusCode::OK, completion("Hello <b>you</b>")),
    )
    .await;
    let config = [
        openai_backend("plain", &upstream.base_url(), "tools = \"xml\""),
        model("plain", "plain", Some("plain-model")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "plain", "messages": [{"role": "user", "content": "hi"}]});
    let answer =
        json_of(post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello <b>you</b>"
    );
    let sent = upstream.only_request().json();
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_tools_on_an_ollama_backend() {
    // Emulation is provider-independent: here on Ollama's native API.
    let upstream = MockUpstream::start(
        "ollama",
        Reply::Json(
            StatusCode::OK,
            json!({
                "model": "tiny", "message": {"role": "assistant",
                    "content": "<tool_call><name>get_weather</name><arguments>{\"city\":\"Oslo\"}</arguments></tool_call>"},
                "done": true, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 5
            }),
        ),
    )
    .await;
    let config = [
        backend(
            "o",
            "ollama",
            &format!("http://{}", upstream.addr()),
            "tools = \"xml\"",
        ),
        model("tiny", "o", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body =
        json!({"model": "tiny", "messages": history_with_a_tool_call(), "tools": weather_tools()});
    let answer =
        json_of(post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await).await;
    let sent = upstream.only_request().json();
    assert!(sent.get("tools").is_none());
    assert!(sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["role"] != "tool" && m.get("tool_calls").is_none()));
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert!(choice["message"]["content"].is_null());
}

// ---------------------------------------------------------------------------
// Other clients: the pivot carries an Anthropic client to these providers too

fn anthropic_weather_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "max_tokens": 100, "stream": stream,
        "system": "You are a weather assistant.",
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "tools": [{"name": "get_weather", "description": "Current weather for a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_client_to_gemini_and_to_xml_backend() {
    let gemini = MockUpstream::start(
        "gemini",
        Reply::Json(StatusCode::OK, gemini_answer_with_calls()),
    )
    .await;
    let plain = MockUpstream::start(
        "plain",
        Reply::Json(
            StatusCode::OK,
            completion("<tool_call><name>get_weather</name><arguments>{\"city\":\"Rome\"}</arguments></tool_call>"),
        ),
    )
    .await;
    let config = [
        backend("g", "gemini", &format!("http://{}", gemini.addr()), ""),
        openai_backend("plain", &plain.base_url(), "tools = \"xml\""),
        model("gem", "g", Some("gemini-2.5-flash")),
        model("plain", "plain", Some("plain-model")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/messages");
    for name in ["gem", "plain"] {
        let response = post_json(&http, &url, &anthropic_weather_request(name, false)).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let answer = json_of(response).await;
        assert_eq!(answer["type"], "message", "{name}: {answer}");
        assert_eq!(answer["stop_reason"], "tool_use", "{name}: {answer}");
        let tool_use = answer["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap_or_else(|| panic!("{name}: no tool_use in {answer}"));
        assert_eq!(tool_use["name"], "get_weather");
        assert_eq!(tool_use["input"], json!({"city": "Rome"}));
    }
    let g = gemini.only_request().json();
    assert_eq!(
        g["systemInstruction"]["parts"][0]["text"],
        "You are a weather assistant."
    );
    assert_eq!(
        g["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    let sent = plain.only_request().json();
    assert!(sent.get("tools").is_none());
    assert!(sent["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("<tool><name>get_weather</name>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_client_to_ollama_streamed() {
    let upstream = MockUpstream::start(
        "ollama",
        Reply::Script(vec![Step::Send(concat!(
            "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"Sunny \"},\"done\":false}\n",
            "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"in Rome.\"},\"done\":false}\n",
            "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":9,\"eval_count\":4}\n",
        ).to_string())]),
    )
    .await;
    let config = [
        backend("o", "ollama", &format!("http://{}", upstream.addr()), ""),
        model("local", "o", Some("llama3.2")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let response = post_json(
        &client(),
        &proxy.at("/v1/messages"),
        &anthropic_weather_request("local", true),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    let text = reader.rest().await;
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("\"text_delta\""), "{text}");
    assert!(text.contains("Sunny "), "{text}");
    assert!(text.contains("in Rome."), "{text}");
    assert!(text.contains("\"end_turn\""), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(upstream.only_request().json()["stream"], true);
}

#[tokio::test]
async fn an_ollama_address_given_with_v1_reaches_the_native_api() {
    let upstream = MockUpstream::start(
        "ollama",
        Reply::Json(
            StatusCode::OK,
            json!({"model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
                "message": {"role": "assistant", "content": "hi"},
                "done_reason": "stop", "done": true, "prompt_eval_count": 3, "eval_count": 1}),
        ),
    )
    .await;
    // As OLLAMA_BASE_URL is often written: the OpenAI-compatible root.
    let config = [
        backend(
            "o",
            "ollama",
            &format!("http://{}/v1/", upstream.addr()),
            "",
        ),
        model("local", "o", Some("llama3.2")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body = json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_json(&client(), &proxy.at("/v1/chat/completions"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.only_request().path, "/api/chat");
}
