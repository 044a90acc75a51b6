//! Build an llm-router stack in code — no config file — and use it.
//!
//! ```sh
//! cargo run --example custom_stack            # one request in-process, prints the answer
//! cargo run --example custom_stack -- --serve # then serves it on 127.0.0.1:8080
//! ```

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use llm_router::provider::mock::Mock;
use llm_router::routing::{Backend, ModelRoute, RouteLayer, RouteTable, Target};
use llm_router::server::{shutdown_signal, Server};
use llm_router::stack::Built;
use llm_router::upstream::Upstream;
use llm_router::{App, ProxyBody};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), llm_router::BoxError> {
    // A backend answered locally by the mock provider; an OpenAI one would be
    // `Backend::builder("openai", Arc::new(OpenAi)).api_key(key).build()?`.
    let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build()?);
    let routes = Arc::new(RouteTable::new(vec![
        // Clients ask for "gpt-4"; the backend is asked for "echo-1".
        ModelRoute::new("gpt-4", vec![Target::new(local.clone(), Some("echo-1"))]),
        ModelRoute::new("*", vec![Target::new(local, None)]),
    ]));

    // The stack: route to a target, then the upstream edge. Layers from
    // llm_router (and any tower layer) go into this ServiceBuilder.
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes.clone()))
        .service(Upstream::new());

    let app = App::new(
        Built::new(BoxCloneSyncService::new(service), routes),
        1024 * 1024,
    );

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
