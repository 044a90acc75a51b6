//! Virtual keys: client keys with a name, an allow-list of models, an
//! expiry, their own rate limits, a budget and free-form metadata.
//!
//! A [`VirtualKey`] is configured as a `[[keys]]` entry of `config.toml`, or
//! as one JSON object a line in `[auth] keys_file` (see
//! [`VirtualKey::from_json_line`]). It is a client key of the `auth` layer,
//! which checks its expiry (401) and its `models` (403 `model_not_allowed`),
//! and tells the layers after it who the client is with a [`ClientKey`] in
//! the request's extensions (and in its
//! [`RequestContext`](crate::request::RequestContext)): `rate_limit` applies
//! the key's own [`KeyRateLimit`] in place of `[rate_limit]`, and the key's
//! [`BudgetSpec`] and budget group are there for the `budget` layer.
//!
//! This module holds the types and their checks, shared by the config (TOML,
//! with file:line errors) and the keys file (re-read on reload); it depends
//! on no layer.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use llm_router::layers::auth::{ModelAllowList, VirtualKey};
//!
//! let key = VirtualKey::from_json_line(
//!     r#"{"name": "team-a", "key": "sk-team-a-0123456789", "models": ["gpt-4o", "claude-*"],
//!         "expires": "2030-01-31T00:00:00Z", "metadata": {"team": "platform"}, "budget_group": "team",
//!         "budget": {"usd": 100.0, "period": "month"}}"#,
//! ).unwrap();
//! assert_eq!(key.name(), "team-a");
//! assert!(key.allows("claude-sonnet-4-0"));
//! assert!(!key.allows("gpt-4o-mini"));
//! assert!(!key.is_expired_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
//! assert!(key.is_expired_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)));
//! assert_eq!(key.budget_group().unwrap().value, "platform");
//! ```

mod budget;
mod limits;
mod models;
mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::secret::Secret;

pub use budget::{
    BudgetError, BudgetId, BudgetLimit, BudgetPeriod, BudgetSpec, KeyBudget, MAX_ROLLING,
};
pub use limits::KeyRateLimit;
pub use models::{ModelAllowList, ModelPattern, MAX_MODEL_NAME_LEN, MAX_PATTERNS, MAX_PATTERN_LEN};

/// The longest key name.
pub const MAX_NAME_LEN: usize = 64;
/// The most `metadata` entries of one key.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// The longest `metadata` key.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// The longest `metadata` value.
pub const MAX_METADATA_VALUE_LEN: usize = 256;

/// Why a virtual key's value is refused: the key within the entry it is
/// about (`models[1]`, `rate_limit.window`, ...; empty for the entry
/// itself) and the reason. Never holds the key itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct KeyError {
    /// The key of the entry the error is about (empty: the whole entry).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl KeyError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            field: field.into(),
            message: message.into(),
        }
    }
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

/// Why a key name cannot be used, if it cannot: 1 to [`MAX_NAME_LEN`]
/// letters, digits and `-_.:@/` (names show in logs, metrics and the admin
/// API).
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".into())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("is longer than {MAX_NAME_LEN} characters"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b))
    {
        Some(format!(
            "`{}` may hold only letters, digits and `-_.:@/`",
            name.escape_debug()
        ))
    } else {
        None
    }
}

/// A virtual key's `expires`: an RFC 3339 timestamp
/// (`2027-01-31T00:00:00Z`, `2027-01-31T09:00:00+09:00`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    at: SystemTime,
    text: Box<str>,
}

impl Expiry {
    /// Parse an RFC 3339 timestamp (a date, a time and an offset or `Z`).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use llm_router::layers::auth::Expiry;
    /// let e = Expiry::parse("2027-01-31T09:00:00+09:00").unwrap();
    /// assert_eq!(e.at(), UNIX_EPOCH + Duration::from_secs(1_801_353_600));
    /// assert!(Expiry::parse("2027-01-31").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Expiry, String> {
        let t = text.trim();
        let parsed = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                format!(
                    "`{}` is not an RFC 3339 timestamp such as \"2027-01-31T00:00:00Z\" ({e})",
                    t.escape_debug()
                )
            })?;
        let nanos = parsed.unix_timestamp_nanos();
        let nanos =
            u64::try_from(nanos).map_err(|_| format!("`{t}` is before 1970 or too far ahead"))?;
        Ok(Expiry {
            at: UNIX_EPOCH + Duration::from_nanos(nanos),
            text: t.into(),
        })
    }

    /// An expiry at `at` (shown as Unix seconds).
    pub fn at_time(at: SystemTime) -> Expiry {
        let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Expiry {
            at,
            text: format!("@{secs}").into(),
        }
    }

    /// When the key stops being valid.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// As configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A budget group: the metadata key (or JWT claim) that names it and its
