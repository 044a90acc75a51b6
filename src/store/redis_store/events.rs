//! Circuit and cooldown transitions: queued for Redis when this replica
//! makes one, published on `{prefix}:events`, and validated and applied
//! when another replica's arrives.

use std::time::Duration;

use serde::Deserialize;

use super::{millis, RedisStore};

/// A write for the background task.
pub(super) enum Event {
    /// A circuit or cooldown transition (`transition.lua`).
    Transition {
        key: String,
        mode: &'static str,
        ttl_ms: u64,
        message: String,
    },
    /// Usage counted after the fact (`limit.lua`, op `f`).
    Count {
        key: String,
        n: u64,
        limit: u64,
        window_ms: u64,
    },
}

/// The longest event accepted from `{prefix}:events`; longer ones are
/// ignored unread.
const MAX_EVENT_BYTES: usize = 2048;
/// The longest target key shared (published, or accepted from Redis). A
/// longer one (a client's very long model name on a `*` route) stays local.
pub(super) const MAX_TARGET_BYTES: usize = 512;
/// The longest replica id accepted in an event.
const MAX_REPLICA_BYTES: usize = 64;

/// A transition as published on `{prefix}:events`. Anything that can
/// publish there can send one, so it is validated before it is applied:
/// known fields and kinds only, bounded sizes, and durations capped by the
/// registries (`open_for`, `max_cooldown`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Message {
    from: String,
    kind: Kind,
    target: String,
    #[serde(default)]
    ms: u64,
}

/// What a transition says.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// A circuit opened for `ms`.
    Open,
    /// A circuit closed.
    Closed,
    /// A target cools down for `ms`.
    Cooldown,
}

impl Message {
    /// Parse and check an event's payload; `None` for anything malformed,
    /// unknown or oversized.
    fn parse(payload: &[u8]) -> Option<Message> {
        if payload.len() > MAX_EVENT_BYTES {
            return None;
        }
        let message: Message = serde_json::from_slice(payload).ok()?;
        let sane = !message.target.is_empty()
            && message.target.len() <= MAX_TARGET_BYTES
            && message.target.contains('/')
            && !message.target.chars().any(char::is_control)
            && message.from.len() <= MAX_REPLICA_BYTES;
        sane.then_some(message)
    }
}

impl RedisStore {
    pub(super) fn circuit_key(&self, target: &str) -> String {
        format!("{}:circuit:{target}", self.config.prefix)
    }

    pub(super) fn cooldown_key(&self, target: &str) -> String {
        format!("{}:cooldown:{target}", self.config.prefix)
    }

    /// Tell the other replicas that `target`'s circuit opened for `open_for`.
    pub fn circuit_opened(&self, target: &str, open_for: Duration) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.circuit_key(target),
            mode: "set",
            ttl_ms: millis(open_for).max(1),
            message: self.message("open", target, open_for),
        });
    }

    /// Tell the other replicas that `target`'s circuit closed.
    pub fn circuit_closed(&self, target: &str) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.circuit_key(target),
            mode: "del",
            ttl_ms: 0,
            message: self.message("closed", target, Duration::ZERO),
        });
    }

    /// Tell the other replicas that `target` cools down for `duration`.
    pub fn cooldown_started(&self, target: &str, duration: Duration) {
        if target.len() > MAX_TARGET_BYTES {
            return;
        }
        self.enqueue(|| Event::Transition {
            key: self.cooldown_key(target),
            mode: "extend",
            ttl_ms: millis(duration).max(1),
            message: self.message("cooldown", target, duration),
        });
    }

    pub(super) fn message(&self, kind: &str, target: &str, d: Duration) -> String {
        serde_json::json!({"from": self.replica, "kind": kind, "target": target, "ms": millis(d)})
            .to_string()
    }

    /// Apply a transition another replica published (validated; durations
    /// are capped by the registries).
    pub(super) fn apply_message(&self, msg: &redis::Msg) {
        self.apply_payload(msg.get_payload_bytes());
    }

    fn apply_payload(&self, payload: &[u8]) {
        let Some(message) = Message::parse(payload) else {
            tracing::debug!("state store: ignoring a malformed event");
            return;
        };
        if message.from == self.replica {
            return;
        }
        let Some((breakers, cooldowns)) = self.local() else {
            return;
        };
        let d = Duration::from_millis(message.ms);
        match message.kind {
            Kind::Open => breakers.apply_shared_open(&message.target, d),
            Kind::Closed => breakers.apply_shared_closed(&message.target),
            Kind::Cooldown => cooldowns.apply_shared(&message.target, d),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::layers::circuit_breaker::{BreakerPolicy, Breakers};
    use crate::layers::failover::Cooldowns;
    use crate::store::StateConfig;

    fn event(json: &str) -> Option<Message> {
        Message::parse(json.as_bytes())
    }

    #[test]
    fn events_are_validated() {
        let ok = event(r#"{"from":"r1","kind":"open","target":"a/m","ms":1000}"#).unwrap();
        assert_eq!(ok.kind, Kind::Open);
        assert_eq!(ok.ms, 1000);
        assert!(event(r#"{"from":"r1","kind":"closed","target":"a/m"}"#).is_some());
        // Unknown fields and kinds, missing targets, oversized parts.
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m","ms":1,"x":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"explode","target":"a/m"}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"nomodel","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m\n","ms":1}"#).is_none());
        assert!(event(r#"{"from":"r1","kind":"open","target":"a/m","ms":-1}"#).is_none());
        let long = format!(
            r#"{{"from":"r1","kind":"open","target":"a/{}","ms":1}}"#,
            "m".repeat(MAX_TARGET_BYTES)
        );
        assert!(event(&long).is_none());
        let huge = format!(
            r#"{{"from":"{}","kind":"open","target":"a/m","ms":1}}"#,
            "r".repeat(MAX_EVENT_BYTES)
        );
        assert!(event(&huge).is_none());
        assert!(event("not json").is_none());
    }

    /// Regression (issue 15): any Redis client could publish a 31-year open
    /// circuit or cooldown; what arrives is capped by `open_for` and
    /// `max_cooldown`.
    #[tokio::test(start_paused = true)]
    async fn published_durations_are_capped() {
        let store = RedisStore::new(StateConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            ..StateConfig::default()
        });
        let breakers = Arc::new(Breakers::new(BreakerPolicy {
            open_for: Duration::from_secs(30),
            ..BreakerPolicy::default()
        }));
        let cooldowns = Arc::new(Cooldowns::default());
        cooldowns.set_max(Duration::from_secs(300));
        store.tie(&breakers, &cooldowns);
        let years = 31 * 365 * 24 * 3600 * 1000u64;
        store.apply_payload(
            format!(r#"{{"from":"other","kind":"open","target":"a/m","ms":{years}}}"#).as_bytes(),
        );
        store.apply_payload(
            format!(r#"{{"from":"other","kind":"cooldown","target":"b/m","ms":{years}}}"#)
                .as_bytes(),
        );
        let open = breakers.open_circuits();
        assert_eq!(open.len(), 1);
        assert!(open[0].1 <= Duration::from_secs(30), "{open:?}");
        assert_eq!(cooldowns.remaining("b/m"), Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!breakers.is_open("a/m"));
        tokio::time::advance(Duration::from_secs(270)).await;
        assert_eq!(cooldowns.remaining("b/m"), None);
        // An event with an unknown field changes nothing.
        store.apply_payload(br#"{"from":"other","kind":"open","target":"c/m","ms":1000,"evil":1}"#);
        assert!(!breakers.is_open("c/m"));
    }
}
