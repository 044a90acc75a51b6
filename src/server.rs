//! The HTTP server: accept loop, HTTP/1.1 + HTTP/2 (cleartext or TLS),
//! connection limits, graceful shutdown.
//!
//! Connections are served by hyper-util's auto builder (HTTP/1.1 with
//! keep-alive, or HTTP/2 by prior knowledge or ALPN). A connection known to
//! be HTTP/1.1 before it is served — its first bytes, peeked, cannot start
//! the HTTP/2 preface, or TLS negotiated `http/1.1` — goes to HTTP/1.1
//! directly (`h2` by ALPN: HTTP/2 directly): the auto builder's sniffing
//! reads the first bytes apart and then doubles hyper's read buffer for the
//! rest of the head, 8 KB more held by each open connection. On shutdown the
//! listener closes at once, idle keep-alive connections are closed, and
//! in-flight requests — streams included — may finish within the grace
//! period (`[server] shutdown_timeout`).
//!
//! Each connection is kept within its [`ConnectionLimits`] (`[server]
//! max_connections`, `header_read_timeout`, `idle_timeout`; see the
//! `conn` module): at most `max_connections` are open — beyond it the accept
//! loop waits and new connections wait in the kernel's backlog (logged once
//! per episode, like failing accepts); a connection that sends no request
//! head in time (nothing at all, part of an HTTP/2 preface, a stalled TLS
//! handshake) is closed; one without a request in flight for
//! `idle_timeout` is closed (HTTP/2: GOAWAY). A streamed answer is in
//! flight until its last byte, so no idle limit cuts it.
//!
//! ```no_run
//! use std::path::Path;
//! use llm_router::{config::Config, server::Server};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(Path::new("config.toml"))?;
//! let server = Server::bind(&config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(llm_router::server::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::body::{detach_headers, detach_uri, Detached};
use crate::RequestContext;

use crate::app::App;
use crate::config::{Config, ConfigError};

mod conn;
mod files;

