//! The upstream connection pool behind [`HttpClient`](super::HttpClient).
//!
//! HTTP/1.1 connections are kept alive per origin (scheme and authority)
//! and lent to one request at a time; a connection goes back to the pool
//! when its answer's body has been read to the end (an answer dropped
//! half-read closes its connection, which is how a client that went away
//! stops the upstream). When TLS negotiates `h2` by ALPN, one HTTP/2
//! connection per origin carries every request.
//!
//! A request that could not even be written because a kept-alive connection
//! had just been closed by the upstream is sent again on a fresh connection,
//! transparently. Connections idle longer than the idle timeout are dropped
//! at the next checkout or return.
//!
//! Why not hyper-util's pool: it is general (any key, connection racing,
//! a task per returned connection) and cost about 11,000 instructions per
//! request in callgrind; an origin here is a backend's `base_url`, known in
//! advance, so a checkout is a short lock and a `Vec::pop`.
//!
//! ```
//! use llm_router::upstream::{ClientSettings, HttpClient};
//! let client = HttpClient::new(&ClientSettings::default()).unwrap();
//! # drop(client);
//! ```

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::BoxError;

type H1 = http1::SendRequest<Full<Bytes>>;
type H2 = http2::SendRequest<Full<Bytes>>;

/// Why an upstream request got no answer head.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made: DNS, TCP (including the connect
    /// timeout, an `io::ErrorKind::TimedOut` in the sources), TLS, or the
    /// HTTP/2 handshake.
    #[error("connecting to the upstream failed: {0}")]
    Connect(#[source] BoxError),
    /// The connection failed while the request was sent or the answer's
    /// head awaited.
    #[error("the upstream connection failed: {0}")]
    Http(#[source] hyper::Error),
    /// The request URI has no scheme or host.
    #[error("the upstream URI `{0}` has no scheme or host")]
    Uri(Uri),
}

/// The pool: origins, each with its idle connections.
pub(crate) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    idle_timeout: Duration,
    origins: Mutex<Vec<Origin>>,
}

struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// `Host` for HTTP/1.1 requests, built once.
    host: Option<HeaderValue>,
    /// Idle HTTP/1.1 connections, the most recently used last.
    idle: Vec<(H1, Instant)>,
    /// The shared HTTP/2 connection, once one was negotiated.
    h2: Option<H2>,
}

impl Origin {
    fn new(scheme: &Scheme, authority: &Authority) -> Self {
        let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => {
                HeaderValue::try_from(format!("{}:{port}", authority.host())).ok()
            }
            _ => HeaderValue::try_from(authority.host()).ok(),
        };
        Origin {
            scheme: scheme.clone(),
            authority: authority.clone(),
            host,
            idle: Vec::new(),
            h2: None,
        }
    }

    fn is(&self, scheme: &Scheme, authority: &Authority) -> bool {
        self.authority == *authority && self.scheme == *scheme
    }

    /// Drop idle connections that are closed or too old (the oldest first).
    fn prune(&mut self, now: Instant, idle_timeout: Duration) {
        self.idle
            .retain(|(conn, since)| !conn.is_closed() && now.duration_since(*since) < idle_timeout);
    }
}

/// A connection lent to one request.
enum Lent {
    H1(H1),
    H2(H2),
}

