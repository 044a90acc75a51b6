//! Untrusted upstream bytes and secrets in transit, end to end: model names
//! that would climb an upstream URL, out-of-range indexes and multi-byte text
//! from an upstream, a backend key echoed by an upstream, and account
//! headers in both directions.

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use support::{bounded, client, data, model, MockUpstream, Proxy, Reply, SseReader, Step};

fn backend(name: &str, provider: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nprovider = \"{provider}\"\nbase_url = \"{base_url}\"\n{extra}\n"
    )
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    bounded("the proxy's answer", req.send())
        .await
        .expect("request failed")
}

async fn text_of(response: reqwest::Response) -> String {
    bounded("the answer body", response.text())
        .await
        .expect("body")
}

/// Regression: `gem/../../admin` reached the Gemini upstream as
/// `POST /v1beta/../../admin:generateContent` with the backend key.
#[tokio::test]
async fn a_model_name_that_climbs_the_path_never_reaches_the_upstream() {
    let upstream = MockUpstream::start("gemini", Reply::Chat).await;
    let config = [
        backend(
            "g",
            "gemini",
            &upstream.base_url(),
            "api_key = \"gk-secret-0123456789\"",
        ),
        model("*", "g", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    for name in ["gem/../../admin", "..", "models/../x", "a/b"] {
        let body = json!({"model": name, "messages": [{"role": "user", "content": "hi"}]});
        let response = post(&proxy.at("/v1/chat/completions"), &body, &[]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        let v: Value = serde_json::from_str(&text_of(response).await).unwrap();
        assert_eq!(v["error"]["code"], "invalid_model", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(name),
            "{v}"
        );

        // An Anthropic client gets the 400 in its own format.
        let body = json!({"model": name, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let response = post(&proxy.at("/v1/messages"), &body, &[]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        let v: Value = serde_json::from_str(&text_of(response).await).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(name),
            "{v}"
        );
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

fn gemini_event(index: &str, text: &str) -> String {
    format!(
        "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{text}\"}}],\"role\":\"model\"}},\"index\":{index}}}]}}\r\n\r\n"
    )
}

/// Regression: a candidate `index` of u64::MAX overflowed and one of 10^12
/// sized a table by it (+700 MB/s until OOM). Before the first content the
/// client gets a 502; after it, the stream ends with an error event.
#[tokio::test]
async fn an_out_of_range_candidate_index_is_a_clean_error() {
    for index in ["18446744073709551615", "1000000000000"] {
        // First event: nothing committed yet.
        let upstream = MockUpstream::start(
            "gemini",
            Reply::Script(vec![Step::Send(gemini_event(index, "Hi"))]),
        )
        .await;
        let config = [
            backend("g", "gemini", &upstream.base_url(), ""),
            model("gem", "g", Some("gemini-2.5-flash")),
        ]
        .concat();
        let proxy = Proxy::start(&config).await;
        let body = json!({"model": "gem", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let response = post(&proxy.at("/v1/chat/completions"), &body, &[]).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "index {index}");

        // After content: an error event, never a clean end.
        let upstream = MockUpstream::start(
            "gemini",
            Reply::Script(vec![
                Step::Send(gemini_event("0", "Hello")),
                Step::Send(gemini_event(index, "x")),
            ]),
        )
        .await;
        let config = [
            backend("g", "gemini", &upstream.base_url(), ""),
            model("gem", "g", Some("gemini-2.5-flash")),
        ]
        .concat();
        let proxy = Proxy::start(&config).await;
        let response = post(&proxy.at("/v1/chat/completions"), &body, &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let rest = SseReader::new(response).rest().await;
        assert!(rest.contains("Hello"), "{rest}");
        assert!(rest.contains("\"error\""), "{rest}");
        assert!(!rest.contains("[DONE]"), "{rest}");
    }
}

/// Regression: the XML tool scanner sliced held text inside a multi-byte
/// character (a model repeating `<tool_call>€aaaa` panicked the task).
#[tokio::test]
async fn xml_tool_text_with_multibyte_characters_streams_through() {
    let mut steps = vec![
        Step::Send(support::role_chunk("m")),
        Step::Send(support::chunk("m", "<tool_call>", None)),
    ];
    for _ in 0..30 {
        steps.push(Step::Send(support::chunk("m", "€aaaa", None)));
    }
    steps.push(Step::Send(support::chunk("m", "", Some("stop"))));
    steps.push(Step::Send("data: [DONE]\n\n".into()));
    let upstream = MockUpstream::start("xml", Reply::Script(steps)).await;
    let config = [
        backend("x", "openai", &upstream.base_url(), "tools = \"xml\""),
        model("m", "x", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&proxy.at("/v1/chat/completions"), &body, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rest = SseReader::new(response).rest().await;
    let mut text = String::new();
    for event in rest.split("\n\n").filter(|e| !e.is_empty()) {
        let payload = event.strip_prefix("data: ").unwrap();
        if payload == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(payload).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert_eq!(text, format!("<tool_call>{}", "€aaaa".repeat(30)));
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
}

const BACKEND_KEY: &str = "sk-company-0123456789abcdefXYZ";

/// Regression: an upstream error body or header that echoes the credential
/// leaked the company key; `set-cookie` and `openai-organization` passed
/// through.
#[tokio::test]
async fn the_backend_key_and_account_headers_never_reach_the_client() {
    let upstream = MockUpstream::start(
        "echo",
        Reply::JsonWith(
            StatusCode::UNAUTHORIZED,
            vec![
                ("set-cookie", "__cf_bm=abc; path=/".into()),
                ("openai-organization", "org-company".into()),
                ("openai-project", "proj_company".into()),
                ("x-echo", format!("Bearer {BACKEND_KEY}")),
            ],
            json!({"error": {"message": format!("Incorrect API key provided: {BACKEND_KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        ),
    )
    .await;
    let config = [
        backend(
            "o",
            "openai",
            &upstream.base_url(),
            &format!("api_key = \"{BACKEND_KEY}\""),
        ),
        model("m", "o", None),
        backend(
            "a",
            "anthropic",
            &upstream.base_url(),
            &format!("api_key = \"{BACKEND_KEY}\""),
        ),
        model("claude", "a", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let masked = llm_router::config::mask_key(BACKEND_KEY);
    for (path, model) in [
        ("/v1/chat/completions", "m"),
        ("/v1/chat/completions", "claude"),
        ("/v1/messages", "m"),
    ] {
        let body = json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let response = post(&proxy.at(path), &body, &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{path} {model}"
        );
        let headers = response.headers().clone();
        for gone in ["set-cookie", "openai-organization", "openai-project"] {
            assert!(headers.get(gone).is_none(), "{gone} reached the client");
        }
        if let Some(echo) = headers.get("x-echo") {
            assert!(!echo.to_str().unwrap().contains(BACKEND_KEY));
        }
        let text = text_of(response).await;
        assert!(!text.contains(BACKEND_KEY), "{path} {model}: {text}");
        assert!(
            !text.contains(&BACKEND_KEY[..12]),
            "{path} {model}: a piece of the key: {text}"
        );
        if model == "m" {
            assert!(text.contains(&masked), "{text}");
        }
    }
}

/// A key echoed in a streamed error event, split across chunks.
#[tokio::test]
async fn a_key_split_across_stream_chunks_is_masked() {
    let event = data(
        &json!({"error": {"message": format!("bad key {BACKEND_KEY}"), "type": "server_error", "code": "x"}}),
    );
    let (a, b) = event.split_at(event.find("0123").unwrap());
    let upstream = MockUpstream::start(
        "echo",
        Reply::Script(vec![
            Step::Send(support::chunk("m", "Hello", None)),
            Step::Wait(Duration::from_millis(1)),
            Step::Send(a.to_string()),
            Step::Wait(Duration::from_millis(1)),
            Step::Send(b.to_string()),
        ]),
    )
    .await;
    let config = [
        backend(
            "o",
            "openai",
            &upstream.base_url(),
            &format!("api_key = \"{BACKEND_KEY}\""),
        ),
        model("m", "o", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&proxy.at("/v1/chat/completions"), &body, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rest = SseReader::new(response).rest().await;
    assert!(rest.contains("Hello"), "{rest}");
    assert!(!rest.contains(BACKEND_KEY), "{rest}");
    assert!(!rest.contains(&BACKEND_KEY[..12]), "{rest}");
}

/// Regression: the client's `Cookie`, `OpenAI-Organization` and
/// `OpenAI-Project` went upstream with the company key. They still go to a
/// passthrough backend (with the client's own key).
#[tokio::test]
async fn client_account_headers_reach_only_passthrough_backends() {
    let keyed = MockUpstream::start("keyed", Reply::Chat).await;
    let passthrough = MockUpstream::start("passthrough", Reply::Chat).await;
    let config = [
        backend(
            "k",
            "openai",
            &keyed.base_url(),
            &format!("api_key = \"{BACKEND_KEY}\"\nheaders = {{ force = {{ \"openai-project\" = \"proj_company\" }} }}"),
        ),
        model("keyed", "k", None),
        backend("p", "openai", &passthrough.base_url(), "api_key = \"passthrough\""),
        model("own", "p", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let account = [
        ("cookie", "session=client"),
        ("openai-organization", "org-client"),
        ("openai-project", "proj_client"),
        ("authorization", "Bearer sk-client-own-key-0123456789"),
        ("x-team", "a"),
    ];
    for model in ["keyed", "own"] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let response = post(&proxy.at("/v1/chat/completions"), &body, &account).await;
        assert_eq!(response.status(), StatusCode::OK, "{model}");
    }
    let sent = keyed.only_request();
    assert_eq!(sent.header("cookie"), None);
    assert_eq!(sent.header("openai-organization"), None);
    // The backend's own rule still sets it.
    assert_eq!(sent.header("openai-project"), Some("proj_company"));
    assert_eq!(sent.header("x-team"), Some("a"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {BACKEND_KEY}").as_str())
    );

    let sent = passthrough.only_request();
    assert_eq!(sent.header("cookie"), Some("session=client"));
    assert_eq!(sent.header("openai-organization"), Some("org-client"));
    assert_eq!(sent.header("openai-project"), Some("proj_client"));
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-client-own-key-0123456789")
    );
}
