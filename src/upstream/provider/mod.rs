//! Provider adapters: how a request for a [`Target`] becomes an upstream
//! call, and how the upstream's answer becomes the client's answer.
//!
//! A [`Provider`] has two steps. [`Provider::prepare`] turns the parsed
//! [`LlmRequest`] into an [`Outbound`]: an HTTP request for the upstream, or —
//! for providers that answer locally, like [`mock`] — the answer itself.
//! [`Provider::respond`] turns the upstream's response into the client's
//! format; it wraps the body, never collects it.
//!
//! Providers are looked up by their config name with [`by_name`]. Adding a
//! provider means one new module here and one line in [`by_name`].
//!
//! A provider also says how a backend's models are listed
//! ([`Provider::model_list`], [`Provider::parse_model_list`]): `GET /v1/models`
//! shows them for pattern and `*` routes (see the model catalog, `catalog`).
//!
//! ```
//! let openai = llm_router::upstream::provider::by_name("openai").unwrap();
//! assert_eq!(openai.default_base_url(), Some("https://api.openai.com/v1"));
//! assert!(llm_router::upstream::provider::by_name("nope").is_none());
//! ```

pub mod anthropic;
pub mod gemini;
pub mod mock;
pub mod ollama;
pub mod openai;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::LlmRequest;
use crate::secret::Secret;
use crate::upstream::{Backend, Target};

/// Everything a provider sees of one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The parsed client request (after every request layer).
    pub request: &'a LlmRequest,
    /// The target chosen for this attempt.
    pub target: &'a Target,
    /// The client's request headers (after header rules), for
    /// [`prepare`](Provider::prepare). Empty when the answer is handled
    /// ([`respond`](Provider::respond), and `answer_format` from then on):
    /// the headers are not kept while the answer is awaited.
    pub headers: &'a HeaderMap,
    /// The key the client authenticated with, when `auth` ran (it removes
    /// the credential headers); `api_key = "passthrough"` forwards it.
    pub client_credential: Option<&'a Secret>,
}

/// The key a client authenticated with, kept by `auth` in the request's
/// extensions after it removed the credential headers. A backend with
/// `api_key = "passthrough"` forwards it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCredential(pub Secret);

/// What a provider wants done with a request.
#[derive(Debug)]
pub enum Outbound {
    /// Send this request upstream.
    Http(Request<Full<Bytes>>),
    /// Answer with this response; nothing goes upstream.
    Local(Response<ProxyBody>),
}

/// How a backend's models are listed ([`Provider::model_list`]).
#[derive(Debug)]
pub enum ModelListing {
    /// Send this `GET` to the backend; its answer is read by
    /// [`Provider::parse_model_list`]. (Boxed: made once in minutes.)
    Fetch(Box<Request<Full<Bytes>>>),
    /// These, known without asking anyone (the mock's).
    Fixed(&'static [&'static str]),
    /// The backend cannot be asked: it has no key of its own
    /// (`api_key = "passthrough"` sends each client's).
    Unavailable,
}

/// A provider adapter. See the [module docs](crate::upstream::provider).
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// The name used in config (`provider = "openai"`).
    fn name(&self) -> &'static str;

    /// The API root used when a backend sets no `base_url`.
    fn default_base_url(&self) -> Option<&'static str>;

    /// Build the upstream request (or a local answer) for one attempt.
    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError>;

    /// Turn the upstream's answer into the format [`answer_format`](Provider::answer_format)
    /// names: the pivot (OpenAI) format, unless the provider speaks the
    /// client's own format. The body is wrapped, never collected.
    fn respond(&self, call: &Call<'_>, response: Response<ProxyBody>) -> Response<ProxyBody>;

    /// The format [`respond`](Provider::respond) answers in for this call;
    /// the upstream edge translates it into the client's format when they
    /// differ. Default: the pivot, OpenAI.
    fn answer_format(&self, _call: &Call<'_>) -> crate::request::ClientFormat {
        crate::request::ClientFormat::OpenAi
    }

    /// How to list the models `backend` serves: the request to its own
    /// model-list endpoint, with its key. Default: none listed.
    fn model_list(&self, _backend: &Backend) -> Result<ModelListing, ProxyError> {
        Ok(ModelListing::Fixed(&[]))
    }

    /// The model ids in a backend's answer to [`model_list`](Provider::model_list)'s
    /// request. Default: OpenAI's list, `{"data": [{"id": ..}, ..]}` (also
    /// Anthropic's).
    fn parse_model_list(&self, body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
        parse_data_ids(body)
    }
}

