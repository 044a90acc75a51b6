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

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request};
use regex::{Regex, RegexBuilder};
use tower::{Layer, Service};

/// Which headers a `drop` rule removes.
#[derive(Clone)]
pub enum HeaderMatcher {
    /// Exactly this name.
    Exact(HeaderName),
    /// Names this regex finds a match in (case-insensitive).
    Pattern(Regex),
}

impl fmt::Debug for HeaderMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderMatcher::Exact(n) => write!(f, "Exact({n})"),
            HeaderMatcher::Pattern(r) => write!(f, "Pattern({})", r.as_str()),
        }
    }
}

/// A `drop` entry that is neither a header name nor a valid regex.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a valid header name or regex: {reason}")]
pub struct BadMatcher {
    text: String,
    reason: String,
}

impl HeaderMatcher {
    /// An exact name when `text` has only letters, digits, `-` and `_`; a
    /// case-insensitive regex otherwise.
    ///
    /// ```
    /// use llm_router::layers::headers::HeaderMatcher;
    /// let exact = HeaderMatcher::parse("X-Forwarded-For").unwrap();
    /// assert!(exact.matches(&"x-forwarded-for".parse().unwrap()));
    /// assert!(!exact.matches(&"x-forwarded-for-2".parse().unwrap()));
    /// let regex = HeaderMatcher::parse(".*-token$").unwrap();
    /// assert!(regex.matches(&"x-session-token".parse().unwrap()));
    /// assert!(HeaderMatcher::parse("x-(unclosed").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, BadMatcher> {
        if text.trim().is_empty() {
            // An empty regex would match (and drop) every header.
            return Err(BadMatcher {
                text: text.into(),
                reason: "it is empty".into(),
            });
        }
        let plain = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if plain {
            return HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes())
                .map(HeaderMatcher::Exact)
                .map_err(|e| BadMatcher {
                    text: text.into(),
                    reason: e.to_string(),
                });
        }
        Self::pattern(text).map_err(|e| BadMatcher {
            text: text.into(),
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string(),
        })
    }

    /// A case-insensitive regex.
    pub fn pattern(regex: &str) -> Result<Self, regex::Error> {
        RegexBuilder::new(regex)
            .case_insensitive(true)
            .build()
            .map(HeaderMatcher::Pattern)
    }

    /// Whether the rule removes `name`.
    pub fn matches(&self, name: &HeaderName) -> bool {
        match self {
            HeaderMatcher::Exact(n) => n == name,
            HeaderMatcher::Pattern(r) => r.is_match(name.as_str()),
        }
    }
}

/// Header rules: `drop_all`, `drop`, `add`, `force`. See the
/// [module docs](crate::layers::headers).
#[derive(Clone, Debug, Default)]
pub struct HeaderRules {
    drop_all: bool,
    drop: Vec<HeaderMatcher>,
    add: Vec<(HeaderName, HeaderValue)>,
    force: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderRules {
    /// No rules.
    pub fn new() -> Self {
        HeaderRules::default()
    }

    /// Remove every client header (then `add` and `force` apply).
    pub fn drop_all(mut self, drop_all: bool) -> Self {
        self.drop_all = drop_all;
        self
    }

    /// Remove the headers `matcher` matches.
    pub fn drop(mut self, matcher: HeaderMatcher) -> Self {
        self.drop.push(matcher);
        self
    }

    /// Set `name` when the request has no such header.
    pub fn add(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.add.push((name, value));
        self
    }

    /// Set `name` always, replacing what the request has.
    pub fn force(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.force.push((name, value));
        self
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.drop_all && self.drop.is_empty() && self.add.is_empty() && self.force.is_empty()
    }

    /// Apply the rules to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.drop_all {
            headers.clear();
        } else if !self.drop.is_empty() {
            let gone: Vec<HeaderName> = headers
                .keys()
                .filter(|name| self.drop.iter().any(|m| m.matches(name)))
                .cloned()
                .collect();
            for name in gone {
                headers.remove(name);
            }
        }
        for (name, value) in &self.add {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.force {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Why `add`/`force` of `name` would have no effect, if it would not: the
/// upstream edge owns these headers.
///
/// ```
/// use llm_router::layers::headers::proxy_owned;
/// assert!(proxy_owned(&"authorization".parse().unwrap()).is_some());
/// assert!(proxy_owned(&"connection".parse().unwrap()).is_some());
/// assert!(proxy_owned(&"x-team".parse().unwrap()).is_none());
/// ```
pub fn proxy_owned(name: &HeaderName) -> Option<&'static str> {
    if crate::provider::is_hop_by_hop(name, &HeaderMap::new()) {
        Some("it is a hop-by-hop header, which never goes upstream (RFC 9110 §7.6.1)")
    } else if crate::provider::CREDENTIAL_HEADERS.contains(&name.as_str()) {
        Some("it is a credential header: the client's never goes upstream, and a backend's is set by its `api_key`")
    } else if [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::ACCEPT_ENCODING,
    ]
    .contains(name)
    {
        Some("the proxy sets it for each upstream request")
    } else {
        None
    }
}

/// Applies [`Headers`]. See the [module docs](crate::layers::headers).
#[derive(Clone, Debug)]
pub struct HeadersLayer {
    rules: Arc<HeaderRules>,
}

impl HeadersLayer {
    /// Apply `rules` to every request.
    pub fn new(rules: HeaderRules) -> Self {
        HeadersLayer {
            rules: Arc::new(rules),
        }
    }
}

impl<S> Layer<S> for HeadersLayer {
    type Service = Headers<S>;

    fn layer(&self, inner: S) -> Headers<S> {
        Headers {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The header rules service. See the [module docs](crate::layers::headers).
#[derive(Clone, Debug)]
pub struct Headers<S> {
    inner: S,
    rules: Arc<HeaderRules>,
}

impl<S> Headers<S> {
    /// The rules.
    pub fn rules(&self) -> &HeaderRules {
        &self.rules
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for Headers<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        self.rules.apply(req.headers_mut());
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
