//! Backends, targets, the model route table, and [`RouteLayer`] — the
//! split point of the stack when `failover` is not in `[stack] order`.
//!
//! A [`RouteTable`] maps the model name a client sends to a [`ModelRoute`]:
//! its [`Target`]s, each a [`Backend`] plus the model name to send there.
//! [`RouteLayer`] resolves the model of every request (404 when nothing
//! matches), picks the first target by priority (weighted among equals), puts
//! it into the request's extensions and calls the per-target stack.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::provider::mock::Mock;
//! use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
//!
//! let mock = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
//! let table = RouteTable::new(vec![
//!     ModelRoute::new("echo", vec![Target::new(mock.clone(), None)]),
//!     ModelRoute::new("*", vec![Target::new(mock, Some("echo-any"))]),
//! ]);
//! assert_eq!(table.resolve("echo").unwrap().name(), "echo");
//! assert_eq!(table.resolve("anything").unwrap().name(), "*");
//! assert_eq!(table.models().collect::<Vec<_>>(), ["echo"]);
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::future::MaybeReady;
use crate::layers::headers::HeaderRules;
use crate::layers::retry::RetryPolicy;
use crate::provider::Provider;
use crate::request::{ClientFormat, LlmRequest};
use crate::secret::Secret;
use crate::translate::xml_tools::ToolMode;
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
    name: String,
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
                    let uri = crate::provider::join_url(&self.base_url, path)?;
                    // Another request may have filled the slot meanwhile.
                    if slot.set((path, uri.clone())).is_ok()
                        || slot.get().is_some_and(|(p, _)| *p == path)
                    {
                        return Ok(uri);
                    }
                }
            }
        }
        crate::provider::join_url(&self.base_url, path)
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
    /// [`crate::translate::xml_tools`].
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

/// A target's key, `backend/model` (see [`Target::key`]): reads as a `&str`.
///
/// ```
/// use llm_router::routing::TargetKey;
/// let key = TargetKey::join("openai", "gpt-4o");
/// assert_eq!(&*key, "openai/gpt-4o");
/// ```
#[derive(Clone)]
pub struct TargetKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Shared(Arc<str>),
    Inline {
        len: u8,
        buf: [u8; TargetKey::INLINE],
    },
    Heap(Box<str>),
}

impl TargetKey {
    const INLINE: usize = 86;

    /// `backend/model`; kept inline when it fits.
    pub fn join(backend: &str, model: &str) -> Self {
        let len = backend.len() + 1 + model.len();
        if len > Self::INLINE {
            return TargetKey(KeyRepr::Heap(format!("{backend}/{model}").into_boxed_str()));
        }
        let mut buf = [0u8; Self::INLINE];
        buf[..backend.len()].copy_from_slice(backend.as_bytes());
        buf[backend.len()] = b'/';
        buf[backend.len() + 1..len].copy_from_slice(model.as_bytes());
        TargetKey(KeyRepr::Inline {
            len: len as u8,
            buf,
        })
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            KeyRepr::Shared(s) => s,
            KeyRepr::Heap(s) => s,
            // Two whole `&str`s and an ASCII `/`: valid UTF-8.
            KeyRepr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or("")
            }
        }
    }
}

impl std::ops::Deref for TargetKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TargetKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for TargetKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TargetKey {}

impl PartialEq<str> for TargetKey {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TargetKey {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One place a model's requests can go: a backend and the model name to ask it for.
///
/// Cheap to clone (one reference count): a target travels in each attempt's
/// extensions.
#[derive(Clone, Debug)]
pub struct Target(Arc<TargetInner>);

#[derive(Clone, Debug)]
struct TargetInner {
    backend: Arc<Backend>,
    model: Option<Arc<str>>,
    /// Removed from the front of the client's model name when `model` is
    /// `None` (set by [`ModelRoute::with_strip_prefix`]).
    strip: Option<Arc<str>>,
    priority: u32,
    weight: u32,
    /// `backend/model` when the model is fixed (see [`Target::key`]).
    key: Option<Arc<str>>,
    /// The model's own retry policy (`[[models]] retry`), used by the
    /// `retry` layer instead of its own.
    retry: Option<Arc<RetryPolicy>>,
}

impl Target {
    /// A target on `backend`; `model` `None` or `"*"` sends the client's model name unchanged.
    pub fn new(backend: Arc<Backend>, model: Option<&str>) -> Self {
        let model: Option<Arc<str>> = model.filter(|m| *m != "*" && !m.is_empty()).map(Arc::from);
        let key = model
            .as_ref()
            .map(|m| Arc::from(format!("{}/{}", backend.name, m)));
        Target(Arc::new(TargetInner {
            backend,
            model,
            strip: None,
            priority: 1,
            weight: 1,
            key,
            retry: None,
        }))
    }

