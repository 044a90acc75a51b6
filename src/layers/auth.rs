//! `auth`: client keys and admin keys.
//!
//! A client presents its key as `Authorization: Bearer K`, `x-api-key: K`,
//! or in the header named by [`AuthPolicy::header`]. Keys are compared in
//! constant time (the [`subtle`] crate: every configured key is compared,
//! with no early exit on a match). Then:
//!
//! - **no key** → 401 `missing_api_key`, **an unknown key** → 401
//!   `invalid_api_key`, in the client's format (OpenAI or Anthropic), with
//!   `WWW-Authenticate: Bearer`; nothing further runs.
//! - **a valid key** → the request goes on with [`ClientIdentity`] (which
//!   `rate_limit` keys on) and [`ClientCredential`] (which a backend with
//!   `api_key = "passthrough"` forwards) in its extensions, and with every
//!   credential header — `authorization`, `x-api-key`, `api-key`,
//!   `x-goog-api-key` and the custom header — removed, so no layer and no
//!   upstream ever sees the client's key in a header.
//!
//! **JWT clients** ([`AuthPolicy::jwt`], `[auth] jwt`): a presented
//! credential shaped like a JWT (`a.b.c`) that is not a configured key is
//! verified as a token ([`JwtPolicy::verify`](crate::layers::jwt::JwtPolicy::verify):
//! algorithm, signature, `exp`/`nbf` with a 30 s leeway, `iss`, `aud`, `sub`).
//! A valid one is a client whose identity is `jwt:<sub>` (for `rate_limit`,
//! logs and the counters); an invalid one is a 401 whose code and message say
//! why (`token_expired`, `token_not_yet_valid`, `invalid_token_signature`,
//! `invalid_token_issuer`, `invalid_token_audience`, `invalid_token_algorithm`,
//! `invalid_token_claims`, `malformed_token`). A token is never an admin
//! credential.
//!
//! **Before the body.** In the server, [`App`](crate::app::App) makes this
//! check from the headers before it reads a request's body, and passes the
//! result ([`Checked`]) in the request's extensions; the layer takes it
//! instead of checking again (so a refusal is counted once, a JWT verified
//! once). A refused request reaches the layer with an
//! [`LlmRequest::unread`](crate::request::LlmRequest::unread): its body was
//! never read. Used alone, the layer checks the headers itself.
//!
//! Admin keys ([`AuthPolicy::admin_key`]) may also call the admin endpoints
//! (see [`is_admin_path`] and [`KeyStore::check_admin`]); an admin key is a
//! valid client key too.
//!
//! The keys live in a [`KeyStore`] shared by the layer and the admin API.
//! [`KeyStore::reload`] re-reads the keys file and swaps the whole key set at
//! once (`RwLock<Arc<KeySet>>`, held only to clone the `Arc`): requests in
//! flight finish with the set they started with, new ones see the new set,
//! nothing is dropped. The store also counts requests, successes and
//! failures (status ≥ 400) per key; keys only ever leave it masked
//! ([`mask_key`]).
//!
//! ```
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::body::ProxyBody;
//! use llm_router::layers::auth::{AuthLayer, AuthPolicy, KeyStore};
//! use llm_router::layers::rate_limit::ClientIdentity;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = KeyStore::new(AuthPolicy::new().key("sk-team-a-0123456789").admin_key("sk-admin-0123456789"));
//! let upstream = service_fn(|req: Request<ProxyBody>| async move {
//!     // The key reached the stack as an identity, not as a header.
//!     assert!(req.headers().get("authorization").is_none());
//!     assert!(req.extensions().get::<ClientIdentity>().is_some());
//!     Ok::<_, std::convert::Infallible>(Response::new(ProxyBody::empty()))
//! });
//! let service = AuthLayer::new(keys.into()).layer(upstream);
//!
//! let req = Request::post("/v1/chat/completions")
//!     .header("authorization", "Bearer sk-team-a-0123456789")
//!     .body(ProxyBody::empty()).unwrap();
//! assert_eq!(service.clone().oneshot(req).await.unwrap().status(), 200);
//!
//! let req = Request::post("/v1/chat/completions")
//!     .header("x-api-key", "sk-wrong")
//!     .body(ProxyBody::empty()).unwrap();
//! assert_eq!(service.oneshot(req).await.unwrap().status(), 401);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderName};
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use serde_json::{json, Value};
use subtle::{Choice, ConstantTimeEq};
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::layers::jwt::{looks_like_jwt, JwtPolicy, IDENTITY_PREFIX};
use crate::request::{ClientFormat, LlmRequest};
use crate::secret::{mask_key, Secret};
use crate::FastMap;

