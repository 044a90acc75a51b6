//! The entry service: the proxy's HTTP endpoints.
//!
//! [`App`] answers the operational endpoints itself (`/`, `/health`,
//! `/v1/models`), and for the client API (`POST /v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`, `/openai/chat/completions`, and the
//! Anthropic Messages API at `/v1/messages` = `/anthropic/chat/completions`) reads
//! the body once (bounded by `body_limit`; a body that sends nothing for
//! `body_read_timeout` gets 408), parses it into an
//! [`LlmRequest`], and calls the configured stack. With `auth` in the
//! configured order, the client's key is checked from the headers first: a
//! refused request's body is never read (it goes into the stack as an
//! [`LlmRequest::unread`], so `log` and `metrics` see it and `auth` answers
//! its 401; the connection is closed when the body was not over), and an
//! accepted one carries the result to `auth`
//! ([`Checked`]). An error from the stack is
//! rendered once, here, in the client's format. Every answer carries
//! `x-request-id` (the client's own, or a new one) and
//! `x-llm-router-overhead-ms`.
//!
//! The stack and everything built from the config sit behind one
//! `RwLock<Arc<…>>`, read once per request: a config reload
//! ([`App::reload`], see [`reload`](crate::reload)) swaps in a new one for new
//! requests while requests and streams in flight finish on the old one.
//!
//! ```
//! use std::path::Path;
//! use http::Request;
//! use tower::ServiceExt;
//! use llm_router::{app::App, body::ProxyBody, config::Config};
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

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::{Either, FutureExt};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

use crate::body::{BoxError, ProxyBody};
use crate::config::{Config, ConfigError};
use crate::error::{json_response, ProxyError};
use crate::layers::auth::{is_admin_path, Checked, KeyStore, KeysFileError, ReloadReport};
use crate::layers::cors::CorsLayer;
use crate::reload::{ConfigReload, ConfigSource, ReloadError};
use crate::request::{read_body_within, ClientFormat, Endpoint, LlmRequest};
use crate::routing::RouteTable;
use crate::stack::{Built, LayerName, LlmService, RouterState};
use crate::timing::{as_millis_header, Waited, OVERHEAD_HEADER_NAME};

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

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

/// [`REQUEST_ID`] as a header name (no parse or allocation where it is used).
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);

