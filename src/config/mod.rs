//! `config.toml`: parsing, `${VAR}` substitution, environment overrides and
//! validation. This is the only module that knows serde; everything it
//! produces is plain typed values that the layers take as they are.
//!
//! Every error is a [`ConfigError`] naming the file, the line and the key:
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::Config;
//!
//! let text = "[server]\nlisten = \"127.0.0.1:9000\"\n\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"locl\" }]\n";
//! let err = Config::parse(text, Path::new("config.toml"), &|_| None).unwrap_err();
//! assert_eq!(err.to_string(),
//!     "config.toml:10: models[0].targets[0].backend: backend `locl` is not defined (defined: local)");
//! ```

pub mod discover;
pub mod dotenv;
mod env;
mod generated;
pub mod import;
pub mod litellm;
mod log;
pub mod overrides;
mod policy;
mod resilience;
mod state;
mod tools;
mod transforms;
pub mod zero;

pub use resilience::BackendLimit;
pub use tools::{BackendTools, ToolsConfig};

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::stack::LayerName;

/// A configuration error: file, line, key and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment` for a bad override variable).
    pub file: String,
    /// 1-based line, when the error has one.
    pub line: Option<usize>,
    /// Dotted key path (`backends[1].timeout`), when the error has one.
    pub key: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[stack] order`, validated (the default order when absent).
    pub stack: Vec<LayerName>,
    /// Whether `[stack]` was written in the file.
    pub stack_explicit: bool,
    /// `[[backends]]`.
    pub backends: Vec<BackendConfig>,
    /// `[[models]]`.
    pub models: Vec<ModelConfig>,
    /// `[retry]` (defaults when absent).
    pub retry: crate::layers::retry::RetryPolicy,
    /// `[circuit_breaker]` (defaults when absent).
    pub circuit_breaker: crate::layers::circuit_breaker::BreakerPolicy,
    /// `[failover]` (defaults when absent).
    pub failover: crate::layers::failover::FailoverPolicy,
    /// `[rate_limit]` (the contract's defaults when absent).
    pub rate_limit: crate::layers::rate_limit::RateLimitPolicy,
    /// `[auth]`: every key found (config, `AUTH_KEY*`, keys file); empty
    /// when auth is off.
    pub auth: crate::layers::auth::AuthPolicy,
    /// `[headers]` (no rules when absent).
    pub headers: crate::layers::headers::HeaderRules,
    /// `[cors]` (`None` when absent: the defaults apply when `cors` is in the order).
    pub cors: Option<crate::layers::cors::CorsPolicy>,
    /// `[tools]` (the built-in XML prompt when absent).
    pub tools: ToolsConfig,
    /// `[[transforms]]`, enabled ones, in order.
    pub transforms: Vec<crate::layers::transform::TransformRule>,
    /// `[pii]` (`None` when absent: `PiiPolicy::default()` applies when `pii`
    /// is in the order).
    pub pii: Option<crate::layers::pii::PiiPolicy>,
    /// `[state]` (the memory store when absent).
    pub state: crate::store::StateConfig,
    /// `[log]` (`None` when absent: see [`Config::log_policy`] for the
    /// defaults that apply when `log` is in the order).
    pub log: Option<crate::layers::log::LogPolicy>,
    /// Warnings from turning another format into this config (a LiteLLM
    /// `config.yaml`: its keys with no equivalent); part of [`Config::warnings`].
    pub source_warnings: Vec<String>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Host part of `listen` (an IP address or a host name).
    pub host: String,
    /// Port part of `listen`.
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub body_limit: u64,
    /// Certificate chain (PEM), resolved against the config's directory.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM), resolved against the config's directory.
    pub tls_key: Option<PathBuf>,
    /// How long in-flight requests may run on after SIGINT/SIGTERM.
    pub shutdown_timeout: Duration,
    /// Open connections at most; beyond it new ones wait unaccepted.
    pub max_connections: u32,
    /// Time allowed for a request head, counted from the connection's start
    /// (TLS handshake and HTTP/2 preface included) or from the first byte of
    /// a later request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// A request body that sends nothing for this long gets 408.
    pub body_read_timeout: Duration,
}

impl ServerConfig {
    /// Default `listen`.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    /// Default `body_limit` (10 MiB).
    pub const DEFAULT_BODY_LIMIT: u64 = 10 * 1024 * 1024;
    /// Default `shutdown_timeout`.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
    /// Default `header_read_timeout`.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `idle_timeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default `body_read_timeout`.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The largest `max_connections` accepted (far beyond any file
    /// descriptor limit; it keeps the permit count a `u32`).
    pub const MAX_MAX_CONNECTIONS: u32 = 1 << 24;

    /// `host:port`, with brackets around an IPv6 host.
    pub fn listen(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            body_limit: Self::DEFAULT_BODY_LIMIT,
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

/// A backend's `api_key`.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySetting {
    /// A key to send.
    Key(String),
    /// `"passthrough"`: forward the client's key.
    Passthrough,
}

impl fmt::Debug for ApiKeySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeySetting::Key(k) => write!(f, "Key({})", crate::secret::mask_key(k)),
            ApiKeySetting::Passthrough => f.write_str("Passthrough"),
        }
    }
}

