//! Shared harness for the end-to-end tests: a scriptable mock upstream (a real
//! hyper server on 127.0.0.1:0), the real proxy started in-process from a TOML
//! string, and small client-side helpers (SSE reader, error-shape checks).
//!
//! Everything is observable through explicit signals ([`MockUpstream::wait_for`],
//! [`MockUpstream::release`]) so tests never sleep "for luck"; timeouts are only
//! safety bounds.

#![allow(dead_code)]

pub mod binary;
pub mod config;
pub mod log_records;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

/// The safety bound used when awaiting a signal: generous, never expected to elapse.
pub const BOUND: Duration = Duration::from_secs(10);

/// Await `fut`, failing the test with `what` if it takes longer than [`BOUND`].
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {BOUND:?} waiting for {what}"),
    }
}

/// A response body as JSON (bounded; panics with the body when it is not JSON).
pub async fn json_of(response: reqwest::Response) -> Value {
    let bytes = bounded("the answer body", response.bytes())
        .await
        .expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

// ---------------------------------------------------------------------------
// Mock upstream

/// One request as the mock upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Recorded {
    /// The body parsed as JSON (panics if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "upstream body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `model` field of the JSON body, if any.
    pub fn model(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the mock upstream does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A 200 OpenAI `chat.completion` whose `model` echoes the request's and
    /// whose content is `"from <upstream name>"`.
    Chat,
    /// A fixed status and JSON body.
    Json(StatusCode, Value),
    /// A 200 `text/event-stream` of `count` chat chunks (see [`sse_event`]),
    /// one every `interval` (the first at once), then `data: [DONE]`. With
    /// `hold_before = Some(k)`, event `k` is not sent until the test calls
    /// [`MockUpstream::release`]. With `cut_after = Some(k)`, the body fails
    /// after `k` events (hyper aborts the connection: a cut stream).
    Sse {
        /// Number of content events.
        count: usize,
        /// Gap between events.
        interval: Duration,
        /// Hold event `k` until released.
        hold_before: Option<usize>,
        /// Break the connection after this many events.
        cut_after: Option<usize>,
    },
    /// Never answer (the response head never comes).
    Hang,
    /// A fixed status, extra headers (e.g. `retry-after`) and JSON body.
    JsonWith(StatusCode, Vec<(&'static str, String)>, Value),
    /// A 200 `text/event-stream` body played from a script (see [`Step`]);
    /// the body ends cleanly after the last step. Each [`Step::Send`] counts
    /// in [`Stats::events_sent`].
    Script(Vec<Step>),
    /// Close the connection without any answer (the request was read; no
    /// response head is ever written).
    Close,
}

/// One step of a [`Reply::Script`] stream.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes as they are (use [`data`] for one `data:` event).
    Send(String),
    /// Wait this long before the next step.
    Wait(Duration),
    /// Wait until the test calls [`MockUpstream::release`].
    Hold,
    /// Break the connection (hyper aborts the body: a cut stream).
    Cut,
    /// Send nothing more, ever, but keep the connection open.
    Stall,
    /// Wait until the gate is opened (it stays open, for every stream).
    Gate(Gate),
}

/// A gate for [`Step::Gate`]: closed until [`Gate::open`], then open for good.
#[derive(Clone, Debug)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(watch::Sender::new(false)))
    }
}

impl Gate {
    /// Let every stream waiting at (or coming to) this gate go on.
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

/// Counters the mock upstream keeps; observed through a `watch` channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections_opened: usize,
    /// Connections whose serving task ended (closed by the peer or by us).
    pub connections_closed: usize,
    /// Requests received (recorded).
    pub requests: usize,
    /// SSE events written into response bodies (all streams), `[DONE]` excluded.
    pub events_sent: usize,
    /// Streams that sent every event and `[DONE]`.
    pub streams_completed: usize,
    /// Streams whose body was dropped by hyper before they finished (the
    /// connection or stream was closed by the proxy).
    pub streams_aborted: usize,
    /// Model-list requests answered (see [`MockUpstream::set_model_list`];
    /// not in `requests`).
    pub model_lists: usize,
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Shared {
    name: String,
    handler: Handler,
    requests: Mutex<Vec<Recorded>>,
    arrivals: Mutex<Vec<std::time::Instant>>,
    stats: watch::Sender<Stats>,
    gate: Notify,
    /// The answer to the proxy's background model-list requests.
    model_list: Mutex<Reply>,
    model_list_requests: Mutex<Vec<Recorded>>,
}

/// A scriptable OpenAI-compatible upstream on 127.0.0.1:0.
#[derive(Clone)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockUpstream {
    /// Start an upstream that answers every request with `reply`.
    pub async fn start(name: &str, reply: Reply) -> MockUpstream {
        Self::with_handler(name, move |_| reply.clone()).await
    }

