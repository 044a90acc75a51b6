//! What `GET /v1/key/info` (a client's own key) and `GET /admin/keys` (every
//! virtual key) show: names, masked keys, models, expiry, limits, budget
//! spec, metadata and counters. Keys only ever leave masked.
//!
//! A key's spend is the `budget` layer's to add (a `spend` object next to
//! these fields); without it there is none.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::{AuthKey, Authenticated, KeyStore, Role};
use crate::layers::jwt::IDENTITY_PREFIX;

impl KeyStore {
    /// A virtual key of the set in force, as the endpoints show it (its
    /// counters included).
    fn describe_virtual(&self, k: &AuthKey, now: SystemTime) -> Option<Value> {
        let vk = k.virtual_key.as_ref()?;
        let mut v = vk.describe(now);
        v["virtual"] = true.into();
        v["source"] = k.source.to_string().into();
        v["stats"] = serde_json::to_value(self.stats_of(k.key.expose())).unwrap_or(Value::Null);
        Some(v)
    }

    /// `GET /v1/key/info`: the caller's own key. A virtual key with its name,
    /// models, expiry, limits, budget spec and metadata; a plain key (or an
    /// admin key) masked, with its role; a JWT client by its identity.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use llm_router::layers::auth::{AuthPolicy, KeyStore, ModelAllowList, VirtualKey};
    ///
    /// let key = VirtualKey::new("team-a", "sk-team-a-0123456789").unwrap()
    ///     .with_models(ModelAllowList::new(["gpt-*"]).unwrap());
    /// let store = KeyStore::new(AuthPolicy::new().virtual_key(key));
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-api-key", "sk-team-a-0123456789".parse().unwrap());
    /// let client = store.authenticate(&headers).unwrap();
    /// let info = store.key_info(&client);
    /// assert_eq!(info["name"], "team-a");
    /// assert_eq!(info["key"], "sk-...789");
    /// assert_eq!(info["models"][0], "gpt-*");
    /// ```
    pub fn key_info(&self, client: &Authenticated) -> Value {
        let now = SystemTime::now();
        if let Some(vk) = &client.virtual_key {
            let set = self.keys();
            let found = set
                .virtual_keys()
                .find(|k| {
                    k.virtual_key
                        .as_ref()
                        .is_some_and(|o| o.name() == vk.name())
                })
                .and_then(|k| self.describe_virtual(k, now));
            // A key of a set reloaded meanwhile: what the request saw.
            return found.unwrap_or_else(|| {
                let mut v = vk.describe(now);
                v["virtual"] = true.into();
                v
            });
        }
        let group = client
            .budget_group
            .as_ref()
            .map(|g| json!({"key": g.key, "value": g.value}));
        match &client.subject {
            Some(sub) => json!({
                "name": null,
                "virtual": false,
                "identity": format!("{IDENTITY_PREFIX}{sub}"),
                "role": "client",
                "budget_group": group,
                "stats": serde_json::to_value(self.stats_of(client.stats_key().expose())).unwrap_or(Value::Null),
            }),
            None => json!({
                "name": null,
                "virtual": false,
                "key": client.key.masked(),
                "role": if client.role == Role::Admin { "admin" } else { "client" },
                "budget_group": group,
                "stats": serde_json::to_value(self.stats_of(client.key.expose())).unwrap_or(Value::Null),
            }),
        }
    }

    /// `GET /admin/keys`: every virtual key in force, masked, in the order
    /// of the config then the keys file.
    pub fn virtual_keys_info(&self) -> Value {
        let now = SystemTime::now();
        let set = self.keys();
        let keys: Vec<Value> = set
            .virtual_keys()
            .filter_map(|k| self.describe_virtual(k, now))
            .collect();
        json!({
            "count": keys.len(),
            "keys": keys,
        })
    }
}
