//! End-to-end tests: the real server in-process on 127.0.0.1:0, mock
//! upstreams written in Rust on 127.0.0.1:0, HTTP in between.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use support::{
    assert_openai_error, bounded, chat_body, client, closed_port_url, h2_client, json_of, model,
    openai_backend, sse_body, sse_event, stream_body, MockUpstream, Proxy, Reply, SseReader,
};

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    bounded("the proxy's answer", client.post(url).json(body).send())
        .await
        .expect("request failed")
}

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    bounded("the proxy's answer", client.get(url).send())
        .await
        .expect("request failed")
}

// 1. Routing -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_model_with_aliases_and_wildcards() {
    let a = MockUpstream::start("a", Reply::Chat).await;
    let b = MockUpstream::start("b", Reply::Chat).await;
    let config = [
        openai_backend("a", &a.base_url(), ""),
        openai_backend("b", &b.base_url(), ""),
        model("model-a", "a", None),
        model("model-b", "b", None),
        model("alias", "b", Some("real-b")),
        model("star-target", "b", Some("*")),
        model("*", "a", Some("*")),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    // Each listed model goes to its own backend, under its own name.
    let answer = json_of(post_json(&http, &url, &chat_body("model-a")).await).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "from a");
    assert_eq!(answer["model"], "model-a");
    let seen = a.only_request();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.json(), chat_body("model-a"));
    assert!(b.requests().is_empty());

    let answer = json_of(post_json(&http, &url, &chat_body("model-b")).await).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "from b");
    assert_eq!(b.only_request().model(), "model-b");
    assert_eq!(a.requests().len(), 1);

    // Aliasing: the target's model replaces the client's; nothing else changes.
    let mut body = chat_body("alias");
    body["temperature"] = json!(0.5);
    body["user"] = json!("u-1");
    let answer = json_of(post_json(&http, &url, &body).await).await;
    assert_eq!(
        answer["model"], "real-b",
        "the answer names the model that answered"
    );
    let seen = b.requests().pop().unwrap();
    let mut expected = body.clone();
    expected["model"] = json!("real-b");
    assert_eq!(seen.json(), expected);

    // Target model "*": the client's name goes upstream unchanged.
    post_json(&http, &url, &chat_body("star-target")).await;
    assert_eq!(b.requests().pop().unwrap().model(), "star-target");

    // An unlisted name takes the "*" route (whose target passes the name on).
    let response = post_json(&http, &url, &chat_body("unlisted-x")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "from a");
    assert_eq!(a.requests().pop().unwrap().model(), "unlisted-x");

    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 3);
}

// 2. Operational endpoints ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_root() {
    let config = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n".to_string()
        + &model("echo", "local", None)
        + &model("gpt-4", "local", Some("echo-4"));
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = get(&http, &proxy.at("/v1/models")).await;
    assert_eq!(response.status(), 200);
    let list = json_of(response).await;
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["echo", "gpt-4"]);
    for m in data {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "local");
        assert!(m["created"].is_u64());
    }

    let response = get(&http, &proxy.at("/v1/models/gpt-4")).await;
    assert_eq!(response.status(), 200);
    let one = json_of(response).await;
    assert_eq!(one["id"], "gpt-4");
    assert_eq!(one["object"], "model");

    let response = get(&http, &proxy.at("/v1/models/nope")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "model_not_found"
    );

    let response = get(&http, &proxy.at("/health")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let health = json_of(response).await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["service"], "llm-router");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["models"], json!(["echo", "gpt-4"]));

    let root = json_of(get(&http, &proxy.url()).await).await;
    assert_eq!(root["name"], "llm-router");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    let endpoints = root["endpoints"].to_string();
    for e in ["/v1/chat/completions", "/v1/models", "/health"] {
        assert!(endpoints.contains(e), "`/` does not list {e}: {endpoints}");
    }

    // With a "*" route on the mock: the mock reports `echo`, already listed (once).
    let star = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n".to_string()
        + &model("echo", "local", None)
        + &model("*", "local", None);
    let proxy = Proxy::start(&star).await;
    let list = json_of(get(&http, &proxy.at("/v1/models")).await).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo"]);
    let health = json_of(get(&http, &proxy.at("/health")).await).await;
    assert_eq!(health["models"], json!(["echo"]));
}