pub use crate::layers::rate_limit::ClientIdentity;
pub use crate::provider::ClientCredential;

/// The admin endpoints: they need an admin key when `auth` is on. Any path
/// under `/admin/` is one too.
pub const ADMIN_PATHS: &[&str] = &[
    "/providers",
    "/backend/info",
    "/router/stats",
    "/router/health",
    "/router/rate-limits",
    "/auth/status",
    "/auth/metrics",
    "/auth/reload-keys",
    "/admin/reload",
];

/// Whether `path` is an admin endpoint.
///
/// ```
/// use llm_router::layers::auth::is_admin_path;
/// assert!(is_admin_path("/auth/status"));
/// assert!(is_admin_path("/admin/anything"));
/// assert!(!is_admin_path("/v1/models"));
/// ```
pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PATHS.contains(&path) || path.starts_with("/admin/")
}

/// The read-only operational endpoints (`GET` only): while no admin key is
/// configured at all, any valid client key may call them, as the routers
/// llm-router replaces allowed; once an admin key exists they are admin
/// endpoints like the others. Reloads never are.
///
/// ```
/// use llm_router::layers::auth::is_read_only_operation;
/// assert!(is_read_only_operation("/router/health"));
/// assert!(is_read_only_operation("/auth/metrics"));
/// assert!(!is_read_only_operation("/auth/reload-keys"));
/// assert!(!is_read_only_operation("/admin/reload"));
/// ```
pub fn is_read_only_operation(path: &str) -> bool {
    matches!(
        path,
        "/providers" | "/backend/info" | "/auth/status" | "/auth/metrics"
    ) || path.starts_with("/router/")
}

/// Where a client key came from (shown by `/auth/status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `[auth] keys` (or a key given in code).
    Config,
    /// An environment variable (`AUTH_KEY`, `AUTH_KEY_01`..`AUTH_KEY_99`).
    Env(String),
    /// The keys file (re-read on reload).
    File,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => f.write_str("config"),
            KeySource::Env(var) => write!(f, "env {var}"),
            KeySource::File => f.write_str("keys_file"),
        }
    }
}

/// One client key and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthKey {
    /// The key.
    pub key: Secret,
    /// Its source.
    pub source: KeySource,
}

/// What `auth` checks: typed, no config needed. See the
/// [module docs](crate::layers::auth).
#[derive(Clone, Debug, Default)]
pub struct AuthPolicy {
    /// Client keys (from every source, the keys file's as last read).
    pub keys: Vec<AuthKey>,
    /// Admin keys (also valid client keys).
    pub admin_keys: Vec<Secret>,
    /// The keys file, re-read by [`KeyStore::reload`].
    pub keys_file: Option<PathBuf>,
    /// A header that carries the key, besides `Authorization` and `x-api-key`.
    pub header: Option<HeaderName>,
    /// JWT clients (`[auth] jwt`): a valid token is a client (never an admin).
    pub jwt: Option<JwtPolicy>,
}

impl AuthPolicy {
    /// No keys yet.
    pub fn new() -> Self {
        AuthPolicy::default()
    }

    /// Accept this client key.
    pub fn key(mut self, key: impl Into<std::sync::Arc<str>>) -> Self {
        self.keys.push(AuthKey {
            key: Secret::new(key),
            source: KeySource::Config,
        });
        self
    }

    /// Accept this admin key (for the admin endpoints and as a client key).
    pub fn admin_key(mut self, key: impl Into<std::sync::Arc<str>>) -> Self {
        self.admin_keys.push(Secret::new(key));
        self
    }

    /// Read client keys from `path` now, and again on every reload.
    pub fn keys_file(mut self, path: impl Into<PathBuf>) -> Result<Self, KeysFileError> {
        let path = path.into();
        let keys = read_keys_file(&path)?;
        self.keys.extend(keys.into_iter().map(|key| AuthKey {
            key,
            source: KeySource::File,
        }));
        self.keys_file = Some(path);
        Ok(self)
    }

    /// Also accept the key in this header.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Also accept clients with a valid JWT (see [`JwtPolicy`]).
    pub fn jwt(mut self, jwt: JwtPolicy) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// Whether no client can get in: no key (client or admin) and no JWT.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.admin_keys.is_empty() && self.jwt.is_none()
    }
}

