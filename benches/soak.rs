//! Soak: mixed, partly hostile traffic against a running proxy for a long
//! time, with the proxy's resident memory sampled every second.
//!
//! ```text
//! bash benches/soak.sh                 # 10 minutes (the README's figures)
//! SOAK_SECS=60 bash benches/soak.sh    # a quick look
//! ```
//!
//! `benches/soak.sh` starts the release proxy and two `fast_upstream`s, then
//! runs this driver with the proxy's pid and address in the environment
//! (`SOAK_PID`, `SOAK_URL`, `SOAK_KEY`). `WORKERS` tasks (default 32) each
//! loop over a weighted mix of:
//!
//! - plain chat completions and streamed ones (with a valid key);
//! - streams the client drops after the first chunk;
//! - a model whose first target always answers 503 (failover to the next);
//! - keyless uploads of 1–8 MiB bodies (answered 401 without being read);
//! - keyless and keyed requests with long, odd model names (control
//!   characters, quotes, `../`), unknown or matched by a pattern route whose
//!   target receives the client's name (per-target state must expire).
//!
//! Every 10 s it reads `/metrics` (its size must stay bounded: no client
//! string becomes a label). At the end it prints the post-warm-up level
//! (the median of the RSS samples of the minute after `WARMUP_SECS`,
//! default 60: under load a single sample swings ±15% with the allocator's
//! cycles), the peak, the end (after the traffic stops and 5 s pass), the
//! counts per kind and status, and exits non-zero when a plain request
//! failed, the proxy died, or the end RSS is more than 10% above the
//! post-warm-up level.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

/// A small xorshift generator: the mix need not be cryptographic, only varied.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Plain,
    Streamed,
    Dropped,
    Failing,
    KeylessUpload,
    OddModel,
}

/// (kind, weight out of 100)
const MIX: [(Kind, u64); 6] = [
    (Kind::Plain, 30),
    (Kind::Streamed, 20),
    (Kind::Dropped, 10),
    (Kind::Failing, 10),
    (Kind::KeylessUpload, 10),
    (Kind::OddModel, 20),
];

fn pick(rng: &mut Rng) -> Kind {
    let mut roll = rng.below(100);
    for (kind, weight) in MIX {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    Kind::Plain
}

#[derive(Default)]
struct Tally {
    /// (kind, status or 0 for a transport error) -> count
    counts: BTreeMap<(Kind, u16), u64>,
    /// Plain or streamed requests that did not succeed.
    failures: u64,
    max_metrics_bytes: usize,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn chat(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Summarize the quarterly report in three short points."}],
    })
    .to_string()
}

fn odd_model(rng: &mut Rng) -> String {
    let len = 64 + rng.below(4096) as usize;
    let alphabet: &[char] = &[
        'a', 'Z', '9', '\n', '\r', '"', '\\', '/', '.', '€', '\u{1b}', ' ',
    ];
    let mut name = String::with_capacity(len + 8);
    if rng.below(2) == 0 {
        name.push_str("wild-");
    } else if rng.below(4) == 0 {
        name.push_str("../../admin/");
    }
    for _ in 0..len {
        name.push(alphabet[rng.below(alphabet.len() as u64) as usize]);
    }
    name
}

