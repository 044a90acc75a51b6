//! [`AuthPolicy`]: which keys `auth` accepts and where they come from, and the
//! keys file format ([`read_keys_file`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use http::header::HeaderName;

use std::sync::Arc;

use crate::keys::VirtualKey;
use crate::layers::jwt::JwtPolicy;
use crate::secret::Secret;

pub use crate::keys::key_problem;

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
#[derive(Clone, Debug, PartialEq)]
pub struct AuthKey {
    /// The key.
    pub key: Secret,
    /// Its source.
    pub source: KeySource,
    /// When it is a virtual key (`[[keys]]`, or a JSON line of the keys
    /// file): its name, models, expiry, limits, budget and metadata.
    pub virtual_key: Option<Arc<VirtualKey>>,
}

impl AuthKey {
    /// A plain key from `source`.
    pub fn plain(key: Secret, source: KeySource) -> Self {
        AuthKey {
            key,
            source,
            virtual_key: None,
        }
    }

    /// A virtual key from `source`.
    pub fn virtual_key(key: VirtualKey, source: KeySource) -> Self {
        AuthKey {
            key: key.key().clone(),
            source,
            virtual_key: Some(Arc::new(key)),
        }
    }
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
        self.keys
            .push(AuthKey::plain(Secret::new(key), KeySource::Config));
        self
    }

    /// Accept this virtual key (see [`VirtualKey`]).
    pub fn virtual_key(mut self, key: VirtualKey) -> Self {
        self.keys.push(AuthKey::virtual_key(key, KeySource::Config));
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
        self.keys = merge_keys(std::mem::take(&mut self.keys), keys, &self.admin_keys).map_err(
            |message| KeysFileError::Conflict {
                path: path.clone(),
                message,
            },
        )?;
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
    /// A virtual key of the file clashes with a key of another source (the
    /// same key, or the same name).
    #[error("`{path}`: {message}")]
    Conflict {
        /// The file.
        path: PathBuf,
        /// What clashes (names, never keys).
        message: String,
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

/// Read a keys file: one key a line; blank lines and `#` comments (whole
/// lines, or after whitespace at the end of a line) are ignored. A line that
/// starts with `{` is a virtual key, one JSON object with the fields of a
/// `[[keys]]` entry (see [`VirtualKey::from_json_line`]). A plain key
/// written twice counts once; two virtual keys with the same key or the
/// same name are an error, as is a plain key that is also a virtual key's.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("llm-router-doc-keys-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("keys.txt");
/// std::fs::write(&path, "# team keys\nsk-a\n\nsk-b   # bob\n{\"name\": \"c\", \"key\": \"sk-c-0123456789\", \"models\": [\"gpt-*\"]}\n").unwrap();
/// let keys = llm_router::layers::auth::read_keys_file(&path).unwrap();
/// assert_eq!(keys.iter().map(|k| k.key.expose()).collect::<Vec<_>>(), ["sk-a", "sk-b", "sk-c-0123456789"]);
/// assert_eq!(keys[2].virtual_key.as_ref().unwrap().name(), "c");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_keys_file(path: &Path) -> Result<Vec<AuthKey>, KeysFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, message: String| KeysFileError::BadKey {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut keys: Vec<AuthKey> = Vec::new();
    // The line of each entry, for the errors about two of them.
    let mut lines: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let mut line = line.trim();
        if line.starts_with('{') {
            let vk = VirtualKey::from_json_line(line).map_err(|e| bad(n, e.to_string()))?;
            if let Some(at) = keys.iter().position(|k| k.key == *vk.key()) {
                return Err(bad(
                    n,
                    format!(
                        "the virtual key `{}` has the same key as line {}",
                        vk.name(),
                        lines[at]
                    ),
                ));
            }
            if let Some(at) = keys.iter().position(|k| {
                k.virtual_key
                    .as_ref()
                    .is_some_and(|o| o.name() == vk.name())
            }) {
                return Err(bad(
                    n,
                    format!(
                        "the virtual key name `{}` is already used on line {}",
                        vk.name(),
                        lines[at]
                    ),
                ));
            }
            keys.push(AuthKey::virtual_key(vk, KeySource::File));
            lines.push(n);
            continue;
        }
        if let Some(at) = line.find(|c: char| c.is_whitespace()) {
            if line[at..].trim_start().starts_with('#') {
                line = line[..at].trim_end();
            }
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(problem) = key_problem(line) {
            return Err(bad(n, format!("the key {problem}")));
        }
        match keys.iter().position(|k| k.key.expose() == line) {
            Some(at) => {
                if let Some(vk) = &keys[at].virtual_key {
                    return Err(bad(
                        n,
                        format!(
                            "this key is also the key of the virtual key `{}` (line {})",
                            vk.name(),
                            lines[at]
                        ),
                    ));
                }
            }
            None => {
                keys.push(AuthKey::plain(Secret::new(line), KeySource::File));
                lines.push(n);
            }
        }
    }
    Ok(keys)
}

/// The client keys of two sources together (`first`, then `then`): a plain
/// key in both counts once; a virtual key that shares its key with another
/// entry, or its name with another virtual key, or whose key is an admin
/// key, is an error (naming the keys by name and source, never the key).
pub fn merge_keys(
    first: Vec<AuthKey>,
    then: Vec<AuthKey>,
    admin: &[Secret],
) -> Result<Vec<AuthKey>, String> {
    let mut out: Vec<AuthKey> = Vec::with_capacity(first.len() + then.len());
    for k in first.into_iter().chain(then) {
        if let Some(vk) = &k.virtual_key {
            if admin.contains(&k.key) {
                return Err(format!(
                    "the virtual key `{}` ({}) has the key of an admin key; an admin key is not limited, give the virtual key its own",
                    vk.name(),
                    k.source
                ));
            }
            if let Some(other) = out.iter().find(|o| {
                o.virtual_key
                    .as_ref()
                    .is_some_and(|ov| ov.name() == vk.name())
            }) {
                return Err(format!(
                    "the virtual key name `{}` ({}) is already used ({})",
                    vk.name(),
                    k.source,
                    other.source
                ));
            }
        }
        match out.iter().find(|o| o.key == k.key) {
            None => out.push(k),
            Some(o) if o.virtual_key.is_none() && k.virtual_key.is_none() => {}
            Some(o) => {
                let name = |a: &AuthKey| match &a.virtual_key {
                    Some(v) => format!("the virtual key `{}` ({})", v.name(), a.source),
                    None => format!("a key from {}", a.source),
                };
                return Err(format!("{} has the same key as {}", name(&k), name(o)));
            }
        }
    }
    Ok(out)
}