// 3. Client errors never reach the upstream --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_answered_without_calling_upstream() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nbody_limit = 1024\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("known", "up", None)
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.at("/v1/chat/completions");

    // Unknown model: 404.
    let response = post_json(&client(), &url, &chat_body("unknown-model")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "model_not_found"
    );

    // Malformed JSON: 400.
    let response = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"model": "known", "messages": ["#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "invalid_json"
    );

    // Missing model: 400.
    let response = post_json(
        &client(),
        &url,
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "missing_model"
    );

    // Over body_limit with a Content-Length: 413.
    let big =
        json!({"model": "known", "messages": [{"role": "user", "content": "x".repeat(2048)}]});
    let response = post_json(&client(), &url, &big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "request_too_large"
    );

    // Over body_limit, chunked (no Content-Length): 413 as well.
    let bytes = big.to_string().into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(256).map(|c| Ok(c.to_vec())).collect();
    let response = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        assert_openai_error(&json_of(response).await),
        "request_too_large"
    );

    let stats = up.stats();
    assert_eq!(stats.requests, 0, "the upstream was called: {stats:?}");
    assert_eq!(stats.connections_opened, 0, "the upstream was connected to");

    // A chunked body under the limit is read and sent on.
    let small = chat_body("known").to_string().into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        small.chunks(7).map(|c| Ok(c.to_vec())).collect();
    let response = client()
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(up.only_request().json(), chat_body("known"));
}

// 4. Streaming passes events through as they come --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_events_as_they_arrive_and_intact() {
    const COUNT: usize = 10;
    const HOLD: usize = 5;
    let up = MockUpstream::start(
        "up",
        Reply::Sse {
            count: COUNT,
            interval: Duration::from_millis(100),
            hold_before: Some(HOLD),
            cut_after: None,
        },
    )
    .await;
    let config = openai_backend("up", &up.base_url(), "") + &model("m", "up", Some("up-model"));
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = post_json(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-request-id"));
    let mut reader = SseReader::new(response);

    // The upstream holds event HOLD until released: if the proxy buffered the
    // answer, this read could not complete.
    let first = reader.next_event().await.expect("first event");
    assert_eq!(first, sse_event("up-model", 0));
    let sent = up.stats().events_sent;
    assert!(sent <= HOLD, "the upstream had sent {sent} events");
    up.release();

    let mut body = first;
    body.push_str(&reader.rest().await);
    assert_eq!(
        body,
        sse_body("up-model", COUNT),
        "the stream arrived altered"
    );
    up.wait_for("the upstream stream to complete", |s| {
        s.streams_completed == 1
    })
    .await;
    assert_eq!(up.stats().streams_aborted, 0);
}

// 5. A client that goes away cancels the upstream request -------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_closes_the_upstream_stream() {
    // 100 events, 100 ms apart: ten seconds if nobody stops it.
    let up = MockUpstream::start(
        "up",
        Reply::Sse {
            count: 100,
            interval: Duration::from_millis(100),
            hold_before: None,
            cut_after: None,
        },
    )
    .await;
    let config = openai_backend("up", &up.base_url(), "") + &model("m", "up", None);
    let proxy = Proxy::start(&config).await;

    let http = client();
    let response = post_json(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next_event().await.unwrap(), sse_event("m", 0));
    let before = Instant::now();
    drop(reader);
    drop(http);

    let stats = up
        .wait_for("the upstream to see its stream closed", |s| {
            s.streams_aborted == 1 && s.connections_closed == s.connections_opened
        })
        .await;
    assert_eq!(stats.streams_completed, 0);
    assert!(
        stats.events_sent < 100,
        "the upstream sent its whole stream"
    );
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "the upstream stream was closed only after {:?}",
        before.elapsed()
    );
}