    /// The key under which this target's cooldown and circuit are kept:
    /// `backend/model`, with the model actually asked for there. Built once
    /// for a target with a fixed model; for a target sending the client's
    /// model, built on the stack when it is short (no allocation).
    pub fn key(&self, requested_model: &str) -> TargetKey {
        match &self.0.key {
            Some(key) => TargetKey(KeyRepr::Shared(key.clone())),
            None => TargetKey::join(&self.0.backend.name, self.upstream_model(requested_model)),
        }
    }

    /// Priority: lower is tried first (default 1).
    pub fn priority(mut self, priority: u32) -> Self {
        Arc::make_mut(&mut self.0).priority = priority;
        self
    }

    /// Share of the load among targets of equal priority (default 1).
    pub fn weight(mut self, weight: u32) -> Self {
        Arc::make_mut(&mut self.0).weight = weight;
        self
    }

    /// Retry this target by `policy` rather than by the `retry` layer's own
    /// (a model's `retry = { ... }`).
    pub fn with_retry(mut self, policy: Arc<RetryPolicy>) -> Self {
        Arc::make_mut(&mut self.0).retry = Some(policy);
        self
    }

    /// The target's own retry policy, if it has one.
    pub fn retry(&self) -> Option<&Arc<RetryPolicy>> {
        self.0.retry.as_ref()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0.backend
    }

    /// The configured model name, `None` for "the client's".
    pub fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }

    /// The model name to send upstream for a client that asked for `requested`:
    /// the configured one, else the client's (minus the route's prefix when
    /// the route strips it).
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        match (&self.0.model, &self.0.strip) {
            (Some(model), _) => model,
            (None, Some(prefix)) => requested
                .strip_prefix(&**prefix)
                .filter(|rest| !rest.is_empty())
                .unwrap_or(requested),
            (None, None) => requested,
        }
    }

    /// The priority.
    pub fn get_priority(&self) -> u32 {
        self.0.priority
    }

    /// The weight.
    pub fn get_weight(&self) -> u32 {
        self.0.weight
    }

    /// A stable label, `backend/model` (`backend/*` for pass-through names).
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.0.backend.name,
            self.0.model.as_deref().unwrap_or("*")
        )
    }
}

/// The targets of one client-facing model name.
#[derive(Clone, Debug)]
pub struct ModelRoute {
    name: String,
    targets: Vec<Target>,
    context_fallback: Option<String>,
    clients: Option<Clients>,
}

/// The client APIs a route serves (`[[models]] clients`): a route restricted
/// to some is skipped for requests of the others, so that two routes of one
/// name (two `"*"`) can send OpenAI clients and Anthropic clients to
/// different backends, as routers with one provider list per API do.
///
/// ```
/// use llm_router::routing::Clients;
/// use llm_router::request::ClientFormat;
/// let anthropic = Clients::parse(&["anthropic"]).unwrap();
/// assert!(anthropic.serves(ClientFormat::Anthropic));
/// assert!(!anthropic.serves(ClientFormat::OpenAi));
/// let openai = Clients::parse(&["openai"]).unwrap();
/// assert!(openai.serves(ClientFormat::Responses));
/// assert!(Clients::parse(&["grpc"]).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clients(u8);

impl Clients {
    /// The names accepted: `openai` (Chat Completions, Completions,
    /// Embeddings and Responses), `responses` (the Responses API only),
    /// `anthropic` (Messages).
    pub const NAMES: &'static [&'static str] = &["openai", "responses", "anthropic"];

    fn bit(format: ClientFormat) -> u8 {
        match format {
            ClientFormat::OpenAi => 1,
            ClientFormat::Responses => 2,
            ClientFormat::Anthropic => 4,
        }
    }

    /// From names; an unknown name is returned as the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Clients, String> {
        let mut bits = 0;
        for name in names {
            bits |= match name.as_ref() {
                "openai" => 1 | 2,
                "responses" => 2,
                "anthropic" => 4,
                other => return Err(other.to_string()),
            };
        }
        Ok(Clients(bits))
    }

    /// Whether requests of `format` may use the route.
    pub fn serves(self, format: ClientFormat) -> bool {
        self.0 & Self::bit(format) != 0
    }
}

