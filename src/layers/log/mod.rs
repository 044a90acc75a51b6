//! `log`: one JSON line per request in `dir` (`[log]`).
//!
//! **Files.** A session — the life of one built stack — writes
//! `router_YYYYMMDD_HHMMSS_<session>.jsonl` (UTC time of its first record,
//! eight hex digits of session id): one record per request that reached
//! the stack. Records of errors — a status ≥ 400, an error of the stack, an
//! answer body that broke, or an error event in a stream — also go to
//! `router_YYYYMMDD_HHMMSS_<session>_errors.jsonl`, without their bodies
//! (each body is written once). Panics (once [`install_panic_hook`] has
//! installed its hook with a handle on the layer: the binary does with its
//! app's) and unhandled errors (500 `internal_error`) are appended to
//! `<dir>/exceptions.json`, one JSON object a line. Files are created 0600
//! (unix), and rotated past `max_file_bytes`: renamed `<name>.1` (the
//! previous `.1` becoming `.2`…, [`LogPolicy::ROTATED_FILES_KEPT`] kept).
//!
//! **A record** holds: `time` (RFC 3339, UTC), `request_id`, `client` (the
//! key, masked `sk-12345...cdef` — or the identity `auth` verified when it is
//! not a key, such as a JWT's `sub`), `client_ip`, `method`, `path`,
//! `endpoint`, `model` (asked for), `stream`, `backend` and `target_model`
//! (of the last attempt), `attempts` and `upstream` (each attempt: backend,
//! model, status, error kind, ms), `status`, `latency_ms` (to the answer's
//! last byte), `ttfb_ms` (to its head; for a stream, its first content),
//! `overhead_ms` (the proxy's own time), `tokens_in`/`tokens_out` (from the
//! upstream's usage), `cost_usd` (what the request cost in USD: the answer's,
//! from that usage and the price of the model that answered — see
//! [`UsageSlot`] for a stream cut short — plus what each attempt that did not
//! answer reported, at its own model's price; null when no part of it is
//! known), `complete` (the answer was sent to its end), `error`
//! (`{code, message}` or null) and, with `requests`/`responses` on,
//! `request` (the request as the client sent it) and `response` (the
//! JSON answer; for a stream, its text reassembled from the deltas, with
//! tool calls and finish reason). Each body is capped at `max_body_bytes`
//! (default 64 KiB; a larger one is kept as its cut text, with
//! `request_truncated`/`response_truncated: true`); the request is cut on
//! the request path, before the record is queued. A request `auth` did not
//! let in (`auth` inside this layer, see [`LogLayerBuilder::auth_inside`])
//! is logged without its body.
//!
//! **Nothing secret on disk.** With `mask_api_keys` (the default), keys are
//! masked wherever they appear in a record, message text included; with a
//! scrubber (the `pii` layer's, passed in when `[pii]` is on), PII is
//! scrubbed too (see *Redaction* below).
//!
//! **Off the request path.** The layer gathers cheap raw parts (clones of
//! `Arc`s, the request's bytes up to the cap, a few strings) and hands the
//! record to a dedicated writer thread through a channel bounded in records
//! (`queue`) and in bytes (`queue_bytes`, each record counted by its size
//! until the record is freed) with `try_send`: a full channel drops the
//! record and counts it (`llm_router_log_records_dropped_total`, with one
//! warning per episode), it never makes a request wait.
//! Rendering, redaction and I/O happen in the writer. A streamed answer is
//! never delayed: the tap keeps a handle to each frame's bytes and reads them
//! after the frame has gone on. A [`LogFlush`] from
//! [`LogLayer::flush_handle`] waits for the layer's writer (the server waits
//! on those of the stacks it built on shutdown).
//!
//! **Needs:** nothing (reads [`LlmRequest`], the `x-request-id` header, the
//! client's address in the [`RequestContext`], [`ClientIdentity`] when
//! present). **Provides:** the request's
//! [`RequestContext`] (when none is there) with its attempts recorded, which
//! [`IdentityTap`] (placed inside `auth` by the stack) tells the verified
//! identity.
//!
//! # Redaction
//!
//! Every string of a record that a client or upstream could have put there,
//! object keys of the bodies included, is redacted in the writer: with `mask_api_keys`, the exact keys the proxy knows (client and
//! admin keys, re-read after a reload; backend keys) and anything shaped like
//! a key (`sk-…`, `sk-ant-…`, `AKIA…`, `ghp_…`, `AIza…`, `xox?-…`, JWTs, the
//! token after `Bearer`, the value after `api_key=`/`password:`…) become
//! `sk-12345...cdef`; then PII is scrubbed when a scrubber is set.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::layers::log::{LogLayer, LogPolicy};
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = std::env::temp_dir().join(format!("llm-router-log-doc-{}", std::process::id()));
//! let layer = LogLayer::new(LogPolicy::new(&dir));
//! let service = layer.layer(service_fn(|_req: Request<ProxyBody>| async {
//!     Ok::<_, llm_router::ProxyError>(Response::new(ProxyBody::full("hi")))
//! }));
//! let answer = service.oneshot(Request::new(ProxyBody::empty())).await.unwrap();
//! answer.into_body().collect().await.unwrap();
//! assert!(layer.flush_handle().wait(std::time::Duration::from_secs(5)).await);
//! let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
//! let line = std::fs::read_to_string(&file).unwrap();
//! assert!(line.contains("\"status\":200"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # }
//! ```