pub use conn::ConnectionLimits;
// Reloading a running server: the config source it re-reads and the file
// watcher of `serve --reload`.
pub use crate::reload::{ConfigReload, ConfigSource};
pub use crate::watch::{watch, watching, POLL_INTERVAL};
use conn::{Activity, Driver, Episode, InFlight, Registry, Slot, TrackedBody, Watched};
pub use files::{connections_within, RESERVED_FILES};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The config could not be turned into a stack, or TLS files are bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    app: App,
    tls: Option<TlsAcceptor>,
    grace: Duration,
    limits: ConnectionLimits,
    hangup: Hangup,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Build the app from `config` and bind its `listen` address.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let app = App::from_config(config)?;
        let tls = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key, &config.path)?),
            _ => None,
        };
        let addr = config.server.listen();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let mut limits = ConnectionLimits::from(&config.server);
        limits.max_connections = files::fitting_connections(limits.max_connections);
        Ok(
            Server::from_parts(listener, app, tls, config.server.shutdown_timeout)
                .with_limits(limits),
        )
    }

    /// Serve `app` on an already bound listener (with the default
    /// [`ConnectionLimits`]; see [`with_limits`](Self::with_limits)).
    pub fn from_parts(
        listener: TcpListener,
        app: App,
        tls: Option<TlsAcceptor>,
        grace: Duration,
    ) -> Server {
        Server {
            listener,
            app,
            tls,
            grace,
            limits: ConnectionLimits::default(),
            hangup: Hangup::install(),
        }
    }

    /// Keep connections within `limits` (`[server] max_connections`,
    /// `header_read_timeout`, `idle_timeout`).
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Server {
        self.limits = limits;
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The app served (to reload it, or set where it reloads from).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serve until `shutdown` resolves, then drain within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            listener,
            app,
            tls,
            grace,
            limits,
            mut hangup,
        } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The connection's driver bounds heads (hyper's own timer would
            // also cut idle keep-alive connections at this bound).
            .header_read_timeout(None)
            // One buffer per write, not a list of the body's frames: a
            // streamed answer's events (a frame each, three buffers with
            // their chunk framing) then leave in one `write` per upstream
            // read, not one `writev` for every five events.
            .writev(false)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)));
        let builders = Arc::new(Builders {
            h1: builder.clone().http1_only(),
            h2: builder.clone().http2_only(),
            auto: builder,
        });
        // The backends' model lists for `/v1/models`, kept up to date in the
        // background while the server runs.
        let _catalog = app.start_model_catalog();
        let max = limits.max_connections.clamp(1, Permits::MAX_PERMITS);
        let permits = Arc::new(Semaphore::new(max as usize));
        let registry = Arc::new(Registry::default());
        let mut accepting = Accepting {
            max,
            ..Accepting::default()
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = accepting.next(&listener, &permits) => {
                    let (stream, peer, permit) = accepted;
                    let born = tokio::time::Instant::now();
                    let _ = stream.set_nodelay(true);
                    let activity = Activity::new(born);
                    let slot = Slot::new(permit, &registry, &activity);
                    let app = app.clone();
                    // Two kinds of task, so a plain connection's task is
                    // not sized for the TLS handshake (a few KB less for
                    // each of many slow streams).
                    match &tls {
                        None => {
                            tokio::spawn(serve_plain(stream, peer, app, builders.clone(), activity, limits, slot));
                        }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            let builders = builders.clone();
                            tokio::spawn(serve_tls(stream, peer, app, acceptor, builders, activity, limits, slot));
                        }
                    }
                }
                () = hangup.recv() => {
                    tracing::info!("SIGHUP received: reloading the config");
                    let reloader = app.clone();
                    // Reading and building the config is blocking work; the
                    // accept loop goes on meanwhile.
                    tokio::task::spawn_blocking(move || on_hangup(&reloader));
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(grace = ?grace, "shutting down: no new connections, finishing in-flight requests");
        registry.stop_all();
        // Every connection holds a permit until it ends.
        tokio::select! {
            _ = permits.acquire_many(max) => tracing::info!("all connections finished"),
            () = tokio::time::sleep(grace) => tracing::warn!("grace period over, closing remaining connections"),
        }
        // Budgets' spend, settled by the requests that finished.
        app.save_spend().await;
        // The request log's last records (the `log` layer writes off-thread).
        #[cfg(feature = "observability")]
        if !app.log_flush().wait(Duration::from_secs(5)).await {
            tracing::warn!(
                "the request log writer did not catch up within 5s; its last records may be lost"
            );
        }
        Ok(())
    }
}

/// The largest permit count a semaphore takes, as a `u32`.
struct Permits;

impl Permits {
    const MAX_PERMITS: u32 = if Semaphore::MAX_PERMITS < u32::MAX as usize {
        Semaphore::MAX_PERMITS as u32
    } else {
        u32::MAX
    };
}

/// The accept side of the loop: a connection permit, then a connection;
/// the limit being reached and accept errors are logged once per episode.
#[derive(Default)]
struct Accepting {
    /// `max_connections`.
    max: u32,
    /// `max_connections` reached: waiting for a connection to end.
    full: Episode,
    /// `accept` failing (out of file descriptors, ...): backing off.
    failing: Episode,
    failures: u64,
}

impl Accepting {
    /// The next connection and its permit. Cancel-safe: a permit not yet
    /// used goes back to the semaphore, and the episodes are kept here.
    async fn next(
        &mut self,
        listener: &TcpListener,
        permits: &Arc<Semaphore>,
    ) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.full.hit() {
                    tracing::warn!(
                        max_connections = self.max,
                        "connection limit reached (server.max_connections): new connections wait until one ends"
                    );
                }
                let permit = permits.clone().acquire_owned().await;
                match permit {
                    Ok(permit) => {
                        if self.full.end().is_some() {
                            tracing::info!(
                                "below the connection limit again: accepting connections"
                            );
                        }
                        permit
                    }
                    // The semaphore is never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if let Some(failed) = self.failing.end() {
                        tracing::info!(failed, "accepting connections again");
                        self.failures = 0;
                    }
                    return (stream, peer, permit);
                }
                // One client's connection went away before it was accepted.
                Err(e) if conn::is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept: connection lost");
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, and
                    // say so once, not at every attempt.
                    self.failures = self.failures.saturating_add(1);
                    if self.failing.hit() {
                        tracing::warn!(error = %e, "accept failed; backing off until it works again");
                    }
                    tokio::time::sleep(conn::accept_backoff(self.failures)).await;
                }
            }
        }
    }
}

