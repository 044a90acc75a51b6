//! The validated, typed configuration: [`Config`] and its parts
//! (`[server]`, `[[backends]]`, `[[models]]` and their targets).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{BackendLimit, BackendTools, LayerName, ToolsConfig};

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
    pub log: Option<super::LogPolicy>,
    /// `[pricing]` (the built-in prices alone when absent).
    pub pricing: crate::pricing::PricingConfig,
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

impl Config {
    /// Where the `budget` layer saves spend: `[state] spend_file`, else
    /// `llm-router-spend.json` next to the config file.
    pub fn spend_file(&self) -> std::path::PathBuf {
        self.state.spend_file.clone().unwrap_or_else(|| {
            self.path
                .parent()
                .unwrap_or_else(|| std::path::Path::new(""))
                .join(crate::layers::budget::SPEND_FILE)
        })
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
}