/// One `[[backends]]` entry.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Unique name.
    pub name: String,
    /// Provider name (`openai`, `mock`, ...).
    pub provider: String,
    /// API root; `None` means the provider's default.
    pub base_url: Option<String>,
    /// Credential, after `${VAR}` and `LLM_ROUTER_BACKEND_<NAME>_API_KEY`.
    pub api_key: Option<ApiKeySetting>,
    /// Until the response head.
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Until the first content event of a stream.
    pub first_byte_timeout: Duration,
    /// Longest gap between streamed events.
    pub idle_timeout: Duration,
    /// Verify TLS certificates.
    pub tls_verify: bool,
    /// The backend's own request limit.
    pub rate_limit: Option<BackendLimit>,
    /// The backend's own header rules, applied after `[headers]`.
    pub headers: crate::layers::headers::HeaderRules,
    /// `tools = "native" | "xml"`.
    pub tools: BackendTools,
    /// `api = "chat_completions" | "responses"` (`openai` backends only).
    pub api: crate::routing::UpstreamApi,
}

/// One `[[models]]` entry.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The name clients send: exact, a prefix pattern ending in `*`
    /// (`"gpt-*"`), or `"*"` for any other name.
    pub name: String,
    /// `strip_prefix = true` (prefix patterns only): targets without a fixed
    /// model get the client's name minus the pattern's prefix.
    pub strip_prefix: bool,
    /// Where its requests go.
    pub targets: Vec<TargetConfig>,
    /// Model tried after "context length exceeded".
    pub context_fallback: Option<String>,
    /// `clients = ["openai"]`: only requests of these client APIs use this
    /// route (`None`: every client).
    pub clients: Option<crate::routing::Clients>,
    /// `retry = { ... }`: this model's retry policy (the keys of `[retry]`,
    /// each defaulting to `[retry]`'s), used by the `retry` layer for its
    /// targets instead of `[retry]`.
    pub retry: Option<crate::layers::retry::RetryPolicy>,
}

/// One target of a model.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Backend name.
    pub backend: String,
    /// Model to ask for there (`None` = the client's).
    pub model: Option<String>,
    /// Lower first.
    pub priority: u32,
    /// Load share among equal priorities.
    pub weight: u32,
}

// ---------------------------------------------------------------------------
// Raw, serde-facing structs. Every table rejects unknown keys.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    stack: Option<RawStack>,
    #[serde(default)]
    backends: Vec<RawBackend>,
    #[serde(default)]
    models: Vec<RawModel>,
    // Sections of layers this build does not have yet: accepted by the
    // parser so that the error can say so clearly.
    retry: Option<resilience::RawRetry>,
    circuit_breaker: Option<resilience::RawBreaker>,
    failover: Option<resilience::RawFailover>,
    rate_limit: Option<resilience::RawRateLimit>,
    auth: Option<policy::RawAuth>,
    headers: Option<policy::RawHeaders>,
    #[serde(default)]
    transforms: Vec<transforms::RawTransform>,
    pii: Option<transforms::RawPii>,
    log: Option<log::RawLog>,
    tools: Option<tools::RawTools>,
    cors: Option<policy::RawCors>,
    state: Option<state::RawState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    body_limit: Option<Spanned<i64>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    header_read_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    body_read_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    order: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    name: Spanned<String>,
    provider: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    first_byte_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    tls_verify: Option<bool>,
    tools: Option<Spanned<String>>,
    api: Option<Spanned<String>>,
    rate_limit: Option<Spanned<resilience::RawBackendLimit>>,
    headers: Option<policy::RawHeaders>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: Spanned<String>,
    strip_prefix: Option<Spanned<bool>>,
    targets: Spanned<Vec<RawTarget>>,
    context_fallback: Option<Spanned<String>>,
    clients: Option<Spanned<Vec<String>>>,
    retry: Option<resilience::RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    backend: Spanned<String>,
    model: Option<String>,
    priority: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------

