//! `cors`: CORS for browser clients, and standard security headers.
//!
//! [`CorsLayer`] is tower-http's [`CorsLayer`](tower_http::cors::CorsLayer)
//! built from a typed [`CorsPolicy`], plus these headers on every answer
//! that does not set them itself:
//!
//! - `x-content-type-options: nosniff`
//! - `x-frame-options: DENY`
//! - `referrer-policy: no-referrer`
//! - `content-security-policy: default-src 'none'; frame-ancestors 'none'`
//!
//! Preflight requests (`OPTIONS`) are answered by the layer itself, without
//! calling the service inside. That is why, in llm-router, `cors` wraps the
//! whole [`App`](crate::App) — the endpoints, and the LLM stack inside
//! them — wherever it is named in `[stack] order`: a preflight has no body
//! and no model, so it never reaches the LLM stack, and CORS headers must be
//! on every answer (401s, 429s and `/v1/models` included) for a browser to
//! read them.
//!
//! ```
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::layers::cors::{CorsLayer, CorsPolicy, Origins};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let policy = CorsPolicy {
//!     allow_origins: Origins::List(vec!["https://app.example".parse().unwrap()]),
//!     ..CorsPolicy::default()
//! };
//! let app = service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("{}")))
//! });
//! let service = CorsLayer::new(&policy).unwrap().layer(app);
//!
//! let preflight = Request::options("/v1/chat/completions")
//!     .header("origin", "https://app.example")
//!     .header("access-control-request-method", "POST")
//!     .header("access-control-request-headers", "authorization, content-type")
//!     .body(()).unwrap();
//! let answer = service.clone().oneshot(preflight).await.unwrap();
//! assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example");
//! assert!(answer.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
//!
//! let get = Request::get("/v1/models").body(()).unwrap();
//! let answer = service.oneshot(get).await.unwrap();
//! assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::cors::{self, AllowHeaders, AllowMethods, AllowOrigin, ExposeHeaders};

/// Which origins may call the proxy from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    /// Any (`*`).
    Any,
    /// These, exactly (`https://app.example`, scheme and port included).
    List(Vec<HeaderValue>),
}

/// A header list that may be a wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderList {
    /// `*` (not allowed together with credentials).
    Any,
    /// For `allow_headers`: whatever headers the preflight asks for.
    Mirror,
    /// These names.
    List(Vec<HeaderName>),
}

/// The CORS settings. See the [module docs](crate::layers::cors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    /// `Access-Control-Allow-Origin`. Default: any.
    pub allow_origins: Origins,
    /// `Access-Control-Allow-Methods`; `None` = any. Default: GET, POST, OPTIONS.
    pub allow_methods: Option<Vec<Method>>,
    /// `Access-Control-Allow-Headers`. Default: mirror the preflight's
    /// `Access-Control-Request-Headers` (a `*` would not cover `Authorization`).
    pub allow_headers: HeaderList,
    /// `Access-Control-Expose-Headers`. Default: the proxy's own answer
    /// headers (`x-request-id`, `x-llm-router-overhead-ms`, `x-ratelimit-*`,
    /// `retry-after`).
    pub expose_headers: HeaderList,
    /// `Access-Control-Max-Age`: how long a browser may cache a preflight. Default 10 minutes.
    pub max_age: Duration,
    /// `Access-Control-Allow-Credentials`. Default false; true needs listed
    /// origins, methods and exposed headers.
    pub allow_credentials: bool,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy {
            allow_origins: Origins::Any,
            allow_methods: Some(vec![Method::GET, Method::POST, Method::OPTIONS]),
            allow_headers: HeaderList::Mirror,
            expose_headers: HeaderList::List(
                [
                    "x-request-id",
                    "x-llm-router-overhead-ms",
                    "x-ratelimit-limit",
                    "x-ratelimit-remaining",
                    "x-ratelimit-reset",
                    "retry-after",
                    "x-llm-router-estimate",
                    "x-llm-router-dropped",
                    "x-llm-router-cost-usd",
                ]
                .into_iter()
                .map(HeaderName::from_static)
                .collect(),
            ),
            max_age: Duration::from_secs(600),
            allow_credentials: false,
        }
    }
}

impl CorsPolicy {
    /// Why this policy cannot be used, if it cannot (browsers refuse
    /// credentials together with a wildcard).
    pub fn problem(&self) -> Option<&'static str> {
        if let Origins::List(list) = &self.allow_origins {
            if list.is_empty() {
                return Some("allow_origins lists no origin");
            }
        }
        if !self.allow_credentials {
            return None;
        }
        if self.allow_origins == Origins::Any {
            Some("allow_credentials = true cannot be combined with allow_origins = [\"*\"]; list the origins")
        } else if self.allow_methods.is_none() {
            Some("allow_credentials = true cannot be combined with allow_methods = [\"*\"]; list the methods")
        } else if self.allow_headers == HeaderList::Any {
            Some("allow_credentials = true cannot be combined with allow_headers = [\"*\"]; list them or leave the default")
        } else if self.expose_headers == HeaderList::Any {
            Some("allow_credentials = true cannot be combined with expose_headers = [\"*\"]; list them")
        } else {
            None
        }
    }
}