impl Pool {
    pub(crate) fn new(connector: HttpsConnector<HttpConnector>, idle_timeout: Duration) -> Self {
        Pool {
            connector,
            idle_timeout,
            origins: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Origin>> {
        // Nothing in the critical sections can panic half-way through an
        // update; a poisoned lock still holds a consistent list.
        self.origins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A kept connection to the origin, and its `Host` header.
    fn checkout(
        &self,
        scheme: &Scheme,
        authority: &Authority,
    ) -> (Option<Lent>, Option<HeaderValue>) {
        let mut origins = self.lock();
        let i = match origins.iter().position(|o| o.is(scheme, authority)) {
            Some(i) => i,
            None => {
                origins.push(Origin::new(scheme, authority));
                origins.len() - 1
            }
        };
        let origin = &mut origins[i];
        if let Some(h2) = &origin.h2 {
            if !h2.is_closed() {
                return (Some(Lent::H2(h2.clone())), None);
            }
            origin.h2 = None;
        }
        let now = Instant::now();
        while let Some((conn, since)) = origin.idle.pop() {
            if conn.is_closed() || now.duration_since(since) >= self.idle_timeout {
                continue;
            }
            return (Some(Lent::H1(conn)), origin.host.clone());
        }
        (None, origin.host.clone())
    }

    /// Give back an HTTP/1.1 connection whose answer was read to the end.
    fn put(&self, scheme: &Scheme, authority: &Authority, conn: H1) {
        if conn.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut origins = self.lock();
        if let Some(origin) = origins.iter_mut().find(|o| o.is(scheme, authority)) {
            if origin
                .idle
                .first()
                .is_some_and(|(_, since)| now.duration_since(*since) >= self.idle_timeout)
            {
                origin.prune(now, self.idle_timeout);
            }
            origin.idle.push((conn, now));
        }
    }

    /// Open a connection: HTTP/2 when TLS negotiated it, else HTTP/1.1.
    async fn connect(&self, uri: &Uri) -> Result<Lent, ClientError> {
        let io = self
            .connector
            .clone()
            .oneshot(uri.clone())
            .await
            .map_err(ClientError::Connect)?;
        if io.connected().is_negotiated_h2() {
            // Boxed: HTTP/2's handshake future is large, and while
            // connecting, every request's connect future is as large as
            // its largest step (1,000 connects at once add up).
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder.timer(TokioTimer::new());
            let (sender, conn) = Box::pin(builder.handshake(io))
                .await
                .map_err(|e| ClientError::Connect(Box::new(e)))?;
            // `map`, not an `async` block: the block would hold the
            // connection twice (captured, and as the future it awaits).
            tokio::spawn(conn.map(|ended| {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            }));
            Ok(Lent::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|e| ClientError::Connect(Box::new(e)))?;
            // `map`: the task holds the connection once (1.7 KB less for
            // each connection than an `async` block).
            tokio::spawn(conn.map(|ended| {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
                }
            }));
            Ok(Lent::H1(sender))
        }
    }

    /// Send `req` (an absolute URI) and resolve at the answer's head.
    pub(crate) async fn send(
        self: Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<PooledBody>, ClientError> {
        // Taken, not cloned: the request gets the origin form (HTTP/1.1) or
        // a copy (HTTP/2) below, and the connection's way home keeps it.
        let uri = std::mem::take(req.uri_mut());
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ClientError::Uri(uri));
        };
        let mut origin_form = match uri.path_and_query() {
            Some(path) => Uri::from(path.clone()),
            None => Uri::from_static("/"),
        };
        loop {
            let (kept, host) = self.checkout(scheme, authority);
            let reused = kept.is_some();
            let lent = match kept {
                Some(lent) => lent,
                // Boxed: the connect and handshake futures are large and
                // rare; inline they would make every request's future large.
                None => Box::pin(self.connect(&uri)).await?,
            };
            match lent {
                Lent::H2(mut sender) => {
                    *req.uri_mut() = uri.clone();
                    if !reused {
                        let mut origins = self.lock();
                        if let Some(origin) = origins.iter_mut().find(|o| o.is(scheme, authority)) {
                            origin.h2 = Some(sender.clone());
                        }
                    }
                    match sender.try_send_request(req).await {
                        Ok(mut response) => {
                            crate::body::detach_headers(response.headers_mut());
                            return Ok(response.map(PooledBody::unpooled));
                        }
                        Err(mut e) => match e.take_message() {
                            Some(back) if reused => {
                                tracing::debug!(error = %e.error(), "kept HTTP/2 connection closed; sending again");
                                req = back;
                            }
                            _ => return Err(ClientError::Http(e.into_error())),
                        },
                    }
                }
                Lent::H1(mut sender) => {
                    *req.uri_mut() = std::mem::take(&mut origin_form);
                    if let Some(host) = &host {
                        req.headers_mut()
                            .entry(http::header::HOST)
                            .or_insert_with(|| host.clone());
                    }
                    if reused && sender.ready().await.is_err() {
                        // Closed while idle: nothing was sent.
                        origin_form = std::mem::take(req.uri_mut());
                        continue;
                    }
                    match sender.try_send_request(req).await {
                        Ok(mut response) => {
                            // The head is kept until the client's is
                            // written: out of hyper's read buffer (see
                            // `body::Detached`).
                            crate::body::detach_headers(response.headers_mut());
                            let home = Home {
                                pool: self,
                                uri,
                                conn: sender,
                            };
                            return Ok(response.map(|body| PooledBody::new(body, home)));
                        }
                        Err(mut e) => match e.take_message() {
                            Some(mut back) if reused => {
                                tracing::debug!(error = %e.error(), "kept HTTP/1.1 connection closed; sending again");
                                origin_form = std::mem::take(back.uri_mut());
                                req = back;
                            }
                            _ => return Err(ClientError::Http(e.into_error())),
                        },
                    }
                }
            }
        }
    }
}

/// Where an HTTP/1.1 connection goes back when its answer is read.
struct Home {
    pool: Arc<Pool>,
    /// The request's absolute URI: its scheme and authority name the origin.
    uri: Uri,
    conn: H1,
}

impl Home {
    fn go(self) {
        if let (Some(scheme), Some(authority)) = (self.uri.scheme(), self.uri.authority()) {
            self.pool.put(scheme, authority, self.conn);
        }
    }
}

/// An upstream answer's body: hyper's, giving its connection back to the
/// pool once read to the end.
pub struct PooledBody {
    inner: Incoming,
    home: Option<Home>,
}

impl PooledBody {
    fn new(inner: Incoming, home: Home) -> Self {
        let mut body = PooledBody {
            inner,
            home: Some(home),
        };
        body.home_if_done();
        body
    }

