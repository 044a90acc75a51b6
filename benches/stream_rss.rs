//! Streaming throughput and memory of llm-router.
//!
//! ```text
//! cargo bench --bench stream_rss                      # 1 GiB
//! BENCH_BYTES=64MiB cargo bench --bench stream_rss    # quick run (plain byte counts work too)
//! ```
//!
//! This process starts a fast upstream: a hyper server on 127.0.0.1 that answers
//! `POST /v1/chat/completions` with `text/event-stream`, sending SSE
//! `data: {chat.completion.chunk}` events of 64 KiB each as fast as the socket
//! takes them until BENCH_BYTES are out, then a finish event and `data: [DONE]`.
//! It writes a temporary config.toml whose `openai` backend points at that
//! upstream, and starts the proxy as a separate process (the `llm-router`
//! binary built with this bench), so that the proxy's own memory can be read
//! from `/proc/<pid>/status`: `VmHWM` (peak resident set) and `VmRSS`.
//!
//! A client in this process then streams the answer twice, counting bytes and
//! keeping none: directly from the upstream (the baseline), then through the
//! proxy. It prints both throughputs, their ratio, the proxy's RSS when idle
//! and after the transfer and its peak, and a markdown table for the README.
//!
//! It exits non-zero when the proxy's peak RSS exceeds 64 MiB: memory must not
//! grow with the size of a stream. It also fails when a transfer is cut short
//! or does not end with `data: [DONE]`.
//!
//! Run as a test (`cargo test --benches`, no `--bench` argument) it streams
//! 16 MiB only, unless BENCH_BYTES says otherwise. BENCH_STACK (comma-separated
//! layer names, default none) sets the proxy's `[stack] order`.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The requirement: the proxy's peak RSS stays under this, whatever the stream size.
const MAX_PEAK_RSS: u64 = 64 * 1024 * 1024;
/// Size of one SSE event sent by the upstream, framing included.
const EVENT_SIZE: usize = 64 * 1024;
/// Default stream size under `cargo bench`.
const DEFAULT_BENCH_BYTES: u64 = 1 << 30;
/// Default stream size when run as a test.
const DEFAULT_TEST_BYTES: u64 = 16 << 20;
/// How long the proxy may take to print its "listening on" line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const MODEL: &str = "bench";
const DONE: &[u8] = b"data: [DONE]\n\n";

fn main() -> ExitCode {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let bytes = match std::env::var("BENCH_BYTES") {
        Ok(text) => match parse_size(&text) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!(
                    "error: BENCH_BYTES={text:?} is not a size (try 1073741824, 64MiB, 1GiB)"
                );
                return ExitCode::FAILURE;
            }
        },
        Err(_) if bench_mode => DEFAULT_BENCH_BYTES,
        Err(_) => DEFAULT_TEST_BYTES,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(bytes)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Run the benchmark; `Ok(false)` when a requirement is not met.
