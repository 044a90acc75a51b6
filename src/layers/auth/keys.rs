//! [`KeyStore`]: the key set in force ([`KeySet`], swapped whole on reload),
//! credential extraction and checks, and the per-key counters.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderName};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{merge_keys, read_keys_file, AuthKey, AuthPolicy, KeySource, KeysFileError};
use crate::error::ProxyError;
use crate::keys::{
    group_budgets, BudgetGroup, BudgetId, BudgetSpec, ClientKey, KeyBudget, VirtualKey,
};
use crate::layers::jwt::{looks_like_jwt, JwtPolicy, IDENTITY_PREFIX};
use crate::secret::{mask_key, Secret};
use crate::FastMap;

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
    pub(super) client: Vec<AuthKey>,
    pub(super) admin: Vec<Secret>,
    pub(super) loaded_at: SystemTime,
    /// The budget of each group its virtual keys share.
    group_budgets: FastMap<BudgetGroup, BudgetSpec>,
    /// Where each key is, by its keyed hash: a presented credential is
    /// compared (in constant time) with the one or two keys of its hash,
    /// not with every key.
    index: KeyIndex,
}

/// The keys of a [`KeySet`] by a hash keyed with a secret drawn when the
/// set is built (SipHash-1-3, std's `RandomState`): a look-up's timing tells
/// whether some key has the presented credential's hash, which without that
/// secret says nothing about the keys.
#[derive(Debug, Default)]
struct KeyIndex {
    hasher: std::hash::RandomState,
    /// Hash -> the admin keys (`Admin`) and client keys (`Client(i)`) of it.
    slots: HashMap<u64, Vec<Slot>>,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Admin(usize),
    Client(usize),
}

impl KeyIndex {
    fn new(client: &[AuthKey], admin: &[Secret]) -> Self {
        let mut index = KeyIndex::default();
        for (i, k) in admin.iter().enumerate() {
            let h = index.hash(k.expose().as_bytes());
            index.slots.entry(h).or_default().push(Slot::Admin(i));
        }
        for (i, k) in client.iter().enumerate() {
            let h = index.hash(k.key.expose().as_bytes());
            index.slots.entry(h).or_default().push(Slot::Client(i));
        }
        index
    }

    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }
}

impl KeySet {
    pub(super) fn new(client: Vec<AuthKey>, admin: Vec<Secret>) -> Self {
        let group_budgets = group_budgets(client.iter().filter_map(|k| k.virtual_key.as_deref()));
        let index = KeyIndex::new(&client, &admin);
        KeySet {
            client,
            admin,
            loaded_at: SystemTime::now(),
            group_budgets,
            index,
        }
    }

    /// The budget the group `group` shares, if a virtual key of it gives
    /// one (see [`VirtualKey::budget_of`]).
    pub fn group_budget(&self, group: &BudgetGroup) -> Option<BudgetSpec> {
        self.group_budgets.get(group).copied()
    }

    /// The budget the virtual key `key` spends from, if any.
    pub fn budget_of(&self, key: &VirtualKey) -> Option<KeyBudget> {
        key.budget_of(|g| self.group_budget(g))
    }

    /// The budget a client with this virtual key or budget group spends
    /// from: the key's ([`KeySet::budget_of`]), or, for a JWT, its group's.
    fn budget_for(
        &self,
        key: Option<&VirtualKey>,
        group: Option<&BudgetGroup>,
    ) -> Option<KeyBudget> {
        match (key, group) {
            (Some(key), _) => self.budget_of(key),
            (None, Some(group)) => self.group_budget(group).map(|spec| KeyBudget {
                id: BudgetId::Group(group.clone()),
                spec,
            }),
            (None, None) => None,
        }
    }

    /// Client keys (admin keys not included).
    pub fn client_keys(&self) -> &[AuthKey] {
        &self.client
    }

    /// Admin keys.
    pub fn admin_keys(&self) -> &[Secret] {
        &self.admin
    }

    /// The virtual keys in force.
    pub fn virtual_keys(&self) -> impl Iterator<Item = &AuthKey> {
        self.client.iter().filter(|k| k.virtual_key.is_some())
    }