/// SIGHUP: reload the config (which rebuilds the auth keys, keys file
/// included). When the config cannot be reloaded (an invalid file, already
/// logged with its error; or an app without a config file), the config in
/// force keeps serving and its keys file is still read again, as SIGHUP
/// always did.
fn on_hangup(app: &App) {
    if app.reload().is_ok() {
        return;
    }
    match app.reload_keys() {
        None => {}
        Some(Ok(report)) => tracing::info!(
            client_keys = report.client_keys,
            admin_keys = report.admin_keys,
            "SIGHUP: the config in force is kept; its auth keys file was read again"
        ),
        // Already logged with its reason.
        Some(Err(_)) => {}
    }
}

/// SIGHUP: reload the config without a restart (see [`App::reload`]). The handler is
/// installed when the server is built (in a runtime), so a signal sent as
/// soon as the address is announced is not lost, and never ends the process.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn install() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = if tokio::runtime::Handle::try_current().is_ok() {
                signal(SignalKind::hangup())
                    .map_err(|e| tracing::warn!(error = %e, "cannot install the SIGHUP handler"))
                    .ok()
            } else {
                None
            };
            Hangup { signal }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    /// Resolves at each SIGHUP; never without a handler.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await
    }
}

/// An answer as the server sends it.
type Answer = http::Response<TrackedBody<crate::ProxyBody>>;

/// What [`connection_service`] wraps for hyper.
trait ConnectionService:
    tower::Service<
        Request<Incoming>,
        Response = Answer,
        Error = std::convert::Infallible,
        Future: Future<Output = Result<Answer, std::convert::Infallible>> + Send,
    > + Clone
    + Send
{
}

impl<S> ConnectionService for S where
    S: tower::Service<
            Request<Incoming>,
            Response = Answer,
            Error = std::convert::Infallible,
            Future: Future<Output = Result<Answer, std::convert::Infallible>> + Send,
        > + Clone
        + Send
{
}

/// The service a connection's requests go to: the app, told the peer's
/// address; each request counts as in flight until its answer's body is over.
fn connection_service(
    app: App,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> TowerToHyperService<impl ConnectionService> {
    TowerToHyperService::new(tower::service_fn(move |mut req: Request<Incoming>| {
        // The head and small body frames, out of hyper's read buffer: the
        // request is kept until its answer begins (see `body::Detached`).
        detach_headers(req.headers_mut());
        detach_uri(req.uri_mut());
        let mut req = req.map(Detached::new);
        RequestContext::of(req.extensions_mut()).note_client_addr(peer);
        let guard = InFlight::start(&activity);
        app.clone().oneshot(req).map(move |answer| {
            answer.map(|response| response.map(|body| TrackedBody::new(body, guard)))
        })
    }))
}

/// Start a connection's graceful shutdown (HTTP/1: after the request in
/// flight; HTTP/2: GOAWAY).
fn graceful<I, S, E, B>(conn: std::pin::Pin<&mut auto::Connection<'static, I, S, E>>)
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<crate::BoxError>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    conn.graceful_shutdown();
}

/// The connection builders: one per protocol known in advance, and the
/// auto builder, which tells HTTP/2's preface from an HTTP/1.1 head itself.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
}

/// Whether a connection whose first bytes are `first` may be HTTP/2 by
/// prior knowledge: they are a start of the preface (or all of it).
fn may_be_preface(first: &[u8]) -> bool {
    conn::PREFACE.starts_with(first) || first.starts_with(conn::PREFACE)
}

