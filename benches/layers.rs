//! Per-request cost of the resilience layers, in-process.
//!
//! Drives the whole app (`App`: body read and parse, the stack, the `mock`
//! provider answering locally, the answer collected) with no network, once with
//! `[stack] order = []` (the bare route to the upstream service) and once with
//! the resilience layers in their default order, and prints the time per request
//! of each and the difference.
//!
//! ```sh
//! cargo bench --bench layers            # BENCH_REQUESTS=200000 to change the count
//! ```

use std::path::Path;
use std::time::Instant;

use http::Request;
use http_body_util::BodyExt;
use llm_router::config::Config;
use llm_router::{App, ProxyBody};
use tower::ServiceExt;

const BODY: &str = r#"{"model":"echo","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarize the main points of the quarterly report in three short bullet points, please."}],"temperature":0.2}"#;

fn app(order: &str) -> App {
    let text = format!(
        "[stack]\norder = {order}\n\n[rate_limit]\nrequests = 1000000000\nwindow = \"60s\"\n\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n"
    );
    let config = Config::parse(&text, Path::new("bench.toml"), &|_| None).expect("bench config");
    App::from_config(&config).expect("bench stack")
}

async fn run(app: &App, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let req = Request::post("/v1/chat/completions")
            .header("authorization", "Bearer sk-bench-client-key-0001")
            .body(ProxyBody::full(BODY))
            .expect("request");
        let answer = app.clone().oneshot(req).await.expect("answer");
        assert_eq!(answer.status(), 200);
        let _ = answer.into_body().collect().await.expect("body");
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            100_000
        } else {
            2_000
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bare = app("[]");
        let resilient = app(r#"["rate_limit", "failover", "circuit_breaker", "retry"]"#);
        // Warm up both.
        run(&bare, n / 10 + 1).await;
        run(&resilient, n / 10 + 1).await;
        let mut bare_us = f64::MAX;
        let mut resilient_us = f64::MAX;
        for _ in 0..3 {
            bare_us = bare_us.min(run(&bare, n).await);
            resilient_us = resilient_us.min(run(&resilient, n).await);
        }
        println!("requests per run: {n} (best of 3, one core, in-process, mock provider)");
        println!("| stack | µs per request |");
        println!("|---|---|");
        println!("| `order = []` (route + upstream) | {bare_us:.2} |");
        println!("| rate_limit, failover, circuit_breaker, retry | {resilient_us:.2} |");
        println!(
            "| cost of the four layers | {:.2} |",
            resilient_us - bare_us
        );
    });
}