/// A keys file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    /// It cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A reload would leave no key at all.
    #[error("`{path}` holds no key and no other source has one; keeping the keys in force")]
    NoKeys {
        /// The file.
        path: PathBuf,
    },
    /// A line is not a usable key.
    #[error("`{path}` line {line}: {message}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong (never the key itself).
        message: String,
    },
}

/// Why a key cannot be used, if it cannot: keys are compared with the
/// visible ASCII a header value carries.
///
/// ```
/// use llm_router::layers::auth::key_problem;
/// assert_eq!(key_problem("sk-abc"), None);
/// assert!(key_problem("two words").is_some());
/// ```
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is empty")
    } else if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Some("contains a space, a control character or a non-ASCII character, which no header can carry")
    } else {
        None
    }
}

/// Read a keys file: one key a line; blank lines and `#` comments (whole
/// lines, or after whitespace at the end of a line) are ignored.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("llm-router-doc-keys-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("keys.txt");
/// std::fs::write(&path, "# team keys\nsk-a\n\nsk-b   # bob\n").unwrap();
/// let keys = llm_router::layers::auth::read_keys_file(&path).unwrap();
/// assert_eq!(keys.iter().map(|k| k.expose()).collect::<Vec<_>>(), ["sk-a", "sk-b"]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_keys_file(path: &Path) -> Result<Vec<Secret>, KeysFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut keys: Vec<Secret> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut line = line.trim();
        if let Some(at) = line.find(|c: char| c.is_whitespace()) {
            if line[at..].trim_start().starts_with('#') {
                line = line[..at].trim_end();
            }
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(problem) = key_problem(line) {
            return Err(KeysFileError::BadKey {
                path: path.to_path_buf(),
                line: n + 1,
                message: format!("the key {problem}"),
            });
        }
        if !keys.iter().any(|k| k.expose() == line) {
            keys.push(Secret::new(line));
        }
    }
    Ok(keys)
}

/// Compare two keys in constant time (for keys of equal length; the
/// length itself is not hidden).
///
/// ```
/// use llm_router::layers::auth::keys_equal;
/// assert!(keys_equal("sk-abc", "sk-abc"));
/// assert!(!keys_equal("sk-abc", "sk-abd"));
/// assert!(!keys_equal("sk-abc", "sk-ab"));
/// ```
pub fn keys_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The keys in force at one moment. Swapped whole on reload.
#[derive(Debug)]
pub struct KeySet {
    client: Vec<AuthKey>,
    admin: Vec<Secret>,
    loaded_at: SystemTime,
}

impl KeySet {
    /// Client keys (admin keys not included).
    pub fn client_keys(&self) -> &[AuthKey] {
        &self.client
    }

    /// Admin keys.
    pub fn admin_keys(&self) -> &[Secret] {
        &self.admin
    }

    /// The role of `presented`, comparing it with every key in constant time.
    fn role_of(&self, presented: &str) -> Option<Role> {
        let presented = presented.as_bytes();
        let mut admin = Choice::from(0);
        for k in &self.admin {
            admin |= k.expose().as_bytes().ct_eq(presented);
        }
        let mut client = Choice::from(0);
        for k in &self.client {
            client |= k.key.expose().as_bytes().ct_eq(presented);
        }
        if bool::from(admin) {
            Some(Role::Admin)
        } else if bool::from(client) {
            Some(Role::Client)
        } else {
            None
        }
    }
}

/// What a valid key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client API.
    Client,
    /// The client API and the admin endpoints.
    Admin,
}

/// A client whose key (or JWT) is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The key it presented (for a JWT client, the token).
    pub key: Secret,
    /// What it may do.
    pub role: Role,
    /// A JWT client's `sub`; `None` for a key.
    pub subject: Option<String>,
}

impl Authenticated {
    /// The client's identity: the key, or `jwt:<sub>` for a JWT client
    /// (what [`ClientIdentity`] carries).
    pub fn identity(&self) -> String {
        match &self.subject {
            Some(sub) => format!("{IDENTITY_PREFIX}{sub}"),
            None => self.key.expose().to_string(),
        }
    }

    /// What the per-client counters are kept under ([`KeyStore::begin`],
    /// [`KeyStore::finish`]): the key, or `jwt:<sub>` (tokens rotate, the
    /// subject stays).
    pub fn stats_key(&self) -> Secret {
        match &self.subject {
            Some(_) => Secret::new(self.identity()),
            None => self.key.clone(),
        }
    }
}

/// Counters of one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyStats {
    /// Requests that presented the key.
    pub requests: u64,
    /// Answered with a status below 400.
    pub successes: u64,
    /// Answered with a status of 400 or more (or an error).
    pub failures: u64,
    /// Unix time (seconds) of the last request.
    pub last_seen: Option<u64>,
}