impl ModelRoute {
    /// A route for `name` (`"*"` matches any name not listed).
    pub fn new(name: impl Into<String>, mut targets: Vec<Target>) -> Self {
        targets.sort_by_key(|t| t.0.priority);
        ModelRoute {
            name: name.into(),
            targets,
            context_fallback: None,
            clients: None,
        }
    }

    /// Serve only requests of these client APIs (see [`Clients`]).
    pub fn with_clients(mut self, clients: Clients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Whether requests of `format` may use this route.
    pub fn serves(&self, format: ClientFormat) -> bool {
        self.clients.is_none_or(|c| c.serves(format))
    }

    /// For a prefix pattern (`"cerebras/*"`): the targets that send the
    /// client's model name send it without the prefix (`cerebras/llama-3.3-70b`
    /// asks the backend for `llama-3.3-70b`). No effect on other names.
    pub fn with_strip_prefix(mut self) -> Self {
        if let Some(prefix) = pattern_prefix(&self.name) {
            let prefix: Arc<str> = Arc::from(prefix);
            for t in &mut self.targets {
                Arc::make_mut(&mut t.0).strip = Some(prefix.clone());
            }
        }
        self
    }

    /// The model tried when a target answers "context length exceeded".
    pub fn with_context_fallback(mut self, model: impl Into<String>) -> Self {
        self.context_fallback = Some(model.into());
        self
    }

    /// The client-facing name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The targets, sorted by priority.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The context fallback model, if any.
    pub fn context_fallback(&self) -> Option<&str> {
        self.context_fallback.as_deref()
    }

    /// The targets in the order to try them: by priority, and within one
    /// priority a weighted random order (so load is shared by weight).
    pub fn ordered(&self) -> Vec<&Target> {
        if let [only] = &self.targets[..] {
            return vec![only];
        }
        let mut out = Vec::with_capacity(self.targets.len());
        let mut rest: &[Target] = &self.targets;
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|t| t.0.priority == first.0.priority)
                .count();
            let (group, tail) = rest.split_at(n);
            let mut group: Vec<&Target> = group.iter().collect();
            while !group.is_empty() {
                let i = weighted_index(&group);
                out.push(group.remove(i));
            }
            rest = tail;
        }
        out
    }

    /// The target a single-target dispatch uses: first priority, weighted.
    pub fn first_choice(&self) -> Option<&Target> {
        let first = self.targets.first()?;
        let n = self
            .targets
            .iter()
            .take_while(|t| t.0.priority == first.0.priority)
            .count();
        let group: Vec<&Target> = self.targets[..n].iter().collect();
        group.get(weighted_index(&group)).copied()
    }
}

fn weighted_index(group: &[&Target]) -> usize {
    let total: u64 = group.iter().map(|t| u64::from(t.0.weight.max(1))).sum();
    if group.len() <= 1 || total == 0 {
        return 0;
    }
    let mut pick = random_u64() % total;
    for (i, t) in group.iter().enumerate() {
        let w = u64::from(t.0.weight.max(1));
        if pick < w {
            return i;
        }
        pick -= w;
    }
    0
}

/// A fast, non-cryptographic random number (load sharing only).
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// The prefix of a prefix-pattern model name (`"gpt-*"` -> `"gpt-"`): a name
/// of at least two characters whose only `*` is its last. `None` for exact
/// names and for the catch-all `"*"`.
///
/// ```
/// use llm_router::routing::pattern_prefix;
/// assert_eq!(pattern_prefix("gpt-*"), Some("gpt-"));
/// assert_eq!(pattern_prefix("*"), None);
/// assert_eq!(pattern_prefix("gpt-4o"), None);
/// assert_eq!(pattern_prefix("g*t-*"), None);
/// ```
pub fn pattern_prefix(name: &str) -> Option<&str> {
    let prefix = name.strip_suffix('*')?;
    (!prefix.is_empty() && !prefix.contains('*')).then_some(prefix)
}

/// Model name -> route: exact names first, then prefix patterns (`"gpt-*"`,
/// the longest matching prefix wins), then the optional `"*"` catch-all.
/// Routes restricted to some client APIs ([`Clients`]) are skipped for the
/// others' requests ([`RouteTable::resolve_for`]).
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: crate::FastMap<String, Slot>,
    /// Prefix patterns with their prefix, longest prefix first.
    prefixes: Vec<(String, Slot)>,
    wildcard: Slot,
    names: Vec<String>,
}

