//! The innermost service: [`Upstream`] makes, for each target, the
//! [`TargetUpstream`] service that sends requests to that target and streams
//! the answers back, frame by frame.
//!
//! The target is a constructor input ([`NewService`]); each request brings
//! its [`LlmRequest`] in its extensions. The target's [`Provider`](crate::upstream::provider::Provider) build
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
//! use llm_router::upstream::provider::mock::Mock;
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::routing::{Backend, Target};
//! use llm_router::stack::NewService;
//! use llm_router::upstream::Upstream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
//! let local = Upstream::new().new_service(Target::new(backend, None));
//! let mut req = Request::new(());
//! req.extensions_mut().insert(LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#).unwrap());
//! let answer = local.oneshot(req).await.unwrap();
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

use crate::service::NewService;

mod backend;
mod cost;
mod finish;
pub(crate) mod guard;
mod header_rules;
pub mod limits;
pub mod mask;
pub mod pool;
pub mod provider;
mod state_key;
mod target;
pub(crate) mod translate;

pub use backend::{Backend, BackendBuilder, BuildError, Credential, UpstreamApi};
pub use cost::COST_HEADER;
pub use header_rules::{proxy_owned, BadMatcher, HeaderMatcher, HeaderRules};
pub(crate) use state_key::is_passthrough;
pub use state_key::{state_key, target_key, without_credential_tag, CredentialTag};
pub use target::{Target, TargetKey};

use pool::Pool;
pub use pool::{ClientError, PooledBody};

use crate::body::ProxyBody;
use crate::classify::{error_kind, AttemptRecord, Outcome};
use crate::error::ProxyError;
use crate::pricing::Pricing;
use crate::request::{LlmRequest, RequestContext};
use crate::upstream::guard::StreamFailure;
use crate::upstream::provider::{Call, ClientCredential, Outbound};
use crate::usage::{UsageRequestedByProxy, UsageSlot, UsageWanted};
use finish::{finish, Finish, Usage};
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
    pub fn request(&self, req: Request<Full<Bytes>>) -> ResponseFuture {
        // Boxed: freed at the answer's head, so a stream waiting for its
        // first content does not keep the sending state (1,000 slow
        // streams: 2.5 MiB less at the peak).
        Box::pin(self.pool.clone().send(req))
    }
}

/// The answer's head to come, from [`HttpClient::request`].
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<PooledBody>, ClientError>> + Send>>;

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

/// The upstream edge of the stack: makes each target's [`TargetUpstream`].
/// See the [module docs](crate::upstream).
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    pricing: Option<Arc<Pricing>>,
}

impl Upstream {
    /// The upstream edge (stateless: each backend owns its client), without
    /// prices: answers carry no cost.
    pub fn new() -> Self {
        Upstream { pricing: None }
    }

    /// Price answers with `pricing`: each answer's
    /// [`UsageSlot`] gets the price of the model
    /// its target was asked for, and a non-streamed JSON answer of a priced
    /// model is read whole (bounded, see [`limits`]) before its head goes
    /// out, to carry its cost in [`COST_HEADER`].
    pub fn with_pricing(mut self, pricing: Arc<Pricing>) -> Self {
        self.pricing = Some(pricing);
        self
    }
}

impl NewService<Target> for Upstream {
    type Service = TargetUpstream;

    fn new_service(&self, target: Target) -> TargetUpstream {
        let price = cost::PriceOf::new(self.pricing.as_ref(), &target);
        TargetUpstream { target, price }
    }
}

/// Sends requests to one target. Made by [`Upstream`].
#[derive(Clone, Debug)]
pub struct TargetUpstream {
    target: Target,
    price: cost::PriceOf,
}