    /// The role of `presented`, and for a client key, which one it is: the
    /// keys of its keyed hash (see [`KeyIndex`]) are compared with it in
    /// constant time, whatever the number of keys.
    pub(super) fn role_of(&self, presented: &str) -> Option<(Role, Option<&AuthKey>)> {
        let presented = presented.as_bytes();
        let candidates = self
            .index
            .slots
            .get(&self.index.hash(presented))
            .map_or(&[][..], Vec::as_slice);
        let mut admin = Choice::from(0);
        let mut client = Choice::from(0);
        let mut index = 0u64;
        for slot in candidates {
            match *slot {
                Slot::Admin(i) => {
                    if let Some(k) = self.admin.get(i) {
                        admin |= k.expose().as_bytes().ct_eq(presented);
                    }
                }
                Slot::Client(i) => {
                    if let Some(k) = self.client.get(i) {
                        let equal = k.key.expose().as_bytes().ct_eq(presented);
                        index = u64::conditional_select(&index, &(i as u64), equal);
                        client |= equal;
                    }
                }
            }
        }
        if bool::from(admin) {
            Some((Role::Admin, None))
        } else if bool::from(client) {
            let key = usize::try_from(index).ok().and_then(|i| self.client.get(i));
            Some((Role::Client, key))
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
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated {
    /// The key it presented (for a JWT client, the token).
    pub key: Secret,
    /// What it may do.
    pub role: Role,
    /// A JWT client's `sub`; `None` for a key.
    pub subject: Option<String>,
    /// The virtual key it presented, if it is one.
    pub virtual_key: Option<Arc<VirtualKey>>,
    /// Its budget group: the virtual key's, or the JWT's
    /// `budget_group_claim`.
    pub budget_group: Option<BudgetGroup>,
    /// The budget it spends from, if any (resolved from the key set in
    /// force: see [`KeySet::budget_of`]).
    pub budget: Option<KeyBudget>,
}

impl Authenticated {
    /// The client's identity: the key, or `jwt:<sub>` for a JWT client
    /// (what [`ClientIdentity`](super::ClientIdentity) carries).
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

    /// What `auth` tells the layers after it ([`ClientKey`]), when there
    /// is anything to tell: a virtual key or a budget group.
    pub fn client_key(&self) -> Option<ClientKey> {
        (self.virtual_key.is_some() || self.budget_group.is_some()).then(|| ClientKey {
            virtual_key: self.virtual_key.clone(),
            budget_group: self.budget_group.clone(),
            budget: self.budget.clone(),
        })
    }

    /// Whether this client may ask for `model` (a virtual key's `models`).
    pub fn allows(&self, model: &str) -> bool {
        self.virtual_key.as_ref().is_none_or(|k| k.allows(model))
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
    /// Virtual keys presented after they expired.
    expired: AtomicU64,
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

/// `x-api-key`, made once (a name given as a string is parsed at each use).
const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

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
        let set = KeySet::new(dedup(policy.keys), policy.admin_keys.clone());
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
            expired: AtomicU64::new(0),
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
    /// unreadable file, a bad line, a virtual key that clashes with another
    /// key, or a result with no key at all) the keys in force stay as they
    /// are.
    pub fn reload(&self) -> Result<ReloadReport, KeysFileError> {
        let from_file = match &self.keys_file {
            Some(path) => read_keys_file(path)?,
            None => Vec::new(),
        };
        let n_file = from_file.len();
        let client = merge_keys(self.fixed.clone(), from_file, &self.admin).map_err(|message| {
            KeysFileError::Conflict {
                path: self.keys_file.clone().unwrap_or_default(),
                message,
            }
        })?;
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
        let set = Arc::new(KeySet::new(client, self.admin.clone()));
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
            .chain(headers.get_all(X_API_KEY).iter())
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
            if let Some((role, key)) = set.role_of(presented) {
                let virtual_key = key.and_then(|k| k.virtual_key.clone());
                if let Some(vk) = &virtual_key {
                    if vk.is_expired_at(SystemTime::now()) {
                        self.expired.fetch_add(1, Ordering::Relaxed);
                        return Err(ProxyError::Unauthorized {
                            message: format!(
                                "The API key `{}` expired at {}",
                                vk.name(),
                                vk.expires().map_or("", |e| e.as_str())
                            ),
                            code: "key_expired",
                        });
                    }
                }
                let budget_group = virtual_key.as_ref().and_then(|k| k.budget_group().cloned());
                return Ok(Authenticated {
                    key: key.map_or_else(|| Secret::new(presented), |k| k.key.clone()),
                    role,
                    subject: None,
                    budget: set.budget_for(virtual_key.as_deref(), None),
                    budget_group,
                    virtual_key,
                });
            }
            if let Some(jwt) = self.jwt.as_deref().filter(|_| looks_like_jwt(presented)) {
                match jwt.verify(presented) {
                    Ok(claims) => {
                        return Ok(Authenticated {
                            key: Secret::new(presented),
                            role: Role::Client,
                            subject: Some(claims.subject),
                            virtual_key: None,
                            budget: set.budget_for(None, claims.budget_group.as_ref()),
                            budget_group: claims.budget_group,
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

    /// Remove every header that can carry a client key.
    pub fn strip_credentials(&self, headers: &mut HeaderMap) {
        for name in crate::upstream::provider::CREDENTIAL_HEADERS {
            headers.remove(name);
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
            if let Some(vk) = &k.virtual_key {
                v["name"] = vk.name().into();
            }
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
                "expired_key": self.expired.load(Ordering::Relaxed),
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