/// Reads and validates; collects nothing but the first error.
struct Loader<'a> {
    file: String,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Loader<'_> {
    fn err(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: span.map(|s| env::line_of(self.text, s.start)),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    fn line_of_header(&self, header: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let l = l.trim_start();
                l.starts_with(&format!("[{header}]"))
                    || l.starts_with(&format!("[[{header}]]"))
                    || l.starts_with(&format!("{header} "))
                    || l.starts_with(&format!("{header}="))
            })
            .map(|n| n + 1)
    }

    fn duration(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        match parse_duration(v.get_ref()) {
            Ok(d) if d.is_zero() => Err(self.err(
                Some(v.span()),
                key,
                format!(
                    "`{}` is zero; a duration must be greater than 0",
                    v.get_ref()
                ),
            )),
            Ok(d) => Ok(d),
            Err(m) => Err(self.err(Some(v.span()), key, m)),
        }
    }

    fn server(&self, raw: Option<RawServer>, dir: &Path) -> Result<ServerConfig, ConfigError> {
        let mut server = ServerConfig::default();
        let Some(raw) = raw else { return Ok(server) };
        if let Some(listen) = &raw.listen {
            let (host, port) = parse_listen(listen.get_ref())
                .map_err(|m| self.err(Some(listen.span()), "server.listen", m))?;
            server.host = host;
            server.port = port;
        }
        if let Some(limit) = &raw.body_limit {
            let value = *limit.get_ref();
            if value <= 0 {
                return Err(self.err(
                    Some(limit.span()),
                    "server.body_limit",
                    "must be a positive number of bytes",
                ));
            }
            server.body_limit = value as u64;
        }
        server.shutdown_timeout = self.duration(
            &raw.shutdown_timeout,
            "server.shutdown_timeout",
            ServerConfig::DEFAULT_SHUTDOWN_TIMEOUT,
        )?;
        if let Some(max) = &raw.max_connections {
            let value = *max.get_ref();
            server.max_connections = u32::try_from(value)
                .ok()
                .filter(|n| *n > 0 && *n <= ServerConfig::MAX_MAX_CONNECTIONS)
                .ok_or_else(|| {
                    self.err(
                        Some(max.span()),
                        "server.max_connections",
                        format!(
                            "must be between 1 and {}",
                            ServerConfig::MAX_MAX_CONNECTIONS
                        ),
                    )
                })?;
        }
        server.header_read_timeout = self.duration(
            &raw.header_read_timeout,
            "server.header_read_timeout",
            ServerConfig::DEFAULT_HEADER_READ_TIMEOUT,
        )?;
        server.idle_timeout = self.duration(
            &raw.idle_timeout,
            "server.idle_timeout",
            ServerConfig::DEFAULT_IDLE_TIMEOUT,
        )?;
        server.body_read_timeout = self.duration(
            &raw.body_read_timeout,
            "server.body_read_timeout",
            ServerConfig::DEFAULT_BODY_READ_TIMEOUT,
        )?;
        let resolve = |p: &Spanned<String>| dir.join(p.get_ref());
        server.tls_cert = raw.tls_cert.as_ref().map(resolve);
        server.tls_key = raw.tls_key.as_ref().map(resolve);
        match (&raw.tls_cert, &raw.tls_key) {
            (Some(c), None) => {
                return Err(self.err(
                    Some(c.span()),
                    "server.tls_cert",
                    "tls_cert is set but tls_key is not; set both to serve HTTPS",
                ))
            }
            (None, Some(k)) => {
                return Err(self.err(
                    Some(k.span()),
                    "server.tls_key",
                    "tls_key is set but tls_cert is not; set both to serve HTTPS",
                ))
            }
            _ => {}
        }
        for (value, key) in [
            (&raw.tls_cert, "server.tls_cert"),
            (&raw.tls_key, "server.tls_key"),
        ] {
            if let Some(v) = value {
                let path = resolve(v);
                if !path.is_file() {
                    return Err(self.err(
                        Some(v.span()),
                        key,
                        format!("file `{}` does not exist", path.display()),
                    ));
                }
            }
        }
        Ok(server)
    }

    fn stack(&self, raw: Option<RawStack>) -> Result<(Vec<LayerName>, bool), ConfigError> {
        let Some(raw) = raw else {
            // The default order, limited to the layers this build has.
            let order = LayerName::DEFAULT_ORDER
                .iter()
                .copied()
                .filter(|l| l.is_built())
                .collect();
            return Ok((order, false));
        };
        // Names and duplicates first, then what this build has.
        let mut order: Vec<LayerName> = Vec::new();
        for (i, entry) in raw.order.get_ref().iter().enumerate() {
            let key = format!("stack.order[{i}]");
            let name = entry.get_ref();
            let Some(layer) = LayerName::parse(name) else {
                let known: Vec<&str> = LayerName::ALL.iter().map(|l| l.as_str()).collect();
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("unknown layer `{name}`; known layers: {}", known.join(", ")),
                ));
            };
            if let Some(first) = order.iter().position(|l| *l == layer) {
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("layer `{name}` is listed twice (first as stack.order[{first}]); each layer may appear once"),
                ));
            }
            order.push(layer);
        }
        for (i, (entry, layer)) in raw.order.get_ref().iter().zip(&order).enumerate() {
            if !layer.is_built() {
                let built: Vec<&str> = LayerName::ALL
                    .iter()
                    .filter(|l| l.is_built())
                    .map(|l| l.as_str())
                    .collect();
                let built = if built.is_empty() {
                    "none yet, so `order = []`".to_string()
                } else {
                    built.join(", ")
                };
                return Err(self.err(Some(entry.span()), format!("stack.order[{i}]"), format!(
                    "layer `{}` is not available in this version of llm-router yet; remove it from [stack] order (available layers: {built})",
                    layer.as_str()
                )));
            }
        }
        Ok((order, true))
    }

    fn backend(&self, i: usize, raw: &RawBackend) -> Result<BackendConfig, ConfigError> {
        let key = |k: &str| format!("backends[{i}].{k}");
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(Some(raw.name.span()), key("name"), "must not be empty"));
        }
        let provider = raw.provider.get_ref().as_str();
        if crate::provider::by_name(provider).is_none() {
            let message = if crate::provider::KNOWN_PROVIDERS.contains(&provider) {
                format!("provider `{provider}` is not available in this version of llm-router yet")
            } else {
                format!(
                    "unknown provider `{provider}`; known providers: {} (any OpenAI-compatible API, such as cerebras, deepinfra, openrouter or vllm, is provider = \"openai\" with its base_url)",
                    crate::provider::KNOWN_PROVIDERS.join(", ")
                )
            };
            return Err(self.err(Some(raw.provider.span()), key("provider"), message));
        }
        let base_url = match &raw.base_url {
            None => None,
            Some(url) => {
                let text = url.get_ref().trim();
                let bad = |why: String| {
                    self.err(
                        Some(url.span()),
                        key("base_url"),
                        format!("`{text}` {why}; base_url must be an absolute http:// or https:// URL, like \"https://api.openai.com/v1\""),
                    )
                };
                let uri: http::Uri = text
                    .parse()
                    .map_err(|e| bad(format!("is not a valid URL ({e})")))?;
                match uri.scheme_str() {
                    Some("http" | "https") => {}
                    Some(other) => return Err(bad(format!("has the scheme `{other}`"))),
                    None => return Err(bad("has no scheme".into())),
                }
                if uri.host().is_none_or(str::is_empty) {
                    return Err(bad("has no host".into()));
                }
                Some(text.to_string())
            }
        };
        // `LLM_ROUTER_BACKEND_<NAME>_API_KEY` is applied by `overrides`.
        let api_key = match raw.api_key.as_ref().map(|k| k.get_ref().clone()) {
            None => None,
            Some(k) if k.is_empty() => None,
            Some(k) if k == "passthrough" => Some(ApiKeySetting::Passthrough),
            Some(k) => Some(ApiKeySetting::Key(k)),
        };
        let tools = self.backend_tools(i, &raw.tools)?;
        let api = match &raw.api {
            None => crate::routing::UpstreamApi::ChatCompletions,
            Some(api) => match (api.get_ref().as_str(), provider) {
                ("chat_completions", _) => crate::routing::UpstreamApi::ChatCompletions,
                ("responses", "openai") => crate::routing::UpstreamApi::Responses,
                ("responses", other) => {
                    return Err(self.err(
                        Some(api.span()),
                        key("api"),
                        format!("\"responses\" needs provider = \"openai\", not \"{other}\""),
                    ))
                }
                (other, _) => {
                    return Err(self.err(
                        Some(api.span()),
                        key("api"),
                        format!("must be \"chat_completions\" or \"responses\", not \"{other}\""),
                    ))
                }
            },
        };
        let rate_limit = raw
            .rate_limit
            .as_ref()
            .map(|r| self.backend_limit(i, r))
            .transpose()?;
        let headers = match &raw.headers {
            Some(h) => self.header_rules(h, &key("headers"))?,
            None => Default::default(),
        };
        Ok(BackendConfig {
            name,
            provider: provider.to_string(),
            base_url,
            api_key,
            timeout: self.duration(
                &raw.timeout,
                &key("timeout"),
                crate::routing::Backend::DEFAULT_TIMEOUT,
            )?,
            connect_timeout: self.duration(
                &raw.connect_timeout,
                &key("connect_timeout"),
                crate::routing::Backend::DEFAULT_CONNECT_TIMEOUT,
            )?,
            first_byte_timeout: self.duration(
                &raw.first_byte_timeout,
                &key("first_byte_timeout"),
                crate::routing::Backend::DEFAULT_FIRST_BYTE_TIMEOUT,
            )?,
            idle_timeout: self.duration(
                &raw.idle_timeout,
                &key("idle_timeout"),
                crate::routing::Backend::DEFAULT_IDLE_TIMEOUT,
            )?,
            tls_verify: raw.tls_verify.unwrap_or(true),
            rate_limit,
            headers,
            tools,
            api,
        })
    }

    fn model(
        &self,
        i: usize,
        raw: &RawModel,
        backends: &[BackendConfig],
        retry: &crate::layers::retry::RetryPolicy,
    ) -> Result<ModelConfig, ConfigError> {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(
                Some(raw.name.span()),
                format!("models[{i}].name"),
                "must not be empty",
            ));
        }
        if name.contains('*') && name != "*" && crate::routing::pattern_prefix(&name).is_none() {
            return Err(self.err(
                Some(raw.name.span()),
                format!("models[{i}].name"),
                format!("`{name}`: `*` may only end a name, as a prefix pattern like \"gpt-*\", or be the whole name \"*\""),
            ));
        }
        let clients = match &raw.clients {
            None => None,
            Some(c) => Some(crate::routing::Clients::parse(c.get_ref()).map_err(|bad| {
                self.err(
                    Some(c.span()),
                    format!("models[{i}].clients"),
                    format!(
                        "unknown client API `{bad}`; expected one of: {}",
                        crate::routing::Clients::NAMES.join(", ")
                    ),
                )
            })?),
        };
        let strip_prefix = raw.strip_prefix.as_ref().is_some_and(|s| *s.get_ref());
        if let Some(s) = raw.strip_prefix.as_ref().filter(|s| *s.get_ref()) {
            if crate::routing::pattern_prefix(&name).is_none() {
                return Err(self.err(
                    Some(s.span()),
                    format!("models[{i}].strip_prefix"),
                    format!("model `{name}` is not a prefix pattern; strip_prefix needs a name like \"cerebras/*\""),
                ));
            }
        }
        if raw.targets.get_ref().is_empty() {
            return Err(self.err(
                Some(raw.targets.span()),
                format!("models[{i}].targets"),
                format!("model `{name}` needs at least one target"),
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in raw.targets.get_ref().iter().enumerate() {
            let key = |k: &str| format!("models[{i}].targets[{j}].{k}");
            let backend = t.backend.get_ref();
            if !backends.iter().any(|b| &b.name == backend) {
                let defined: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
                let defined = if defined.is_empty() {
                    "none".to_string()
                } else {
                    defined.join(", ")
                };
                return Err(self.err(
                    Some(t.backend.span()),
                    key("backend"),
                    format!("backend `{backend}` is not defined (defined: {defined})"),
                ));
            }
            let priority = match &t.priority {
                None => 1,
                Some(p) => u32::try_from(*p.get_ref()).map_err(|_| {
                    self.err(
                        Some(p.span()),
                        key("priority"),
                        "must be a whole number from 0 upward",
                    )
                })?,
            };
            let weight = match &t.weight {
                None => 1,
                Some(w) => match u32::try_from(*w.get_ref()) {
                    Ok(w) if w > 0 => w,
                    _ => {
                        return Err(self.err(
                            Some(w.span()),
                            key("weight"),
                            "must be a whole number from 1 upward",
                        ))
                    }
                },
            };
            targets.push(TargetConfig {
                backend: backend.clone(),
                model: t.model.clone().filter(|m| !m.is_empty() && m != "*"),
                priority,
                weight,
            });
        }
        Ok(ModelConfig {
            name,
            strip_prefix,
            targets,
            context_fallback: raw.context_fallback.as_ref().map(|c| c.get_ref().clone()),
            clients,
            retry: raw
                .retry
                .as_ref()
                .map(|r| self.model_retry(r, i, retry))
                .transpose()?,
        })
    }
}

impl Config {
    /// Read and validate a config file, with the process environment. The
    /// other routers' files (a LiteLLM config, the `models:`-map or
    /// `providers:` YAML, the `openai`/`anthropic` JSON, a `.env`), told by
    /// their content, are imported first (see [`import`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `env` as the environment (`${VAR}` and the
    /// [`overrides`]): the process environment, or it overlaid
    /// with a `.env` file, or a test's own lookup.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "config file not found; write an example one with `llm-router init {}`",
                    path.display()
                )
            } else {
                format!("cannot read the config file: {e}")
            },
        })?;
        import::load(&text, path, env)
    }

    /// Validate config text read from `path`, with `env` as the environment.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let substituted = env::substitute(text, env).map_err(|e| ConfigError {
            file: file.clone(),
            line: Some(e.line),
            key: e.key,
            message: e.message,
        })?;
        // Spans below are offsets into the substituted text: count lines there
        // (substitution never adds a line break, so the lines are the file's).
        let text: &str = &substituted;
        let loader = Loader {
            file: file.clone(),
            text,
            env,
        };
        // Syntax first, so that a TOML syntax error says so.
        if let Err(e) = substituted.parse::<toml::Table>() {
            return Err(ConfigError {
                file,
                line: e.span().map(|s| env::line_of(&substituted, s.start)),
                key: None,
                message: format!("invalid TOML: {}", one_line(e.message())),
            });
        }
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(
            &substituted,
        ))
        .map_err(|e| {
            let path = clean_path(&e.path().to_string());
            let inner = e.into_inner();
            ConfigError {
                file: file.clone(),
                line: inner.span().map(|s| env::line_of(&substituted, s.start)),
                message: explain_serde_error(&path, inner.message()),
                key: (path != "." && !path.is_empty()).then_some(path),
            }
        })?;

        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let server = loader.server(raw.server, &dir)?;
        let (mut stack, stack_explicit) = loader.stack(raw.stack)?;
        let retry = loader.retry(raw.retry)?;
        let circuit_breaker = loader.circuit_breaker(raw.circuit_breaker)?;
        let failover = loader.failover(raw.failover)?;
        let rate_limit = loader.rate_limit(raw.rate_limit)?;
        let auth = loader.auth(raw.auth.as_ref(), &dir, &mut stack, stack_explicit)?;
        let headers = match &raw.headers {
            Some(h) => loader.header_rules(h, "headers")?,
            None => Default::default(),
        };
        let cors = loader.cors(raw.cors.as_ref())?;
        let tools = loader.tools(raw.tools.as_ref())?;
        let transforms = loader.transforms(&raw.transforms, &mut stack, stack_explicit)?;
        let pii = loader.pii(raw.pii.as_ref(), &mut stack, stack_explicit)?;
        let state = loader.state(raw.state.as_ref())?;
        let log = loader.log(raw.log.as_ref(), &dir, &mut stack, stack_explicit)?;

        let mut backends: Vec<BackendConfig> = Vec::new();
        for (i, rb) in raw.backends.iter().enumerate() {
            let b = loader.backend(i, rb)?;
            if let Some(first) = raw.backends[..i]
                .iter()
                .find(|o| o.name.get_ref().trim() == b.name)
            {
                return Err(loader.err(
                    Some(rb.name.span()),
                    format!("backends[{i}].name"),
                    format!(
                        "duplicate backend name `{}` (first defined at line {})",
                        b.name,
                        env::line_of(text, first.name.span().start)
                    ),
                ));
            }
            backends.push(b);
        }
        let mut models: Vec<ModelConfig> = Vec::new();
        for (i, rm) in raw.models.iter().enumerate() {
            let m = loader.model(i, rm, &backends, &retry)?;
            // One name may have a route per client restriction (`clients`).
            if let Some((_, first)) = models
                .iter()
                .zip(&raw.models)
                .find(|(o, _)| o.name == m.name && o.clients == m.clients)
            {
                return Err(loader.err(
                    Some(rm.name.span()),
                    format!("models[{i}].name"),
                    format!(
                        "duplicate model name `{}` (first defined at line {})",
                        m.name,
                        env::line_of(text, first.name.span().start)
                    ),
                ));
            }
            models.push(m);
        }
        for (i, rm) in raw.models.iter().enumerate() {
            if let Some(fallback) = &rm.context_fallback {
                let name = fallback.get_ref();
                if name == rm.name.get_ref() {
                    return Err(loader.err(
                        Some(fallback.span()),
                        format!("models[{i}].context_fallback"),
                        "a model cannot be its own context fallback",
                    ));
                }
                if !models.iter().any(|m| &m.name == name) {
                    return Err(loader.err(
                        Some(fallback.span()),
                        format!("models[{i}].context_fallback"),
                        format!("model `{name}` is not defined in [[models]]"),
                    ));
                }
            }
        }
        if models.is_empty() {
            return Err(ConfigError {
                file,
                line: None,
                key: Some("models".into()),
                message:
                    "no [[models]] are defined, so no request could be routed; add at least one"
                        .into(),
            });
        }
        let mut config = Config {
            path: path.to_path_buf(),
            server,
            stack,
            stack_explicit,
            backends,
            models,
            retry,
            circuit_breaker,
            failover,
            rate_limit,
            auth,
            headers,
            cors,
            tools,
            transforms,
            pii,
            state,
            log,
            source_warnings: Vec::new(),
        };
        overrides::apply(&mut config, env)?;
        Ok(config)
    }

    /// Apply `--host` / `--port` (they win over the file and the environment).
    pub fn override_listen(&mut self, host: Option<String>, port: Option<u16>) {
        if let Some(host) = host {
            self.server.host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
        }
        if let Some(port) = port {
            self.server.port = port;
        }
    }

    /// Things that are valid but probably not what was meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.source_warnings.clone();
        if let Some(weak) = self.auth.jwt.as_ref().and_then(|j| j.weakness()) {
            out.push(format!("auth.jwt.secret: {weak}"));
        }
        if !self.stack.contains(&LayerName::Failover) {
            for m in self.models.iter().filter(|m| m.targets.len() > 1) {
                out.push(format!(
                    "model `{}` has {} targets but `failover` is not in [stack] order: only the first target by priority is used",
                    m.name,
                    m.targets.len()
                ));
            }
        }
        for (set, layer, section) in [
            (!self.auth.is_empty(), LayerName::Auth, "[auth] keys are"),
            (!self.headers.is_empty(), LayerName::Headers, "[headers] is"),
            (self.cors.is_some(), LayerName::Cors, "[cors] is"),
            (
                !self.transforms.is_empty(),
                LayerName::Transform,
                "[[transforms]] is",
            ),
            (self.pii.is_some(), LayerName::Pii, "[pii] is"),
            (self.log.is_some(), LayerName::Log, "[log] is"),
            (
                self.models.iter().any(|m| m.retry.is_some()),
                LayerName::Retry,
                "a model's `retry` is",
            ),
        ] {
            if set && !self.stack.contains(&layer) {
                out.push(format!(
                    "{section} set but `{layer}` is not in [stack] order, so it has no effect"
                ));
            }
        }
        let used: HashSet<&str> = self
            .models
            .iter()
            .flat_map(|m| m.targets.iter().map(|t| t.backend.as_str()))
            .collect();
        for b in self
            .backends
            .iter()
            .filter(|b| !used.contains(b.name.as_str()))
        {
            out.push(format!("backend `{}` is not used by any model", b.name));
        }
        out
    }
}