impl TargetUpstream {
    /// The target this service sends to.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// The future returned by [`TargetUpstream`].
pub type UpstreamFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

impl<B> Service<Request<B>> for TargetUpstream {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, _body) = req.into_parts();
        let Some(llm) = parts.extensions.get::<LlmRequest>().cloned() else {
            return Box::pin(std::future::ready(Err(crate::request::without_request(
                &parts.extensions,
                "the upstream",
            ))));
        };
        let target = self.target.clone();
        // The backend's header rules, after the global ones (the `headers` layer).
        let rules = target.backend().header_rules();
        let mut headers = std::mem::take(&mut parts.headers);
        // The client's account headers do not ride on the backend's own key
        // (the backend's rules may still set them).
        let keyed = matches!(target.backend().credential(), Credential::Key(_))
            && mask::has_client_account_headers(&headers);
        if keyed {
            mask::strip_client_account_headers(&mut headers);
        }
        rules.apply(&mut headers);
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
        let usage = Usage {
            wanted: strip_usage || parts.extensions.get::<UsageWanted>().is_some(),
            strip: strip_usage,
            price: self.price.get(&target, llm.model()),
        };
        let context = parts.extensions.get::<RequestContext>().cloned();
        // Started here, so the future holds only what the answer needs: the
        // request's headers and body are gone once this returns.
        let sending = start(outbound, &llm, &target);
        drop(headers);
        // Made before the answer, so that the attempt's record keeps what
        // the upstream reported even when the attempt fails.
        let slot = usage.wanted.then(|| UsageSlot::priced(usage.price));
        Box::pin(async move {
            let started = Instant::now();
            let result = async {
                let backend = target.backend();
                let first_content_by = started + backend.first_byte_timeout();
                let response = match sending? {
                    Sending::Local(response) => response,
                    Sending::Http { answer, timeout } => {
                        // From `started`: one clock reading fewer per request.
                        let response = match tokio::time::timeout_at(started + timeout, answer).await {
                            Err(_) => {
                                return Err(ProxyError::UpstreamTimeout {
                                    backend: backend.name().to_string(),
                                    after: timeout,
                                })
                            }
                            Ok(Err(e)) => return Err(classify_client_error(e, &target)),
                            Ok(Ok(response)) => response,
                        };
                        tracing::debug!(backend = backend.name(), status = %response.status(), "upstream answered");
                        let response = without_secrets(response.map(ProxyBody::new), &target);
                        provider.respond(&answer_call(&llm, &target), response)
                    }
                };
                let response = to_client(response, &llm, &target, &provider, native);
                match finish(response, &llm, &target, usage, slot.clone(), first_content_by) {
                    Finish::Done(response) => Ok(response),
                    Finish::Read {
                        parts,
                        body,
                        price,
                        slot,
                        cap,
                    } => Ok(cost::with_cost(parts, body, price, slot, cap).await),
                    Finish::FirstContent {
                        parts,
                        mut guard,
                        left,
                    } => {
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
                        Ok(Response::from_parts(parts, ProxyBody::from_box(guard)))
                    }
                }
            }
            .await;
            let elapsed = started.elapsed();
            if let Some(context) = context {
                context.add_wait(elapsed);
                context.push_attempt(|| AttemptRecord {
                    backend: target.backend().name().to_string(),
                    model: target.upstream_model(llm.model()).to_string(),
                    outcome: Outcome::of(&result),
                    status: result.as_ref().ok().map(|r| r.status().as_u16()),
                    error_kind: error_kind(&result),
                    elapsed,
                    usage: slot,
                });
            }
            result
        })
    }
}

/// An attempt under way: a local answer, or the upstream's answer to come.
enum Sending {
    Local(Response<ProxyBody>),
    Http {
        answer: ResponseFuture,
        /// Until the answer's head.
        timeout: Duration,
    },
}

/// Send the request (or take the local answer). All the time from here to
/// the first content is time spent waiting on the upstream.
fn start(
    outbound: Result<Outbound, ProxyError>,
    llm: &LlmRequest,
    target: &Target,
) -> Result<Sending, ProxyError> {
    Ok(match outbound? {
        Outbound::Local(response) => Sending::Local(response),
        Outbound::Http(upstream_req) => {
            let backend = target.backend();
            // A streamed answer with no head by its first-content deadline
            // has no first content either.
            let timeout = if llm.is_stream() {
                backend.timeout().min(backend.first_byte_timeout())
            } else {
                backend.timeout()
            };
            tracing::debug!(backend = backend.name(), uri = %upstream_req.uri(), "sending upstream");
            Sending::Http {
                answer: backend.client().request(upstream_req),
                timeout,
            }
        }
    })
}