mod capture;
mod copier;
mod flush;
mod panic;
#[cfg(test)]
mod proptests;
mod record;
mod redact;
mod terminal;
mod writer;

pub use crate::config::LogPolicy;
pub use flush::LogFlush;
pub use panic::install_panic_hook;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::Request;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body::{Observe, ProxyBody};
use crate::config::{ApiKeySetting, Config, LayerName};
use crate::error::ProxyError;
use crate::layers::auth::KeyStore;
use crate::layers::metrics::Metrics;
use crate::layers::pii::Scrubber;
use crate::layers::rate_limit::ClientIdentity;
use crate::request::{LlmRequest, RequestContext, REQUEST_ID_HEADER};
use crate::service::{layer_service, LlmFuture, StackService};
use crate::usage::UsageSlot;

use capture::{Done, Logged, Tap};
use record::{Client, LoggedRequest, Record, StackError};
use redact::Redactor;
use writer::{Progress, Starter};

/// What the layer and its services share.
pub(crate) struct Shared {
    policy: LogPolicy,
    tx: mpsc::Sender<Box<Record>>,
    starter: Mutex<Option<Starter>>,
    /// Records the writer is done with, freed here (see `send`).
    garbage: Mutex<std::sync::mpsc::Receiver<Box<Record>>>,
    started: AtomicBool,
    progress: Arc<Progress>,
    dropped: AtomicU64,
    /// Bytes of the records handed to the writer and not freed yet (see
    /// [`Record::weight`]); bounded by `queue_bytes`.
    queued: AtomicUsize,
    /// Records are being dropped (warned once per episode).
    dropping: AtomicBool,
    /// `auth` runs inside this layer: a request whose identity it never
    /// noted was not authenticated, and is logged without its body.
    auth_inside: bool,
    metrics: Option<Arc<Metrics>>,
    /// The layer's `exceptions.json`, reached by the panic hook through
    /// [`LogLayer::flush_handle`].
    exceptions: Arc<panic::Target>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Hand a record to the writer (starting it first), or drop and count it
    /// when the queue is full (in records or in bytes).
    fn send(&self, mut record: Box<Record>) {
        if !self.started.load(Ordering::Acquire) {
            self.start();
        }
        let weight = record.weight();
        record.weight = weight;
        let budget = self.policy.queue_bytes;
        // Free records the writer is done with, here rather than on the
        // writer thread: with glibc's malloc, one thread freeing another's
        // memory all the time makes the two fight over that arena's lock
        // (measured: +25 µs a request). A few at a time, never waiting;
        // all that are there when they stand in the way of this one.
        if let Ok(garbage) = self.garbage.try_lock() {
            let mut freed = 0usize;
            let mut n = 0;
            while n < 32
                || self.queued.load(Ordering::Relaxed).saturating_sub(freed) + weight > budget
            {
                match garbage.try_recv() {
                    Ok(done) => freed += done.weight,
                    Err(_) => break,
                }
                n += 1;
            }
            self.queued.fetch_sub(freed, Ordering::Relaxed);
        }
        let admitted = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                q.checked_add(weight).filter(|total| *total <= budget)
            });
        let Ok(before) = admitted else {
            self.dropped_one(budget);
            return;
        };
        match self.tx.try_send(record) {
            Ok(()) => {
                self.progress.sent();
                // The episode ends once the queue has room again.
                if before <= budget / 2 && self.dropping.load(Ordering::Relaxed) {
                    self.dropping.store(false, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.queued.fetch_sub(weight, Ordering::Relaxed);
                self.dropped_one(budget);
            }
        }
    }

    /// Count a dropped record; warn at the first of an episode.
    fn dropped_one(&self, budget: usize) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.log_records_dropped(1);
        }
        if !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                queue = self.policy.queue,
                queue_bytes = budget,
                "the request log's writer is behind: records are dropped (counted in \
                 llm_router_log_records_dropped_total) until it catches up"
            );
        }
    }

    fn start(&self) {
        let mut starter = self.starter.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = starter.take() {
            writer::start(s, self.progress.clone());
        }
        self.started.store(true, Ordering::Release);
    }
}