    /// Start an upstream that answers its first request with `first` and
    /// every later one with [`Reply::Chat`] (a failure a retry cures).
    pub async fn failing_once(name: &str, first: Reply) -> MockUpstream {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        Self::with_handler(name, move |_| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                first.clone()
            } else {
                Reply::Chat
            }
        })
        .await
    }

    /// Start an upstream that decides per request (path, headers, body).
    pub async fn with_handler(
        name: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock upstream address");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            handler: Arc::new(handler),
            requests: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            stats: watch::Sender::new(Stats::default()),
            gate: Notify::new(),
            model_list: Mutex::new(Reply::Json(
                StatusCode::OK,
                json!({"object": "list", "data": []}),
            )),
            model_list_requests: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept_shared.clone();
                shared.stats.send_modify(|s| s.connections_opened += 1);
                tokio::spawn(async move {
                    let svc_shared = shared.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let shared = svc_shared.clone();
                        async move { handle(shared, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    shared.stats.send_modify(|s| s.connections_closed += 1);
                });
            }
        });
        MockUpstream { addr, shared }
    }

    /// `http://127.0.0.1:PORT/v1` — what a backend's `base_url` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The only request received so far (panics unless exactly one).
    pub fn only_request(&self) -> Recorded {
        let mut all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one upstream request");
        all.remove(0)
    }

    /// When each request arrived (in order), as seen by the mock.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.shared.arrivals.lock().unwrap().clone()
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        *self.shared.stats.borrow()
    }

    /// Wait (bounded) until the counters satisfy `pred`; returns them.
    pub async fn wait_for(&self, what: &str, pred: impl FnMut(&Stats) -> bool) -> Stats {
        let mut rx = self.shared.stats.subscribe();
        let stats = bounded(what, rx.wait_for(pred))
            .await
            .expect("stats channel");
        *stats
    }

    /// How to answer the proxy's model-list requests (`GET .../models`,
    /// `GET /api/tags`, which the proxy sends in the background for pattern
    /// and `*` routes): an empty OpenAI list unless set. They are kept apart
    /// ([`MockUpstream::model_list_requests`], [`Stats::model_lists`]): they
    /// are not in [`MockUpstream::requests`] nor counted as requests, and the
    /// handler never sees them.
    pub fn set_model_list(&self, reply: Reply) {
        *self.shared.model_list.lock().unwrap() = reply;
    }

    /// The model-list requests received so far.
    pub fn model_list_requests(&self) -> Vec<Recorded> {
        self.shared.model_list_requests.lock().unwrap().clone()
    }

    /// Let a stream held by `hold_before` go on.
    pub fn release(&self) {
        self.shared.gate.notify_one();
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let is_model_list = recorded.method == Method::GET
        && ["/models", "/api/tags"].iter().any(|end| {
            let path = recorded.path.split('?').next().unwrap_or_default();
            path.ends_with(end)
        });
    if is_model_list {
        let reply = shared.model_list.lock().unwrap().clone();
        shared.model_list_requests.lock().unwrap().push(recorded);
        shared.stats.send_modify(|s| s.model_lists += 1);
        return Ok(match reply {
            Reply::Json(status, value) => json_reply(status, &value),
            Reply::JsonWith(status, headers, value) => {
                let mut r = json_reply(status, &value);
                for (name, v) in headers {
                    r.headers_mut().insert(name, v.parse().unwrap());
                }
                r
            }
            other => panic!("a model list is answered with Reply::Json or JsonWith, not {other:?}"),
        });
    }
    let reply = (shared.handler)(&recorded);
    let model = recorded.model();
    shared
        .arrivals
        .lock()
        .unwrap()
        .push(std::time::Instant::now());
    shared.requests.lock().unwrap().push(recorded);
    shared.stats.send_modify(|s| s.requests += 1);
    Ok(match reply {
        Reply::Chat => json_reply(
            StatusCode::OK,
            &json!({
                "id": "chatcmpl-upstream",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": format!("from {}", shared.name)},
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }),
        ),
        Reply::Json(status, value) => json_reply(status, &value),
        Reply::Hang => std::future::pending::<Response<MockBody>>().await,
        Reply::Sse {
            count,
            interval,
            hold_before,
            cut_after,
        } => {
            let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(1);
            tokio::spawn(stream_events(
                shared.clone(),
                tx,
                model,
                count,
                interval,
                hold_before,
                cut_after,
            ));
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(MockBody::Channel(rx))
                .unwrap()
        }
        Reply::JsonWith(status, headers, value) => {
            let mut response = json_reply(status, &value);
            for (name, v) in headers {
                response
                    .headers_mut()
                    .insert(name, v.parse().expect("header value"));
            }
            response
        }
        Reply::Script(steps) => {
            let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(1);
            tokio::spawn(play_script(shared.clone(), tx, steps));
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(MockBody::Channel(rx))
                .unwrap()
        }
        Reply::Close => return Err(std::io::Error::other("mock upstream closes the connection")),
    })
}