/// What a reload found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Client keys now in force (all sources).
    pub client_keys: usize,
    /// Of which from the keys file.
    pub from_file: usize,
    /// Admin keys.
    pub admin_keys: usize,
}

/// The keys of `auth`, their counters, and reload. Shared (`Arc`) by the
/// layer and the admin API. See the [module docs](crate::layers::auth).
pub struct KeyStore {
    header: Option<HeaderName>,
    fixed: Vec<AuthKey>,
    admin: Vec<Secret>,
    keys_file: Option<PathBuf>,
    jwt: Option<Arc<JwtPolicy>>,
    current: RwLock<Arc<KeySet>>,
    stats: Mutex<FastMap<String, KeyStats>>,
    missing: AtomicU64,
    invalid: AtomicU64,
    /// Refused tokens, by reason (`token_expired`, ...).
    refused_tokens: Mutex<HashMap<&'static str, u64>>,
    reloads: AtomicU64,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.keys();
        f.debug_struct("KeyStore")
            .field("client_keys", &set.client.len())
            .field("admin_keys", &set.admin.len())
            .field("keys_file", &self.keys_file)
            .field("header", &self.header)
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key a header value carries (`Bearer K` or `K`), if any.
fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?.trim();
    let key = match v.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => v,
    };
    (!key.is_empty()).then_some(key)
}

impl KeyStore {
    /// A store holding the keys of `policy` (the keys file is not read
    /// again until [`reload`](Self::reload)).
    pub fn new(policy: AuthPolicy) -> Self {
        let fixed: Vec<AuthKey> = policy
            .keys
            .iter()
            .filter(|k| k.source != KeySource::File)
            .cloned()
            .collect();
        let set = KeySet {
            client: dedup(policy.keys),
            admin: policy.admin_keys.clone(),
            loaded_at: SystemTime::now(),
        };
        KeyStore {
            header: policy.header,
            fixed,
            admin: policy.admin_keys,
            keys_file: policy.keys_file,
            jwt: policy.jwt.map(Arc::new),
            current: RwLock::new(Arc::new(set)),
            stats: Mutex::new(FastMap::default()),
            missing: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            refused_tokens: Mutex::new(HashMap::new()),
            reloads: AtomicU64::new(0),
        }
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The custom key header, if any.
    pub fn header(&self) -> Option<&HeaderName> {
        self.header.as_ref()
    }

    /// The keys file, if any.
    pub fn keys_file(&self) -> Option<&Path> {
        self.keys_file.as_deref()
    }

    /// How JWT clients are verified, if they are accepted.
    pub fn jwt(&self) -> Option<&JwtPolicy> {
        self.jwt.as_deref()
    }

    /// Re-read the keys file and swap in the new key set. On any error (an
    /// unreadable file, a bad line, or a result with no key at all) the
    /// keys in force stay as they are.
    pub fn reload(&self) -> Result<ReloadReport, KeysFileError> {
        let from_file = match &self.keys_file {
            Some(path) => read_keys_file(path)?,
            None => Vec::new(),
        };
        let n_file = from_file.len();
        let mut client = self.fixed.clone();
        client.extend(from_file.into_iter().map(|key| AuthKey {
            key,
            source: KeySource::File,
        }));
        let client = dedup(client);
        if client.is_empty() && self.admin.is_empty() && self.jwt.is_none() {
            return Err(KeysFileError::NoKeys {
                path: self.keys_file.clone().unwrap_or_default(),
            });
        }
        let report = ReloadReport {
            client_keys: client.len(),
            from_file: n_file,
            admin_keys: self.admin.len(),
        };
        let set = Arc::new(KeySet {
            client,
            admin: self.admin.clone(),
            loaded_at: SystemTime::now(),
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = set;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            client_keys = report.client_keys,
            from_file = report.from_file,
            admin_keys = report.admin_keys,
            "auth keys reloaded"
        );
        Ok(report)
    }

    /// The keys presented in `headers`: the custom header, then
    /// `Authorization`, then `x-api-key`.
    fn presented<'h>(&self, headers: &'h HeaderMap) -> impl Iterator<Item = &'h str> + 'h {
        let custom = self.header.clone();
        custom
            .into_iter()
            .flat_map(move |name| headers.get_all(name).iter())
            .chain(headers.get_all(header::AUTHORIZATION).iter())
            .chain(headers.get_all("x-api-key").iter())
            .filter_map(bearer)
    }

    /// Check the key (or JWT) in `headers`: 401 when there is none, it is
    /// unknown, or the token is not valid (the code and message say why).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, ProxyError> {
        let set = self.keys();
        let mut any = false;
        let mut refused_token = None;
        for presented in self.presented(headers) {
            any = true;
            if let Some(role) = set.role_of(presented) {
                return Ok(Authenticated {
                    key: Secret::new(presented),
                    role,
                    subject: None,
                });
            }
            if let Some(jwt) = self.jwt.as_deref().filter(|_| looks_like_jwt(presented)) {
                match jwt.verify(presented) {
                    Ok(claims) => {
                        return Ok(Authenticated {
                            key: Secret::new(presented),
                            role: Role::Client,
                            subject: Some(claims.subject),
                        })
                    }
                    Err(why) => refused_token = refused_token.or(Some(why)),
                }
            }
        }
        if let Some(why) = refused_token {
            *self
                .refused_tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(why.code())
                .or_default() += 1;
            return Err(ProxyError::Unauthorized {
                message: why.to_string(),
                code: why.code(),
            });
        }
        let what = if self.jwt.is_some() {
            "API key or token"
        } else {
            "API key"
        };
        if any {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            Err(ProxyError::Unauthorized {
                message: format!("Invalid {what}"),
                code: "invalid_api_key",
            })
        } else {
            self.missing.fetch_add(1, Ordering::Relaxed);
            let how = match &self.header {
                Some(h) => format!("`Authorization: Bearer KEY`, `x-api-key: KEY` or `{h}: KEY`"),
                None => "`Authorization: Bearer KEY` or `x-api-key: KEY`".into(),
            };
            Err(ProxyError::Unauthorized {
                message: format!("No {what} given; send it as {how}"),
                code: "missing_api_key",
            })
        }
    }