/// Builds a [`LogLayer`] with what redaction and counting need.
#[derive(Debug)]
pub struct LogLayerBuilder {
    policy: LogPolicy,
    scrubber: Option<Scrubber>,
    keys: Option<Arc<KeyStore>>,
    secrets: Vec<String>,
    metrics: Option<Arc<Metrics>>,
    auth_inside: bool,
}

impl LogLayerBuilder {
    /// `auth` runs inside this layer (the stack puts [`IdentityTap`] just
    /// inside it): a request `auth` did not let in is logged without its
    /// body.
    pub fn auth_inside(mut self, yes: bool) -> Self {
        self.auth_inside = yes;
        self
    }

    /// Scrub PII from records with this scrubber (the `pii` layer's).
    pub fn scrubber(mut self, scrubber: Option<Scrubber>) -> Self {
        self.scrubber = scrubber;
        self
    }

    /// Mask the keys of this store exactly (they are re-read after a reload).
    pub fn keys(mut self, keys: Option<Arc<KeyStore>>) -> Self {
        self.keys = keys;
        self
    }

    /// Mask this secret (a backend's key) exactly.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Count dropped records in these metrics.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The layer. Panics reach its `dir` once [`install_panic_hook`] has run
    /// with a handle that includes it (see the [module docs](self)).
    pub fn build(self) -> LogLayer {
        let redactor = Redactor::new(
            self.policy.mask_api_keys,
            self.scrubber,
            self.keys,
            self.secrets,
        );
        let (tx, rx) = mpsc::channel(self.policy.queue.max(1));
        let (garbage_tx, garbage) = std::sync::mpsc::channel();
        let exceptions = panic::Target::new(
            &self.policy.dir,
            redactor.clone(),
            self.policy.max_file_bytes,
        );
        LogLayer {
            shared: Arc::new(Shared {
                starter: Mutex::new(Some(Starter {
                    rx,
                    dir: self.policy.dir.clone(),
                    max_file_bytes: self.policy.max_file_bytes,
                    redactor,
                    metrics: self.metrics.clone(),
                    garbage: garbage_tx,
                })),
                garbage: Mutex::new(garbage),
                policy: self.policy,
                tx,
                started: AtomicBool::new(false),
                progress: Arc::new(Progress::default()),
                dropped: AtomicU64::new(0),
                queued: AtomicUsize::new(0),
                dropping: AtomicBool::new(false),
                auth_inside: self.auth_inside,
                metrics: self.metrics,
                exceptions,
            }),
        }
    }
}

