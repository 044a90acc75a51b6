//! Build an llm-router stack in code — no config file — and use it.
//!
//! The stack composes llm-router's layers with `tower::ServiceBuilder`, in
//! the order `config.toml` would give them: metrics and a per-client rate
//! limit around the whole request, failover as the split point, then a
//! circuit breaker and retries per target, around the `Upstream` service.
//! The model `gpt-4` goes to an OpenAI-compatible `primary` first and fails
//! over to a local mock backend.
//!
//! ```sh
//! cargo run --example custom_stack            # one request in-process, prints the answer
//! cargo run --example custom_stack -- --serve # then serves it on 127.0.0.1:8080
//! PRIMARY_URL=http://127.0.0.1:8000/v1 cargo run --example custom_stack
//! ```
//!
//! Without `PRIMARY_URL` the primary points at a closed local port: the
//! connection is refused, and failover answers from the mock.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use llm_router::layers::circuit_breaker::{BreakerPolicy, Breakers, CircuitBreakerLayer};
use llm_router::layers::failover::{Cooldowns, FailoverLayer, FailoverPolicy};
use llm_router::layers::metrics::{Metrics, MetricsLayer};
use llm_router::layers::rate_limit::{ClientLimits, KeyBy, RateLimitLayer, RateLimitPolicy};
use llm_router::layers::retry::{RetryLayer, RetryPolicy};
use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
use llm_router::server::{shutdown_signal, Server};
use llm_router::stack::{Built, LlmService, RouterState};
use llm_router::upstream::provider::mock::Mock;
use llm_router::upstream::provider::openai::OpenAi;
use llm_router::upstream::Upstream;
use llm_router::{App, BoxError, ProxyBody};
use tower::{ServiceBuilder, ServiceExt};

/// Where the primary backend is when `PRIMARY_URL` is not set: a closed
/// local port (the discard port), so the example shows a failover.
const UNREACHABLE: &str = "http://127.0.0.1:9/v1";

/// The app: the layered stack over a route table, wrapped in [`App`] (which
/// reads and parses the body, serves `/health`, `/metrics`, `/router/health`
/// and the rest, and renders errors). `primary_url` is the base URL of an
/// OpenAI-compatible API.
pub fn build(primary_url: &str) -> Result<App, BoxError> {
    // Two backends: an OpenAI-compatible one and the built-in mock, which
    // echoes the last user message.
    let primary = Arc::new(
        Backend::builder("primary", Arc::new(OpenAi))
            .base_url(primary_url)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .build()?,
    );
    let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build()?);
    let routes = Arc::new(RouteTable::new(vec![
        // Clients ask for "gpt-4": the primary first, the mock second.
        ModelRoute::new(
            "gpt-4",
            vec![
                Target::new(primary, Some("gpt-4o")).priority(1),
                Target::new(local.clone(), Some("echo-1")).priority(2),
            ],
        ),
        // Any other name goes to the mock, unchanged.
        ModelRoute::new("*", vec![Target::new(local, None)]),
    ]));

    // The layers' shared state: each registry is an `Arc` the layer and the
    // admin endpoints share.
    let metrics = Arc::new(Metrics::new());
    let client_limits = Arc::new(ClientLimits::new(RateLimitPolicy {
        requests: Some(100),
        window: Duration::from_secs(60),
        key: KeyBy::Ip,
        ..Default::default()
    }));
    let cooldowns = Arc::new(Cooldowns::default());
    let breakers = Arc::new(Breakers::new(BreakerPolicy {
        failure_threshold: 3,
        open_for: Duration::from_secs(30),
        half_open_requests: 1,
    }));

    // Outermost first, as in `[stack] order`.
    let service = ServiceBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()).with_routes(routes.clone()))
        .layer(RateLimitLayer::new(client_limits.clone()))
        .layer(FailoverLayer::new(
            routes.clone(),
            FailoverPolicy::default(),
            cooldowns.clone(),
        ))
        .layer(CircuitBreakerLayer::new(breakers.clone()))
        .layer(RetryLayer::new(
            RetryPolicy::default()
                .max_retries(1)
                .initial_delay(Duration::from_millis(100)),
        ))
        .service(Upstream::new());

    // Hand the same state to the app, so `/metrics`, `/router/health` and
    // `/router/rate-limits` show it.
    let mut built = Built::new(LlmService::new(service), routes);
    built.state = RouterState {
        breakers,
        cooldowns,
        client_limits,
        metrics,
        ..RouterState::default()
    };
    Ok(App::new(built, 1024 * 1024))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let primary = std::env::var("PRIMARY_URL").unwrap_or_else(|_| UNREACHABLE.to_string());
    let app = build(&primary)?;

    let request = Request::post("/v1/chat/completions").body(ProxyBody::full(
        r#"{"model":"gpt-4","messages":[{"role":"user","content":"hello from code"}]}"#,
    ))?;
    let answer = app.clone().oneshot(request).await?;
    let status = answer.status();
    let body = answer.into_body().collect().await?.to_bytes();
    println!("{status} {}", String::from_utf8_lossy(&body));

    if std::env::args().any(|a| a == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
        let server = Server::from_parts(listener, app, None, Duration::from_secs(10));
        println!("listening on http://{}", server.local_addr());
        server.run(shutdown_signal()).await?;
    }
    Ok(())
}