/// The ids of an OpenAI (or Anthropic) model list, `{"data": [{"id": ..}]}`;
/// entries without an id are skipped.
pub fn parse_data_ids(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        id: Option<String>,
    }
    let list: List = serde_json::from_slice(body)?;
    Ok(list.data.into_iter().filter_map(|e| e.id).collect())
}

/// The `GET` of a backend's model list: `headers` (a key among them) on
/// `uri`. `Unavailable` for a backend whose key is each client's own.
pub(crate) fn list_request(
    backend: &Backend,
    uri: http::Uri,
    headers: impl FnOnce(Option<&str>) -> Result<HeaderMap, ProxyError>,
) -> Result<ModelListing, ProxyError> {
    let key = match backend.credential() {
        crate::upstream::Credential::None => None,
        crate::upstream::Credential::Key(secret) => Some(secret.expose()),
        crate::upstream::Credential::Passthrough => return Ok(ModelListing::Unavailable),
    };
    let mut builder = Request::builder().method(http::Method::GET).uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers(key)?;
    }
    builder
        .body(Full::new(Bytes::new()))
        .map(|r| ModelListing::Fetch(Box::new(r)))
        .map_err(|e| ProxyError::Internal(format!("building the model-list request: {e}")))
}

/// Provider names the config accepts, built or not.
pub const KNOWN_PROVIDERS: &[&str] = &["openai", "anthropic", "gemini", "ollama", "mock"];

/// The adapter for a config name, if this build has it.
pub fn by_name(name: &str) -> Option<Arc<dyn Provider>> {
    match name {
        "openai" => Some(Arc::new(openai::OpenAi)),
        "anthropic" => Some(Arc::new(anthropic::Anthropic)),
        "gemini" => Some(Arc::new(gemini::Gemini)),
        "ollama" => Some(Arc::new(ollama::Ollama)),
        "mock" => Some(Arc::new(mock::Mock)),
        _ => None,
    }
}

/// Client credential headers: the client's key never goes upstream as is.
/// (Names made once: a name given as a string is parsed at each use.)
pub const CREDENTIAL_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

/// Whether `name` is a hop-by-hop header (RFC 9110 §7.6.1, plus the
/// `proxy-connection` and `keep-alive` of older clients): a `match` (a
/// length switch, then one comparison) rather than a walk of a list, for
/// every header of every request and answer.
fn always_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether `name` is one of [`CREDENTIAL_HEADERS`] (a `match`, as
/// for the hop-by-hop names).
pub fn is_credential_header(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "x-api-key" | "api-key" | "x-goog-api-key"
    )
}

/// Whether `name` is hop-by-hop, either always or because `Connection` lists it.
pub fn is_hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    always_hop_by_hop(name.as_str()) || listed_in_connection(name, headers)
}

fn listed_in_connection(name: &HeaderName, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

/// [`is_hop_by_hop`] for every header of one map: the `Connection` header
/// is looked up once, not once per header.
fn hop_by_hop_in(headers: &HeaderMap) -> impl Fn(&HeaderName) -> bool + '_ {
    let connection = headers.contains_key(header::CONNECTION);
    move |name| {
        always_hop_by_hop(name.as_str()) || (connection && listed_in_connection(name, headers))
    }
}