// 6. Upstream connection errors and timeouts ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_502_and_timeout_is_504() {
    let slow = MockUpstream::start("slow", Reply::Hang).await;
    let dead_url = closed_port_url().await;
    let config = [
        openai_backend("dead", &dead_url, ""),
        openai_backend("slow", &slow.base_url(), "timeout = \"300ms\""),
        model("dead-model", "dead", None),
        model("slow-model", "slow", None),
        // One attempt each: what retries do is not this test's subject.
        "[retry]\nmax_retries = 0\n".to_string(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post_json(&http, &url, &chat_body("dead-model")).await;
    assert_eq!(response.status(), 502);
    assert!(response.headers().contains_key("x-request-id"));
    let body = json_of(response).await;
    assert_eq!(assert_openai_error(&body), "upstream_connection_error");
    assert_eq!(body["error"]["type"], "server_error");

    let started = Instant::now();
    let response = post_json(&http, &url, &chat_body("slow-model")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    let body = json_of(response).await;
    assert_eq!(assert_openai_error(&body), "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(290),
        "504 after only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "504 only after {elapsed:?}"
    );
    assert_eq!(slow.only_request().model(), "slow-model");
}

// 7. Graceful shutdown lets a stream finish -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_streams_and_refuses_new_connections() {
    const COUNT: usize = 10;
    let up = MockUpstream::start(
        "up",
        Reply::Sse {
            count: COUNT,
            interval: Duration::from_millis(100),
            hold_before: Some(3),
            cut_after: None,
        },
    )
    .await;
    let config = openai_backend("up", &up.base_url(), "") + &model("m", "up", None);
    let mut proxy = Proxy::start(&config).await;

    // A client holding an idle keep-alive connection must not delay the end.
    let idle = client();
    assert_eq!(get(&idle, &proxy.at("/health")).await.status(), 200);

    let http = client();
    let response = post_json(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let mut body = reader.next_event().await.unwrap();

    // Shut down while the upstream holds event 3: the stream is mid-flight.
    proxy.trigger_shutdown();
    proxy.wait_until_refusing().await;
    let refused = client()
        .get(proxy.at("/health"))
        .send()
        .await
        .expect_err("a new connection was served after shutdown started");
    assert!(refused.is_connect(), "unexpected error: {refused}");
    // The upstream is held before event 3: the stream is still in flight.
    up.wait_for("the upstream to reach the hold", |s| s.events_sent == 3)
        .await;
    assert_eq!(up.stats().streams_completed, 0);
    assert!(
        proxy.is_running(),
        "Server::run returned while a stream was still in flight"
    );
    up.release();

    body.push_str(&reader.rest().await);
    assert_eq!(body, sse_body("m", COUNT), "the stream was cut by shutdown");
    // Server::run ends once the stream is done (bounded well below the
    // 30 s grace period), though `idle` still holds its pooled connection.
    proxy.join().await.expect("server ended with an error");
    drop(idle);
}

// 8. Credentials and header forwarding ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_hop_by_hop_headers_are_not_forwarded() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = [
        openai_backend("keyed", &up.base_url(), "api_key = \"sk-backend-secret\""),
        openai_backend("pass", &up.base_url(), "api_key = \"passthrough\""),
        openai_backend("none", &up.base_url(), ""),
        model("keyed", "keyed", None),
        model("pass", "pass", None),
        model("none", "none", None),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = bounded(
        "the keyed answer",
        http.post(&url)
            .header("authorization", "Bearer client-secret-1")
            .header("x-api-key", "client-secret-2")
            .header("api-key", "client-secret-3")
            .header("x-team", "a")
            .header("openai-organization", "org-1")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
            .json(&chat_body("keyed"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let seen = up.only_request();
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-backend-secret")
    );
    assert_eq!(seen.header("x-team"), Some("a"));
    // The client's account does not ride on the backend's own key.
    assert_eq!(seen.header("openai-organization"), None);
    for gone in [
        "x-api-key",
        "api-key",
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "`{gone}` reached the upstream: {:?}",
            seen.headers
        );
    }
    for (name, value) in &seen.headers {
        let value = value.to_str().unwrap_or_default();
        assert!(
            !value.contains("client-secret") && !value.contains("x-hop"),
            "`{name}: {value}` reached the upstream"
        );
    }

    // Passthrough: the client's own key, from Authorization or x-api-key.
    http.post(&url)
        .bearer_auth("client-secret-4")
        .json(&chat_body("pass"))
        .send()
        .await
        .unwrap();
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.header("authorization"), Some("Bearer client-secret-4"));
    http.post(&url)
        .header("x-api-key", "client-secret-5")
        .json(&chat_body("pass"))
        .send()
        .await
        .unwrap();
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.header("authorization"), Some("Bearer client-secret-5"));
    assert!(!seen.headers.contains_key("x-api-key"));

    // No api_key: no credential at all.
    http.post(&url)
        .bearer_auth("client-secret-6")
        .json(&chat_body("none"))
        .send()
        .await
        .unwrap();
    let seen = up.requests().pop().unwrap();
    assert!(!seen.headers.contains_key("authorization"));
    assert_eq!(up.requests().len(), 4);
}