/// Applies [`LogService`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct LogLayer {
    shared: Arc<Shared>,
}

impl LogLayer {
    /// A layer with `policy`, no PII scrubbing and no exact keys.
    pub fn new(policy: LogPolicy) -> Self {
        Self::builder(policy).build()
    }

    /// A builder, to add a scrubber, keys and metrics.
    pub fn builder(policy: LogPolicy) -> LogLayerBuilder {
        LogLayerBuilder {
            policy,
            scrubber: None,
            keys: None,
            secrets: Vec::new(),
            metrics: None,
            auth_inside: false,
        }
    }

    /// The layer of a config's `[log]` (see [`Config::log_policy`]), with
    /// the `pii` layer's scrubber when `[pii]` is on (or `pii` is in the
    /// order), the keys of `auth` (`keys`) and the backends' keys to mask
    /// exactly, and dropped records counted in `metrics`.
    pub fn from_config(
        config: &Config,
        keys: Option<Arc<KeyStore>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let pii_on = config.pii.is_some() || config.stack.contains(&LayerName::Pii);
        // The scrubber `PiiLayer::new` makes, built here so that `log` needs
        // no `pii` layer (a build may have `log` without `pii`).
        let scrubber = pii_on.then(|| {
            let policy = config.pii.clone().unwrap_or_default();
            Scrubber::new(&policy.detect, policy.action)
        });
        let position = |name| config.stack.iter().position(|l| *l == name);
        let auth_inside = matches!(
            (position(LayerName::Log), position(LayerName::Auth)),
            (Some(log), Some(auth)) if log < auth
        );
        let mut builder = Self::builder(config.log_policy())
            .scrubber(scrubber)
            .keys(keys)
            .metrics(metrics)
            .auth_inside(auth_inside);
        for b in &config.backends {
            if let Some(ApiKeySetting::Key(key)) = &b.api_key {
                builder = builder.secret(key.clone());
            }
        }
        builder.build()
    }

    /// The policy.
    pub fn policy(&self) -> &LogPolicy {
        &self.shared.policy
    }

    /// A handle to wait until the records this layer handed to its writer
    /// are on disk (see [`LogFlush`]); it waits for no other layer's writer
    /// and does not keep this layer alive.
    pub fn flush_handle(&self) -> LogFlush {
        LogFlush::of(&self.shared.progress, &self.shared.exceptions)
    }

    /// Records dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for LogLayer {
    type Service = LogService<S>;

    fn layer(&self, inner: S) -> LogService<S> {
        LogService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The log service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct LogService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Notes [`ClientIdentity`] in the request's [`RequestContext`]; the stack
/// puts it just inside `auth` when `log` runs outside it.
#[derive(Clone, Debug)]
pub struct IdentityTap<S> {
    inner: S,
}

layer_service!(IdentityTap<S>, passing);

impl<S> IdentityTap<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        IdentityTap { inner }
    }

    /// The `call` of [`IdentityTap`]'s `Service` impl.
    fn respond<B>(&mut self, req: Request<B>) -> S::Future
    where
        S: Service<Request<B>>,
    {
        if let (Some(context), Some(id)) = (
            req.extensions().get::<RequestContext>(),
            req.extensions().get::<ClientIdentity>(),
        ) {
            context.note_identity(&id.0);
        }
        self.inner.call(req)
    }
}

layer_service!(LogService<S>, stack);

