//! `headers`: rules for the client headers that go upstream.
//!
//! [`HeaderRules`] are applied in this order:
//!
//! 1. `drop_all` removes every client header, or `drop` removes the headers
//!    whose name matches one of its [`HeaderMatcher`]s: an exact name, or a
//!    regex when the text has regex syntax (anything but letters, digits,
//!    `-` and `_`), matched case-insensitively and unanchored (write `^`/`$`
//!    to anchor);
//! 2. `add` sets a header only when the request has none of that name;
//! 3. `force` sets a header always, replacing any value.
//!
//! The [`HeadersLayer`] applies the global rules (`[headers]`) to the request
//! as it passes; a backend's own rules (`headers = {...}` of a
//! `[[backends]]` entry, see [`Backend`](crate::routing::Backend)) are applied
//! after them at the upstream edge, for each attempt on that backend.
//!
//! Whatever the rules say, the upstream edge then removes the hop-by-hop
//! headers (RFC 9110 §7.6.1), `host`, `content-length` and the client's
//! credentials, and the provider sets `content-type` and the backend's own
//! credential last, so rules cannot remove or replace it. (`[headers]` in a
//! config refuses `add`/`force` of those names, since they would have no
//! effect.)
//!
//! ```
//! use http::{HeaderName, HeaderValue, Request};
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::layers::headers::{HeaderMatcher, HeaderRules, HeadersLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rules = HeaderRules::new()
//!     .drop(HeaderMatcher::parse("x-forwarded-for").unwrap())
//!     .drop(HeaderMatcher::parse("^x-debug-.*").unwrap())
//!     .add(HeaderName::from_static("user-agent"), HeaderValue::from_static("llm-router"))
//!     .force(HeaderName::from_static("x-team"), HeaderValue::from_static("a"));
//! let upstream = service_fn(|req: Request<()>| async move {
//!     let h = req.headers();
//!     assert!(h.get("x-forwarded-for").is_none() && h.get("x-debug-trace").is_none());
//!     assert_eq!(h["user-agent"], "curl/8");   // present: `add` leaves it
//!     assert_eq!(h["x-team"], "a");            // `force` replaces it
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let req = Request::get("/")
//!     .header("x-forwarded-for", "10.0.0.1")
//!     .header("X-Debug-Trace", "1")
//!     .header("user-agent", "curl/8")
//!     .header("x-team", "b")
//!     .body(()).unwrap();
//! HeadersLayer::new(rules).layer(upstream).oneshot(req).await.unwrap();
//! # }
//! ```

// Parts of this file are the `access` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "access"), allow(unused_imports, dead_code))]

use std::sync::Arc;

use http::Request;
use tower::{Layer, Service};

use crate::service::layer_service;

pub use crate::upstream::{proxy_owned, BadMatcher, HeaderMatcher, HeaderRules};

#[cfg(feature = "access")]
/// Applies [`Headers`]. See the [module docs](crate::layers::headers).
#[derive(Clone, Debug)]
pub struct HeadersLayer {
    rules: Arc<HeaderRules>,
}

#[cfg(feature = "access")]
impl HeadersLayer {
    /// Apply `rules` to every request.
    pub fn new(rules: HeaderRules) -> Self {
        HeadersLayer {
            rules: Arc::new(rules),
        }
    }
}

#[cfg(feature = "access")]
impl<S> Layer<S> for HeadersLayer {
    type Service = Headers<S>;

    fn layer(&self, inner: S) -> Headers<S> {
        Headers {
            inner,
            rules: self.rules.clone(),
        }
    }
}

#[cfg(feature = "access")]
/// The header rules service. See the [module docs](crate::layers::headers).
#[derive(Clone, Debug)]
pub struct Headers<S> {
    inner: S,
    rules: Arc<HeaderRules>,
}

#[cfg(feature = "access")]
layer_service!(Headers<S>, passing);

#[cfg(feature = "access")]
impl<S> Headers<S> {
    /// The rules.
    pub fn rules(&self) -> &HeaderRules {
        &self.rules
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The `call` of [`Headers`]' `Service` impl.
    fn respond<B>(&mut self, mut req: Request<B>) -> S::Future
    where
        S: Service<Request<B>>,
    {
        self.rules.apply(req.headers_mut());
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;
    use http::{HeaderMap, HeaderValue};

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn name(n: &'static str) -> HeaderName {
        HeaderName::from_static(n)
    }

    #[test]
    fn matcher_kinds() {
        assert!(matches!(
            HeaderMatcher::parse("x-forwarded-for").unwrap(),
            HeaderMatcher::Exact(_)
        ));
        assert!(matches!(
            HeaderMatcher::parse("X_Custom").unwrap(),
            HeaderMatcher::Exact(_)
        ));
        for re in ["^x-.*", ".*-token$", "x-(a|b)", "x-[0-9]+"] {
            assert!(
                matches!(HeaderMatcher::parse(re).unwrap(), HeaderMatcher::Pattern(_)),
                "{re}"
            );
        }
        let e = HeaderMatcher::parse("x-[").unwrap_err();
        assert!(e.to_string().contains("x-["), "{e}");
        assert!(HeaderMatcher::parse("").is_err());
    }

    #[test]
    fn regex_is_case_insensitive() {
        let m = HeaderMatcher::parse("^X-SECRET-.*").unwrap();
        assert!(m.matches(&name("x-secret-a")));
        assert!(!m.matches(&name("y-x-secret-a")));
    }

    #[test]
    fn drop_add_force_in_order() {
        let rules = HeaderRules::new()
            .drop(HeaderMatcher::parse("^x-.*").unwrap())
            .drop(HeaderMatcher::parse("cookie").unwrap())
            .add(name("x-added"), HeaderValue::from_static("1"))
            .add(name("user-agent"), HeaderValue::from_static("llm-router"))
            .force(name("x-forced"), HeaderValue::from_static("f"));
        let mut h = map(&[
            ("x-one", "1"),
            ("x-forced", "client"),
            ("x-forced", "client2"),
            ("cookie", "c"),
            ("user-agent", "sdk"),
            ("accept", "*/*"),
        ]);
        rules.apply(&mut h);
        assert!(h.get("x-one").is_none());
        assert!(h.get("cookie").is_none());
        // `add` after `drop`: the dropped name may be added back.
        assert_eq!(h["x-added"], "1");
        assert_eq!(h["user-agent"], "sdk");
        assert_eq!(
            h.get_all("x-forced").iter().collect::<Vec<_>>(),
            ["f"],
            "force replaces every value"
        );
        assert_eq!(h["accept"], "*/*");
    }

    #[test]
    fn drop_all_then_add() {
        let rules = HeaderRules::new()
            .drop_all(true)
            .add(name("user-agent"), HeaderValue::from_static("llm-router"));
        let mut h = map(&[("user-agent", "sdk"), ("x-a", "1")]);
        rules.apply(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["user-agent"], "llm-router");
        assert!(HeaderRules::new().is_empty());
        assert!(!rules.is_empty());
    }

    #[test]
    fn owned_names() {
        for n in [
            "x-api-key",
            "api-key",
            "host",
            "content-length",
            "transfer-encoding",
            "te",
        ] {
            assert!(proxy_owned(&HeaderName::from_static(n)).is_some(), "{n}");
        }
        assert!(proxy_owned(&name("user-agent")).is_none());
    }
}
