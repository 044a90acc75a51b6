//! Per-request cost of each policy layer — `auth`, `headers`, `transform`,
//! `pii`, `log`, `cors` — in-process, on a typical 2 KB chat request.
//!
//! Drives the whole app (`App`: body read and parse, the stack, the `mock`
//! provider answering locally, the answer collected) with no network, once
//! with `[stack] order = []` and once per layer with `order = ["<layer>"]`,
//! and prints the time per request of each and the difference. Every request
//! carries a client key and an `Origin`, so `auth` and `cors` do their work
//! (and the others ignore them). `log` writes to a temporary directory with
//! request and response bodies on; its writer thread renders and writes the
//! records off the request path (on another core when there is one), and its
//! throughput is printed too.
//!
//! ```sh
//! cargo bench --bench layers_policy     # BENCH_REQUESTS=50000 to change the count
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use llm_router::config::Config;
use llm_router::{App, ProxyBody};
use tower::ServiceExt;

const KEY: &str = "sk-bench-client-key-0123456789";

/// A chat request of about 2 KB: a system prompt and a short conversation,
/// with an e-mail address and a phone number for `pii` to find.
fn body() -> String {
    let body = serde_json::json!({
        "model": "echo",
        "temperature": 0.2,
        "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a careful assistant for a support team. Answer briefly, cite the ticket number when there is one, never invent order details, and ask a clarifying question when the request is ambiguous. Keep a friendly, professional tone and use plain language; avoid jargon unless the customer used it first. When a customer shares personal details, use them only for the request at hand and never repeat them back in full; refer to orders by their number and to people by their first name."},
            {"role": "user", "content": "Hello, I ordered a pair of running shoes last week (order 88213-A) and the tracking page has said 'label created' for five days now. Could you check what is going on? My e-mail is jane.doe@example.com if you need to reach me."},
            {"role": "assistant", "content": "Thanks for reaching out! I looked up order 88213-A: the parcel was handed to the carrier yesterday evening, so the tracking page should update within the next 24 hours. Would you like me to send you the carrier's direct tracking link as well?"},
            {"role": "user", "content": "Yes please, and could you also tell me whether I can still change the delivery address? I will be travelling from Thursday, so it would be better to deliver it to my office instead. You can call me at +44 20 7946 0958 during office hours if that is easier."},
            {"role": "assistant", "content": "Here is the direct link: the carrier lists it as in transit to the regional depot. Address changes are possible until the parcel reaches the depot, which is usually the day before delivery. What is the office address you would like to use?"},
            {"role": "user", "content": "It is the second floor of the Riverside building, 14 Mill Lane. Please make sure the courier knows to ask at the reception desk, because the lifts need a badge. Also, could you summarize the whole conversation in three short bullet points so I can forward it to my colleague?"},
        ],
    })
    .to_string();
    assert!((1900..2200).contains(&body.len()), "{} bytes", body.len());
    body
}

const HEADERS: &str = r#"[headers]
drop = ["x-forwarded-for", "^x-debug-.*", ".*-token$"]
add = { "user-agent" = "llm-router" }
force = { "x-api-version" = "2024-01" }
"#;

const TRANSFORMS: &str = r#"[[transforms]]
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

fn app(order: &str, extra: &str, dir: &Path) -> App {
    let text = format!(
        "[stack]\norder = {order}\n\n{extra}\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n"
    );
    let config = Config::parse(&text, &dir.join("bench.toml"), &|_| None).expect("bench config");
    App::from_config(&config).expect("bench stack")
}

/// CPU time of the calling thread, in ns (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu() -> Option<u64> {
    cpu_of(Path::new("/proc/thread-self/schedstat"))
}

fn cpu_of(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of the log writer threads, in ns.
fn writer_cpu() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "llm-router-log")
        })
        .filter_map(|t| cpu_of(&t.path().join("schedstat")))
        .sum()
}