    /// Check for an admin key: 401 without a valid key, 403 for a client key.
    pub fn check_admin(&self, headers: &HeaderMap) -> Result<Authenticated, ProxyError> {
        let client = self.authenticate(headers)?;
        if client.role == Role::Admin {
            Ok(client)
        } else {
            Err(ProxyError::Forbidden {
                message: "This endpoint needs an admin key".into(),
                code: "admin_key_required",
            })
        }
    }

    /// Check the caller of an operational endpoint: an admin key, or — for a
    /// `GET` of a [read-only one](is_read_only_operation) while no admin key
    /// is configured at all — any valid client key.
    pub fn check_operations(
        &self,
        headers: &HeaderMap,
        path: &str,
        read: bool,
    ) -> Result<Authenticated, ProxyError> {
        if read && is_read_only_operation(path) && self.keys().admin.is_empty() {
            self.authenticate(headers)
        } else {
            self.check_admin(headers)
        }
    }

    /// Remove every header that can carry a client key.
    pub fn strip_credentials(&self, headers: &mut HeaderMap) {
        for name in crate::provider::CREDENTIAL_HEADERS {
            headers.remove(*name);
        }
        if let Some(name) = &self.header {
            headers.remove(name);
        }
    }

    fn with_stats(&self, key: &Secret, f: impl FnOnce(&mut KeyStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match stats.get_mut(key.expose()) {
            Some(s) => f(s),
            None => f(stats.entry(key.expose().to_string()).or_default()),
        }
    }

    /// Count a request of `key` (when it starts).
    pub fn begin(&self, key: &Secret) {
        let now = unix_now();
        self.with_stats(key, |s| {
            s.requests += 1;
            s.last_seen = Some(now);
        });
    }

    /// Count how a request of `key` ended.
    pub fn finish(&self, key: &Secret, status: StatusCode) {
        self.with_stats(key, |s| {
            if status.as_u16() >= 400 {
                s.failures += 1;
            } else {
                s.successes += 1;
            }
        });
    }

    /// The counters of `key`.
    pub fn stats_of(&self, key: &str) -> KeyStats {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.get(key).copied().unwrap_or_default()
    }

    fn stats_json(&self, key: &Secret, stats: &FastMap<String, KeyStats>) -> Value {
        serde_json::to_value(stats.get(key.expose()).copied().unwrap_or_default())
            .unwrap_or(Value::Null)
    }

    /// `GET /auth/status`: every key in force (masked), its source, role and
    /// counters.
    pub fn status(&self) -> Value {
        let set = self.keys();
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<Value> = Vec::new();
        for k in &set.admin {
            let mut v = json!({"key": k.masked(), "role": "admin", "source": "admin_keys"});
            v["stats"] = self.stats_json(k, &stats);
            keys.push(v);
        }
        for k in &set.client {
            let mut v =
                json!({"key": k.key.masked(), "role": "client", "source": k.source.to_string()});
            v["stats"] = self.stats_json(&k.key, &stats);
            keys.push(v);
        }
        json!({
            "enabled": true,
            "client_keys": set.client.len(),
            "admin_keys": set.admin.len(),
            "keys_file": self.keys_file.as_ref().map(|p| p.display().to_string()),
            "header": self.header.as_ref().map(HeaderName::as_str),
            "jwt": self.jwt.as_ref().map(|j| j.describe()),
            "loaded_at": set.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "reloads": self.reloads.load(Ordering::Relaxed),
            "keys": keys,
        })
    }

    /// `GET /auth/metrics`: counters per key (masked), keys no longer in
    /// force included, plus the rejected requests.
    pub fn metrics(&self) -> Value {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<Value> = stats
            .iter()
            .map(|(k, s)| {
                let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                // A JWT client's `jwt:<sub>` is an identity, not a secret.
                v["key"] = Value::String(if k.starts_with(IDENTITY_PREFIX) {
                    k.clone()
                } else {
                    mask_key(k)
                });
                v
            })
            .collect();
        keys.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        let total = |f: fn(&KeyStats) -> u64| stats.values().map(f).sum::<u64>();
        json!({
            "requests": total(|s| s.requests),
            "successes": total(|s| s.successes),
            "failures": total(|s| s.failures),
            "rejected": {
                "missing_key": self.missing.load(Ordering::Relaxed),
                "invalid_key": self.invalid.load(Ordering::Relaxed),
                "invalid_token": self.refused_tokens.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            },
            "keys": keys,
        })
    }
}

fn dedup(keys: Vec<AuthKey>) -> Vec<AuthKey> {
    let mut out: Vec<AuthKey> = Vec::with_capacity(keys.len());
    for k in keys {
        if !out.iter().any(|o| o.key == k.key) {
            out.push(k);
        }
    }
    out
}

/// The outcome of [`KeyStore::authenticate`] for a request's headers,
/// reached before its body was read (by the app, see
/// [`App`](crate::app::App)). [`Auth`] takes it from the extensions instead
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

/// The client's format: from the parsed request, else from the path.
fn format_of<B>(req: &Request<B>) -> ClientFormat {
    if let Some(llm) = req.extensions().get::<LlmRequest>() {
        return llm.format();
    }
    let path = req.uri().path();
    if path.starts_with("/anthropic") || path.starts_with("/v1/messages") {
        ClientFormat::Anthropic
    } else {
        ClientFormat::OpenAi
    }
}

/// Applies [`Auth`]. See the [module docs](crate::layers::auth).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    keys: Arc<KeyStore>,
}

