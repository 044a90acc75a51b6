//! The entry service: the proxy's HTTP endpoints.
//!
//! [`App`] answers the operational endpoints itself (`/`, `/health`,
//! `/v1/models`), and for the client API (`POST /v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`, `/openai/chat/completions`, and the
//! Anthropic Messages API at `/v1/messages` = `/anthropic/chat/completions`) reads
//! the body once (bounded by `body_limit`; a body that sends nothing for
//! `body_read_timeout` gets 408), parses it into an
//! [`LlmRequest`](crate::request::LlmRequest), and calls the configured stack. With `auth` in the
//! configured order, the client's key is checked from the headers first: a
//! refused request's body is never read (it goes into the stack as an
//! [`LlmRequest::unread`](crate::request::LlmRequest::unread), so `log` and `metrics` see it and `auth` answers
//! its 401; the connection is closed when the body was not over), and an
//! accepted one carries the result to `auth`
//! ([`Checked`](crate::layers::auth::Checked)). An error from the stack is
//! rendered once, here, in the client's format. Every answer carries
//! `x-request-id` (the client's own, or a new one) and
//! `x-llm-router-overhead-ms`.
//!
//! The stack and everything built from the config sit behind one
//! `RwLock<Arc<…>>`, read once per request: a config reload
//! ([`App::reload`], see [`crate::server::ConfigSource`]) swaps in a new one for new
//! requests while requests and streams in flight finish on the old one.
//!
//! ```
//! use std::path::Path;
//! use http::Request;
//! use tower::ServiceExt;
//! use llm_router::{app::App, config::Config, ProxyBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::parse(
//!     "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n",
//!     Path::new("config.toml"), &|_| None).unwrap();
//! let app = App::from_config(&config).unwrap();
//! let req = Request::post("/v1/chat/completions")
//!     .body(ProxyBody::full(r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#))
//!     .unwrap();
//! let answer = app.oneshot(req).await.unwrap();
//! assert_eq!(answer.status(), 200);
//! assert!(answer.headers().contains_key("x-request-id"));
//! # }
//! ```

mod client;
mod handler;
mod operations;
mod reload;

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::{Either, FutureExt};
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::{Layer, Service, ServiceExt};

use crate::body::{BoxError, ProxyBody};
use crate::config::{Config, ConfigError};
use crate::layers::auth::{KeyStore, KeysFileError, ReloadReport};
use crate::layers::cors::CorsLayer;
use crate::reload::ConfigSource;
use crate::request::RequestContext;
use crate::routing::RouteTable;
use crate::stack::{Built, LayerName, LlmService, RouterState};
use crate::timing::{as_millis_header, OVERHEAD_HEADER_NAME};
use handler::Handler;

pub use crate::request::{REQUEST_ID, REQUEST_ID_HEADER};