async fn run(target_bytes: u64) -> Result<bool, BoxError> {
    let stream = SseStream::new(target_bytes);
    let expected = stream.total_len();
    let events = stream.events;

    let upstream = start_upstream(target_bytes).await?;
    let proxy = Proxy::start(upstream)?;
    println!(
        "stream_rss: {} ({expected} bytes: {events} SSE events of {} KiB + finish + [DONE])",
        human(expected),
        EVENT_SIZE / 1024
    );
    println!(
        "upstream: http://{upstream}   proxy: http://{} (pid {})",
        proxy.addr,
        proxy.pid()
    );

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()?;
    let direct_url = format!("http://{upstream}/v1/chat/completions");
    let proxy_url = format!("http://{}/v1/chat/completions", proxy.addr);

    // Let the proxy settle, then read its idle memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = proxy.memory()?;

    let direct = transfer(&client, &direct_url).await?;
    direct.check("direct", expected)?;
    let proxied = transfer(&client, &proxy_url).await?;
    proxied.check("through llm-router", expected)?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = proxy.memory()?;
    drop(proxy);

    let ratio = proxied.mib_per_s() / direct.mib_per_s();
    println!();
    println!(
        "{:<20} {:>14} {:>10} {:>12}",
        "", "bytes", "seconds", "MiB/s"
    );
    for (name, t) in [("direct", &direct), ("through llm-router", &proxied)] {
        println!(
            "{name:<20} {:>14} {:>10.3} {:>12.1}",
            t.bytes,
            t.elapsed.as_secs_f64(),
            t.mib_per_s()
        );
    }
    println!("ratio proxy/direct   {ratio:.3}");
    println!(
        "proxy RSS: idle {} (VmHWM {}), after transfer VmRSS {}, peak VmHWM {} (limit {})",
        mib(idle.rss),
        mib(idle.hwm),
        mib(after.rss),
        mib(after.hwm),
        mib(MAX_PEAK_RSS)
    );

    println!();
    println!(
        "| llm-router streaming {} of SSE | value |",
        human(expected)
    );
    println!("|---|---|");
    println!(
        "| direct from upstream | {:.0} MiB/s ({:.2} s) |",
        direct.mib_per_s(),
        direct.elapsed.as_secs_f64()
    );
    println!(
        "| through llm-router | {:.0} MiB/s ({:.2} s), {:.0}% of direct |",
        proxied.mib_per_s(),
        proxied.elapsed.as_secs_f64(),
        ratio * 100.0
    );
    println!("| proxy RSS idle | {} |", mib(idle.rss));
    println!("| proxy peak RSS (VmHWM) | {} |", mib(after.hwm));
    println!("| proxy RSS after the stream | {} |", mib(after.rss));
    println!();

    if after.hwm > MAX_PEAK_RSS {
        println!(
            "FAIL: the proxy's peak RSS {} exceeds {}",
            mib(after.hwm),
            mib(MAX_PEAK_RSS)
        );
        return Ok(false);
    }
    println!(
        "ok: peak RSS {} <= {} after streaming {}",
        mib(after.hwm),
        mib(MAX_PEAK_RSS),
        human(expected)
    );
    Ok(true)
}

// ---------------------------------------------------------------------------
// The fast upstream.

/// An OpenAI-style SSE answer: `events` events of exactly [`EVENT_SIZE`]
/// bytes (the same refcounted buffer each time), a finish event, `[DONE]`.
struct SseStream {
    event: Bytes,
    events: u64,
    sent: u64,
    tail: Vec<Bytes>,
}

