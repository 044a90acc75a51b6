//! A streaming load client for `benches/load.sh`: many concurrent streamed
//! answers, or the time to first content of streamed answers.
//!
//! ```sh
//! # N concurrent streams (one connection each); prints "<completed> <peak open>"
//! cargo run --release --example stream_client -- streams http://127.0.0.1:8080/v1/chat/completions 10000
//! # N streams one after another at RATE a second on one kept-alive connection,
//! # against a `STAMP_CONTENT=1` fast_upstream; prints "<p50 µs> <p99 µs> <measured>"
//! cargo run --release --example stream_client -- ttfc http://127.0.0.1:8080/v1/chat/completions 1000 200
//! ```
//!
//! A stream is complete when its status is 200 and it ends with
//! `data: [DONE]` (or Anthropic's `message_stop`). The time to first content
//! is the wall-clock time at which this client holds the first content event
//! minus the time written in it by `examples/fast_upstream.rs`
//! (`STAMP_CONTENT=1`): what the upstream's write, the proxy in between and
//! this client's read add to the first token, not the time to first byte
//! (a proxy may hold the preamble until the first content event).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use llm_router::BoxError;

const STREAM: &str = r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"Summarize the quarterly report in three short points."}]}"#;

/// Connections being opened at once (the listener's backlog is finite).
const CONNECTING: usize = 512;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let uri: Uri = arg(1).parse()?;
    let n: usize = arg(2).parse().unwrap_or(1000);
    let model = std::env::var("MODEL").unwrap_or_else(|_| "bench".into());
    let body = Bytes::from(STREAM.replace("\"bench\"", &format!("{model:?}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match arg(0) {
        "streams" => rt.block_on(streams(uri, body, n)),
        "ttfc" => {
            let rate: u64 = arg(3).parse().unwrap_or(200);
            rt.block_on(ttfc(uri, body, n, rate.max(1)))
        }
        _ => Err("usage: stream_client streams|ttfc URL N [RATE]".into()),
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(uri: &Uri) -> Result<Sender, BoxError> {
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(uri: &Uri, body: &Bytes) -> Result<Request<Full<Bytes>>, BoxError> {
    let authority = uri.authority().ok_or("no authority")?.as_str();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Ok(Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-client-benchmark-key-0001")
        .body(Full::new(body.clone()))?)
}

/// What a stream brought: whether it completed, and the first content
/// event's age (ns) when this client held it.
struct Outcome {
    complete: bool,
    first_content_ns: Option<i128>,
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// One streamed answer on `sender`, read to its end.
async fn one_stream(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<Outcome, BoxError> {
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let ok = response.status() == http::StatusCode::OK;
    let mut body = response.into_body();
    // The last bytes seen, so a marker split across frames is found.
    let mut tail: Vec<u8> = Vec::new();
    let mut first_content_ns = None;
    let mut complete = false;
    while let Some(frame) = body.frame().await {
        let at = now_ns();
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        tail.extend_from_slice(&data);
        if first_content_ns.is_none() {
            if let Some(stamp) = find_stamp(&tail) {
                first_content_ns = Some(at - stamp);
            }
        }
        if memchr::memmem::find(&tail, b"data: [DONE]").is_some()
            || memchr::memmem::find(&tail, b"\"message_stop\"").is_some()
        {
            complete = true;
        }
        let keep = tail.len().saturating_sub(64);
        tail.drain(..keep);
    }
    Ok(Outcome {
        complete: ok && complete,
        first_content_ns,
    })
}

/// The `t=<ns>;` stamp of fast_upstream's first content event.
fn find_stamp(bytes: &[u8]) -> Option<i128> {
    let at = memchr::memmem::find(bytes, b"t=")?;
    let rest = bytes.get(at + 2..)?;
    let end = memchr::memchr(b';', rest)?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

async fn streams(uri: Uri, body: Bytes, n: usize) -> Result<(), BoxError> {
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (uri, body) = (uri.clone(), body.clone());
        let (connecting, open, peak) = (connecting.clone(), open.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = {
                let _permit = connecting.acquire().await;
                connect(&uri).await?
            };
            let now = open.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let outcome = one_stream(&mut sender, request(&uri, &body)?).await;
            open.fetch_sub(1, Ordering::Relaxed);
            Ok::<bool, BoxError>(outcome?.complete)
        }));
    }
    let mut completed = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(true)) => completed += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("stream_client: first failure: {e}");
    }
    println!("{completed} {}", peak.load(Ordering::Relaxed));
    Ok(())
}

async fn ttfc(uri: Uri, body: Bytes, n: usize, rate: u64) -> Result<(), BoxError> {
    let mut sender = connect(&uri).await?;
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A few streams first, not measured: connections made, caches warm.
    let warmup = (n / 10).max(10);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        tick.tick().await;
        let outcome = match one_stream(&mut sender, request(&uri, &body)?).await {
            Ok(outcome) => outcome,
            Err(_) => {
                sender = connect(&uri).await?;
                continue;
            }
        };
        if let (true, Some(ns)) = (i >= warmup, outcome.first_content_ns) {
            samples.push(ns);
        }
    }
    if samples.is_empty() {
        return Err(
            "no stamped content event seen (is the upstream run with STAMP_CONTENT=1?)".into(),
        );
    }
    samples.sort_unstable();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or(0) as f64 / 1e3
    };
    println!("{:.0} {:.0} {}", pick(0.5), pick(0.99), samples.len());
    Ok(())
}
