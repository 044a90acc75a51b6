//! Header rules: what happens to the client's headers on their way
//! upstream ([`HeaderRules`]), shared by the `headers` layer (the global
//! `[headers]` rules) and each backend (its own rules, applied at the edge).
//! See [`layers::headers`](crate::layers::headers) for the order and an
//! example.

use std::fmt;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};
use regex::{Regex, RegexBuilder};

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
    if crate::upstream::provider::is_hop_by_hop(name, &HeaderMap::new()) {
        Some("it is a hop-by-hop header, which never goes upstream (RFC 9110 §7.6.1)")
    } else if crate::upstream::provider::is_credential_header(name.as_str()) {
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