impl AuthLayer {
    /// Check clients against `keys`.
    pub fn new(keys: Arc<KeyStore>) -> Self {
        AuthLayer { keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// The client key check. See the [module docs](crate::layers::auth).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<KeyStore>,
}

impl<S> Auth<S> {
    /// The shared key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>>,
{
    type Response = Response<ProxyBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
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
                self.keys.strip_credentials(req.headers_mut());
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

pin_project! {
    /// The future of [`Auth`]: a refusal at once, or the inner call, counted
    /// per key when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

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

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceExt};

    const CLIENT: &str = "sk-client-0123456789";
    const ADMIN: &str = "sk-admin-0123456789";

    fn store() -> Arc<KeyStore> {
        Arc::new(KeyStore::new(
            AuthPolicy::new()
                .key(CLIENT)
                .admin_key(ADMIN)
                .header(HeaderName::from_static("x-proxy-key")),
        ))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    async fn body_json(r: Response<ProxyBody>) -> Value {
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn client_keys_read_operations_only_while_no_admin_key_exists() {
        let client = headers(&[("x-api-key", CLIENT)]);
        let clients_only = KeyStore::new(AuthPolicy::new().key(CLIENT));
        let read = |s: &KeyStore, path, read| s.check_operations(&client, path, read);
        for path in [
            "/router/health",
            "/router/stats",
            "/providers",
            "/auth/metrics",
        ] {
            assert!(read(&clients_only, path, true).is_ok(), "{path}");
            // Once an admin key exists, the admin rule applies.
            let e = read(&store(), path, true).unwrap_err();
            assert_eq!(e.status(), StatusCode::FORBIDDEN, "{path}");
        }
        // Reloads and writes stay admin-only; a wrong key is still 401.
        for (path, is_read) in [
            ("/auth/reload-keys", false),
            ("/admin/reload", false),
            ("/router/health", false),
        ] {
            let e = read(&clients_only, path, is_read).unwrap_err();
            assert_eq!(e.status(), StatusCode::FORBIDDEN, "{path}");
        }
        let wrong = headers(&[("x-api-key", "sk-wrong-0123456789")]);
        let e = clients_only
            .check_operations(&wrong, "/router/health", true)
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn accepted_from_every_header_form() {
        let s = store();
        for h in [
            headers(&[("authorization", &format!("Bearer {CLIENT}"))]),
            headers(&[("authorization", &format!("bearer  {CLIENT} "))]),
            headers(&[("x-api-key", CLIENT)]),
            headers(&[("x-proxy-key", CLIENT)]),
        ] {
            let who = s.authenticate(&h).unwrap();
            assert_eq!(who.role, Role::Client);
            assert_eq!(who.key.expose(), CLIENT);
        }
        // A wrong key in one header, the right one in another: accepted.
        let h = headers(&[("authorization", "Bearer nope"), ("x-api-key", CLIENT)]);
        assert!(s.authenticate(&h).is_ok());
    }

    #[test]
    fn missing_and_invalid_are_401() {
        let s = store();
        let e = s.authenticate(&HeaderMap::new()).unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(e.code(), "missing_api_key");
        let e = s
            .authenticate(&headers(&[("x-api-key", "sk-client-012345678")]))
            .unwrap_err();
        assert_eq!(e.code(), "invalid_api_key");
        // A prefix or an extension of a key is not the key.
        let e = s
            .authenticate(&headers(&[("x-api-key", "sk-client-0123456789x")]))
            .unwrap_err();
        assert_eq!(e.status(), 401);
        let m = s.metrics();
        assert_eq!(m["rejected"]["missing_key"], 1);
        assert_eq!(m["rejected"]["invalid_key"], 2);
    }

    #[test]
    fn admin_rules() {
        let s = store();
        assert_eq!(s.check_admin(&HeaderMap::new()).unwrap_err().status(), 401);
        assert_eq!(
            s.check_admin(&headers(&[("x-api-key", "wrong")]))
                .unwrap_err()
                .status(),
            401
        );
        let e = s
            .check_admin(&headers(&[("x-api-key", CLIENT)]))
            .unwrap_err();
        assert_eq!(e.status(), 403);
        assert_eq!(
            s.check_admin(&headers(&[("x-api-key", ADMIN)]))
                .unwrap()
                .role,
            Role::Admin
        );
        // An admin key is a client key too.
        assert!(s.authenticate(&headers(&[("x-api-key", ADMIN)])).is_ok());
    }

    #[test]
    fn constant_time_comparison() {
        assert!(keys_equal("abc", "abc"));
        assert!(!keys_equal("abc", "abd"));
        assert!(!keys_equal("abc", ""));
        // Every key is compared, the matching one first or last.
        let set = KeySet {
            client: ["k1", "k2", "k3"]
                .into_iter()
                .map(|k| AuthKey {
                    key: Secret::new(k),
                    source: KeySource::Config,
                })
                .collect(),
            admin: vec![],
            loaded_at: SystemTime::now(),
        };
        assert_eq!(set.role_of("k1"), Some(Role::Client));
        assert_eq!(set.role_of("k3"), Some(Role::Client));
        assert_eq!(set.role_of("k4"), None);
    }

    /// The app's check before the body stands: a refusal is counted once,
    /// an accepted client is let in as if the layer had checked; a check
    /// made by another store does not count.
    #[tokio::test]
    async fn a_check_made_before_the_body_is_taken_once() {
        let inner = service_fn(|req: Request<ProxyBody>| async move {
            assert!(req.headers().get("authorization").is_none());
            assert!(req.extensions().get::<Checked>().is_none());
            assert_eq!(req.extensions().get::<ClientIdentity>().unwrap().0, CLIENT);
            Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
        });
        let s = store();
        let svc = AuthLayer::new(s.clone()).layer(inner);
        let request = |key: Option<&str>| {
            let mut req = Request::post("/v1/chat/completions");
            if let Some(key) = key {
                req = req.header("authorization", format!("Bearer {key}"));
            }
            req.body(ProxyBody::empty()).unwrap()
        };

        let mut req = request(None);
        let checked = Checked::check(&s, req.headers());
        req.extensions_mut().insert(checked);
        assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 401);
        assert_eq!(s.metrics()["rejected"]["missing_key"], 1);

        let mut req = request(Some(CLIENT));
        let checked = Checked::check(&s, req.headers());
        req.extensions_mut().insert(checked);
        assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);
        assert_eq!(s.stats_of(CLIENT).requests, 1);

        // Another store's refusal: the layer checks the headers itself.
        let other = store();
        let mut req = request(Some(CLIENT));
        req.extensions_mut()
            .insert(Checked::check(&other, &HeaderMap::new()));
        assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);
        // Another store's acceptance does not let a keyless request in.
        let mut req = request(None);
        req.extensions_mut().insert(Checked::check(
            &other,
            &headers(&[("authorization", &format!("Bearer {CLIENT}"))]),
        ));
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 401);
        assert_eq!(s.metrics()["rejected"]["missing_key"], 2);
    }

    #[tokio::test]
    async fn layer_strips_credentials_and_sets_identity() {
        let inner = service_fn(|req: Request<ProxyBody>| async move {
            for h in ["authorization", "x-api-key", "x-proxy-key", "api-key"] {
                assert!(req.headers().get(h).is_none(), "{h} left in the request");
            }
            assert_eq!(req.headers()["x-team"], "a");
            let id = req.extensions().get::<ClientIdentity>().unwrap();
            assert_eq!(id.0, CLIENT);
            let cred = req.extensions().get::<ClientCredential>().unwrap();
            assert_eq!(cred.0.expose(), CLIENT);
            let status = if req.uri().path() == "/fail" {
                502
            } else {
                200
            };
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(r)
        });
        let s = store();
        let svc = AuthLayer::new(s.clone()).layer(inner);
        for path in ["/ok", "/ok", "/fail"] {
            let req = Request::post(path)
                .header("x-proxy-key", CLIENT)
                .header("authorization", "Bearer something-else")
                .header("api-key", "x")
                .header("x-team", "a")
                .body(ProxyBody::empty())
                .unwrap();
            svc.clone().oneshot(req).await.unwrap();
        }
        let stats = s.stats_of(CLIENT);
        assert_eq!((stats.requests, stats.successes, stats.failures), (3, 2, 1));
        assert!(stats.last_seen.is_some());
        // Keys only leave the store masked.
        let text = format!("{}{}{:?}", s.status(), s.metrics(), s);
        assert!(!text.contains(CLIENT), "{text}");
        assert!(!text.contains(ADMIN), "{text}");
        assert!(text.contains(&mask_key(CLIENT)), "{text}");
    }

    #[tokio::test]
    async fn refusal_is_in_the_clients_format() {
        let inner = service_fn(|_req: Request<ProxyBody>| async move {
            Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
        });
        let svc = AuthLayer::new(store()).layer(inner);
        let req = Request::post("/v1/chat/completions")
            .body(ProxyBody::empty())
            .unwrap();
        let r = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(body_json(r).await["error"]["code"] == "missing_api_key");
        let req = Request::post("/v1/messages")
            .header("x-api-key", "bad")
            .body(ProxyBody::empty())
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), 401);
        let v = body_json(r).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
    }