/// The upstream's answer as it may reach a client: account headers dropped,
/// the backend's own key masked in headers, and in the body of an error
/// answer or an event stream (whose error events come mid-stream); a
/// successful JSON answer keeps its bytes and length (see [`mask`]).
fn without_secrets(response: Response<ProxyBody>, target: &Target) -> Response<ProxyBody> {
    let key = target.backend().key_mask();
    let (mut parts, body) = response.into_parts();
    mask::sanitize_answer_headers(&mut parts.headers, key.map(|k| &**k));
    let may_carry_an_error = !parts.status.is_success()
        || crate::upstream::translate::body::is_event_stream(&parts.headers);
    let body = match key {
        Some(key) if may_carry_an_error => {
            // The length may change.
            parts.headers.remove(http::header::CONTENT_LENGTH);
            ProxyBody::new(mask::MaskedBody::new(body, key.clone()))
        }
        _ => body,
    };
    Response::from_parts(parts, body)
}

/// The call the provider sees when it answers: the request's headers were
/// forwarded by `prepare` and are not kept while the answer is awaited.
fn answer_call<'a>(llm: &'a LlmRequest, target: &'a Target) -> Call<'a> {
    static NO_HEADERS: std::sync::LazyLock<http::HeaderMap> =
        std::sync::LazyLock::new(http::HeaderMap::new);
    Call {
        request: llm,
        target,
        headers: &NO_HEADERS,
        client_credential: None,
    }
}

/// The provider's answer in the client's format.
fn to_client(
    response: Response<ProxyBody>,
    llm: &LlmRequest,
    target: &Target,
    provider: &Arc<dyn crate::upstream::provider::Provider>,
    native: bool,
) -> Response<ProxyBody> {
    // XML tool emulation reads tool calls out of the pivot answer's text.
    let response = if target.backend().tool_mode().is_xml()
        && provider.answer_format(&answer_call(llm, target)) == crate::request::ClientFormat::OpenAi
    {
        crate::upstream::translate::xml_tools::answer(response, llm)
    } else {
        response
    };
    // Local answers too: the mock answers in the pivot format. A token
    // count is in the client's format whoever answered it.
    if native || llm.endpoint().counts_tokens() {
        return response;
    }
    let mut response = crate::upstream::translate::answer_to_client(llm, response);
    if llm.format() == crate::request::ClientFormat::Responses {
        // Hosted tools the translated backend could not run were removed
        // from the request: say which.
        let dropped = crate::upstream::translate::responses::inbound::dropped_tools(llm.body());
        if !dropped.is_empty() {
            if let Ok(value) = http::HeaderValue::try_from(dropped.join(", ")) {
                response.headers_mut().insert(DROPPED_HEADER, value);
            }
        }
    }
    response
}

/// The answer header naming the hosted tools removed from a Responses
/// request that a translated backend could not run.
pub const DROPPED_HEADER: http::HeaderName = http::HeaderName::from_static("x-llm-router-dropped");

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::headers::HeaderRules;
    use crate::request::Endpoint;
    use crate::upstream::provider::mock::Mock;
    use crate::upstream::Backend;
    use http::{HeaderName, HeaderValue};
    use tower::ServiceExt;

    /// An extension that counts its live copies.
    #[derive(Clone)]
    struct Tracked(Arc<()>);

    /// The upstream of a mock backend with `rules`.
    fn local(rules: HeaderRules) -> TargetUpstream {
        let backend = Arc::new(
            Backend::builder("local", Arc::new(Mock))
                .header_rules(rules)
                .build()
                .unwrap(),
        );
        Upstream::new().new_service(Target::new(backend, None))
    }

    /// A chat request carrying `tracked`.
    fn chat(tracked: &Tracked) -> Request<ProxyBody> {
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(
            LlmRequest::parse(
                Endpoint::ChatCompletions,
                br#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#,
            )
            .unwrap(),
        );
        req.extensions_mut().insert(tracked.clone());
        req
    }

    #[tokio::test]
    async fn keeps_nothing_of_the_request_once_sent() {
        // The backend's header rules edit the request's own headers: a
        // retry above replays its own copy (see `layers::retry`).
        let rules = HeaderRules::new().force(
            HeaderName::from_static("x-team"),
            HeaderValue::from_static("forced"),
        );
        let tracked = Tracked(Arc::new(()));
        let mut req = chat(&tracked);
        req.headers_mut()
            .insert("x-team", HeaderValue::from_static("a"));
        let answer = local(rules).oneshot(req).await.unwrap();
        assert_eq!(answer.status(), 200);
        // The answer holds no part of the request.
        assert_eq!(Arc::strong_count(&tracked.0), 1);
        drop(answer);
        assert_eq!(Arc::strong_count(&tracked.0), 1);
    }
}