/// The client's address, put into every request's extensions by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The request id, also in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

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
            }),
        }
    }

    /// An app around a stack composed in code (see `examples/custom_stack.rs`):
    /// `service` serves the models of `routes`, with the default body limit.
    /// Every llm-router layer, the upstream and any tower middleware whose
    /// error is [`ProxyError`] fit; the app reads and parses the body, puts
    /// the [`LlmRequest`] into the extensions, and renders errors.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http::Request;
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use llm_router::provider::mock::Mock;
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
        S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        App::new(
            Built::new(crate::stack::LlmService::new(service), routes),
            App::DEFAULT_BODY_LIMIT,
        )
    }

    /// Build the stack of `config` and wrap it. [`App::reload`] reads the
    /// config again from the same file (see [`App::set_config_source`]).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let built = crate::stack::build(config)?;
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

    /// Successful config reloads since start.
    pub fn reloads(&self) -> u64 {
        self.shared.reloads.load(Ordering::Relaxed)
    }

    /// Read the config again from its source (`POST /admin/reload`, SIGHUP)
    /// and swap it in; see the [`reload`](crate::reload) module. On an
    /// error nothing changes, and the error is logged.
    ///
    /// It reads a file and builds the backends' clients: from async code,
    /// call it through `tokio::task::spawn_blocking` (as the server does).
    pub fn reload(&self) -> Result<ConfigReload, ReloadError> {
        let source = self.source();
        let result = match source.as_ref() {
            None => Err(ReloadError::NoSource),
            Some(src) => src
                .load()
                .map_err(ReloadError::from)
                .and_then(|config| self.swap(config)),
        };
        drop(source);
        self.reloaded(result)
    }

    /// Swap in `config` (validated already, e.g. by [`Config::parse`]), as
    /// a reload does.
    pub fn reload_with(&self, config: Config) -> Result<ConfigReload, ReloadError> {
        let source = self.source();
        let result = self.swap(config);
        drop(source);
        self.reloaded(result)
    }

    fn reloaded(
        &self,
        result: Result<ConfigReload, ReloadError>,
    ) -> Result<ConfigReload, ReloadError> {
        if let Err(e) = &result {
            self.shared.failed_reloads.fetch_add(1, Ordering::Relaxed);
            *self
                .shared
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            tracing::error!(error = %e, "config reload failed; the config in force is unchanged");
        }
        result
    }

    /// Build `config` around the state carried over from the one in force
    /// and swap it in (the caller holds the source lock).
    fn swap(&self, mut config: Config) -> Result<ConfigReload, ReloadError> {
        let old = self.current();
        let old_config = old.config.as_deref();
        let mut notes = match old_config {
            Some(o) => crate::reload::keep_server_settings(o, &mut config),
            None => Vec::new(),
        };
        notes.extend(config.warnings());
        let router = old.router.carry_over(old_config, &config);
        let built = crate::stack::build_with_state(&config, router)?;
        let config = Arc::new(config);
        let state = Arc::new(State::new(
            built,
            config.server.body_limit,
            Some(config.clone()),
        ));
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = state.clone();
        state.router.attach_store();
        state.router.prune(old_config, &config);
        self.shared.catalog.config_changed();
        let reloads = self.shared.reloads.fetch_add(1, Ordering::Relaxed) + 1;
        let models: Vec<String> = state.routes.models().map(str::to_string).collect();
        let before: Vec<&str> = old.routes.models().collect();
        let report = ConfigReload {
            reloaded: true,
            config: config.path.display().to_string(),
            loaded_at: unix_secs(state.loaded_at),
            reloads,
            models_added: models
                .iter()
                .filter(|m| !before.contains(&m.as_str()))
                .cloned()
                .collect(),
            models_removed: before
                .iter()
                .filter(|m| !models.iter().any(|n| n == *m))
                .map(|m| m.to_string())
                .collect(),
            models,
            backends: config.backends.iter().map(|b| b.name.clone()).collect(),
            stack: config
                .stack
                .iter()
                .map(|l| l.as_str().to_string())
                .collect(),
            notes,
        };
        tracing::info!(
            config = %report.config,
            reloads,
            models = ?report.models,
            added = ?report.models_added,
            removed = ?report.models_removed,
            "config reloaded"
        );
        for note in &report.notes {
            tracing::warn!("{note}");
        }
        Ok(report)
    }

    fn request_id(&self, headers: &http::HeaderMap) -> HeaderValue {
        if let Some(id) = headers.get(REQUEST_ID_HEADER) {
            if !id.is_empty() && id.len() <= 200 {
                return id.clone();
            }
        }
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        // 32 hex digits: the process's random prefix, then a counter.
        let mut id = [0u8; 32];
        let digits = b"0123456789abcdef";
        for (i, byte) in id.iter_mut().enumerate() {
            let word = if i < 16 { self.shared.id_prefix } else { n };
            let shift = 4 * (15 - (i % 16));
            *byte = digits[((word >> shift) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
    }

    /// Start the background task that asks the backends of pattern and `"*"`
    /// routes for their models (see [`catalog`](crate::catalog)), on the
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

/// A request's path without its trailing slash (the `/openai/v1/` and
/// `/openai/` aliases of the model list read as `/v1/`), and the format its
/// errors are answered in.
fn path_and_format(uri: &http::Uri) -> (std::borrow::Cow<'_, str>, ClientFormat) {
    let path = uri.path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let models = path
        .strip_prefix("/openai/v1")
        .or_else(|| path.strip_prefix("/openai"))
        .filter(|rest| *rest == "/models" || rest.starts_with("/models/"));
    let format = if path.starts_with("/anthropic") || path.starts_with("/v1/messages") {
        ClientFormat::Anthropic
    } else {
        ClientFormat::OpenAi
    };
    match models {
        Some(rest) => (format!("/v1{rest}").into(), format),
        None => (path.into(), format),
    }
}

/// 405: `path` does not take `method`.
fn method_not_allowed(method: &Method, path: &str, format: ClientFormat) -> Response<ProxyBody> {
    ProxyError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
    }
    .to_response(format)
}

/// The answer of an endpoint that is not the client API (boxed: rare, and
/// larger than a client request's own future).
type OperationsFuture = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// One request's view: the app, and the state in force when it arrived.
#[derive(Clone)]
struct Handler {
    app: App,
    state: Arc<State>,
}

impl Handler {
    /// Every model a client can name (see [`crate::catalog`]).
    fn models(&self) -> Vec<crate::catalog::Listed> {
        self.app.shared.catalog.list(&self.state.routes)
    }

    fn models_list(&self) -> serde_json::Value {
        let data: Vec<_> = self
            .models()
            .into_iter()
            .map(|m| self.model_object(&m.id, &m.owned_by))
            .collect();
        json!({"object": "list", "data": data})
    }

    /// `GET /v1/models/{id}`: a listed model with its owner; another name
    /// some route serves, with its route's first backend.
    fn model_by_id(&self, id: &str) -> Option<serde_json::Value> {
        if let Some(m) = self.models().into_iter().find(|m| m.id == id) {
            return Some(self.model_object(id, &m.owned_by));
        }
        let route = self.state.routes.resolve(id)?;
        let owner = route
            .targets()
            .first()
            .map_or("llm-router", |t| t.backend().name());
        Some(self.model_object(id, owner))
    }

    fn model_object(&self, id: &str, owner: &str) -> serde_json::Value {
        json!({"id": id, "object": "model", "created": self.app.shared.created, "owned_by": owner})
    }

    /// Each configured target with its circuit and cooldown, plus every
    /// circuit and cooldown seen (targets with model `*` have one per model).
    fn router_health(&self) -> serde_json::Value {
        let router = &self.state.router;
        let circuits = router.breakers.snapshot();
        let cooldowns = router.cooldowns.snapshot();
        let targets: Vec<_> = self
            .state
            .routes
            .routes()
            .flat_map(|route| {
                route.targets().iter().map(|t| {
                    let key = crate::layers::failover::target_key(t, route.name()).to_string();
                    let circuit = circuits.iter().find(|c| c.target == key);
                    let cooldown = cooldowns.iter().find(|c| c.target == key);
                    json!({
                        "model": route.name(),
                        "target": key,
                        "backend": t.backend().name(),
                        "priority": t.get_priority(),
                        "weight": t.get_weight(),
                        "circuit": circuit.map_or("closed", |c| c.state),
                        "consecutive_failures": circuit.map_or(0, |c| c.consecutive_failures),
                        "cooldown_remaining_secs": cooldown.map(|c| c.remaining_secs),
                    })
                })
            })
            .collect();
        json!({
            "targets": targets,
            "circuits": circuits,
            "cooldowns": cooldowns,
            "circuit_breaker": {
                "failure_threshold": router.breakers.policy().failure_threshold,
                "open_for_secs": router.breakers.policy().open_for.as_secs_f64(),
                "half_open_requests": router.breakers.policy().half_open_requests,
            },
        })
    }

    /// `GET /metrics`: Prometheus text, or the per-backend JSON summary.
    fn metrics(&self, json: bool) -> Response<ProxyBody> {
        let metrics = &self.state.router.metrics;
        if json {
            return json_response(StatusCode::OK, &metrics.json());
        }
        let mut response = Response::new(ProxyBody::full(metrics.encode(Some(&self.state.router))));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }

    /// The answer to `req`. Not an `async fn`: a client request's future is
    /// [`client_api`](Self::client_api)'s alone, without this one's
    /// arguments and branches around it (it lives as long as the answer's
    /// head takes: a slow stream's first token).
    fn handle<B>(
        self,
        req: Request<B>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'static
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (path, format) = path_and_format(req.uri());
        let endpoint = Endpoint::from_path(&path);
        let method = req.method().clone();
        let wrong_method = |path: &str| method_not_allowed(&method, path, format);
        match endpoint {
            Some(_) if method != Method::POST => {
                Either::Right(Box::pin(std::future::ready(wrong_method(&path))) as OperationsFuture)
            }
            Some(endpoint) => Either::Left(self.client_api(endpoint, req)),
            None => Either::Right(Box::pin(self.operations(req)) as OperationsFuture),
        }
    }

    /// Everything but the client API: admin and operations endpoints.
    async fn operations<B>(self, req: Request<B>) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (path, format) = path_and_format(req.uri());
        let path = &*path;
        let method = req.method().clone();
        let wrong_method = |path: &str| method_not_allowed(&method, path, format);
        // With `auth` on, the admin endpoints need an admin key and the model
        // list a client key (the client API is checked by the layer itself).
        let mut authed = None;
        if let Some(keys) = &self.state.router.auth {
            let check = if is_admin_path(path) {
                let read = method == Method::GET || method == Method::HEAD;
                Some(keys.check_operations(req.headers(), path, read))
            } else if path == "/v1/models" || path.starts_with("/v1/models/") {
                Some(keys.authenticate(req.headers()))
            } else {
                None
            };
            match check {
                Some(Err(e)) => return e.to_response(format),
                Some(Ok(client)) => {
                    let key = client.stats_key();
                    keys.begin(&key);
                    authed = Some(key);
                }
                None => {}
            }
        }
        let get = method == Method::GET || method == Method::HEAD;
        let wants_json = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let response = match path {
            "/" if get => json_response(
                StatusCode::OK,
                &json!({
                    "name": "llm-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "endpoints": {
                        "client": ["POST /v1/chat/completions", "POST /v1/completions", "POST /v1/embeddings",
                                   "POST /v1/responses", "POST /v1/responses/input_tokens",
                                   "POST /v1/messages", "POST /v1/messages/count_tokens",
                                   "POST /anthropic/chat/completions", "POST /anthropic/v1/messages",
                                   "POST /anthropic/v1/messages/count_tokens",
                                   "POST /openai/chat/completions", "GET /v1/models", "GET /v1/models/{id}"],
                        "operations": ["GET /health", "GET /", "GET /metrics", "GET /openapi.json",
                                       "GET /docs", "GET /redoc"],
                        "admin": ["GET /providers", "GET /backend/info", "GET /router/stats",
                                  "GET /router/health", "GET /router/rate-limits", "GET /auth/status",
                                  "GET /auth/metrics", "POST /auth/reload-keys", "POST /admin/reload"],
                    },
                }),
            ),
            "/metrics" if get => self.metrics(wants_json),
            "/openapi.json" if get => crate::openapi::response(),
            p if crate::docs::serves(p) => match crate::docs::response(p, req.headers()) {
                Some(page) if get => page,
                _ => wrong_method(path),
            },
            "/health" if get => {
                let mut health = json!({
                    "status": "healthy",
                    "service": "llm-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "models": self.models().into_iter().map(|m| m.id).collect::<Vec<_>>(),
                });
                // Only with `[state] store = "redis"`: "ok" | "degraded".
                if let Some(store) = self.state.router.state_store_status() {
                    health["state_store"] = store.into();
                }
                json_response(StatusCode::OK, &health)
            }
            "/v1/models" if get => json_response(StatusCode::OK, &self.models_list()),
            "/router/health" if get => json_response(StatusCode::OK, &self.router_health()),
            "/providers" if get => json_response(
                StatusCode::OK,
                &crate::admin::providers(self.state.config.as_deref(), &self.state.routes),
            ),
            "/backend/info" if get => json_response(
                StatusCode::OK,
                &crate::admin::backend_info(
                    self.state.config.as_deref(),
                    &self.state.routes,
                    &self.state.router,
                ),
            ),
            "/router/stats" if get => json_response(StatusCode::OK, &self.router_stats()),
            "/admin/reload" if method == Method::POST => {
                let app = self.app.clone();
                match tokio::task::spawn_blocking(move || app.reload()).await {
                    Ok(Ok(report)) => json_response(
                        StatusCode::OK,
                        &serde_json::to_value(&report).unwrap_or_default(),
                    ),
                    Ok(Err(e @ ReloadError::Config(_))) => crate::error::error_response(
                        StatusCode::BAD_REQUEST,
                        format,
                        "invalid_config",
                        &e.to_string(),
                    ),
                    Ok(Err(e)) => crate::error::error_response(
                        StatusCode::BAD_REQUEST,
                        format,
                        "reload_unavailable",
                        &e.to_string(),
                    ),
                    Err(e) => crate::error::error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format,
                        "reload_failed",
                        &format!(
                            "the reload did not finish: {e}; the config in force is unchanged"
                        ),
                    ),
                }
            }
            "/router/rate-limits" if get => json_response(
                StatusCode::OK,
                &json!({
                    "clients": self.state.router.client_limits.snapshot(),
                    "backends": self.state.router.backend_limits.snapshot(),
                }),
            ),
            p if get && p.starts_with("/v1/models/") => {
                let id = &p["/v1/models/".len()..];
                match self.model_by_id(id) {
                    Some(model) => json_response(StatusCode::OK, &model),
                    None => ProxyError::ModelNotFound(id.to_string()).to_response(format),
                }
            }
            "/auth/status" if get => json_response(StatusCode::OK, &self.auth_status()),
            "/auth/metrics" if get => json_response(
                StatusCode::OK,
                &self
                    .state
                    .router
                    .auth
                    .as_ref()
                    .map_or_else(|| json!({"enabled": false, "keys": []}), |k| k.metrics()),
            ),
            "/auth/reload-keys" if method == Method::POST => match self.app.reload_keys() {
                None => ProxyError::bad_request(
                    "auth_not_enabled",
                    "`auth` is not in [stack] order: there are no keys to reload",
                )
                .to_response(format),
                Some(Ok(report)) => {
                    json_response(StatusCode::OK, &json!({"reloaded": true, "keys": report}))
                }
                Some(Err(e)) => crate::error::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format,
                    "keys_reload_failed",
                    &format!("{e}; the keys in force are unchanged"),
                ),
            },
            "/"
            | "/health"
            | "/openapi.json"
            | "/v1/models"
            | "/router/health"
            | "/router/rate-limits"
            | "/providers"
            | "/backend/info"
            | "/router/stats"
            | "/admin/reload"
            | "/auth/status"
            | "/auth/metrics"
            | "/auth/reload-keys" => wrong_method(path),
            p if p.starts_with("/v1/models/") => wrong_method(path),
            _ => return self.unknown_path(req, format).await,
        };
        if let (Some(keys), Some(key)) = (&self.state.router.auth, &authed) {
            keys.finish(key, response.status());
        }
        response
    }

    /// A path that is no endpoint: through the stack without a body (so
    /// `log` records it and `metrics` counts it under `(unknown)`), to be
    /// answered 404 in the format of its prefix where a target would be
    /// chosen. Its body is never read.
    async fn unknown_path<B>(self, req: Request<B>, format: ClientFormat) -> Response<ProxyBody> {
        let (mut parts, _body) = req.into_parts();
        let unknown = crate::request::UnknownPath {
            method: parts.method.clone(),
            path: parts.uri.path().into(),
        };
        tracing::debug!(method = %unknown.method, path = %crate::escape::Escaped(&unknown.path), "unknown path");
        parts.extensions.insert(unknown);
        let req = Request::from_parts(parts, ProxyBody::empty());
        match self.state.service.call_ref(req).await {
            Ok(response) => response,
            Err(e) => e.to_response(format),
        }
    }

    /// `GET /router/stats`.
    fn router_stats(&self) -> serde_json::Value {
        let shared = &self.app.shared;
        let state = &self.state;
        crate::admin::router_stats(crate::admin::StatsContext {
            uptime: shared.started.elapsed(),
            started_at: unix_secs(shared.started_at),
            config_path: state.config.as_ref().map(|c| c.path.display().to_string()),
            loaded_at: unix_secs(state.loaded_at),
            reloads: shared.reloads.load(Ordering::Relaxed),
            failed_reloads: shared.failed_reloads.load(Ordering::Relaxed),
            last_reload_error: shared
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            stack: state.stack.iter().map(|l| l.as_str()).collect(),
            metrics_on: state.config.is_none() || state.stack.contains(&LayerName::Metrics),
            routes: &state.routes,
            router: &state.router,
        })
    }

    /// `GET /auth/status`.
    fn auth_status(&self) -> serde_json::Value {
        match &self.state.router.auth {
            Some(keys) => keys.status(),
            None => json!({"enabled": false}),
        }
    }

    /// The client API: read the body, parse it, call the stack. The request
    /// is split here, so the future holds its parts once.
    fn client_api<B>(
        self,
        endpoint: Endpoint,
        req: Request<B>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'static
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        self.client_api_parts(endpoint, parts, body)
    }

    async fn client_api_parts<B>(
        self,
        endpoint: Endpoint,
        mut parts: http::request::Parts,
        body: B,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let format = endpoint.client_format();
        // The credential is checked from the headers before the body is
        // read: a client without a valid key never gets its body buffered.
        if let Some(keys) = &self.state.auth_first {
            let checked = Checked::check(keys, &parts.headers);
            if !checked.is_authenticated() {
                return self.refuse(endpoint, parts, body, checked).await;
            }
            // `auth` takes this result instead of checking again.
            parts.extensions.insert(checked);
        }
        let version = parts.version;
        let read = read_body_within(
            &parts.headers,
            body,
            self.state.body_limit,
            self.state.body_read_timeout,
        );
        let bytes = match read.await {
            Ok(bytes) => bytes,
            Err(e) => {
                let mut response = e.to_response(format);
                if matches!(
                    e.status(),
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
                ) {
                    // The rest of the body is not read: end the connection.
                    close_connection(&mut response, version);
                }
                return response;
            }
        };
        let llm = match LlmRequest::parse_bytes(endpoint, bytes) {
            Ok(llm) => llm,
            Err(e) => return e.to_response(format),
        };
        let model = llm.model().to_string();
        parts.extensions.insert(llm);
        let req = Request::from_parts(parts, ProxyBody::empty());
        // `LlmService` is always ready: called at once, so only its boxed
        // future is held while the answer's head is awaited.
        let result = self.state.service.call_ref(req).await;
        match result {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(model = %crate::escape::Escaped(&model), status = e.status().as_u16(), error = %crate::escape::Escaped(&e), "request failed");
                } else {
                    tracing::debug!(model = %crate::escape::Escaped(&model), status = e.status().as_u16(), error = %crate::escape::Escaped(&e), "request refused");
                }
                e.to_response(format)
            }
        }
    }

    /// A client API request whose credential `auth` refuses: its body is
    /// never kept, and the request goes into the stack with an
    /// [`LlmRequest::unread`] (so `log` records it, without a body, and
    /// `metrics` counts it) to be refused by `auth` there. When `auth` only
    /// wraps each target (below the split point), the 401 is answered here.
    /// A body that was not over ends the connection after the answer; on
    /// HTTP/1 it is first read and thrown away (see [`discard`]), so that a
    /// client that sends its whole body before it reads gets the 401 rather
    /// than a reset connection.
    async fn refuse<B>(
        self,
        endpoint: Endpoint,
        mut parts: http::request::Parts,
        body: B,
        checked: Checked,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let format = endpoint.client_format();
        let version = parts.version;
        let unread = !body.is_end_stream();
        if unread && version < http::Version::HTTP_2 {
            // A body declared larger than `body_limit` is not waited for.
            let declared = body.size_hint().upper().unwrap_or(0);
            if declared <= self.state.body_limit {
                tokio::spawn(discard(
                    body,
                    self.state.body_limit,
                    self.state.body_read_timeout,
                ));
            }
        } else {
            drop(body);
        }
        let mut response = if self.state.auth_in_outer {
            parts.extensions.insert(checked);
            parts.extensions.insert(LlmRequest::unread(endpoint));
            let req = Request::from_parts(parts, ProxyBody::empty());
            match self.state.service.call_ref(req).await {
                Ok(response) => response,
                Err(e) => e.to_response(format),
            }
        } else {
            checked.into_error().to_response(format)
        };
        if unread {
            close_connection(&mut response, version);
        }
        response
    }
}