    fn unpooled(inner: Incoming) -> Self {
        PooledBody { inner, home: None }
    }

    fn home_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let Some(home) = self.home.take() {
                home.go();
            }
        }
    }
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("pooled", &self.home.is_some())
            .finish_non_exhaustive()
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(home) = this.home.take() {
                    home.go();
                }
            }
            // A failed body leaves its connection unusable: dropped.
            Poll::Ready(Some(Err(_))) => this.home = None,
            Poll::Ready(Some(Ok(_))) => this.home_if_done(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to the end but not polled past it: still reusable. Otherwise
        // dropping the connection closes it (the upstream stops).
        self.home_if_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{ClientSettings, HttpClient};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    /// An upstream on a loopback port that counts connections; answers
    /// `/big` with a body large enough to arrive in several frames and
    /// everything else with the `Host` it saw. With `close_after_one`, it
    /// closes each connection after its first answer (a short keep-alive).
    async fn upstream(close_after_one: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let body = if req.uri().path() == "/big" {
                            Bytes::from(vec![b'x'; 1 << 20])
                        } else {
                            let host = req.headers().get(http::header::HOST).cloned();
                            Bytes::from(host.map(|h| h.as_bytes().to_vec()).unwrap_or_default())
                        };
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.keep_alive(!close_after_one);
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = builder.serve_connection(io, svc).await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    fn client() -> HttpClient {
        HttpClient::new(&ClientSettings::default()).unwrap()
    }

    fn get(url: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    async fn text(client: &HttpClient, url: &str) -> String {
        let response = client.request(get(url)).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused_and_host_is_set() {
        let (base, accepted) = upstream(false).await;
        let client = client();
        let authority = base.trim_start_matches("http://").to_string();
        for _ in 0..5 {
            assert_eq!(text(&client, &format!("{base}/v1/x?q=1")).await, authority);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// An upstream that answers one request per connection as if it kept
    /// the connection alive, then closes it (an upstream's idle timeout).
    async fn closing_upstream() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    #[tokio::test]
    async fn a_kept_connection_the_upstream_closed_is_replaced_without_an_error() {
        let (base, accepted) = closing_upstream().await;
        let client = client();
        let url = format!("{base}/");
        assert_eq!(text(&client, &url).await, "ok");
        // Wait (bounded) until the client side has seen the close.
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let closed = client
                    .pool
                    .lock()
                    .iter()
                    .all(|o| o.idle.iter().all(|(c, _)| c.is_closed()));
                if closed {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(text(&client, &url).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_dropped_half_read_closes_its_connection() {
        let (base, accepted) = upstream(false).await;
        let client = client();
        let mut body = client
            .request(get(&format!("{base}/big")))
            .await
            .unwrap()
            .into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        // Not given back: the next request opens a new connection.
        assert!(!text(&client, &format!("{base}/")).await.is_empty());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Read to the end: given back.
        let big = client.request(get(&format!("{base}/big"))).await.unwrap();
        let len = big.into_body().collect().await.unwrap().to_bytes().len();
        assert_eq!(len, 1 << 20);
        assert!(!text(&client, &format!("{base}/")).await.is_empty());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_connections_then_share_them() {
        let (base, accepted) = upstream(false).await;
        let client = client();
        let url = format!("{base}/");
        let all = futures_util::future::join_all((0..4).map(|_| text(&client, &url))).await;
        assert!(all.iter().all(|t| !t.is_empty()));
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=4).contains(&opened));
        for _ in 0..8 {
            text(&client, &url).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), opened);
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_timeout_is_not_reused() {
        let (base, accepted) = upstream(false).await;
        let mut client = client();
        let connector = client.pool.connector.clone();
        client.pool = Arc::new(Pool::new(connector, Duration::ZERO));
        for n in 1..=3 {
            assert!(!text(&client, &format!("{base}/")).await.is_empty());
            assert_eq!(accepted.load(Ordering::SeqCst), n);
        }
    }

    #[tokio::test]
    async fn refused_is_a_connect_error_and_a_relative_uri_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client();
        let err = client
            .request(get(&format!("http://{addr}/")))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
        let err = client.request(get("/relative")).await.unwrap_err();
        assert!(matches!(err, ClientError::Uri(_)), "{err:?}");
    }
}