/// The routes of one name: one, or one per client restriction (restricted
/// routes first, so that they win over an unrestricted one of the name).
#[derive(Clone, Debug, Default)]
struct Slot(Vec<Arc<ModelRoute>>);

impl Slot {
    /// Add `route`: it replaces a route of the same restriction.
    fn put(&mut self, route: Arc<ModelRoute>) {
        self.0.retain(|r| r.clients != route.clients);
        if route.clients.is_some() {
            self.0.insert(0, route);
        } else {
            self.0.push(route);
        }
    }

    fn any(&self) -> Option<&Arc<ModelRoute>> {
        self.0.first()
    }

    fn serving(&self, format: ClientFormat) -> Option<&Arc<ModelRoute>> {
        self.0.iter().find(|r| r.serves(format))
    }
}

impl RouteTable {
    /// Build from routes; a later route with the same name (and the same
    /// client restriction) replaces an earlier one.
    pub fn new(routes: Vec<ModelRoute>) -> Self {
        let mut table = RouteTable::default();
        for route in routes {
            let route = Arc::new(route);
            if route.name == "*" {
                table.wildcard.put(route);
            } else if let Some(prefix) = pattern_prefix(&route.name) {
                let prefix = prefix.to_string();
                match table.prefixes.iter_mut().find(|(p, _)| *p == prefix) {
                    Some((_, slot)) => slot.put(route),
                    None => {
                        let mut slot = Slot::default();
                        slot.put(route);
                        table.prefixes.push((prefix, slot));
                    }
                }
            } else {
                if !table.routes.contains_key(&route.name) {
                    table.names.push(route.name.clone());
                }
                table
                    .routes
                    .entry(route.name.clone())
                    .or_default()
                    .put(route);
            }
        }
        // Longest prefix first; equal lengths keep the configuration order.
        table
            .prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        table
    }

    /// The route serving `model`: its own entry, else the prefix pattern with
    /// the longest matching prefix, else the `"*"` entry (whatever client
    /// API it is restricted to; requests use [`RouteTable::resolve_for`]).
    pub fn resolve(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.find(model, Slot::any)
    }

    /// The route serving `model` for a client of `format`: as
    /// [`RouteTable::resolve`], skipping routes restricted to other client APIs.
    pub fn resolve_for(&self, model: &str, format: ClientFormat) -> Option<&Arc<ModelRoute>> {
        self.find(model, |slot| slot.serving(format))
    }

    fn find<'a>(
        &'a self,
        model: &str,
        pick: impl Fn(&'a Slot) -> Option<&'a Arc<ModelRoute>>,
    ) -> Option<&'a Arc<ModelRoute>> {
        self.routes
            .get(model)
            .and_then(&pick)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
                    .find_map(|(_, slot)| pick(slot))
            })
            .or_else(|| pick(&self.wildcard))
    }

    /// The listed model names (not the patterns, not `"*"`), in configuration order.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Every route: exact names, prefix patterns (longest first), the wildcard last.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<ModelRoute>> {
        self.names
            .iter()
            .filter_map(|n| self.routes.get(n))
            .chain(self.prefixes.iter().map(|(_, slot)| slot))
            .chain(std::iter::once(&self.wildcard))
            .flat_map(|slot| slot.0.iter())
    }
}

/// The error of a request that reached `layer` without an [`LlmRequest`]:
/// 404 for a path that is no endpoint ([`UnknownPath`](crate::request::UnknownPath)),
/// else an internal error.
pub fn without_request(extensions: &http::Extensions, layer: &str) -> ProxyError {
    match extensions.get::<crate::request::UnknownPath>() {
        Some(unknown) => unknown.error(),
        None => ProxyError::Internal(format!("the request reached {layer} without a parsed body")),
    }
}

/// Resolve a request's model into its route (404 when nothing matches).
pub fn resolve_route(
    table: &RouteTable,
    request: &LlmRequest,
) -> Result<Arc<ModelRoute>, ProxyError> {
    table
        .resolve_for(request.model(), request.format())
        .cloned()
        .ok_or_else(|| ProxyError::ModelNotFound(request.model().to_string()))
}

/// Routes every request to the first target of its model. See the
/// [module docs](crate::routing).
#[derive(Clone, Debug)]
pub struct RouteLayer {
    table: Arc<RouteTable>,
    limits: Option<Arc<crate::layers::rate_limit::BackendLimits>>,
}