/// Play a [`Reply::Script`] into the body channel; like [`stream_events`], it
/// notices at once when hyper drops the body.
async fn play_script(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
    steps: Vec<Step>,
) {
    let aborted = || shared.stats.send_modify(|s| s.streams_aborted += 1);
    for step in steps {
        match step {
            Step::Send(text) => {
                if tx.send(Ok(Bytes::from(text))).await.is_err() {
                    return aborted();
                }
                shared.stats.send_modify(|s| s.events_sent += 1);
            }
            Step::Wait(d) => tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = tx.closed() => return aborted(),
            },
            Step::Hold => tokio::select! {
                () = shared.gate.notified() => {}
                () = tx.closed() => return aborted(),
            },
            Step::Cut => {
                let _ = tx.send(Err("mock upstream cuts the stream".into())).await;
                return aborted();
            }
            Step::Stall => {
                tx.closed().await;
                return aborted();
            }
            Step::Gate(gate) => {
                let mut rx = gate.0.subscribe();
                tokio::select! {
                    _ = rx.wait_for(|open| *open) => {}
                    () = tx.closed() => return aborted(),
                }
            }
        }
    }
    let _ = tx.reserve().await;
    shared.stats.send_modify(|s| s.streams_completed += 1);
}

/// Write the events into the body channel; notice at once when hyper drops
/// the body (the peer closed the connection).
async fn stream_events(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
    model: String,
    count: usize,
    interval: Duration,
    hold_before: Option<usize>,
    cut_after: Option<usize>,
) {
    let aborted = || shared.stats.send_modify(|s| s.streams_aborted += 1);
    for i in 0..count {
        if i > 0 {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = tx.closed() => return aborted(),
            }
        }
        if hold_before == Some(i) {
            tokio::select! {
                () = shared.gate.notified() => {}
                () = tx.closed() => return aborted(),
            }
        }
        if cut_after == Some(i) {
            let _ = tx.send(Err("mock upstream cuts the stream".into())).await;
            return aborted();
        }
        if tx
            .send(Ok(Bytes::from(sse_event(&model, i))))
            .await
            .is_err()
        {
            return aborted();
        }
        shared.stats.send_modify(|s| s.events_sent += 1);
    }
    if tx
        .send(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
        .await
        .is_err()
    {
        return aborted();
    }
    // Wait until hyper has taken the last frame, then report completion.
    let _ = tx.reserve().await;
    shared.stats.send_modify(|s| s.streams_completed += 1);
}

/// SSE event `i` of [`Reply::Sse`], exactly as sent (`data: {...}\n\n`).
pub fn sse_event(model: &str, i: usize) -> String {
    let chunk = json!({
        "id": "chatcmpl-stream",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}],
    });
    format!("data: {chunk}\n\n")
}

/// The whole body of a [`Reply::Sse`] stream of `count` events.
pub fn sse_body(model: &str, count: usize) -> String {
    let mut out: String = (0..count).map(|i| sse_event(model, i)).collect();
    out.push_str("data: [DONE]\n\n");
    out
}

