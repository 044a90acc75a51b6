//! The innermost service: [`Upstream`] sends a request to its chosen target
//! and streams the answer back, frame by frame.
//!
//! `Upstream` reads the [`LlmRequest`] and the [`Target`] from the request's
//! extensions, lets the target's [`Provider`](crate::provider::Provider) build
//! the upstream request (serializing the body once), sends it through the
//! backend's pooled [`HttpClient`] (HTTP/1.1 or HTTP/2 by ALPN, rustls with
//! webpki roots), waits at most the backend's `timeout` for the response head
//! and hands the body on without reading it. Dropping the answer (a client
//! that went away) drops the upstream body, which closes that upstream
//! connection, so the provider stops generating.
//!
//! ```
//! use std::sync::Arc;
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use llm_router::provider::mock::Mock;
//! use llm_router::request::{Endpoint, LlmRequest};
//! use llm_router::routing::{Backend, Target};
//! use llm_router::upstream::Upstream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
//! let mut req = Request::new(());
//! req.extensions_mut().insert(Target::new(backend, None));
//! req.extensions_mut().insert(LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#).unwrap());
//! let answer = Upstream::new().oneshot(req).await.unwrap();
//! let body = answer.into_body().collect().await.unwrap().to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(json["choices"][0]["message"]["content"], "hi");
//! # }
//! ```

use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tower::Service;

pub mod pool;

use pool::Pool;
pub use pool::{ClientError, PooledBody};

use crate::body::ProxyBody;
use crate::classify::{error_kind, AttemptLog, AttemptRecord, Outcome};
use crate::error::ProxyError;
use crate::guard::{GuardConfig, StreamFailure, StreamGuard};
use crate::provider::{Call, ClientCredential, Outbound};
use crate::request::LlmRequest;
use crate::routing::Target;
use crate::timing::Waited;
use crate::usage::{UsageRequestedByProxy, UsageSlot, UsageTap, UsageWanted};
use tokio::time::Instant;

/// Connection settings of an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Verify the server's certificate (`tls_verify`).
    pub tls_verify: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            tls_verify: true,
        }
    }
}

/// A pooled HTTP/1.1 + HTTP/2 (by ALPN) client with rustls (see
/// [`pool`]). Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    pool: Arc<Pool>,
    connect_timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// How long a kept-alive upstream connection may sit idle.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

    /// Build a client with its own connection pool.
    pub fn new(settings: &ClientSettings) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(settings.tls_verify)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(HttpClient {
            pool: Arc::new(Pool::new(https, Self::IDLE_TIMEOUT)),
            connect_timeout: settings.connect_timeout,
        })
    }

    /// The TCP connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Send a request (its URI absolute); resolves at the response head.
    /// The body gives its connection back to the pool once read to the end.
    pub fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> impl Future<Output = Result<Response<PooledBody>, ClientError>> + Send + 'static {
        // Boxed: freed at the answer's head, so a stream waiting for its
        // first content does not keep the sending state (1,000 slow
        // streams: 2.5 MiB less at the peak).
        Box::pin(self.pool.clone().send(req))
    }
}

fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(verify: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?;
    Ok(if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth()
    })
}

/// `tls_verify = false`: accept any certificate, but still check that the
/// server holds the key of the certificate it sent.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The upstream edge of the stack. See the [module docs](crate::upstream).
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstream {
    _priv: (),
}

impl Upstream {
    /// The upstream service (stateless: each backend owns its client).
    pub fn new() -> Self {
        Upstream { _priv: () }
    }
}

/// The future returned by [`Upstream`].
pub type UpstreamFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

impl<B> Service<Request<B>> for Upstream {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, _body) = req.into_parts();
        let (Some(llm), Some(target)) = (
            parts.extensions.get::<LlmRequest>().cloned(),
            parts.extensions.get::<Target>().cloned(),
        ) else {
            return Box::pin(std::future::ready(Err(ProxyError::Internal(
                "the request reached the upstream without a parsed body or a target".into(),
            ))));
        };
        // The backend's header rules, after the global ones (the `headers` layer).
        let mut headers = parts.headers;
        target.backend().header_rules().apply(&mut headers);
        let credential = parts
            .extensions
            .get::<ClientCredential>()
            .map(|c| c.0.clone());
        let provider = target.backend().provider().clone();
        let call = Call {
            request: &llm,
            target: &target,
            headers: &headers,
            client_credential: credential.as_ref(),
        };
        let outbound = provider.prepare(&call);
        let native = provider.answer_format(&call) == llm.format();
        let strip_usage = parts.extensions.get::<UsageRequestedByProxy>().is_some();
        let usage_wanted = strip_usage || parts.extensions.get::<UsageWanted>().is_some();
        let waited = parts.extensions.get::<Waited>().cloned();
        let attempts = parts.extensions.get::<AttemptLog>().cloned();
        Box::pin(async move {
            let started = Instant::now();
            let result = send(
                outbound,
                &llm,
                &target,
                &provider,
                &headers,
                Usage {
                    wanted: usage_wanted,
                    strip: strip_usage,
                },
                native,
            )
            .await;
            let elapsed = started.elapsed();
            if let Some(waited) = waited {
                waited.add(elapsed);
            }
            if let Some(attempts) = attempts {
                attempts.push(AttemptRecord {
                    backend: target.backend().name().to_string(),
                    model: target.upstream_model(llm.model()).to_string(),
                    outcome: Outcome::of(&result),
                    status: result.as_ref().ok().map(|r| r.status().as_u16()),
                    error_kind: error_kind(&result),
                    elapsed,
                });
            }
            result
        })
    }
}