/// Serve one plain-text connection (HTTP/1.1, or HTTP/2 by prior
/// knowledge): its first bytes are peeked (within `header_read_timeout`,
/// like the head they begin), and a connection that cannot be HTTP/2 is
/// served as HTTP/1.1 directly. The connection is built here, so the task
/// holds it alone.
async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    builders: Arc<Builders>,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    slot: Slot,
) {
    let due = tokio::time::Instant::now() + limits.header_read_timeout;
    let mut first = [0u8; conn::PREFACE.len()];
    let peeked = tokio::select! {
        peeked = tokio::time::timeout_at(due, stream.peek(&mut first)) => peeked,
        // The server is shutting down: no request has begun here.
        () = activity.stopped() => return,
    };
    let builder = match peeked {
        // Closed before a byte.
        Ok(Ok(0)) => return,
        Ok(Ok(n)) if !may_be_preface(first.get(..n).unwrap_or_default()) => &builders.h1,
        Ok(Ok(_)) => &builders.auto,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "connection closed: no request head within header_read_timeout");
            return;
        }
    };
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let conn = builder
        .serve_connection(io, connection_service(app, peer, activity.clone()))
        .into_owned();
    drop(builders);
    Driver::new(conn, graceful::<_, _, _, _>, activity, limits, peer, slot).await
}

/// Serve one TLS connection: the handshake (within `header_read_timeout`
/// of the accept, like the first request head), then HTTP/2 or HTTP/1.1 as
/// ALPN chose.
#[allow(clippy::too_many_arguments)]
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    acceptor: TlsAcceptor,
    builders: Arc<Builders>,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    slot: Slot,
) {
    let due = tokio::time::Instant::now() + limits.header_read_timeout;
    let handshake = tokio::select! {
        handshake = tokio::time::timeout_at(due, acceptor.accept(stream)) => handshake,
        // The server is shutting down: no request has begun here.
        () = activity.stopped() => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out (header_read_timeout)");
            return;
        }
    };
    // ALPN's choice; without one, the first bytes tell.
    let builder = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => &builders.h2,
        Some(b"http/1.1") => &builders.h1,
        _ => &builders.auto,
    };
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let conn = builder
        .serve_connection(io, connection_service(app, peer, activity.clone()))
        .into_owned();
    drop(builders);
    Driver::new(conn, graceful::<_, _, _, _>, activity, limits, peer, slot).await
}

/// Load `tls_cert` / `tls_key` (PEM) into an acceptor offering h2 and http/1.1.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    config_path: &std::path::Path,
) -> Result<TlsAcceptor, ConfigError> {
    let err = |key_name: &str, message: String| ConfigError {
        file: config_path.display().to_string(),
        line: None,
        key: Some(format!("server.{key_name}")),
        message,
    };
    let cert_pem = std::fs::read(cert)
        .map_err(|e| err("tls_cert", format!("cannot read `{}`: {e}", cert.display())))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            err(
                "tls_cert",
                format!("`{}` is not a PEM certificate: {e}", cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(err(
            "tls_cert",
            format!("`{}` holds no PEM certificate", cert.display()),
        ));
    }
    let key_pem = std::fs::read(key)
        .map_err(|e| err("tls_key", format!("cannot read `{}`: {e}", key.display())))?;
    let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| {
            err(
                "tls_key",
                format!("`{}` is not a PEM key: {e}", key.display()),
            )
        })?
        .ok_or_else(|| {
            err(
                "tls_key",
                format!("`{}` holds no private key", key.display()),
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| err("tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            err(
                "tls_key",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when
/// this function is called (inside a runtime), not when the future is first
/// polled, so a signal that arrives in between is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => tracing::info!("SIGINT received"),
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                    }
                }
                _ => {
                    tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_start_of_the_preface_may_be_http2() {
        assert!(may_be_preface(b"P"));
        assert!(may_be_preface(b"PRI * HTTP/2.0\r\n"));
        assert!(may_be_preface(conn::PREFACE));
        assert!(!may_be_preface(b"POST /v1/chat/completions HTTP/1.1\r\n"));
        assert!(!may_be_preface(b"GET / HTTP/1.1\r\n"));
        assert!(!may_be_preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"));
    }
}