impl<S: StackService> LogService<S> {
    /// The `call` of [`LogService`]'s `Service` impl.
    fn respond(&mut self, mut req: Request<ProxyBody>) -> LlmFuture {
        let started = Instant::now();
        let time = SystemTime::now();
        req.extensions_mut().insert(crate::usage::UsageWanted);
        let shared = self.shared.clone();
        let policy = &shared.policy;
        let ext = req.extensions();
        // A request refused before its body was read has no body to log.
        let llm = ext.get::<LlmRequest>();
        let body = llm.filter(|l| l.is_body_read());
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let presented = crate::upstream::provider::client_key(req.headers()).map(str::to_string);
        let identity = ext.get::<ClientIdentity>().map(|c| c.0.clone());
        let mut record = Box::new(Record {
            time,
            request_id,
            client: None,
            client_ip: ext
                .get::<RequestContext>()
                .and_then(RequestContext::client_addr)
                .map(|a| a.ip()),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            endpoint: llm.map(|l| l.endpoint().as_str()),
            model: body.map(|l| capped(l.model(), policy.max_body_bytes)),
            stream: llm.is_some_and(LlmRequest::is_stream),
            attempts: Vec::new(),
            status: 0,
            latency: Default::default(),
            ttfb: Default::default(),
            overhead: Default::default(),
            usage: None,
            cost: None,
            stack_error: None,
            body_error: None,
            complete: false,
            // Cut here, so the queue never holds a body longer than the cap.
            request: body
                .filter(|_| policy.requests)
                .map(|l| LoggedRequest::of(l, policy.max_body_bytes)),
            log_response: policy.responses,
            response: None,
            max_body: policy.max_body_bytes,
            weight: 0,
        });
        let context = RequestContext::of(req.extensions_mut()).clone();
        context.record_attempts();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let head = started.elapsed();
            record.ttfb = head;
            record.overhead = head.saturating_sub(context.waited());
            record.attempts = context.attempts();
            for a in &mut record.attempts {
                // A target that sends the client's model name upstream.
                if a.model.len() > shared.policy.max_body_bytes {
                    a.model = capped(&a.model, shared.policy.max_body_bytes);
                }
            }
            let identity = identity.or_else(|| context.identity().map(str::to_string));
            if identity.is_none() && shared.auth_inside {
                // Not authenticated: logged without its body.
                record.request = None;
            }
            record.client = match (identity, presented) {
                // A key verified by `auth`, or one presented to a stack without it.
                (Some(id), Some(key)) if id == key => Some(Client::Key(key)),
                (Some(id), _) => Some(Client::Identity(id)),
                (None, Some(key)) => Some(Client::Key(key)),
                (None, None) => None,
            };
            let response = match result {
                Err(e) => {
                    record.status = e.status().as_u16();
                    record.latency = head;
                    // No answer: what the attempts that failed reported.
                    record.cost = crate::classify::request_cost(&record.attempts, None);
                    record.stack_error = Some(StackError {
                        code: e.code(),
                        message: capped(&e.to_string(), shared.policy.max_body_bytes),
                        internal: matches!(e, ProxyError::Internal(_)),
                    });
                    shared.send(record);
                    return Err(e);
                }
                Ok(r) => r,
            };
            record.status = response.status().as_u16();
            // Error bodies are always kept (for the `error` field); others
            // only when `responses` is on.
            let tap = (shared.policy.responses || record.status >= 400).then(|| {
                let content_type = response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                Tap::for_content_type(content_type, shared.policy.max_body_bytes)
            });
            let slot = response.extensions().get::<UsageSlot>().cloned();
            let done = Done {
                shared: shared.clone(),
                record,
                started,
                slot,
            };
            let watch = crate::upstream::translate::body::is_event_stream(response.headers())
                .then(terminal::TerminalWatch::default);
            Ok(response
                .map(|inner| ProxyBody::new(Observe::new(inner, Logged { tap, watch, done }))))
        })
    }
}

/// A client's string (a model name, an error message quoting one), cut to
/// `cap` bytes like a body: a record holds no string longer than the cap.
/// At a word boundary, or, for one word longer than the cap, at a
/// character boundary.
fn capped(text: &str, cap: usize) -> String {
    match capture::cut_at_boundary(text, cap) {
        "" if !text.is_empty() => {
            let mut end = cap.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.get(..end).unwrap_or_default().to_string()
        }
        cut => cut.to_string(),
    }
}

#[cfg(test)]
mod tests;
