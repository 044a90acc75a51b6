//! The examples, driven in-process: each example's app-building function is
//! compiled into this test (`#[path]`), served on 127.0.0.1:0 and called over
//! real HTTP, so the examples keep working, not just compiling.

mod support;

#[allow(dead_code)]
#[path = "../examples/axum.rs"]
mod axum_example;

#[allow(dead_code)]
#[path = "../examples/custom_stack.rs"]
mod custom_stack_example;

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use support::{bounded, client, MockUpstream, Reply, SseReader};

/// Serve an axum router on 127.0.0.1:0; returns its base URL.
async fn serve_axum(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Serve an llm-router app on 127.0.0.1:0 with llm-router's own server.
async fn serve_app(app: llm_router::App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server =
        llm_router::server::Server::from_parts(listener, app, None, Duration::from_secs(1));
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending::<()>()));
    url
}

async fn post(url: &str, body: Value) -> (StatusCode, http::HeaderMap, Value) {
    let r = client().post(url).json(&body).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, headers, value)
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_serves_its_own_routes_and_llm_router() {
    let base = serve_axum(axum_example::router(None).unwrap()).await;
    let c = client();

    let hello = c.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(hello.text().await.unwrap(), "hello from axum");
    let status: Value = c
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["app"], "my-axum-app");

    // Nested under /llm: the chat endpoint, and llm-router's own endpoints.
    let (s, headers, v) = post(
        &format!("{base}/llm/v1/chat/completions"),
        chat("echo", "nested"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "nested");
    assert!(headers.contains_key("x-request-id"));
    assert!(headers.contains_key("x-llm-router-overhead-ms"));
    let health: Value = c
        .get(format!("{base}/llm/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");

    // The same app at the OpenAI path, as route_service.
    let (s, _, v) = post(
        &format!("{base}/v1/chat/completions"),
        chat("any-model", "root"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "root");

    // Errors are answers, in OpenAI's shape (the service is Infallible).
    let bad = c
        .post(format!("{base}/llm/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let v: Value = bad.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");

    // A stream through axum.
    let r = c
        .post(format!("{base}/llm/v1/chat/completions"))
        .json(&json!({"model": "echo", "stream": true,
                      "messages": [{"role": "user", "content": "streamed through axum"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rest = bounded("the stream", SseReader::new(r).rest()).await;
    assert!(rest.contains("[DONE]"), "{rest}");
    assert!(rest.contains("streamed"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_reaches_an_openai_backend_with_its_layers() {
    let up = MockUpstream::start("openai", Reply::Chat).await;
    let base = serve_axum(
        axum_example::router(Some((up.base_url(), "sk-example-0000000000".into()))).unwrap(),
    )
    .await;
    let (s, _, v) = post(
        &format!("{base}/llm/v1/chat/completions"),
        chat("gpt-4o-mini", "hi"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "from openai");
    let sent = up.only_request();
    // The header rule of the example's HeadersLayer, and the backend's key.
    assert_eq!(sent.header("x-served-by"), Some("my-axum-app"));
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-example-0000000000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_stack_example_fails_over_and_shows_its_state() {
    // The primary answers 500: retried once, then failover to the mock.
    let up = MockUpstream::start(
        "primary",
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        ),
    )
    .await;
    let base = serve_app(custom_stack_example::build(&up.base_url()).unwrap()).await;
    let (s, _, v) = post(
        &format!("{base}/v1/chat/completions"),
        chat("gpt-4", "hello from code"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "echo-1", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "hello from code");
    assert_eq!(
        up.requests().len(),
        2,
        "one try and one retry on the primary"
    );

    // The state handed to the app is the layers' own.
    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("llm_router_failovers_total{model=\"gpt-4\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("llm_router_retries_total{backend=\"primary\"} 1"),
        "{metrics}"
    );
    let health: Value = client()
        .get(format!("{base}/router/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let circuit = health["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "primary/gpt-4o")
        .unwrap_or_else(|| panic!("{health}"));
    // Each failed attempt counts, the retry included.
    assert_eq!(circuit["consecutive_failures"], 2, "{health}");
    let limits: Value = client()
        .get(format!("{base}/router/rate-limits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["clients"]["requests"][0]["limit"], 100, "{limits}");

    // The example's default: a closed port, and the mock answers.
    let app = custom_stack_example::build("http://127.0.0.1:9/v1").unwrap();
    let base = serve_app(app).await;
    let (s, _, v) = post(
        &format!("{base}/v1/chat/completions"),
        chat("gpt-4", "fallback"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "fallback");
}
