//! [`Backend`]: one configured upstream (provider, base URL, credential,
//! timeouts, client), its builder, and the [`Credential`] and [`UpstreamApi`]
//! it is configured with.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::HeaderRules;
use crate::error::ProxyError;
use crate::secret::Secret;
use crate::upstream::provider::Provider;
use crate::upstream::translate::xml_tools::ToolMode;
use crate::upstream::{ClientSettings, HttpClient};

/// How a backend authenticates upstream.
#[derive(Clone, Debug, Default)]
pub enum Credential {
    /// Send no key (local models, the mock provider).
    #[default]
    None,
    /// Send this key, in the provider's way.
    Key(Secret),
    /// Forward the client's own key (`api_key = "passthrough"`).
    Passthrough,
}

/// Which of its APIs an `openai` backend is called through
/// (`api = "chat_completions" | "responses"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamApi {
    /// `/chat/completions` (the default; every OpenAI-compatible API).
    #[default]
    ChatCompletions,
    /// `/responses`: OpenAI's Responses API. Responses clients pass
    /// through; Chat Completions and Messages clients are translated.
    Responses,
}

/// One configured upstream: a provider, where it lives, how to reach it.
pub struct Backend {
    pub(super) name: String,
    provider: Arc<dyn Provider>,
    base_url: String,
    credential: Credential,
    timeout: Duration,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    client: HttpClient,
    header_rules: HeaderRules,
    tool_mode: ToolMode,
    api: UpstreamApi,
    /// Built once, cloned per request: upstream URLs and the bearer header.
    cache: BackendCache,
}