/// One attempt: send (or answer locally), then hold a stream until its first
/// content. All of it is time spent waiting on the upstream.
async fn send(
    outbound: Result<Outbound, ProxyError>,
    llm: &LlmRequest,
    target: &Target,
    provider: &Arc<dyn crate::provider::Provider>,
    headers: &http::HeaderMap,
    usage: Usage,
    native: bool,
) -> Result<Response<ProxyBody>, ProxyError> {
    let backend = target.backend();
    let started = Instant::now();
    let first_content_by = started + backend.first_byte_timeout();
    let response = match outbound? {
        Outbound::Local(response) => response,
        Outbound::Http(upstream_req) => {
            // A streamed answer with no head by its first-content deadline
            // has no first content either.
            let head_timeout = if llm.is_stream() {
                backend.timeout().min(backend.first_byte_timeout())
            } else {
                backend.timeout()
            };
            tracing::debug!(backend = backend.name(), uri = %upstream_req.uri(), "sending upstream");
            let sent = tokio::time::timeout(head_timeout, backend.client().request(upstream_req));
            let response = match sent.await {
                Err(_) => {
                    return Err(ProxyError::UpstreamTimeout {
                        backend: backend.name().to_string(),
                        after: head_timeout,
                    })
                }
                Ok(Err(e)) => return Err(classify_client_error(e, target)),
                Ok(Ok(response)) => response,
            };
            tracing::debug!(backend = backend.name(), status = %response.status(), "upstream answered");
            let call = Call {
                request: llm,
                target,
                headers,
                client_credential: None,
            };
            provider.respond(&call, response.map(ProxyBody::new))
        }
    };
    // XML tool emulation reads tool calls out of the pivot answer's text.
    let pivot_call = Call {
        request: llm,
        target,
        headers,
        client_credential: None,
    };
    let response = if backend.tool_mode().is_xml()
        && provider.answer_format(&pivot_call) == crate::request::ClientFormat::OpenAi
    {
        crate::translate::xml_tools::answer(response, llm)
    } else {
        response
    };
    // Local answers too: the mock answers in the pivot format.
    let response = if native {
        response
    } else {
        crate::translate::answer_to_client(llm.format(), response)
    };
    finish(response, llm, target, usage, first_content_by).await
}

/// What the stack wants of an answer's usage.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// A layer reads it ([`UsageWanted`]).
    wanted: bool,
    /// The proxy asked for it on the client's behalf: keep the usage-only
    /// chunk from the client ([`UsageRequestedByProxy`]).
    strip: bool,
}

/// When usage is wanted, the answer gets a [`UsageSlot`]. A successful
/// streamed answer is held until its first content event (the commit point)
/// and guarded after it; a JSON answer is tapped for its usage when wanted.
async fn finish(
    response: Response<ProxyBody>,
    llm: &LlmRequest,
    target: &Target,
    usage: Usage,
    first_content_by: Instant,
) -> Result<Response<ProxyBody>, ProxyError> {
    let backend = target.backend();
    let slot = usage.wanted.then(UsageSlot::default);
    let (mut parts, body) = response.into_parts();
    if let Some(slot) = &slot {
        parts.extensions.insert(slot.clone());
    }
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body));
    }
    let event_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if llm.is_stream() && event_stream {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let config = GuardConfig::new(llm.format()).idle_timeout(backend.idle_timeout());
        let mut guard = StreamGuard::new(body, config);
        if let Some(slot) = slot {
            guard = guard.with_usage(slot, usage.strip);
        }
        let left = first_content_by.saturating_duration_since(Instant::now());
        guard
            .wait_for_first_content(left)
            .await
            .map_err(|failure| match failure {
                StreamFailure::FirstByteTimeout(_) => ProxyError::UpstreamTimeout {
                    backend: backend.name().to_string(),
                    after: backend.first_byte_timeout(),
                },
                other => ProxyError::StreamFailed {
                    backend: backend.name().to_string(),
                    reason: other.to_string(),
                },
            })?;
        return Ok(Response::from_parts(parts, ProxyBody::new(guard)));
    }
    let body = crate::body::IdleTimeout::new(body, backend.idle_timeout());
    Ok(Response::from_parts(
        parts,
        match slot {
            Some(slot) => ProxyBody::new(UsageTap::new(body, slot, USAGE_TAP_CAP)),
            None => ProxyBody::new(body),
        },
    ))
}

/// Largest JSON answer kept aside to read its usage.
const USAGE_TAP_CAP: usize = 4 << 20;

/// A connect timeout is a timeout (504); anything else before the response
/// head (refused, reset, TLS failure) is a connection error (502).
fn classify_client_error(err: ClientError, target: &Target) -> ProxyError {
    let backend = target.backend();
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::UpstreamTimeout {
                    backend: backend.name().to_string(),
                    after: backend.client().connect_timeout(),
                };
            }
        }
        source = cause.source();
    }
    ProxyError::UpstreamConnect {
        backend: backend.name().to_string(),
        source: Box::new(err),
    }
}
