//! Cost of the `pii` and `transform` layers, in-process.
//!
//! Part one drives the whole app (body read and parse, the stack, the `mock`
//! provider answering locally, the answer collected) with `[stack] order = []`
//! and then with `pii`, `transform` (the contract's three example rules) and
//! both, and prints the time per request of each. Part two measures the pure
//! scrubber on the false-positive corpus (`tests/fixtures/pii_corpus.txt`).
//!
//! ```sh
//! cargo bench --bench policy            # BENCH_REQUESTS=200000 to change the count
//! ```

use std::path::Path;
use std::time::Instant;

use http::Request;
use http_body_util::BodyExt;
use llm_router::config::Config;
use llm_router::layers::pii::{Detector, PiiAction, Scrubber};
use llm_router::{App, ProxyBody};
use tower::ServiceExt;

const BODY: &str = r#"{"model":"echo","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarize the main points of the quarterly report for jane.doe@example.com in three short bullet points, and call me at +44 20 7946 0958."}],"temperature":0.2}"#;

const TRANSFORMS: &str = r#"
[[transforms]]
name = "sanitize_emails"
type = "regex_replace"
pattern = '\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b'
replacement = "[EMAIL]"
flags = "IGNORECASE"

[[transforms]]
name = "remove_system_prompts"
type = "jsonpath_drop"
path = "$.messages[?(@.role=='system')]"

[[transforms]]
name = "add_metadata"
type = "jsonpath_add"
path = "$.metadata"
value = { source = "llm-router" }
"#;

fn app(order: &str, extra: &str) -> App {
    let text = format!(
        "[stack]\norder = {order}\n\n{extra}\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n"
    );
    let config = Config::parse(&text, Path::new("bench.toml"), &|_| None).expect("bench config");
    App::from_config(&config).expect("bench stack")
}

async fn run(app: &App, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let req = Request::post("/v1/chat/completions")
            .body(ProxyBody::full(BODY))
            .expect("request");
        let answer = app.clone().oneshot(req).await.expect("answer");
        assert_eq!(answer.status(), 200);
        answer.into_body().collect().await.expect("body");
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stacks = [
        ("order = []", app("[]", "")),
        ("pii (redact)", app("[\"pii\"]", "[pii]\n")),
        (
            "pii (reversible)",
            app("[\"pii\"]", "[pii]\naction = \"reversible\"\n"),
        ),
        ("transform (3 rules)", app("[\"transform\"]", TRANSFORMS)),
        (
            "pii + transform",
            app("[\"pii\", \"transform\"]", &format!("[pii]\n{TRANSFORMS}")),
        ),
    ];
    rt.block_on(async {
        for (_, app) in &stacks {
            run(app, n / 10 + 1).await; // warm up
        }
        println!("{n} requests each, µs per request (best of 3):");
        let mut base = 0.0;
        for (name, app) in &stacks {
            let mut best = f64::MAX;
            for _ in 0..3 {
                best = best.min(run(app, n).await);
            }
            if base == 0.0 {
                base = best;
            }
            println!("  {name:<22} {best:>8.2}   (+{:.2})", best - base);
        }
    });

    let corpus = include_str!("../tests/fixtures/pii_corpus.txt");
    let scrubber = Scrubber::new(&Detector::ALL, PiiAction::Redact);
    let rounds = 200;
    let start = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for line in corpus.lines() {
            found += scrubber.find(line).len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = corpus.len() * rounds;
    println!(
        "scrubber, all detectors: {:.1} MB/s over the corpus, line by line ({} bytes, {} findings per pass)",
        bytes as f64 / secs / 1e6,
        corpus.len(),
        found / rounds
    );
}