fn json_reply(status: StatusCode, value: &Value) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(MockBody::Full(Some(Bytes::from(value.to_string()))))
        .unwrap()
}

/// The mock's response body: one chunk, or whatever the stream task sends.
pub enum MockBody {
    /// One chunk.
    Full(Option<Bytes>),
    /// Frames from a channel; ends when the sender is dropped.
    Channel(mpsc::Receiver<Result<Bytes, BoxError>>),
}

impl http_body::Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then closed).
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

// ---------------------------------------------------------------------------
// The proxy

/// The real server, started in-process on 127.0.0.1:0.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The app's request log writers (see `App::log_flush`).
    log_flush: llm_router::layers::log::LogFlush,
}

impl Proxy {
    /// Start from config text. Without a `[server]` section one listening on
    /// 127.0.0.1:0 is prepended; with one, it must set `listen = "127.0.0.1:0"`.
    pub async fn start(config: &str) -> Proxy {
        let text = if config.contains("[server]") {
            config.to_string()
        } else {
            format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{config}")
        };
        let config = llm_router::config::Config::parse(&text, Path::new("test.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"));
        let server = llm_router::server::Server::bind(&config)
            .await
            .expect("bind the proxy");
        let addr = server.local_addr();
        let log_flush = server.app().log_flush();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            log_flush,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn at(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Start the graceful shutdown (the server's shutdown future resolves).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Wait (bounded) until a TCP connect to the proxy is refused, i.e. the
    /// listener is closed. Polls: the server gives no other signal for it.
    pub async fn wait_until_refusing(&self) {
        bounded("the proxy to refuse new connections", async {
            loop {
                match tokio::net::TcpStream::connect(self.addr).await {
                    Ok(stream) => drop(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                    // Queued in the backlog as the listener closed: try again.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(e) => panic!("unexpected connect error: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Wait (at most `timeout`) until every record handed to the request
    /// log's writers is on disk; whether it got there.
    pub async fn flush_logs(&self, timeout: Duration) -> bool {
        self.log_flush.wait(timeout).await
    }

    /// Whether the server task (`Server::run`) is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Wait (bounded) for the server task to end; returns its result.
    pub async fn join(&mut self) -> std::io::Result<()> {
        let task = self.task.take().expect("server task already joined");
        bounded("the server task to end", task)
            .await
            .expect("server task panicked")
    }
}

impl Proxy {
    /// Like [`Proxy::start`], but the config is read as the file `path`
    /// (relative paths in it, such as `keys_file`, resolve against its
    /// directory) with `env` as the environment.
    pub async fn start_with(
        config: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Proxy {
        let text = if config.contains("[server]") {
            config.to_string()
        } else {
            format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{config}")
        };
        let config = llm_router::config::Config::parse(&text, path, &env)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"));
        let server = llm_router::server::Server::bind(&config)
            .await
            .expect("bind the proxy");
        let addr = server.local_addr();
        let log_flush = server.app().log_flush();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            log_flush,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Client helpers

/// A fresh HTTP/1.1 client (own pool, so tests never share connections);
/// every request, body included, is bounded by [`BOUND`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(BOUND)
        .build()
        .expect("reqwest client")
}

/// A fresh HTTP/2 client by prior knowledge (cleartext), bounded like [`client`].
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(BOUND)
        .http2_prior_knowledge()
        .build()
        .expect("reqwest client")
}

/// A backend section for an OpenAI-compatible upstream.
pub fn openai_backend(name: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nprovider = \"openai\"\nbase_url = \"{base_url}\"\n{extra}\n"
    )
}

/// A model section with one target.
pub fn model(name: &str, backend: &str, target_model: Option<&str>) -> String {
    match target_model {
        Some(m) => format!(
            "[[models]]\nname = \"{name}\"\ntargets = [{{ backend = \"{backend}\", model = \"{m}\" }}]\n\n"
        ),
        None => format!("[[models]]\nname = \"{name}\"\ntargets = [{{ backend = \"{backend}\" }}]\n\n"),
    }
}

/// A minimal chat request body.
pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// A streamed chat request body.
pub fn stream_body(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Assert `v` is an OpenAI error object (`{"error":{"message","type","code"}}`)
/// and return its `code`.
pub fn assert_openai_error(v: &Value) -> String {
    let err = v
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {v}"));
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message missing in {v}"
    );
    assert!(err["type"].is_string(), "error.type missing in {v}");
    assert!(err["code"].is_string(), "error.code missing in {v}");
    err["code"].as_str().unwrap().to_string()
}

/// Reads a `text/event-stream` body event by event.
pub struct SseReader {
    stream: Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl SseReader {
    /// Wrap a response.
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// The next event including its trailing blank line, or `None` at the end
    /// of the body (panics on a body error or a partial event at the end).
    pub async fn next_event(&mut self) -> Option<String> {
        match self.try_next_event().await {
            Ok(event) => event,
            Err(e) => panic!("stream body error: {e}"),
        }
    }

    /// Like [`next_event`](Self::next_event), but a body error is returned.
    pub async fn try_next_event(&mut self) -> Result<Option<String>, reqwest::Error> {
        use futures_util::StreamExt;
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Ok(Some(String::from_utf8(event).expect("event is UTF-8")));
            }
            match bounded("the next SSE chunk", self.stream.next()).await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(e),
                None => {
                    assert!(
                        self.buf.is_empty(),
                        "stream ended inside an event: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Every remaining event, concatenated.
    pub async fn rest(&mut self) -> String {
        let mut out = String::new();
        while let Some(e) = self.next_event().await {
            out.push_str(&e);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Scripted streams and broken upstreams

/// One SSE `data:` event carrying `value` (`data: {json}\n\n`).
pub fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// An OpenAI chat chunk with `content` and an optional `finish_reason`, as
/// one SSE event.
pub fn chunk(model: &str, content: &str, finish_reason: Option<&str>) -> String {
    let delta = if content.is_empty() {
        json!({})
    } else {
        json!({"content": content})
    };
    data(&json!({
        "id": "chatcmpl-script",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }))
}

/// The role-only first chunk most providers send before any content.
pub fn role_chunk(model: &str) -> String {
    data(&json!({
        "id": "chatcmpl-script",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": null,
        }],
    }))
}

/// The usage-only chunk OpenAI sends last when `stream_options.include_usage` is set.
pub fn usage_chunk(model: &str, prompt: u64, completion: u64) -> String {
    data(&json!({
        "id": "chatcmpl-script",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }))
}

/// `data: [DONE]\n\n`.
pub const DONE: &str = "data: [DONE]\n\n";

/// An upstream that accepts TCP connections, reads one request, and resets
/// the connection (RST) without answering.
#[derive(Debug)]
pub struct ResetUpstream {
    addr: SocketAddr,
    resets: watch::Sender<usize>,
}

impl ResetUpstream {
    /// Start on 127.0.0.1:0.
    pub async fn start() -> ResetUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind reset upstream");
        let addr = listener.local_addr().expect("reset upstream address");
        let resets = watch::Sender::new(0usize);
        let counter = resets.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    if read_one_request(&mut stream).await {
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        counter.send_modify(|n| *n += 1);
                    }
                });
            }
        });
        ResetUpstream { addr, resets }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests read and answered with a reset so far.
    pub fn resets(&self) -> usize {
        *self.resets.borrow()
    }

    /// Wait (bounded) until at least `n` requests were reset; returns the count.
    pub async fn wait_for_resets(&self, n: usize) -> usize {
        let mut rx = self.resets.subscribe();
        let count = bounded("the reset upstream's resets", rx.wait_for(|c| *c >= n))
            .await
            .expect("resets channel");
        *count
    }
}

/// Read one HTTP/1.1 request (head, then `content-length` bytes of body);
/// false if the peer went away first.
async fn read_one_request(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Proxy {
    /// Start from a config already built (a LiteLLM import, the environment's
    /// config); it listens on 127.0.0.1:0 whatever its `listen` says.
    pub async fn start_config(mut config: llm_router::config::Config) -> Proxy {
        config.override_listen(Some("127.0.0.1".into()), Some(0));
        let server = llm_router::server::Server::bind(&config)
            .await
            .expect("bind the proxy");
        let addr = server.local_addr();
        let log_flush = server.app().log_flush();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            log_flush,
        }
    }
}
