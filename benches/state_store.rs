//! What sharing the state through Redis costs per request: the whole app
//! (`App`: body read and parse, `rate_limit` + `failover` +
//! `circuit_breaker`, the `mock` provider answering locally) driven
//! in-process by concurrent clients, once with `[state] store = "memory"`
//! and once with `store = "redis"` against a `redis-server` started on a
//! loopback port. The client limit has `requests` and `tokens`, so each
//! request makes one script call that checks both, and each answer's usage
//! is counted in Redis in the background. Prints requests per second and
//! the latency percentiles of each, and what Redis adds.
//!
//! ```sh
//! cargo bench --bench state_store      # BENCH_REQUESTS=50000 BENCH_CLIENTS=16 to change
//! ```
//!
//! Needs `redis-server` on PATH (`apt-get install -y redis-server`).

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use llm_router::config::Config;
use llm_router::{App, ProxyBody};
use tower::ServiceExt;

use redis_server::RedisServer;

const BODY: &str = r#"{"model":"echo","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarize the main points of the quarterly report in three short bullet points, please."}],"temperature":0.2}"#;

fn app(state: &str) -> App {
    let text = format!(
        "[stack]\norder = [\"rate_limit\", \"failover\", \"circuit_breaker\"]\n\n\
         [rate_limit]\nrequests = 1000000000\ntokens = 1000000000000\nwindow = \"60s\"\n\n{state}\n\
         [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
         [[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n"
    );
    let config = Config::parse(&text, Path::new("bench.toml"), &|_| None).expect("bench config");
    App::from_config(&config).expect("bench stack")
}

async fn get(app: &App, path: &str) -> String {
    let req = Request::get(path)
        .body(ProxyBody::empty())
        .expect("request");
    let answer = app.clone().oneshot(req).await.expect("answer");
    let body = answer.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// `clients` concurrent clients send `n` requests in all; the latency of
/// each (µs) and the wall time.
async fn run(app: &App, n: usize, clients: usize) -> (Vec<f64>, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let app = app.clone();
        let count = n / clients;
        tasks.push(tokio::spawn(async move {
            let key = format!("Bearer sk-bench-client-{c:04}-0000");
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let req = Request::post("/v1/chat/completions")
                    .header("authorization", key.as_str())
                    .body(ProxyBody::full(BODY))
                    .expect("request");
                let t = Instant::now();
                let answer = app.clone().oneshot(req).await.expect("answer");
                assert_eq!(answer.status(), 200);
                let _ = answer.into_body().collect().await.expect("body");
                latencies.push(t.elapsed().as_secs_f64() * 1e6);
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let wall = start.elapsed();
    all.sort_by(|a, b| a.total_cmp(b));
    (all, wall)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("BENCH_REQUESTS", if bench { 40_000 } else { 400 });
    let clients = env("BENCH_CLIENTS", 16).max(1);
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let memory = app("");
        let shared = app(&format!(
            "[state]\nstore = \"redis\"\nredis_url = \"{}\"\nprefix = \"bench\"\n",
            redis.url()
        ));
        let started = Instant::now();
        while !get(&shared, "/health")
            .await
            .contains("\"state_store\":\"ok\"")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis store not connected"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let shared = Arc::new(shared);
        // Warm up both.
        run(&memory, n / 10 + clients, clients).await;
        run(&shared, n / 10 + clients, clients).await;
        println!(
            "in-process app, mock provider, 2 tokio workers, redis-server on loopback; \
             best of 3 runs (by wall time) of each"
        );
        // One client: what a request waits for; then concurrent clients:
        // what the replica can serve.
        for (clients, n) in [(1, n / 4), (clients, n)] {
            let mut best: [Option<(Vec<f64>, Duration)>; 2] = [None, None];
            for _ in 0..3 {
                for (i, app) in [&memory, &*shared].into_iter().enumerate() {
                    let result = run(app, n, clients).await;
                    if best[i].as_ref().is_none_or(|b| result.1 < b.1) {
                        best[i] = Some(result);
                    }
                }
            }
            println!();
            println!("{n} requests, {clients} concurrent client(s):");
            println!("| store | requests/s | p50 µs | p99 µs | p99.9 µs |");
            println!("|---|---|---|---|---|");
            let mut rows = Vec::new();
            for (name, result) in ["memory", "redis"].iter().zip(best.iter()) {
                let (lat, wall) = result.as_ref().expect("a run");
                let rps = lat.len() as f64 / wall.as_secs_f64();
                let row = (rps, pct(lat, 0.5), pct(lat, 0.99), pct(lat, 0.999));
                println!(
                    "| {name} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    row.0, row.1, row.2, row.3
                );
                rows.push(row);
            }
            println!(
                "| redis adds | {:+.0}% | {:+.0} | {:+.0} | {:+.0} |",
                (rows[1].0 / rows[0].0 - 1.0) * 100.0,
                rows[1].1 - rows[0].1,
                rows[1].2 - rows[0].2,
                rows[1].3 - rows[0].3
            );
        }
        let health = get(&shared, "/health").await;
        assert!(health.contains("\"state_store\":\"ok\""), "{health}");
    });
}