/// value. Keys with the same group share one budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BudgetGroup {
    /// The metadata key (`budget_group = "team"`) or the JWT claim
    /// (`budget_group_claim`).
    pub key: String,
    /// Its value for this client (`"platform"`).
    pub value: String,
}

/// A virtual key. See the [module docs](crate::layers::auth#virtual-keys).
#[derive(Clone, PartialEq)]
pub struct VirtualKey {
    name: String,
    key: Secret,
    models: Option<ModelAllowList>,
    expires: Option<Expiry>,
    rate_limit: Option<KeyRateLimit>,
    budget: Option<BudgetSpec>,
    metadata: BTreeMap<String, String>,
    budget_group: Option<BudgetGroup>,
}

impl fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualKey")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("models", &self.models)
            .field("expires", &self.expires.as_ref().map(Expiry::as_str))
            .field("rate_limit", &self.rate_limit)
            .field("budget", &self.budget)
            .field("metadata", &self.metadata)
            .field("budget_group", &self.budget_group)
            .finish()
    }
}

impl VirtualKey {
    /// A key named `name` (see [`name_problem`]) with the secret `key` (see
    /// [`key_problem`]), allowing every model, never expiring, with no
    /// limits, budget or metadata of its own.
    pub fn new(name: &str, key: &str) -> Result<VirtualKey, KeyError> {
        if let Some(problem) = name_problem(name) {
            return Err(KeyError::new("name", problem));
        }
        if let Some(problem) = key_problem(key) {
            return Err(KeyError::new("key", format!("the key {problem}")));
        }
        Ok(VirtualKey {
            name: name.to_string(),
            key: Secret::new(key),
            models: None,
            expires: None,
            rate_limit: None,
            budget: None,
            metadata: BTreeMap::new(),
            budget_group: None,
        })
    }

    /// Allow only these models.
    pub fn with_models(mut self, models: ModelAllowList) -> Self {
        self.models = Some(models);
        self
    }

    /// Expire at `expires`.
    pub fn with_expiry(mut self, expires: Expiry) -> Self {
        self.expires = Some(expires);
        self
    }