/// A serde path without the internals of `toml::Spanned`
/// (`models[0].targets.$__serde_spanned_private_value[0]` -> `models[0].targets[0]`).
fn clean_path(path: &str) -> String {
    path.replace(".$__serde_spanned_private_value", "")
        .replace("$__serde_spanned_private_value", "")
}

fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// serde's message, in TOML words and with a hint where a common mistake is likely.
fn explain_serde_error(path: &str, message: &str) -> String {
    let message = one_line(message);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let what = if path.contains(['.', '[']) {
            "key"
        } else {
            "section or key"
        };
        let mut out = format!("unknown {what} `{name}`");
        if let Some(best) = closest(name, &candidates) {
            out.push_str(&format!(" (did you mean `{best}`?)"));
        }
        if candidates.is_empty() {
            out.push_str("; this table takes no keys");
        } else {
            out.push_str("; expected one of ");
            out.push_str(
                &candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        return out;
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    if (path == "backends" || path == "models") && message.contains("expected a sequence") {
        return format!("{message}; write each entry as [[{path}]] (double brackets)");
    }
    if last.ends_with("timeout") && message.contains("expected a string") {
        return format!("{message}; durations are strings with a unit, like \"30s\" or \"250ms\"");
    }
    message
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a typo.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `LLM_ROUTER_BACKEND_<NAME>_API_KEY`'s (and `LLM_ROUTER_MODEL_<NAME>_API_KEY`'s) NAME: upper-cased, non-alphanumerics as `_`.
pub fn env_name(backend: &str) -> String {
    backend
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Split `host:port` (`[v6]:port` for IPv6).
fn parse_listen(listen: &str) -> Result<(String, u16), String> {
    let hint = "must be host:port, like \"127.0.0.1:8080\" or \"[::1]:8080\"";
    let (host, port) = listen
        .trim()
        .rsplit_once(':')
        .filter(|_| !listen.trim().ends_with(']'))
        .ok_or_else(|| format!("`{listen}` has no port; {hint}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{listen}` has no host; {hint}"));
    }
    let valid_host = host.parse::<std::net::IpAddr>().is_ok()
        || host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid_host {
        return Err(format!(
            "`{host}` is not an IP address or host name; {hint}"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0-65535); {hint}"))?;
    Ok((host.to_string(), port))
}

/// Parse a duration string: a number and a unit, `ms`, `s`, `m` or `h`
/// (`"250ms"`, `"1.5s"`, `"2m"`).
///
/// ```
/// use std::time::Duration;
/// use llm_router::config::parse_duration;
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let hint = "durations are a number and a unit: \"250ms\", \"1s\", \"2m\", \"1h\"";
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {hint}"))?;
    let millis = match unit.trim() {
        "ms" => value,
        "s" => value * 1e3,
        "m" => value * 60e3,
        "h" => value * 3600e3,
        "" => return Err(format!("`{text}` has no unit; {hint}")),
        other => return Err(format!("unknown unit `{other}` in `{text}`; {hint}")),
    };
    if !millis.is_finite() || millis > 1e13 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_micros((millis * 1e3).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    #[test]
    fn minimal_defaults() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.server.listen(), "127.0.0.1:8080");
        assert_eq!(c.server.body_limit, 10 * 1024 * 1024);
        assert!(!c.stack_explicit);
        assert_eq!(c.models[0].targets[0].priority, 1);
    }

    #[test]
    fn unknown_key_names_line_and_path() {
        let e = parse(&format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nlisne = 3\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key.as_deref(), Some("server.lisne"), "{e}");
        assert!(e.message.contains("unknown key `lisne`"), "{e}");
    }

    #[test]
    fn spanned_durations() {
        let text = MIN.replace(
            "provider = \"mock\"",
            "provider = \"mock\"\ntimeout = \"5x\"",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("backends[0].timeout"));
    }

    #[test]
    fn server_limits() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.server.max_connections, 10_000);
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
        let c = parse(&format!(
            "[server]\nmax_connections = 5\nheader_read_timeout = \"200ms\"\nidle_timeout = \"1s\"\nbody_read_timeout = \"2m\"\n{MIN}"
        ))
        .unwrap();
        assert_eq!(c.server.max_connections, 5);
        assert_eq!(c.server.header_read_timeout, Duration::from_millis(200));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(1));
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(120));
        for (line, key) in [
            ("max_connections = 0", "server.max_connections"),
            ("max_connections = -3", "server.max_connections"),
            ("header_read_timeout = \"0s\"", "server.header_read_timeout"),
            ("idle_timeout = \"0ms\"", "server.idle_timeout"),
            ("body_read_timeout = \"30\"", "server.body_read_timeout"),
            ("body_read_timout = \"30s\"", "server.body_read_timout"),
        ] {
            let e = parse(&format!("[server]\n{line}\n{MIN}")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
            assert_eq!(e.line, Some(2), "{line}: {e}");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("[::1]:80").unwrap(), ("::1".into(), 80));
        assert_eq!(
            parse_listen("localhost:0").unwrap(),
            ("localhost".into(), 0)
        );
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
        assert!(parse_listen(":80").is_err());
        assert!(parse_listen("bad host:80").is_err());
    }

    #[test]
    fn retry_defaults_and_a_models_own_retry() {
        let model = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"x\"\ntargets = [{ backend = \"m\" }]\n";
        // No [retry]: fallback before retrying the same target.
        assert!(parse(model).unwrap().retry.other_targets_first);
        // A written [retry] keeps the contract's meaning unless it says so.
        let written = format!("[retry]\nmax_retries = 2\n\n{model}");
        let c = parse(&written).unwrap();
        assert!(!c.retry.other_targets_first);
        assert_eq!(c.models[0].retry, None);
        let own = format!("{written}retry = {{ initial_delay = \"10ms\", max_delay = \"1s\" }}\n");
        let m = parse(&own).unwrap().models[0].retry.clone().unwrap();
        assert_eq!(m.max_retries, 2, "from [retry]");
        assert_eq!(m.initial_delay, Duration::from_millis(10));
        let bad = format!("{written}retry = {{ max_retries = -1 }}\n");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("models[0].retry.max_retries"), "{e}");
        assert_eq!(e.line, Some(11), "{e}");
        let unknown = format!("{written}retry = {{ attempts = 2 }}\n");
        assert!(parse(&unknown).is_err());
    }

    #[test]
    fn clients_restrict_a_route() {
        let text = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"*\"\nclients = [\"anthropic\"]\ntargets = [{ backend = \"m\" }]\n";
        let c = parse(text).unwrap();
        let clients = c.models[0].clients.unwrap();
        assert!(clients.serves(crate::request::ClientFormat::Anthropic));
        assert!(!clients.serves(crate::request::ClientFormat::OpenAi));
        // A route per restriction under one name; the same restriction twice is a duplicate.
        let two = format!("{text}\n[[models]]\nname = \"*\"\nclients = [\"openai\"]\ntargets = [{{ backend = \"m\" }}]\n");
        assert_eq!(parse(&two).unwrap().models.len(), 2);
        let e = parse(&two.replace("[\"openai\"]", "[\"anthropic\"]")).unwrap_err();
        assert!(e.message.contains("duplicate model name `*`"), "{e}");
        let e = parse(&text.replace("anthropic", "grpc")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("models[0].clients"));
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("`grpc`"), "{e}");
    }

    #[test]
    fn prefix_patterns_and_strip_prefix() {
        let model = |block: &str| {
            format!("[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\n{block}targets = [{{ backend = \"m\" }}]\n")
        };
        let c = parse(&model("name = \"cerebras/*\"\nstrip_prefix = true\n")).unwrap();
        assert!(c.models[0].strip_prefix);
        let c = parse(&model("name = \"gpt-*\"\n")).unwrap();
        assert!(!c.models[0].strip_prefix);
        let e = parse(&model("name = \"g*t\"\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(6), Some("models[0].name")),
            "{e}"
        );
        assert!(e.message.contains("prefix pattern"), "{e}");
        let e = parse(&model("name = \"gpt-4o\"\nstrip_prefix = true\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(7), Some("models[0].strip_prefix")),
            "{e}"
        );
        let e = parse(&model("name = \"*\"\nstrip_prefix = true\n")).unwrap_err();
        assert!(e.message.contains("not a prefix pattern"), "{e}");
    }

    #[test]
    fn env_name_rule() {
        assert_eq!(env_name("open-ai.eu"), "OPEN_AI_EU");
    }

    #[test]
    fn env_overrides() {
        let env = |n: &str| match n {
            "LLM_ROUTER_SERVER_PORT" => Some("9999".to_string()),
            "LLM_ROUTER_SERVER_HOST" => Some("0.0.0.0".to_string()),
            "LLM_ROUTER_BACKEND_M_API_KEY" => Some("sk-override".to_string()),
            _ => None,
        };
        let c = Config::parse(MIN, Path::new("c.toml"), &env).unwrap();
        assert_eq!(c.server.listen(), "0.0.0.0:9999");
        assert_eq!(
            c.backends[0].api_key,
            Some(ApiKeySetting::Key("sk-override".into()))
        );
    }
}