async fn one(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    kind: Kind,
    rng: &mut Rng,
    upload: &Bytes,
) -> Result<u16, reqwest::Error> {
    let post = |body: reqwest::Body, keyed: bool| {
        let mut req = client
            .post(format!("{url}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body);
        if keyed {
            req = req.bearer_auth(key);
        }
        req
    };
    match kind {
        Kind::Plain => {
            let r = post(chat("soak", false).into(), true).send().await?;
            let status = r.status().as_u16();
            r.bytes().await?;
            Ok(status)
        }
        Kind::Streamed | Kind::Dropped => {
            let r = post(chat("soak", true).into(), true).send().await?;
            let status = r.status().as_u16();
            let mut body = r.bytes_stream();
            if kind == Kind::Dropped {
                // The first chunk, then hang up: the upstream request must go too.
                body.next().await.transpose()?;
                return Ok(status);
            }
            let mut tail = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                tail.extend_from_slice(&chunk);
                let keep = tail.len().saturating_sub(32);
                tail.drain(..keep);
            }
            let done = String::from_utf8_lossy(&tail).contains("[DONE]");
            Ok(if done { status } else { 599 })
        }
        Kind::Failing => {
            let r = post(chat("flaky", false).into(), true).send().await?;
            let status = r.status().as_u16();
            r.bytes().await?;
            Ok(status)
        }
        Kind::KeylessUpload => {
            let len = (1 + rng.below(8) as usize) << 20;
            let body = upload.slice(..len.min(upload.len()));
            // The proxy may answer 401 and close before the upload is sent:
            // a transport error on this kind is expected, not a failure.
            match post(body.into(), false).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes().await;
                    Ok(status)
                }
                Err(_) => Ok(1),
            }
        }
        Kind::OddModel => {
            let model = odd_model(rng);
            let keyed = rng.below(2) == 0;
            let r = post(chat(&model, rng.below(2) == 0).into(), keyed)
                .send()
                .await?;
            let status = r.status().as_u16();
            r.bytes().await?;
            Ok(status)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (Ok(pid), Ok(url)) = (std::env::var("SOAK_PID"), std::env::var("SOAK_URL")) else {
        // `cargo bench` / `cargo test --benches` without the script: nothing to soak.
        eprintln!("soak: run through benches/soak.sh (SOAK_PID and SOAK_URL are not set)");
        return ExitCode::SUCCESS;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        eprintln!("soak: SOAK_PID is not a pid");
        return ExitCode::FAILURE;
    };
    let key = std::env::var("SOAK_KEY").unwrap_or_default();
    let secs = env_u64("SOAK_SECS", 600);
    let warmup = env_u64("WARMUP_SECS", 60.min(secs / 4));
    let workers = env_u64("WORKERS", 32);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let upload = Bytes::from(vec![b'x'; 8 << 20]);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, url, key, upload, tally, stop) = (
            client.clone(),
            url.clone(),
            key.clone(),
            upload.clone(),
            tally.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
            while !stop.load(Ordering::Relaxed) {
                let kind = pick(&mut rng);
                let status = one(&client, &url, &key, kind, &mut rng, &upload)
                    .await
                    .unwrap_or(0);
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                *t.counts.entry((kind, status)).or_default() += 1;
                if matches!(kind, Kind::Plain | Kind::Streamed | Kind::Failing) && status != 200 {
                    t.failures += 1;
                }
            }
        }));
    }

    let started = Instant::now();
    // The samples of the minute after warm-up: their median is the
    // post-warm-up level (one sample swings ±15% with the allocator's
    // cycles under load).
    let mut warm_samples = Vec::new();
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        n += 1;
        let Some(rss) = rss_kib(pid) else {
            eprintln!("soak: the proxy (pid {pid}) is gone");
            return ExitCode::FAILURE;
        };
        peak = peak.max(rss);
        let at = started.elapsed();
        if at >= Duration::from_secs(warmup) && at < Duration::from_secs(warmup + 60) {
            warm_samples.push(rss);
        }
        if n.is_multiple_of(10) {
            if let Ok(r) = client.get(format!("{url}/metrics")).send().await {
                let size = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                t.max_metrics_bytes = t.max_metrics_bytes.max(size);
            }
            eprintln!(
                "soak: {:>4}s RSS {:.1} MiB (peak {:.1})",
                started.elapsed().as_secs(),
                rss as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let Some(end) = rss_kib(pid) else {
        eprintln!("soak: the proxy (pid {pid}) is gone");
        return ExitCode::FAILURE;
    };
    warm_samples.sort_unstable();
    let warm = warm_samples
        .get(warm_samples.len() / 2)
        .copied()
        .unwrap_or(end);
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    println!("| kind | status | count |\n|---|---|---|");
    for ((kind, status), count) in &t.counts {
        println!("| {kind:?} | {status} | {count} |");
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let ratio = end as f64 / warm.max(1) as f64;
    println!(
        "\nSoak of {secs} s, {workers} workers: RSS after warm-up (median of the minute after {warmup} s) {:.1} MiB, peak {:.1} MiB, end {:.1} MiB ({:+.1}% of post-warm-up); largest /metrics answer {} bytes; failed plain/streamed/failover requests: {}",
        mib(warm),
        mib(peak),
        mib(end),
        (ratio - 1.0) * 100.0,
        t.max_metrics_bytes,
        t.failures
    );
    if t.failures > 0 || ratio > 1.10 {
        eprintln!("soak: FAILED (failures or end RSS more than 10% above the post-warm-up level)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