// 9. The mock provider through the server -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_provider_end_to_end() {
    let config = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n".to_string()
        + &model("echo", "local", None)
        + &model("embed", "local", Some("text-embedding-mock"));
    let proxy = Proxy::start(&config).await;
    let http = client();

    // Chat, not streamed.
    let response = post_json(&http, &proxy.at("/v1/chat/completions"), &chat_body("echo")).await;
    assert_eq!(response.status(), 200);
    let chat = json_of(response).await;
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["model"], "echo");
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    assert_eq!(chat["choices"][0]["message"]["content"], "hello there");
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(chat["usage"]["completion_tokens"], 2);

    // Chat, streamed: chunks that join into the echo, then [DONE].
    let response = post_json(
        &http,
        &proxy.at("/v1/chat/completions"),
        &stream_body("echo"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut reader = SseReader::new(response);
    let mut text = String::new();
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().await {
        events.push(event);
    }
    assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
    for event in &events[..events.len() - 1] {
        let data = event.strip_prefix("data: ").unwrap().trim_end();
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
    }
    assert_eq!(text, "hello there");
    let last: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");

    // Legacy completions.
    let response = post_json(
        &http,
        &proxy.at("/v1/completions"),
        &json!({"model": "echo", "prompt": "say this"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let completion = json_of(response).await;
    assert_eq!(completion["object"], "text_completion");
    assert_eq!(completion["choices"][0]["text"], "say this");

    // Embeddings as floats.
    let response = post_json(
        &http,
        &proxy.at("/v1/embeddings"),
        &json!({"model": "embed", "input": ["alpha", "beta"], "dimensions": 8}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let floats = json_of(response).await;
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "text-embedding-mock");
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .map(|d| {
            assert_eq!(d["object"], "embedding");
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    for v in &vectors {
        assert_eq!(v.len(), 8);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "not a unit vector: {norm}");
    }
    assert_ne!(vectors[0], vectors[1]);

    // Embeddings as base64 (what the OpenAI SDKs ask for): the same floats.
    let response = post_json(
        &http,
        &proxy.at("/v1/embeddings"),
        &json!({"model": "embed", "input": ["alpha", "beta"], "dimensions": 8, "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let encoded = json_of(response).await;
    for (i, d) in encoded["data"].as_array().unwrap().iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 8 * 4);
        let decoded: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(decoded, vectors[i]);
    }

    // Default dimensions.
    let default = json_of(
        post_json(
            &http,
            &proxy.at("/v1/embeddings"),
            &json!({"model": "embed", "input": "alpha"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        default["data"][0]["embedding"].as_array().unwrap().len(),
        1536
    );
}

// 10. HTTP/2 cleartext and request ids ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_and_request_ids() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n".to_string()
        + &openai_backend("up", &up.base_url(), "")
        + &model("echo", "local", None)
        + &model("remote", "up", None);
    let proxy = Proxy::start(&config).await;
    let h2 = h2_client();

    let response = post_json(&h2, &proxy.at("/v1/chat/completions"), &chat_body("echo")).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let id1 = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id1.is_empty());
    assert_eq!(
        json_of(response).await["choices"][0]["message"]["content"],
        "hello there"
    );

    // Streaming over HTTP/2, and through an upstream.
    let response = post_json(&h2, &proxy.at("/v1/chat/completions"), &stream_body("echo")).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let mut reader = SseReader::new(response);
    assert!(reader.rest().await.ends_with("data: [DONE]\n\n"));
    let response = post_json(&h2, &proxy.at("/v1/chat/completions"), &chat_body("remote")).await;
    assert_eq!(response.status(), 200);
    let id2 = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id1, id2, "request ids repeat");
    assert_eq!(json_of(response).await["model"], "remote");
    assert_eq!(up.only_request().header("x-request-id"), Some(id2.as_str()));

    // The client's own id is echoed back (and sent upstream), on HTTP/2 and 1.1.
    for http in [&h2, &client()] {
        let response = bounded(
            "the answer",
            http.post(proxy.at("/v1/chat/completions"))
                .header("x-request-id", "client-id-42")
                .json(&chat_body("remote"))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.headers()["x-request-id"], "client-id-42");
        assert_eq!(
            up.requests().pop().unwrap().header("x-request-id"),
            Some("client-id-42")
        );
    }

    // Every answer carries one: errors and operational endpoints included.
    let h1 = client();
    for (http, method, path) in [
        (&h2, "GET", "/health"),
        (&h2, "GET", "/v1/models"),
        (&h1, "GET", "/"),
        (&h1, "GET", "/no/such/endpoint"),
        (&h2, "POST", "/v1/chat/completions"),
    ] {
        let request = match method {
            "GET" => http.get(proxy.at(path)),
            _ => http.post(proxy.at(path)).json(&chat_body("nope")),
        };
        let response = bounded("the answer", request.send()).await.unwrap();
        assert!(
            response
                .headers()
                .get("x-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{method} {path} ({}) has no x-request-id",
            response.status()
        );
    }
}

// 11. Upstream error answers pass through --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_answers_pass_through() {
    let bad_request = json!({"error": {
        "message": "Invalid value for 'temperature'", "type": "invalid_request_error",
        "param": "temperature", "code": "invalid_value"}});
    let server_error = json!({"error": {
        "message": "The server had an error", "type": "server_error", "param": null, "code": null}});
    let (b, s) = (bad_request.clone(), server_error.clone());
    let up = MockUpstream::with_handler("up", move |req| match req.model().as_str() {
        "bad" => Reply::Json(StatusCode::BAD_REQUEST, b.clone()),
        "boom" => Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, s.clone()),
        "limited" => Reply::Json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
        ),
        _ => Reply::Chat,
    })
    .await;
    // One attempt each (a 5xx or 429 would be retried by default).
    let config = openai_backend("up", &up.base_url(), "")
        + &model("*", "up", None)
        + "[retry]\nmax_retries = 0\n";
    let proxy = Proxy::start(&config).await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");

    let response = post_json(&http, &url, &chat_body("bad")).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(json_of(response).await, bad_request);

    let response = post_json(&http, &url, &chat_body("boom")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(json_of(response).await, server_error);

    let response = post_json(&http, &url, &stream_body("limited")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        json_of(response).await["error"]["code"],
        "rate_limit_exceeded"
    );

    let response = post_json(&http, &url, &chat_body("fine")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(up.requests().len(), 4);
}

// 12. A stream cut by the upstream never looks complete ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cut_mid_stream_is_not_a_clean_end() {
    let up = MockUpstream::start(
        "up",
        Reply::Sse {
            count: 10,
            interval: Duration::from_millis(10),
            hold_before: None,
            cut_after: Some(3),
        },
    )
    .await;
    let config = openai_backend("up", &up.base_url(), "") + &model("m", "up", None);
    let proxy = Proxy::start(&config).await;
    let http = client();

    let response = post_json(&http, &proxy.at("/v1/chat/completions"), &stream_body("m")).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    let outcome = loop {
        match reader.try_next_event().await {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(
        events.len() >= 3,
        "events before the cut were lost: {events:?}"
    );
    assert_eq!(
        events[..3].concat(),
        (0..3).map(|i| sse_event("m", i)).collect::<String>()
    );
    assert!(
        !events.iter().any(|e| e.contains("[DONE]")),
        "a cut stream ended with [DONE]: {events:?}"
    );
    // The stream ends with an error event in the client's format (a clean
    // end after content events would look complete).
    assert!(outcome.is_none(), "the stream broke instead: {outcome:?}");
    assert_eq!(events.len(), 4, "{events:?}");
    let error: Value = serde_json::from_str(
        events[3]
            .strip_prefix("data: ")
            .expect("an SSE data event")
            .trim_end(),
    )
    .unwrap();
    assert_openai_error(&error);
}

/// Every kind of answer carries `x-request-id` and `x-llm-router-overhead-ms`,
/// and the overhead leaves out the time spent waiting on the upstream.
#[tokio::test]
async fn every_answer_carries_request_id_and_overhead() {
    let up = MockUpstream::start(
        "slow",
        Reply::Sse {
            count: 2,
            interval: Duration::from_millis(1),
            hold_before: Some(0),
            cut_after: None,
        },
    )
    .await;
    let config = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n".to_string()
        + &openai_backend("slow", &up.base_url(), "")
        + &model("echo", "local", None)
        + &model("slow", "slow", None);
    let proxy = Proxy::start(&config).await;
    let http = client();

    let overhead = |r: &reqwest::Response| -> f64 {
        assert!(
            r.headers().contains_key("x-request-id"),
            "{:?}",
            r.headers()
        );
        r.headers()["x-llm-router-overhead-ms"]
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    // A local answer, an error, an operational endpoint, an unknown path.
    let ok = post_json(&http, &proxy.at("/v1/chat/completions"), &chat_body("echo")).await;
    assert!(overhead(&ok) >= 0.0);
    let missing = post_json(&http, &proxy.at("/v1/chat/completions"), &chat_body("nope")).await;
    assert_eq!(missing.status(), 404);
    assert!(overhead(&missing) >= 0.0);
    for path in ["/health", "/nope"] {
        let r = http.get(proxy.at(path)).send().await.unwrap();
        assert!(overhead(&r) >= 0.0);
    }

    // The upstream holds its first content event for 400 ms: that wait is
    // the upstream's, not the proxy's.
    let started = Instant::now();
    let url = proxy.at("/v1/chat/completions");
    let body = stream_body("slow");
    let pending = post_json(&http, &url, &body);
    let release = async {
        up.wait_for("the request upstream", |s| s.requests >= 1)
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        up.release();
    };
    let (response, ()) = tokio::join!(pending, release);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(response.status(), 200);
    let own = overhead(&response);
    assert!(
        own < 200.0,
        "overhead {own} ms includes the upstream's 400 ms"
    );
    let mut reader = SseReader::new(response);
    assert!(reader.rest().await.ends_with("data: [DONE]\n\n"));
}