/// The client headers that go upstream: all but hop-by-hop ones, `host`,
/// `content-length`, `content-type` and `accept-encoding` (the proxy sets
/// those itself) and the client's credentials.
pub fn forward_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(client.len() + 3);
    let hop_by_hop = hop_by_hop_in(client);
    for (name, value) in client.iter() {
        let skip = hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::CONTENT_TYPE
            || name == header::ACCEPT_ENCODING
            || is_credential_header(name.as_str());
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

/// [`forward_headers`] for a backend that is not Anthropic's: without the
/// client's `anthropic-*` headers (versions and betas only Anthropic reads,
/// and which other providers may refuse) and, for an Anthropic client, the
/// SDK's `x-stainless-*` telemetry headers.
pub fn forward_headers_for(call: &Call<'_>) -> HeaderMap {
    let mut out = forward_headers(call.headers);
    let anthropic_client = call.request.format() == crate::request::ClientFormat::Anthropic;
    let has_any = out.keys().any(|name| {
        let name = name.as_str();
        name.starts_with("anthropic-") || (anthropic_client && name.starts_with("x-stainless-"))
    });
    if has_any {
        let names: Vec<HeaderName> = out
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.starts_with("anthropic-")
                    || (anthropic_client && name.starts_with("x-stainless-"))
            })
            .cloned()
            .collect();
        for name in names {
            out.remove(name);
        }
    }
    out
}

/// Remove hop-by-hop headers from an upstream answer before it goes to the client.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = {
        let hop_by_hop = hop_by_hop_in(headers);
        headers
            .keys()
            .filter(|name| hop_by_hop(name))
            .cloned()
            .collect()
    };
    for name in listed {
        headers.remove(name);
    }
}

/// The key the client presented (`Authorization: Bearer K` or `x-api-key: K`).
pub fn client_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The local answer to a token count (`/v1/messages/count_tokens`,
/// `/v1/responses/input_tokens`) that the backend cannot count itself: an
/// estimate from a real tokenizer, marked `x-llm-router-estimate: true`.
pub fn local_count(call: &Call<'_>) -> Result<Outbound, ProxyError> {
    let format = match call.request.format() {
        crate::request::ClientFormat::Anthropic => crate::tokens::CountFormat::Anthropic,
        _ => crate::tokens::CountFormat::Responses,
    };
    // Counted off the request path when large: the counter owns its copy.
    let body = Arc::new(call.request.body().clone());
    Ok(Outbound::Local(crate::tokens::estimate_response(
        format, body,
    )))
}

/// Join a base URL and a path.
pub(crate) fn join_url(base: &str, path: &str) -> Result<http::Uri, ProxyError> {
    let url = format!("{base}{path}");
    url.parse()
        .map_err(|e| ProxyError::Internal(format!("bad upstream URL `{url}`: {e}")))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn the_matches_are_the_lists() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(always_hop_by_hop(name), "{name}");
        }
        for name in CREDENTIAL_HEADERS {
            assert!(is_credential_header(name.as_str()), "{name}");
        }
        for name in ["x-team", "content-type", "authorizatio", "t", "connections"] {
            assert!(
                !always_hop_by_hop(name) && !is_credential_header(name),
                "{name}"
            );
        }
    }

    #[test]
    fn forwarding_drops_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer client".parse().unwrap());
        h.insert("x-api-key", "client".parse().unwrap());
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("host", "proxy".parse().unwrap());
        h.insert("content-length", "12".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-team", "a".parse().unwrap());
        h.insert("openai-organization", "org".parse().unwrap());
        let out = forward_headers(&h);
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert!(names.contains(&"x-team"));
        assert!(names.contains(&"openai-organization"));
        for gone in [
            "authorization",
            "x-api-key",
            "connection",
            "x-secret",
            "host",
            "te",
        ] {
            assert!(!names.contains(&gone), "{gone} forwarded");
        }
        assert_eq!(out["content-type"], "application/json");
    }

    #[test]
    fn client_key_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(client_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(client_key(&h), Some("k1"));
        h.insert("authorization", "Bearer k2".parse().unwrap());
        assert_eq!(client_key(&h), Some("k2"));
    }
}