/// Headers every answer carries: no MIME sniffing, no framing, no
/// referrer (contract, "Coming from other routers").
const SECURITY_HEADERS: [(http::HeaderName, HeaderValue); 3] = [
    (
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    ),
    (
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// One configuration in force: the stack built from it and what the
/// endpoints read. A reload builds a new one and swaps it in; requests in
/// flight keep the one they started with.
struct State {
    service: LlmService,
    routes: Arc<RouteTable>,
    router: RouterState,
    cors: Option<CorsLayer>,
    body_limit: u64,
    /// `[server] body_read_timeout`: the longest gap in a request body.
    body_read_timeout: Duration,
    /// The keys to check a client API request's headers with before its
    /// body is read: `auth`'s, when `auth` is in the configured order.
    auth_first: Option<Arc<KeyStore>>,
    /// Whether `auth` wraps the whole request (it is above the split point),
    /// so a refused request goes through the stack (`log`, `metrics`) to it;
    /// otherwise the app answers the 401 itself.
    auth_in_outer: bool,
    /// The config it was built from (none for a stack composed in code).
    config: Option<Arc<Config>>,
    /// The layers named in the order, outermost first (empty in code).
    stack: Vec<LayerName>,
    loaded_at: SystemTime,
    /// The writers of the stack's `log` layers.
    #[cfg(feature = "observability")]
    log_flush: crate::layers::log::LogFlush,
}

impl State {
    fn new(built: Built, body_limit: u64, config: Option<Arc<Config>>) -> Self {
        let auth_named = config
            .as_ref()
            .is_some_and(|c| c.stack.contains(&LayerName::Auth));
        State {
            service: built.service,
            routes: built.routes,
            auth_first: built.state.auth.clone().filter(|_| auth_named),
            auth_in_outer: built.outer.contains(&LayerName::Auth),
            router: built.state,
            cors: built.cors,
            #[cfg(feature = "observability")]
            log_flush: built.log_flush,
            body_limit,
            body_read_timeout: config.as_ref().map_or(
                crate::config::ServerConfig::DEFAULT_BODY_READ_TIMEOUT,
                |c| c.server.body_read_timeout,
            ),
            stack: config.as_ref().map(|c| c.stack.clone()).unwrap_or_default(),
            config,
            loaded_at: SystemTime::now(),
        }
    }
}

/// What outlives a reload.
struct Shared {
    current: RwLock<Arc<State>>,
    created: u64,
    started: Instant,
    started_at: SystemTime,
    id_prefix: u64,
    next_id: AtomicU64,
    /// Where a reload reads the config from. Held for the whole of a
    /// reload, so reloads run one at a time.
    source: Mutex<Option<ConfigSource>>,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
    last_reload_error: Mutex<Option<String>>,
    /// The backends' reported models (`/v1/models`); survives reloads.
    catalog: Arc<crate::catalog::Catalog>,
    /// The log writers of every stack built (a stack a reload replaced
    /// included, while its writer has records to write).
    #[cfg(feature = "observability")]
    log_flush: crate::layers::log::LogFlush,
}

/// The proxy's HTTP endpoints. See the [module docs](crate::app).
#[derive(Clone)]
pub struct App {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("body_limit", &self.current().body_limit)
            .field("reloads", &self.shared.reloads.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl App {
    /// The default `body_limit` (10 MiB) of [`App::from_service`].
    pub const DEFAULT_BODY_LIMIT: u64 = 10 * 1024 * 1024;

    /// An app around an already built stack.
    pub fn new(built: Built, body_limit: u64) -> Self {
        App::with_state(State::new(built, body_limit, None), None)
    }

    fn with_state(state: State, source: Option<ConfigSource>) -> Self {
        let now = SystemTime::now();
        #[cfg(feature = "observability")]
        let log_flush = state.log_flush.clone();
        App {
            shared: Arc::new(Shared {
                current: RwLock::new(Arc::new(state)),
                created: unix_secs(now),
                started: Instant::now(),
                started_at: now,
                id_prefix: RandomState::new().build_hasher().finish(),
                next_id: AtomicU64::new(0),
                source: Mutex::new(source),
                reloads: AtomicU64::new(0),
                failed_reloads: AtomicU64::new(0),
                last_reload_error: Mutex::new(None),
                catalog: Arc::new(crate::catalog::Catalog::new()),
                #[cfg(feature = "observability")]
                log_flush,
            }),
        }
    }

    /// An app around a stack composed in code (see `examples/custom_stack.rs`):
    /// `service` serves the models of `routes`, with the default body limit.
    /// Every llm-router layer, the upstream and any tower middleware whose
    /// error is [`ProxyError`](crate::error::ProxyError) fit; the app reads
    /// and parses the body, puts the [`LlmRequest`](crate::request::LlmRequest)
    /// into the extensions, and renders errors.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http::Request;
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use llm_router::upstream::provider::mock::Mock;
    /// use llm_router::routing::{Backend, ModelRoute, RouteLayer, RouteTable, Target};
    /// use llm_router::upstream::Upstream;
    /// use llm_router::{App, ProxyBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
    /// let routes = Arc::new(RouteTable::new(vec![ModelRoute::new("echo", vec![Target::new(local, None)])]));
    /// let stack = ServiceBuilder::new()
    ///     .layer(RouteLayer::new(routes.clone()))
    ///     .service(Upstream::new());
    /// let app = App::from_service(stack, routes);
    /// let req = Request::post("/v1/chat/completions")
    ///     .body(ProxyBody::full(r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#))
    ///     .unwrap();
    /// assert_eq!(app.oneshot(req).await.unwrap().status(), 200);
    /// # }
    /// ```
    pub fn from_service<S>(service: S, routes: Arc<RouteTable>) -> Self
    where
        S: crate::stack::StackService + Clone + Send + Sync + 'static,
    {
        App::new(
            Built::new(crate::stack::LlmService::new(service), routes),
            App::DEFAULT_BODY_LIMIT,
        )
    }

    /// Build the stack of `config` and wrap it. [`App::reload`] reads the
    /// config again from the same file (see [`App::set_config_source`]).
    /// The `budget` layer's spend file is read here, and saved from here on
    /// (see [`Budgets::open`](crate::layers::budget::Budgets::open)).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let built = crate::stack::build(config)?;
        // The budgets' spend, as saved (a reload keeps the budgets).
        built.state.budgets.open();
        let state = State::new(
            built,
            config.server.body_limit,
            Some(Arc::new(config.clone())),
        );
        Ok(App::with_state(state, Some(ConfigSource::of(config))))
    }

    /// Where [`App::reload`] reads the config from (the server sets the
    /// file it started with and the command line's `--host`/`--port`).
    pub fn set_config_source(&self, source: ConfigSource) {
        *self.source() = Some(source);
    }

    fn source(&self) -> MutexGuard<'_, Option<ConfigSource>> {
        self.shared.source.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state in force now (read once per request).
    fn current(&self) -> Arc<State> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle on the request log writers of every stack this app has
    /// built, those a reload will build included (clones share one set),
    /// to wait until their records are on disk:
    /// [`Server::run`](crate::Server::run) waits on it at shutdown. A
    /// stack a reload replaced is waited for while its writer has records
    /// to write; a writer that is done is forgotten.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llm_router::{App, Config};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = std::env::temp_dir().join(format!("llm-router-app-flush-doc-{}", std::process::id()));
    /// let text = "[stack]\norder = [\"log\"]\n\n[log]\ndir = \"logs\"\n\n\
    ///             [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
    ///             [[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";
    /// let config = Config::parse(text, &dir.join("config.toml"), &|_| None).unwrap();
    /// let app = App::from_config(&config).unwrap();
    /// assert!(app.log_flush().wait(Duration::from_secs(5)).await);
    /// # }
    /// ```
    #[cfg(feature = "observability")]
    pub fn log_flush(&self) -> crate::layers::log::LogFlush {
        self.shared.log_flush.clone()
    }

    /// Write the `budget` layer's spend file now (at shutdown, once the
    /// requests in flight have settled), off the async threads.
    pub(crate) async fn save_spend(&self) {
        let budgets = self.current().router.budgets.clone();
        if budgets.spend_file().is_none() || budgets.ledger().is_empty() {
            return;
        }
        match tokio::task::spawn_blocking(move || budgets.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the budget spend file could not be written at shutdown")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the budget spend file was not written at shutdown")
            }
        }
    }

    /// Successful config reloads since start.
    pub fn reloads(&self) -> u64 {
        self.shared.reloads.load(Ordering::Relaxed)
    }

    fn request_id(&self, headers: &http::HeaderMap) -> HeaderValue {
        if let Some(id) = headers.get(REQUEST_ID_HEADER) {
            if !id.is_empty() && id.len() <= 200 {
                return id.clone();
            }
        }
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        // 32 hex digits: the process's random prefix, then a counter.
        let word = (u128::from(self.shared.id_prefix) << 64) | u128::from(n);
        let digits = b"0123456789abcdef";
        let mut id = [0u8; 32];
        for (pair, byte) in id.chunks_exact_mut(2).zip(word.to_be_bytes()) {
            pair.copy_from_slice(&[
                digits[usize::from(byte >> 4)],
                digits[usize::from(byte & 0xf)],
            ]);
        }
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
    }

    /// Start the background task that asks the backends of pattern and `"*"`
    /// routes for their models (the model catalog), on the
    /// current Tokio runtime; it follows config reloads and stops when the
    /// returned handle is dropped. [`Server::run`](crate::Server::run)
    /// starts it; without it `/v1/models` lists the configured names only.
    pub fn start_model_catalog(&self) -> crate::catalog::CatalogTask {
        let shared = Arc::downgrade(&self.shared);
        self.shared.catalog.spawn(move || {
            let shared = shared.upgrade()?;
            let state = shared
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            Some(state.routes.clone())
        })
    }

    /// Re-read the keys file of `auth` (`POST /auth/reload-keys`, and SIGHUP
    /// when the config itself cannot be reloaded); `None` when `auth` is off.
    pub fn reload_keys(&self) -> Option<Result<ReloadReport, KeysFileError>> {
        let state = self.current();
        let keys = state.router.auth.as_ref()?;
        let result = keys.reload();
        if let Err(e) = &result {
            tracing::warn!(error = %e, "reloading the auth keys failed; the keys in force are unchanged");
        }
        Some(result)
    }
}

impl<B> Service<Request<B>> for App
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = tokio::time::Instant::now();
        let handler = Handler {
            app: self.clone(),
            state: self.current(),
        };
        let id = self.request_id(req.headers());
        req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        // The server's, when it put one there with the client's address.
        let context = RequestContext::of(req.extensions_mut()).clone();
        // Combinators rather than an `async` block, so the future is the
        // endpoint's own plus these few fields (an `async` block would keep
        // the request a second time).
        let answer = match handler.state.cors.clone() {
            // CORS wraps the endpoints: a preflight is answered there.
            Some(cors) => {
                let endpoints = tower::service_fn(move |req| {
                    handler.clone().handle(req).map(Ok::<_, Infallible>)
                });
                Either::Left(cors.layer(endpoints).oneshot(req).map(|r| match r {
                    Ok(response) => response,
                    Err(never) => match never {},
                }))
            }
            None => Either::Right(handler.handle(req)),
        };
        let fut = answer.map(move |mut response| {
            let own = started.elapsed().saturating_sub(context.waited());
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID_HEADER, id);
            headers.insert(OVERHEAD_HEADER_NAME, as_millis_header(own));
            // Security headers on every answer (an upstream's own win).
            for (name, value) in SECURITY_HEADERS {
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            Ok(response)
        });
        Box::pin(fut)
    }
}
