//! Mount llm-router inside an axum app, beside the app's own routes.
//!
//! The LLM part is composed in code from llm-router's layers (headers rules,
//! failover, retry) around its `Upstream`, and wrapped in [`App::from_service`]:
//! `App` reads and parses the body, serves the OpenAI/Anthropic endpoints and
//! renders every error as a response, so it is a `Service` whose error is
//! `Infallible` — what `axum::Router::route_service` and `nest_service` take.
//!
//! ```sh
//! cargo run --example axum      # listens on 127.0.0.1:3000
//! curl localhost:3000/hello
//! curl localhost:3000/llm/v1/chat/completions -H 'content-type: application/json' \
//!      -d '{"model":"echo","messages":[{"role":"user","content":"hi"}]}'
//! ```
//!
//! With `OPENAI_API_KEY` set, the model `gpt-4o-mini` goes to OpenAI too
//! (`OPENAI_BASE_URL` changes where).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderName, HeaderValue};
use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
use llm_router::layers::headers::{HeaderRules, HeadersLayer};
use llm_router::layers::retry::{RetryLayer, RetryPolicy};
use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
use llm_router::upstream::provider::mock::Mock;
use llm_router::upstream::provider::openai::OpenAi;
use llm_router::upstream::Upstream;
use llm_router::{App, BoxError};
use serde_json::{json, Value};
use tower::ServiceBuilder;

/// An OpenAI-compatible backend to add: `(base_url, api_key)`.
pub type OpenAiBackend = (String, String);

/// llm-router's part: layers and upstream over a route table, as an [`App`].
/// `echo` (and any unknown model) is answered by the built-in mock;
/// `gpt-4o-mini` goes to `openai` when one is given.
pub fn llm_app(openai: Option<OpenAiBackend>) -> Result<App, BoxError> {
    let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build()?);
    let mut routes = vec![
        ModelRoute::new("echo", vec![Target::new(local.clone(), None)]),
        ModelRoute::new("*", vec![Target::new(local.clone(), None)]),
    ];
    if let Some((base_url, key)) = openai {
        let openai = Arc::new(
            Backend::builder("openai", Arc::new(OpenAi))
                .base_url(base_url)
                .api_key(key)
                .build()?,
        );
        routes.push(ModelRoute::new(
            "gpt-4o-mini",
            vec![
                Target::new(openai, None).priority(1),
                // Should OpenAI fail, the mock answers.
                Target::new(local, Some("echo")).priority(2),
            ],
        ));
    }
    let routes = Arc::new(RouteTable::new(routes));
    let stack = ServiceBuilder::new()
        .layer(HeadersLayer::new(HeaderRules::new().force(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("my-axum-app"),
        )))
        .layer(FailoverLayer::new(
            routes.clone(),
            FailoverPolicy::default(),
            Arc::new(Cooldowns::default()),
        ))
        .layer(RetryLayer::new(
            RetryPolicy::default()
                .max_retries(2)
                .initial_delay(Duration::from_millis(200)),
        ))
        .service(Upstream::new());
    Ok(App::from_service(stack, routes))
}

/// The whole axum app: its own routes, llm-router under `/llm` (every
/// llm-router endpoint: `/llm/v1/chat/completions`, `/llm/health`, …), and
/// the OpenAI chat endpoint at its usual path too, so OpenAI SDKs pointed at
/// this app's root work unchanged.
pub fn router(openai: Option<OpenAiBackend>) -> Result<Router, BoxError> {
    let llm = llm_app(openai)?;
    Ok(Router::new()
        .route("/hello", get(|| async { "hello from axum" }))
        .route("/status", get(status))
        .route_service("/v1/chat/completions", llm.clone())
        .nest_service("/llm", llm))
}

async fn status() -> Json<Value> {
    Json(json!({"app": "my-axum-app", "llm": "/llm"}))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let openai = std::env::var("OPENAI_API_KEY").ok().map(|key| {
        let url = std::env::var("OPENAI_BASE_URL")
            .unwrap_or_else(|_| "https://api.openai.com/v1".to_string());
        (url, key)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(openai)?).await?;
    Ok(())
}