impl SseStream {
    fn new(target_bytes: u64) -> Self {
        let head = format!(
            r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"{MODEL}","choices":[{{"index":0,"delta":{{"content":""#
        );
        let foot = "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
        let filler = EVENT_SIZE - head.len() - foot.len();
        let words = b"lorem ipsum dolor sit amet ";
        let mut event = Vec::with_capacity(EVENT_SIZE);
        event.extend_from_slice(head.as_bytes());
        event.extend(words.iter().cycle().take(filler));
        event.extend_from_slice(foot.as_bytes());
        assert_eq!(event.len(), EVENT_SIZE);
        let finish = format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
        );
        SseStream {
            event: Bytes::from(event),
            events: target_bytes.div_ceil(EVENT_SIZE as u64),
            sent: 0,
            // Popped from the back.
            tail: vec![Bytes::from_static(DONE), Bytes::from(finish)],
        }
    }

    fn total_len(&self) -> u64 {
        self.events * EVENT_SIZE as u64 + self.tail.iter().map(|b| b.len() as u64).sum::<u64>()
    }
}

impl Body for SseStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent < this.events {
            this.sent += 1;
            return Poll::Ready(Some(Ok(Frame::data(this.event.clone()))));
        }
        Poll::Ready(this.tail.pop().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.events && self.tail.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown to the client on purpose: a real model streams chunked.
        SizeHint::default()
    }
}

enum UpstreamBody {
    Sse(SseStream),
    Full(Full<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            UpstreamBody::Sse(s) => Pin::new(s).poll_frame(cx),
            UpstreamBody::Full(f) => Pin::new(f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Sse(s) => s.is_end_stream(),
            UpstreamBody::Full(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Sse(s) => s.size_hint(),
            UpstreamBody::Full(f) => f.size_hint(),
        }
    }
}

async fn upstream_answer(
    req: Request<Incoming>,
    target_bytes: u64,
) -> Result<Response<UpstreamBody>, Infallible> {
    let is_chat = req.method() == http::Method::POST && req.uri().path() == "/v1/chat/completions";
    // Read the (small) request body before answering, as a real server does.
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let streamed = body
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        == Some(true);
    let response = if is_chat && streamed {
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(UpstreamBody::Sse(SseStream::new(target_bytes)))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(UpstreamBody::Full(Full::new(Bytes::from_static(
                br#"{"error":{"message":"the bench upstream only streams chat completions","type":"invalid_request_error","code":null}}"#,
            ))))
    };
    Ok(response.expect("static response parts"))
}

async fn start_upstream(target_bytes: u64) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| upstream_answer(req, target_bytes));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// The proxy process.

/// The running proxy; killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Result<Proxy, BoxError> {
        let dir = std::env::temp_dir().join(format!("llm-router-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config.toml");
        let order = std::env::var("BENCH_STACK")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut file = std::fs::File::create(&config)?;
        write!(
            file,
            r#"# Written by benches/stream_rss.rs.
[server]
listen = "127.0.0.1:0"

[stack]
order = [{order}]

[[backends]]
name = "fast"
provider = "openai"
base_url = "http://{upstream}/v1"
timeout = "60s"
idle_timeout = "60s"

[[models]]
name = "{MODEL}"
targets = [{{ backend = "fast" }}]
"#
        )?;
        drop(file);

        let port = free_port()?;
        let exe = env!("CARGO_BIN_EXE_llm-router");
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {exe}: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };

        // Forward the proxy's log lines; report the "listening on" one.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                eprintln!("proxy: {line}");
            }
        });
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(_) => Ok(proxy),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("the proxy did not listen within {STARTUP_TIMEOUT:?}").into())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = proxy.child.wait()?;
                Err(format!("the proxy exited before listening ({status})").into())
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn memory(&self) -> Result<Memory, BoxError> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| -> Result<u64, BoxError> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .ok_or_else(|| format!("no {name} in {path}").into())
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------
// The client.

struct Transfer {
    bytes: u64,
    elapsed: Duration,
    status: u16,
    content_type: String,
    ends_with_done: bool,
}

impl Transfer {
    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64()
    }

    fn check(&self, name: &str, expected: u64) -> Result<(), BoxError> {
        if self.status != 200 {
            return Err(format!("{name}: status {}", self.status).into());
        }
        if !self.content_type.starts_with("text/event-stream") {
            return Err(format!("{name}: content-type {:?}", self.content_type).into());
        }
        if self.bytes != expected || !self.ends_with_done {
            return Err(format!(
                "{name}: got {} of {expected} bytes (ends with [DONE]: {})",
                self.bytes, self.ends_with_done
            )
            .into());
        }
        Ok(())
    }
}

/// Stream one answer, counting its bytes and keeping only the last few.
async fn transfer(client: &reqwest::Client, url: &str) -> Result<Transfer, BoxError> {
    let body = serde_json::json!({
        "model": MODEL,
        "stream": true,
        "messages": [{"role": "user", "content": "stream as fast as you can"}],
    });
    let start = Instant::now();
    let mut response = client.post(url).json(&body).send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut bytes = 0u64;
    let mut tail: Vec<u8> = Vec::with_capacity(2 * DONE.len());
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        if chunk.len() >= DONE.len() {
            tail.clear();
            tail.extend_from_slice(&chunk[chunk.len() - DONE.len()..]);
        } else {
            tail.extend_from_slice(&chunk);
            let cut = tail.len().saturating_sub(DONE.len());
            tail.drain(..cut);
        }
    }
    let elapsed = start.elapsed();
    Ok(Transfer {
        bytes,
        elapsed,
        status,
        content_type,
        ends_with_done: tail == DONE,
    })
}

// ---------------------------------------------------------------------------
// Sizes.

/// `1073741824`, `64MiB`, `64M`, `1GiB`, `1.5GiB`, `500MB` (KB/MB/GB decimal,
/// K/M/G and KiB/MiB/GiB binary).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn human(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    if bytes as f64 >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB)
    } else {
        mib(bytes)
    }
}