impl RouteLayer {
    /// Route with this table.
    pub fn new(table: Arc<RouteTable>) -> Self {
        RouteLayer {
            table,
            limits: None,
        }
    }

    /// Refuse (429) a request whose target's backend limit is exhausted.
    pub fn with_backend_limits(
        mut self,
        limits: Arc<crate::layers::rate_limit::BackendLimits>,
    ) -> Self {
        self.limits = Some(limits);
        self
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route {
            inner,
            table: self.table.clone(),
            limits: self.limits.clone(),
        }
    }
}

/// The service made by [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct Route<S> {
    inner: S,
    table: Arc<RouteTable>,
    limits: Option<Arc<crate::layers::rate_limit::BackendLimits>>,
}

impl<S, B> Service<Request<B>> for Route<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = MaybeReady<S::Future, Response<ProxyBody>, ProxyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(llm) = req.extensions().get::<LlmRequest>() else {
            return MaybeReady::ready(Err(without_request(req.extensions(), "routing")));
        };
        let route = match resolve_route(&self.table, llm) {
            Ok(route) => route,
            Err(e) => return MaybeReady::ready(Err(e)),
        };
        let Some(target) = route.first_choice().cloned() else {
            return MaybeReady::ready(Err(ProxyError::Unavailable {
                model: llm.model().to_string(),
                retry_after: None,
            }));
        };
        if let Some(limits) = &self.limits {
            if let Err(retry_after) = limits.check(target.backend().name()) {
                // The only target skipped for its backend's limit: 429.
                return MaybeReady::ready(Err(ProxyError::RateLimited {
                    message: format!(
                        "Backend `{}` is over its rate limit; retry after the Retry-After delay",
                        target.backend().name()
                    ),
                    retry_after,
                }));
            }
        }
        req.extensions_mut().insert(target);
        req.extensions_mut().insert(route);
        MaybeReady::inner(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::mock::Mock;
    use crate::request::Endpoint;
    use tower::ServiceExt;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    #[test]
    fn target_keys_inline_shared_and_long() {
        let b = backend("up");
        let fixed = Target::new(b.clone(), Some("gpt-4o"));
        assert_eq!(fixed.key("anything"), "up/gpt-4o");
        let any = Target::new(b, None);
        assert_eq!(any.key("llama-3"), "up/llama-3");
        let long = "m".repeat(200);
        assert_eq!(&*any.key(&long), format!("up/{long}"));
        assert_eq!(any.key("llama-3").to_string(), "up/llama-3");
    }

    #[test]
    fn routes_restricted_to_client_apis() {
        let openai = Clients::parse(&["openai"]).unwrap();
        let anthropic = Clients::parse(&["anthropic"]).unwrap();
        let table = RouteTable::new(vec![
            ModelRoute::new("*", vec![Target::new(backend("o"), None)]).with_clients(openai),
            ModelRoute::new("*", vec![Target::new(backend("a"), None)]).with_clients(anthropic),
            ModelRoute::new("gpt-*", vec![Target::new(backend("g"), None)]).with_clients(openai),
            ModelRoute::new("exact", vec![Target::new(backend("e"), None)]),
        ]);
        let to = |model: &str, format| {
            table
                .resolve_for(model, format)
                .map(|r| r.targets()[0].backend().name().to_string())
        };
        assert_eq!(to("x", ClientFormat::OpenAi).as_deref(), Some("o"));
        assert_eq!(to("x", ClientFormat::Responses).as_deref(), Some("o"));
        assert_eq!(to("x", ClientFormat::Anthropic).as_deref(), Some("a"));
        // A pattern restricted to other clients is passed over for the catch-all.
        assert_eq!(to("gpt-4o", ClientFormat::OpenAi).as_deref(), Some("g"));
        assert_eq!(to("gpt-4o", ClientFormat::Anthropic).as_deref(), Some("a"));
        // An unrestricted exact name serves everyone.
        assert_eq!(to("exact", ClientFormat::Anthropic).as_deref(), Some("e"));
        assert_eq!(table.routes().count(), 4);
        // Without the anthropic route, Anthropic clients find nothing.
        let openai_only = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(backend("o"), None)],
        )
        .with_clients(openai)]);
        assert!(openai_only
            .resolve_for("x", ClientFormat::Anthropic)
            .is_none());
        assert!(openai_only.resolve("x").is_some());
    }

    #[test]
    fn priority_then_weight() {
        let route = ModelRoute::new(
            "m",
            vec![
                Target::new(backend("c"), None).priority(2),
                Target::new(backend("a"), None).weight(3),
                Target::new(backend("b"), None).weight(1),
            ],
        );
        let mut a_first = 0;
        for _ in 0..400 {
            let order = route.ordered();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2].backend().name(), "c");
            if order[0].backend().name() == "a" {
                a_first += 1;
            }
        }
        // weight 3 of 4: about 300 of 400.
        assert!((240..=360).contains(&a_first), "a first {a_first} times");
    }

    #[test]
    fn star_target_model_passes_client_name() {
        let t = Target::new(backend("x"), Some("*"));
        assert_eq!(t.upstream_model("gpt-4"), "gpt-4");
        let t = Target::new(backend("x"), Some("gpt-4o"));
        assert_eq!(t.upstream_model("gpt-4"), "gpt-4o");
        assert_eq!(t.label(), "x/gpt-4o");
    }

    #[test]
    fn exact_then_longest_prefix_then_wildcard() {
        let b = backend("b");
        let table = RouteTable::new(vec![
            ModelRoute::new("*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-4*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-4o", vec![Target::new(b.clone(), None)]),
        ]);
        let name = |m: &str| table.resolve(m).map(|r| r.name().to_string());
        assert_eq!(name("gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(name("gpt-4o-mini").as_deref(), Some("gpt-4*"));
        assert_eq!(name("gpt-3.5-turbo").as_deref(), Some("gpt-*"));
        assert_eq!(name("gpt-").as_deref(), Some("gpt-*"));
        assert_eq!(name("claude-3").as_deref(), Some("*"));
        // Patterns are not model names: /v1/models lists exact names only.
        assert_eq!(table.models().collect::<Vec<_>>(), ["gpt-4o"]);
        let order: Vec<&str> = table.routes().map(|r| r.name()).collect();
        assert_eq!(order, ["gpt-4o", "gpt-4*", "gpt-*", "*"]);

        let no_wildcard = RouteTable::new(vec![ModelRoute::new(
            "claude-*",
            vec![Target::new(b, None)],
        )]);
        assert!(no_wildcard.resolve("gpt-4o").is_none());
        assert!(no_wildcard.resolve("claude-").is_some());
    }

    #[test]
    fn strip_prefix_applies_to_pass_through_targets_of_patterns() {
        let route = ModelRoute::new(
            "cerebras/*",
            vec![
                Target::new(backend("c"), None),
                Target::new(backend("d"), Some("fixed")),
            ],
        )
        .with_strip_prefix();
        let t = &route.targets()[0];
        assert_eq!(t.upstream_model("cerebras/llama-3.3-70b"), "llama-3.3-70b");
        assert_eq!(
            t.upstream_model("cerebras/meta-llama/Llama-3"),
            "meta-llama/Llama-3"
        );
        // Nothing after the prefix: the name is sent as it is.
        assert_eq!(t.upstream_model("cerebras/"), "cerebras/");
        assert_eq!(route.targets()[1].upstream_model("cerebras/x"), "fixed");
        // No effect on an exact name.
        let exact = ModelRoute::new("m", vec![Target::new(backend("e"), None)]).with_strip_prefix();
        assert_eq!(exact.targets()[0].upstream_model("m"), "m");
    }

    #[test]
    fn bad_base_url() {
        let e = Backend::builder("x", Arc::new(crate::provider::openai::OpenAi))
            .base_url("ftp://nope")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("http://"));
    }

    #[tokio::test]
    async fn route_sets_target_or_404s() {
        let table = Arc::new(RouteTable::new(vec![ModelRoute::new(
            "echo",
            vec![Target::new(backend("local"), Some("up"))],
        )]));
        let svc = RouteLayer::new(table).layer(tower::service_fn(|req: Request<()>| async move {
            let t = req.extensions().get::<Target>().unwrap();
            assert_eq!(t.upstream_model("echo"), "up");
            Ok::<_, ProxyError>(Response::new(ProxyBody::empty()))
        }));
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"echo"}"#).unwrap());
        svc.clone().oneshot(req).await.unwrap();

        let mut req = Request::new(());
        req.extensions_mut()
            .insert(LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"nope"}"#).unwrap());
        let e = svc.oneshot(req).await.unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