    /// Limit this key with its own limits (instead of `[rate_limit]`).
    pub fn with_rate_limit(mut self, limit: KeyRateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Give this key a budget (enforced by the `budget` layer).
    pub fn with_budget(mut self, budget: BudgetSpec) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Free-form metadata: at most [`MAX_METADATA_ENTRIES`] entries, keys of
    /// 1 to [`MAX_METADATA_KEY_LEN`] and values of at most
    /// [`MAX_METADATA_VALUE_LEN`] characters, without control characters.
    pub fn with_metadata(mut self, metadata: BTreeMap<String, String>) -> Result<Self, KeyError> {
        if metadata.len() > MAX_METADATA_ENTRIES {
            return Err(KeyError::new(
                "metadata",
                format!("has more than {MAX_METADATA_ENTRIES} entries"),
            ));
        }
        for (k, v) in &metadata {
            if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_LEN {
                return Err(KeyError::new(
                    "metadata",
                    format!("a key must be 1 to {MAX_METADATA_KEY_LEN} characters"),
                ));
            }
            if k.chars().any(char::is_control) {
                return Err(KeyError::new("metadata", "a key holds a control character"));
            }
            if v.chars().count() > MAX_METADATA_VALUE_LEN || v.chars().any(char::is_control) {
                return Err(KeyError::new(
                    format!("metadata.{k}"),
                    format!(
                        "must be at most {MAX_METADATA_VALUE_LEN} characters, without control characters"
                    ),
                ));
            }
        }
        self.metadata = metadata;
        self.refresh_group();
        Ok(self)
    }

    /// Share a budget with the keys whose metadata has the same value under
    /// `key` (which this key's metadata must have).
    pub fn with_budget_group(mut self, key: &str) -> Result<Self, KeyError> {
        let Some(value) = self.metadata.get(key) else {
            let known: Vec<String> = self.metadata.keys().map(|k| format!("`{k}`")).collect();
            let known = if known.is_empty() {
                "it has no metadata".to_string()
            } else {
                format!("its metadata has {}", known.join(", "))
            };
            return Err(KeyError::new(
                "budget_group",
                format!("names the metadata key `{key}`, but {known}"),
            ));
        };
        self.budget_group = Some(BudgetGroup {
            key: key.to_string(),
            value: value.clone(),
        });
        Ok(self)
    }

    fn refresh_group(&mut self) {
        if let Some(group) = &mut self.budget_group {
            match self.metadata.get(&group.key) {
                Some(v) => group.value = v.clone(),
                None => self.budget_group = None,
            }
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret a client presents.
    pub fn key(&self) -> &Secret {
        &self.key
    }

    /// The models it may ask for (`None`: every model).
    pub fn models(&self) -> Option<&ModelAllowList> {
        self.models.as_ref()
    }

    /// When it expires, if it does.
    pub fn expires(&self) -> Option<&Expiry> {
        self.expires.as_ref()
    }

    /// Its own rate limits, if any.
    pub fn rate_limit(&self) -> Option<&KeyRateLimit> {
        self.rate_limit.as_ref()
    }

    /// Its budget, if any.
    pub fn budget(&self) -> Option<&BudgetSpec> {
        self.budget.as_ref()
    }

    /// Its metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Its budget group, if it names one.
    pub fn budget_group(&self) -> Option<&BudgetGroup> {
        self.budget_group.as_ref()
    }

    /// The budget this key spends from, given the budgets of the groups
    /// (`group_budget`: the spec a group's keys give it, see
    /// [`group_budgets`]): a key of a group spends from the group's budget
    /// (whether it has a `budget` itself or not), another key from its own
    /// `budget`.
    pub fn budget_of(
        &self,
        group_budget: impl FnOnce(&BudgetGroup) -> Option<BudgetSpec>,
    ) -> Option<KeyBudget> {
        match &self.budget_group {
            Some(group) => group_budget(group).map(|spec| KeyBudget {
                id: BudgetId::Group(group.clone()),
                spec,
            }),
            None => self.budget.map(|spec| KeyBudget {
                id: BudgetId::Key(self.name.clone()),
                spec,
            }),
        }
    }

    /// Whether it may ask for `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.allows(model))
    }

    /// Whether it has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires.as_ref().is_some_and(|e| now >= e.at)
    }

    /// What `/v1/key/info` and `/admin/keys` show of it at `now`, the key
    /// masked. (The `budget` layer adds the key's `spend`.)
    pub fn describe(&self, now: SystemTime) -> Value {
        json!({
            "name": self.name,
            "key": self.key.masked(),
            "models": self.models.as_ref().map(|m| m.patterns().collect::<Vec<_>>()),
            "expires": self.expires.as_ref().map(Expiry::as_str),
            "expired": self.is_expired_at(now),
            "rate_limit": self.rate_limit.as_ref().map(KeyRateLimit::describe),
            "budget": self.budget.as_ref().map(BudgetSpec::describe),
            "metadata": self.metadata,
            "budget_group": self.budget_group.as_ref().map(|g| json!({"key": g.key, "value": g.value})),
        })
    }
}

/// The budget of each group some keys share: the `budget` of the first of
/// `keys` (in order) that names the group and has one. Keys of one group
/// that give different budgets are warned about by the config
/// ([`conflicting_group_budgets`]).
pub fn group_budgets<'a>(
    keys: impl IntoIterator<Item = &'a VirtualKey>,
) -> crate::FastMap<BudgetGroup, BudgetSpec> {
    let mut out = crate::FastMap::default();
    for k in keys {
        if let (Some(group), Some(spec)) = (&k.budget_group, k.budget) {
            out.entry(group.clone()).or_insert(spec);
        }
    }
    out
}

/// The keys whose `budget` differs from the one their group already has
/// (the first key's, see [`group_budgets`]): `(key name, group)`.
pub fn conflicting_group_budgets<'a>(
    keys: impl IntoIterator<Item = &'a VirtualKey>,
) -> Vec<(String, BudgetGroup)> {
    let mut first: crate::FastMap<&BudgetGroup, BudgetSpec> = crate::FastMap::default();
    let mut out = Vec::new();
    for k in keys {
        if let (Some(group), Some(spec)) = (&k.budget_group, k.budget) {
            match first.get(group) {
                Some(f) if *f != spec => out.push((k.name.clone(), group.clone())),
                Some(_) => {}
                None => {
                    first.insert(group, spec);
                }
            }
        }
    }
    out
}

/// What `auth` tells the layers after it about a client beyond its identity:
/// the virtual key it presented and its budget group. In the request's
/// extensions and its [`RequestContext`](crate::request::RequestContext)
/// (see `client_key`), only when there is one of them: a plain key or a JWT
/// without a budget group carries none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientKey {
    /// The virtual key presented (`None`: a plain key, an admin key or a JWT).
    pub virtual_key: Option<Arc<VirtualKey>>,
    /// The budget group: the virtual key's (`budget_group`, from its
    /// metadata) or a JWT's (`[auth] jwt` `budget_group_claim`).
    pub budget_group: Option<BudgetGroup>,
    /// The budget the client spends from, if any (see
    /// [`VirtualKey::budget_of`]): what the `budget` layer enforces.
    pub budget: Option<KeyBudget>,
}

impl ClientKey {
    /// The virtual key's name, if the client presented one.
    pub fn name(&self) -> Option<&str> {
        self.virtual_key.as_deref().map(VirtualKey::name)
    }
}

#[cfg(test)]
mod tests;