/// A [`CorsPolicy`] that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid CORS policy: {0}")]
pub struct InvalidCors(&'static str);

/// The security headers set on every answer that lacks them.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// Applies [`Cors`]. See the [module docs](crate::layers::cors).
#[derive(Clone, Debug)]
pub struct CorsLayer {
    cors: cors::CorsLayer,
}

impl CorsLayer {
    /// CORS per `policy`.
    pub fn new(policy: &CorsPolicy) -> Result<Self, InvalidCors> {
        if let Some(problem) = policy.problem() {
            return Err(InvalidCors(problem));
        }
        let origin = match &policy.allow_origins {
            Origins::Any => AllowOrigin::any(),
            Origins::List(list) => AllowOrigin::list(list.iter().cloned()),
        };
        let methods = match &policy.allow_methods {
            None => AllowMethods::any(),
            Some(list) => AllowMethods::list(list.iter().cloned()),
        };
        let headers = match &policy.allow_headers {
            HeaderList::Any => AllowHeaders::any(),
            HeaderList::Mirror => AllowHeaders::mirror_request(),
            HeaderList::List(list) => AllowHeaders::list(list.iter().cloned()),
        };
        let expose = match &policy.expose_headers {
            HeaderList::Any => ExposeHeaders::any(),
            // Nothing to mirror in an answer: expose nothing extra.
            HeaderList::Mirror => ExposeHeaders::list(Vec::<HeaderName>::new()),
            HeaderList::List(list) => ExposeHeaders::list(list.iter().cloned()),
        };
        Ok(CorsLayer {
            cors: cors::CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(methods)
                .allow_headers(headers)
                .expose_headers(expose)
                .max_age(policy.max_age)
                .allow_credentials(policy.allow_credentials),
        })
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner: self.cors.layer(inner),
        }
    }
}

/// CORS and security headers around a service. See the
/// [module docs](crate::layers::cors).
#[derive(Clone, Debug)]
pub struct Cors<S> {
    inner: cors::Cors<S>,
}

impl<S> Cors<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<cors::ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`Cors`]: adds the security headers to the answer.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.project().inner.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in SECURITY_HEADERS {
            if !headers.contains_key(name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceExt};

    fn app() -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<String>, Infallible>>,
    > + Clone {
        service_fn(|req: Request<()>| async move {
            let mut r = Response::new(String::new());
            if req.uri().path() == "/nosniff-set" {
                r.headers_mut()
                    .insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
            }
            Ok(r)
        })
    }

    #[tokio::test]
    async fn preflight_any_origin_mirrors_headers() {
        let svc = CorsLayer::new(&CorsPolicy::default()).unwrap().layer(app());
        let req = Request::options("/v1/chat/completions")
            .header("origin", "https://x.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,x-api-key")
            .body(())
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-headers"], "authorization,x-api-key");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn listed_origins_only() {
        let policy = CorsPolicy {
            allow_origins: Origins::List(vec![HeaderValue::from_static("https://a.example")]),
            ..CorsPolicy::default()
        };
        let svc = CorsLayer::new(&policy).unwrap().layer(app());
        let req = |origin: &'static str| {
            Request::get("/v1/models")
                .header("origin", origin)
                .body(())
                .unwrap()
        };
        let r = svc.clone().oneshot(req("https://a.example")).await.unwrap();
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://a.example"
        );
        let expose = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(expose.contains("x-request-id"), "{expose}");
        let r = svc.oneshot(req("https://evil.example")).await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }

    #[tokio::test]
    async fn security_headers_do_not_override() {
        let svc = CorsLayer::new(&CorsPolicy::default()).unwrap().layer(app());
        let r = svc
            .oneshot(Request::get("/nosniff-set").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    }

    #[test]
    fn credentials_need_listed_values() {
        let policy = CorsPolicy {
            allow_credentials: true,
            ..CorsPolicy::default()
        };
        assert!(CorsLayer::new(&policy).is_err());
        let policy = CorsPolicy {
            allow_credentials: true,
            allow_origins: Origins::List(vec![HeaderValue::from_static("https://a.example")]),
            ..CorsPolicy::default()
        };
        assert!(CorsLayer::new(&policy).is_ok());
        let policy = CorsPolicy {
            allow_origins: Origins::List(vec![]),
            ..CorsPolicy::default()
        };
        assert!(CorsLayer::new(&policy).is_err());
    }
}
