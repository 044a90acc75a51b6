//! [`AuthPolicy`]: which keys `auth` accepts and where they come from, and the
//! keys file format ([`read_keys_file`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use http::header::HeaderName;

use crate::layers::jwt::JwtPolicy;
use crate::secret::Secret;

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
    /// The keys file, re-read by [`KeyStore::reload`](super::KeyStore::reload).
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
