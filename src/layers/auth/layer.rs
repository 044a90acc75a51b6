//! [`AuthLayer`] and its [`Auth`] service and future, and [`Checked`]: the
//! check the app makes before a request's body is read.

// Parts of this file are the `access` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "access"), allow(unused_imports, dead_code))]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{Authenticated, ClientCredential, ClientIdentity, KeyStore};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{error_format_of as format_of, LlmRequest, RequestContext};
use crate::secret::Secret;
use crate::service::layer_service;

/// The outcome of [`KeyStore::authenticate`] for a request's headers,
/// reached before its body was read (by the app, see
/// [`App`](crate::App)). [`Auth`] takes it from the extensions instead
/// of checking the headers again; only the crate can make one, and it only
/// counts for the store that made it.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The address of the [`KeyStore`] that checked (compared, never read).
    store: usize,
    outcome: Result<Authenticated, Refusal>,
}

/// A refusal, kept as the parts of the 401 that `auth` answers.
#[derive(Clone, Debug)]
struct Refusal {
    message: String,
    code: &'static str,
}

impl Checked {
    /// Check `headers` with `keys` now.
    pub(crate) fn check(keys: &Arc<KeyStore>, headers: &HeaderMap) -> Checked {
        let outcome = keys.authenticate(headers).map_err(|e| match e {
            ProxyError::Unauthorized { message, code } => Refusal { message, code },
            // `authenticate` only refuses with 401s.
            other => Refusal {
                message: other.to_string(),
                code: other.code(),
            },
        });
        Checked {
            store: Arc::as_ptr(keys) as usize,
            outcome,
        }
    }

    /// Whether the client got in.
    pub fn is_authenticated(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The 401 of a refusal (a 500 if the client got in: never asked).
    pub(crate) fn into_error(self) -> ProxyError {
        match self.outcome {
            Err(r) => ProxyError::Unauthorized {
                message: r.message,
                code: r.code,
            },
            Ok(_) => ProxyError::Internal("the client was authenticated".into()),
        }
    }
}

/// The longest model name an error message repeats.
const MODEL_IN_MESSAGE: usize = 200;

/// A virtual key's allow-list against the model of the parsed request: the
/// 403 when the model is not allowed, or when there is no parsed request
/// to tell the model (refused rather than let through: the list is a limit).
fn check_model<B>(client: &Authenticated, req: &Request<B>) -> Option<ProxyError> {
    let key = client.virtual_key.as_ref()?;
    key.models()?;
    let model = req
        .extensions()
        .get::<LlmRequest>()
        .filter(|llm| llm.is_body_read())
        .map(LlmRequest::model);
    match model {
        Some(model) if key.allows(model) => None,
        Some(model) => Some(ProxyError::ModelNotAllowed {
            model: model.chars().take(MODEL_IN_MESSAGE).collect(),
            key: key.name().to_string(),
        }),
        None => Some(ProxyError::ModelNotAllowed {
            model: "(none: the request was not parsed)".into(),
            key: key.name().to_string(),
        }),
    }
}

#[cfg(feature = "access")]
/// Applies [`Auth`]. See the [module docs](crate::layers::auth).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    keys: Arc<KeyStore>,
}

#[cfg(feature = "access")]
impl AuthLayer {
    /// Check clients against `keys`.
    pub fn new(keys: Arc<KeyStore>) -> Self {
        AuthLayer { keys }
    }
}

#[cfg(feature = "access")]
impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

#[cfg(feature = "access")]
/// The client key check. See the [module docs](crate::layers::auth).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<KeyStore>,
}

#[cfg(feature = "access")]
layer_service!(Auth<S>, ResponseFuture<S::Future>);

#[cfg(feature = "access")]
impl<S> Auth<S> {
    /// The shared key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The `call` of [`Auth`]'s `Service` impl.
    fn respond<B>(&mut self, mut req: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ProxyBody>>,
    {
        // A path that is no endpoint is answered 404 whoever asks: there is
        // nothing behind it to protect, and nothing of it goes upstream.
        if req
            .extensions()
            .get::<crate::request::UnknownPath>()
            .is_some()
        {
            req.extensions_mut().remove::<Checked>();
            self.keys.strip_credentials(req.headers_mut());
            return ResponseFuture {
                kind: Kind::Accepted {
                    future: self.inner.call(req),
                    record: None,
                },
            };
        }
        // The app checked the headers before it read the body: that result
        // stands (checking again would count a refusal twice, or verify a
        // JWT twice). A check made against another store does not count.
        let checked = match req.extensions_mut().remove::<Checked>() {
            Some(checked) if checked.store == Arc::as_ptr(&self.keys) as usize => {
                checked.outcome.map_err(|r| ProxyError::Unauthorized {
                    message: r.message,
                    code: r.code,
                })
            }
            _ => self.keys.authenticate(req.headers()),
        };
        match checked {
            Err(e) => {
                tracing::debug!(
                    code = e.code(),
                    path = req.uri().path(),
                    "request refused by auth"
                );
                ResponseFuture {
                    kind: Kind::Refused {
                        response: Some(e.to_response(format_of(&req))),
                    },
                }
            }
            Ok(client) => {
                if let Some(refused) = check_model(&client, &req) {
                    tracing::debug!(
                        code = refused.code(),
                        path = req.uri().path(),
                        "request refused by auth"
                    );
                    self.keys.strip_credentials(req.headers_mut());
                    // Counted like any answer of this key.
                    let stats_key = client.stats_key();
                    self.keys.begin(&stats_key);
                    self.keys.finish(&stats_key, refused.status());
                    return ResponseFuture {
                        kind: Kind::Refused {
                            response: Some(refused.to_response(format_of(&req))),
                        },
                    };
                }
                self.keys.strip_credentials(req.headers_mut());
                if let Some(key) = client.client_key() {
                    // The virtual key and budget group, for the layers after
                    // this one (and, through the context, those outside it).
                    if let Some(context) = req.extensions().get::<RequestContext>() {
                        context.note_client_key(key.clone());
                    }
                    req.extensions_mut().insert(key);
                }
                req.extensions_mut()
                    .insert(ClientIdentity(client.identity()));
                // A JWT client's credential is its token (forwarded by
                // `api_key = "passthrough"` backends like a key).
                req.extensions_mut()
                    .insert(ClientCredential(client.key.clone()));
                let stats_key = client.stats_key();
                self.keys.begin(&stats_key);
                ResponseFuture {
                    kind: Kind::Accepted {
                        future: self.inner.call(req),
                        record: Some((self.keys.clone(), stats_key)),
                    },
                }
            }
        }
    }
}

#[cfg(feature = "access")]
pin_project! {
    /// The future of [`Auth`]: a refusal at once, or the inner call, counted
    /// per key when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

#[cfg(feature = "access")]
pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Refused { response: Option<Response<ProxyBody>> },
        Accepted {
            #[pin]
            future: F,
            record: Option<(Arc<KeyStore>, Secret)>,
        },
    }
}

#[cfg(feature = "access")]
impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(feature = "access")]
impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
{
    type Output = Result<Response<ProxyBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("auth ResponseFuture polled after completion"))),
            KindProj::Accepted { future, record } => {
                let out = ready!(future.poll(cx));
                if let Some((keys, key)) = record.take() {
                    let status = match &out {
                        Ok(response) => response.status(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    keys.finish(&key, status);
                }
                Poll::Ready(out)
            }
        }
    }
}