    #[test]
    fn reload_swaps_file_keys_and_keeps_others() {
        let dir = std::env::temp_dir().join(format!(
            "llm-router-auth-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        std::fs::write(&path, "# keys\nsk-file-one\n\n").unwrap();
        let s = KeyStore::new(AuthPolicy::new().key("sk-config").keys_file(&path).unwrap());
        let has = |k: &str| s.authenticate(&headers(&[("x-api-key", k)])).is_ok();
        assert!(has("sk-file-one") && has("sk-config"));
        std::fs::write(&path, "sk-file-two # new\n").unwrap();
        let report = s.reload().unwrap();
        assert_eq!((report.client_keys, report.from_file), (2, 1));
        assert!(!has("sk-file-one") && has("sk-file-two") && has("sk-config"));
        // A broken file keeps the keys in force.
        std::fs::write(&path, "bad key with spaces\n").unwrap();
        let e = s.reload().unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(!e.to_string().contains("spaces"), "the key leaked: {e}");
        assert!(has("sk-file-two"));
        std::fs::remove_file(&path).unwrap();
        assert!(s.reload().is_err());
        assert!(has("sk-file-two"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_emptied_file_with_no_other_key_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("llm-router-auth-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        std::fs::write(&path, "sk-only\n").unwrap();
        let s = KeyStore::new(AuthPolicy::new().keys_file(&path).unwrap());
        std::fs::write(&path, "# nobody\n").unwrap();
        assert!(s.reload().is_err());
        assert!(s
            .authenticate(&headers(&[("x-api-key", "sk-only")]))
            .is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
