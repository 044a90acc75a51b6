//! `[state]`: where rate limits, cooldowns and circuit state live — raw
//! serde struct and its conversion into [`StateConfig`].

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::store::{StateConfig, StoreKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    store: Option<Spanned<String>>,
    redis_url: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    spend_file: Option<Spanned<String>>,
}

/// The longest `timeout` accepted: it bounds what a request may wait on
/// Redis, so anything longer defeats the point.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);

impl Loader<'_> {
    pub(super) fn state(
        &self,
        raw: Option<&RawState>,
        dir: &std::path::Path,
    ) -> Result<StateConfig, ConfigError> {
        let mut config = StateConfig::default();
        let Some(raw) = raw else { return Ok(config) };
        if let Some(store) = &raw.store {
            config.store = match store.get_ref().as_str() {
                "memory" => StoreKind::Memory,
                #[cfg(feature = "redis")]
                "redis" => StoreKind::Redis,
                #[cfg(not(feature = "redis"))]
                "redis" => {
                    return Err(self.err(
                        Some(store.span()),
                        "state.store",
                        "\"redis\" needs the Redis store, which this build of llm-router \
                         does not have (cargo feature `redis`)",
                    ))
                }
                other => {
                    return Err(self.err(
                        Some(store.span()),
                        "state.store",
                        format!("must be \"memory\" or \"redis\", not \"{other}\""),
                    ))
                }
            };
        }
        if let Some(url) = &raw.redis_url {
            let text = url.get_ref().trim();
            #[cfg(feature = "redis")]
            if let Err(e) = redis::Client::open(text) {
                return Err(self.err(
                    Some(url.span()),
                    "state.redis_url",
                    format!("is not a Redis URL such as \"redis://127.0.0.1:6379\": {e}"),
                ));
            }
            config.redis_url = text.to_string();
        }
        if let Some(prefix) = &raw.prefix {
            let text = prefix.get_ref();
            let valid = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if !valid {
                return Err(self.err(
                    Some(prefix.span()),
                    "state.prefix",
                    format!(
                        "`{text}` must be non-empty letters, digits, '-', '_', '.' or ':' \
                         (it starts every Redis key and is used in SCAN patterns)"
                    ),
                ));
            }
            config.prefix = text.clone();
        }
        if let Some(file) = &raw.spend_file {
            let text = file.get_ref().trim();
            if text.is_empty() || text.ends_with('/') {
                return Err(self.err(
                    Some(file.span()),
                    "state.spend_file",
                    "must name a file, e.g. \"llm-router-spend.json\" (relative to this file)",
                ));
            }
            config.spend_file = Some(dir.join(text));
        }
        config.timeout = self.duration(&raw.timeout, "state.timeout", config.timeout)?;
        if config.timeout > MAX_TIMEOUT {
            return Err(self.err(
                raw.timeout.as_ref().map(Spanned::span),
                "state.timeout",
                "must be at most 10s: it is how long a request may wait on Redis \
                 (50ms-100ms is typical)",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const MIN: &str = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";

    fn parse(state: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{MIN}\n{state}"), Path::new("c.toml"), &|_| None)
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse("").unwrap().state, StateConfig::default());
        assert_eq!(
            parse("[state]\nstore = \"memory\"\n").unwrap().state,
            StateConfig::default()
        );
        let c = parse(
            "[state]\nstore = \"redis\"\nredis_url = \"redis://cache:6380/2\"\nprefix = \"team-a\"\ntimeout = \"50ms\"\n",
        )
        .unwrap()
        .state;
        assert_eq!(c.store, StoreKind::Redis);
        assert_eq!(c.redis_url, "redis://cache:6380/2");
        assert_eq!(c.prefix, "team-a");
        assert_eq!(c.timeout, Duration::from_millis(50));
    }

    /// `rediss://` (TLS to Redis) is accepted, and the store's client is
    /// built from it.
    #[test]
    #[cfg(feature = "redis")]
    fn rediss_urls_are_accepted() {
        let c = parse(
            "[state]\nstore = \"redis\"\nredis_url = \"rediss://:pw@cache.example:6380/1\"\n",
        )
        .unwrap()
        .state;
        assert_eq!(c.redis_url, "rediss://:pw@cache.example:6380/1");
        let client = redis::Client::open(c.redis_url.as_str()).unwrap();
        assert!(matches!(
            client.get_connection_info().addr,
            redis::ConnectionAddr::TcpTls { .. }
        ));
        assert!(format!("{:?}", crate::store::RedisStore::new(c)).contains("rediss://"));
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = parse("[state]\nstore = \"etcd\"\n").unwrap_err();
        assert_eq!(e.line, Some(10));
        assert_eq!(e.key.as_deref(), Some("state.store"));
        assert!(e.message.contains("\"memory\" or \"redis\""), "{e}");
        let e = parse("[state]\nstore = \"redis\"\nredis_url = \"http://x\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state.redis_url"));
        assert_eq!(e.line, Some(11));
        let e = parse("[state]\nprefix = \"a b*\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state.prefix"));
        let e = parse("[state]\ntimeout = \"1m\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state.timeout"));
        let e = parse("[state]\nttl = \"1m\"\n").unwrap_err();
        assert!(e.to_string().contains("ttl"), "{e}");
    }

    #[test]
    fn the_spend_file_is_next_to_the_config_unless_named() {
        let at = |text: &str| {
            Config::parse(
                &format!("{MIN}\n{text}"),
                Path::new("/etc/llm/c.toml"),
                &|_| None,
            )
        };
        let c = at("").unwrap();
        assert_eq!(c.spend_file(), Path::new("/etc/llm/llm-router-spend.json"));
        let c = at("[state]\nspend_file = \"state/spend.json\"\n").unwrap();
        assert_eq!(c.spend_file(), Path::new("/etc/llm/state/spend.json"));
        let c = at("[state]\nspend_file = \"/var/lib/llm/spend.json\"\n").unwrap();
        assert_eq!(c.spend_file(), Path::new("/var/lib/llm/spend.json"));
        let e = at("[state]\nspend_file = \" \"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state.spend_file"));
        assert_eq!(e.line, Some(10));
    }
}