/// `n` requests: wall µs per request, and this thread's CPU µs per request.
async fn run(app: &App, body: &str, n: usize) -> (f64, f64) {
    let start = Instant::now();
    let cpu = thread_cpu();
    for _ in 0..n {
        let req = Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {KEY}"))
            .header("origin", "https://app.example")
            .header("content-type", "application/json")
            .body(ProxyBody::full(body.to_string()))
            .expect("request");
        let answer = app.clone().oneshot(req).await.expect("answer");
        assert_eq!(answer.status(), 200);
        answer.into_body().collect().await.expect("body");
    }
    let wall = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let cpu = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e3 / n as f64,
        _ => f64::NAN,
    };
    (wall, cpu)
}

fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            20_000
        } else {
            500
        });
    let dir: PathBuf =
        std::env::temp_dir().join(format!("llm-router-bench-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let body = body();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The log queue holds a whole round, so no record is dropped while measuring.
    let log = format!("[log]\ndir = \"logs\"\nqueue = {}\n", n + n / 10 + 16);
    let auth = format!("[auth]\nkeys = [\"{KEY}\"]\n");
    let stacks: Vec<(&str, App)> = vec![
        ("order = []", app("[]", "", &dir)),
        ("auth", app("[\"auth\"]", &auth, &dir)),
        ("headers", app("[\"headers\"]", HEADERS, &dir)),
        (
            "transform (3 rules)",
            app("[\"transform\"]", TRANSFORMS, &dir),
        ),
        ("pii (redact)", app("[\"pii\"]", "[pii]\n", &dir)),
        ("log (bodies on)", app("[\"log\"]", &log, &dir)),
        (
            "cors",
            app("[\"cors\"]", "[cors]\nallow_origins = [\"*\"]\n", &dir),
        ),
    ];
    // BENCH_ONLY=log: the bare stack and the stacks whose name starts so.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let stacks: Vec<(&str, App)> = stacks
        .into_iter()
        .enumerate()
        .filter(|(i, (name, _))| *i == 0 || name.starts_with(only.as_str()))
        .map(|(_, s)| s)
        .collect();
    runtime.block_on(async {
        // The request log writers of every stack.
        let logs = llm_router::layers::log::LogFlush::default();
        for (_, app) in &stacks {
            run(app, &body, n / 10 + 1).await; // warm up
            logs.include(&app.log_flush());
        }
        logs.wait(Duration::from_secs(60)).await;
        println!(
            "{n} requests each of {} bytes, µs per request, best of 3 (wall clock; CPU time of the request thread):",
            body.len()
        );
        let (mut base_wall, mut base_cpu) = (0.0, 0.0);
        for (name, app) in &stacks {
            let (mut wall, mut cpu, mut writer) = (f64::MAX, f64::MAX, f64::MAX);
            for _ in 0..3 {
                let before = writer_cpu();
                let (w, c) = run(app, &body, n).await;
                // Let the log writer finish before the next round.
                app.log_flush().wait(Duration::from_secs(300)).await;
                wall = wall.min(w);
                cpu = cpu.min(c);
                writer = writer.min((writer_cpu() - before) as f64 / 1e3 / n as f64);
            }
            if base_wall == 0.0 {
                (base_wall, base_cpu) = (wall, cpu);
            }
            println!(
                "  {name:<22} wall {wall:>7.2} (+{:>5.2})   cpu {cpu:>7.2} (+{:>5.2})",
                wall - base_wall,
                cpu - base_cpu
            );
            if name.starts_with("log") {
                println!("    + the log writer thread: {writer:.2} µs of CPU per record, off the request path");
            }
        }
    });
    let size: u64 = std::fs::read_dir(dir.join("logs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let records = if stacks.iter().any(|(name, _)| name.starts_with("log")) {
        (n / 10 + 1) + 3 * n
    } else {
        1
    };
    println!(
        "log files: {size} bytes for {records} records ({} bytes a record)",
        size / records as u64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