/// Per-backend values every request would otherwise format again.
#[derive(Default)]
struct BackendCache {
    uris: [OnceLock<(&'static str, http::Uri)>; 6],
    bearer: OnceLock<Option<http::HeaderValue>>,
    key_mask: OnceLock<Option<Arc<crate::secret::KeyMask>>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("provider", &self.provider.name())
            .field("base_url", &self.base_url)
            .field("credential", &self.credential)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Default time allowed until the upstream's response head arrives. A
    /// non-streamed answer's head arrives only once the whole answer is
    /// generated, so this is generous (the OpenAI SDKs use the same);
    /// streamed answers are guarded by `first_byte_timeout` instead.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    /// Default TCP (and TLS) connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default time allowed until the first content event of a stream.
    pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default longest gap between streamed events.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// Start building a backend named `name` served by `provider`.
    pub fn builder(name: impl Into<String>, provider: Arc<dyn Provider>) -> BackendBuilder {
        BackendBuilder {
            name: name.into(),
            provider,
            base_url: None,
            credential: Credential::None,
            header_rules: HeaderRules::default(),
            tool_mode: ToolMode::Native,
            api: UpstreamApi::ChatCompletions,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: Self::DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            tls_verify: true,
            client: None,
        }
    }

    /// The backend's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider adapter.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The API root, without a trailing slash (`https://api.openai.com/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How this backend authenticates.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// `base_url` joined with a provider's fixed `path`, parsed once per
    /// path and cloned after (a clone shares the parsed bytes).
    pub fn uri_for(&self, path: &'static str) -> Result<http::Uri, ProxyError> {
        for slot in &self.cache.uris {
            match slot.get() {
                Some((p, uri)) if *p == path => return Ok(uri.clone()),
                Some(_) => continue,
                None => {
                    let uri = crate::upstream::provider::join_url(&self.base_url, path)?;
                    // Another request may have filled the slot meanwhile.
                    if slot.set((path, uri.clone())).is_ok()
                        || slot.get().is_some_and(|(p, _)| *p == path)
                    {
                        return Ok(uri);
                    }
                }
            }
        }
        crate::upstream::provider::join_url(&self.base_url, path)
    }

    /// `Authorization: Bearer <key>` for a backend with its own key, built
    /// once (marked sensitive). `None` without a key, or when the key cannot
    /// be a header value.
    pub fn bearer_header(&self) -> Option<http::HeaderValue> {
        self.cache
            .bearer
            .get_or_init(|| match &self.credential {
                Credential::Key(secret) => {
                    let mut value =
                        http::HeaderValue::try_from(format!("Bearer {}", secret.expose())).ok()?;
                    value.set_sensitive(true);
                    Some(value)
                }
                _ => None,
            })
            .clone()
    }

    /// The mask of this backend's own key (`api_key`), built once: answers
    /// from it never show the key (see [`crate::upstream::mask`]). `None`
    /// without a key of its own, or one too short to mask.
    pub fn key_mask(&self) -> Option<&Arc<crate::secret::KeyMask>> {
        self.cache
            .key_mask
            .get_or_init(|| match &self.credential {
                Credential::Key(secret) => crate::secret::KeyMask::new(secret).map(Arc::new),
                _ => None,
            })
            .as_ref()
    }

    /// Time allowed until the response head arrives.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time allowed until the first content event of a streamed answer.
    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    /// Longest gap allowed between streamed events.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The pooled HTTP client used to reach this backend.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// This backend's header rules, applied after the global ones.
    pub fn header_rules(&self) -> &HeaderRules {
        &self.header_rules
    }

    /// How this backend handles tools (`tools = "native" | "xml"`).
    pub fn tool_mode(&self) -> &ToolMode {
        &self.tool_mode
    }

    /// The API this backend is called through (`api = ...`).
    pub fn api(&self) -> UpstreamApi {
        self.api
    }
}

/// Builder for [`Backend`]; see [`Backend::builder`].
#[derive(Debug)]
pub struct BackendBuilder {
    name: String,
    provider: Arc<dyn Provider>,
    base_url: Option<String>,
    credential: Credential,
    header_rules: HeaderRules,
    tool_mode: ToolMode,
    api: UpstreamApi,
    timeout: Duration,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    tls_verify: bool,
    client: Option<HttpClient>,
}

/// A backend that cannot be built (bad base URL, provider needs one).
#[derive(Debug, thiserror::Error)]
#[error("backend `{backend}`: {message}")]
pub struct BuildError {
    backend: String,
    message: String,
}

impl BackendBuilder {
    /// The API root (defaults to the provider's public endpoint).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// How to authenticate upstream.
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    /// Header rules for this backend's requests, applied after the global
    /// ones (see [`crate::layers::headers`]).
    pub fn header_rules(mut self, rules: HeaderRules) -> Self {
        self.header_rules = rules;
        self
    }

    /// How the backend handles tools (default: natively). See
    /// [`crate::upstream::translate::xml_tools`].
    pub fn tool_mode(mut self, mode: ToolMode) -> Self {
        self.tool_mode = mode;
        self
    }

    /// Call the backend through this API (default: Chat Completions).
    pub fn api(mut self, api: UpstreamApi) -> Self {
        self.api = api;
        self
    }

    /// Send this key upstream.
    pub fn api_key(self, key: impl Into<Arc<str>>) -> Self {
        self.credential(Credential::Key(Secret::new(key)))
    }

    /// Time allowed until the response head arrives.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// TCP and TLS connect timeout (ignored when [`client`](Self::client) is given).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed until the first content event of a stream.
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = timeout;
        self
    }

    /// Longest gap allowed between streamed events.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Verify the upstream's TLS certificate (default `true`).
    pub fn tls_verify(mut self, verify: bool) -> Self {
        self.tls_verify = verify;
        self
    }

    /// Share an existing client (and its connection pool).
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<Backend, BuildError> {
        let err = |message: String| BuildError {
            backend: self.name.clone(),
            message,
        };
        let base_url = match self
            .base_url
            .as_deref()
            .or(self.provider.default_base_url())
        {
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| err(format!("base_url `{url}` is not a valid URL: {e}")))?;
                match uri.scheme_str() {
                    Some("http") | Some("https") => {}
                    _ => {
                        return Err(err(format!(
                            "base_url `{url}` must start with http:// or https://"
                        )))
                    }
                }
                if uri.host().is_none() {
                    return Err(err(format!("base_url `{url}` has no host")));
                }
                url.trim_end_matches('/').to_string()
            }
            None => String::new(),
        };
        let client = match self.client {
            Some(client) => client,
            None => HttpClient::new(&ClientSettings {
                connect_timeout: self.connect_timeout,
                tls_verify: self.tls_verify,
            })
            .map_err(|e| err(format!("TLS setup failed: {e}")))?,
        };
        Ok(Backend {
            name: self.name,
            provider: self.provider,
            base_url,
            credential: self.credential,
            header_rules: self.header_rules,
            tool_mode: self.tool_mode,
            api: self.api,
            timeout: self.timeout,
            first_byte_timeout: self.first_byte_timeout,
            idle_timeout: self.idle_timeout,
            client,
            cache: BackendCache::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_base_url() {
        let e = Backend::builder("x", Arc::new(crate::upstream::provider::openai::OpenAi))
            .base_url("ftp://nope")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("http://"));
    }
}