/// How long a refused request's body is read and thrown away at most
/// ([`discard`]), and the longest gap in it: the client that sends its body
/// at once is done well within them; one that stalls is not waited for.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(30);
const LINGER_GAP: std::time::Duration = std::time::Duration::from_secs(2);

/// Read a refused request's body and keep none of it: at most `limit`
/// bytes, for at most [`LINGER_TIME`] with no gap over [`LINGER_GAP`] (both
/// within `body_read_timeout`), then drop it (and so the connection, which
/// was answered with `connection: close`). hyper reads an HTTP/1
/// connection's body only while someone holds it: dropped unread, the
/// connection is closed at once, and a client still sending its body sees a
/// reset instead of the answer already written (nginx's lingering close, for
/// the same reason). Memory: one frame at a time.
async fn discard<B>(body: B, limit: u64, body_read_timeout: std::time::Duration)
where
    B: Body<Data = Bytes>,
{
    use http_body_util::BodyExt;
    let gap = LINGER_GAP.min(body_read_timeout);
    let drain = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0u64;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(gap, body.frame()).await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME.min(body_read_timeout), drain).await;
}

/// Ask for an HTTP/1 connection to end after `response` (its request's
/// body was not read to the end). HTTP/2 has no such header: there the
/// stream ends alone.
fn close_connection(response: &mut Response<ProxyBody>, version: http::Version) {
    if version < http::Version::HTTP_2 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
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
        let waited = Waited::default();
        req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        req.extensions_mut().insert(RequestId(id.clone()));
        req.extensions_mut().insert(waited.clone());
        // Combinators rather than an `async` block, so the future is the
        // endpoint's own plus these few fields (an `async` block would keep
        // the request a second time).
        let answer = match handler.state.cors.clone() {
            // CORS wraps the endpoints: a preflight is answered there.
            Some(cors) => Either::Left(cors.layer(Endpoints(handler)).oneshot(req).map(
                |r| match r {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
            )),
            None => Either::Right(handler.handle(req)),
        };
        let fut = answer.map(move |mut response| {
            let own = started.elapsed().saturating_sub(waited.get());
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

/// The endpoints as a service, for what wraps the whole app (`cors`).
struct Endpoints(Handler);

impl<B> Service<Request<B>> for Endpoints
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let app = self.0.clone();
        Box::pin(async move { Ok(app.handle(req).await) })
    }
}
