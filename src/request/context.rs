//! [`RequestContext`]: the one value through which the layers of a request
//! learn, on the way back, what happened below them — the time spent
//! waiting on upstreams (for `x-llm-router-overhead-ms`), the attempts made
//! (for metrics and logs), and whom `auth` let in (for a `log` outside it;
//! with a virtual key, its [`ClientKey`](RequestContext::client_key)); and
//! on the way down, the client's address the server noted.
//!
//! It is put into the request's extensions once (by the server, `App`, or
//! the first layer that reads it) and shared by every copy of the request: retries and
//! failover attempts write into the same one.
//!
//! ```
//! use std::time::Duration;
//! use http::Extensions;
//! use llm_router::RequestContext;
//!
//! let mut extensions = Extensions::new();
//! let context = RequestContext::of(&mut extensions).clone();
//! context.record_attempts();
//! // ... an inner layer, holding a copy of the request:
//! let below = extensions.get::<RequestContext>().unwrap();
//! below.add_wait(Duration::from_millis(120));
//! below.note_identity("team-a");
//! assert_eq!(context.waited(), Duration::from_millis(120));
//! assert_eq!(context.identity(), Some("team-a"));
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::classify::AttemptRecord;
use crate::keys::ClientKey;

/// What the layers of one request tell each other on the way back: the time
/// spent waiting on upstreams, the attempts made, whom `auth` let in. One per
/// request, in its extensions, shared by every copy of it (retries and
/// failover attempts write into the same one). Cheap to clone (one
/// reference count).
#[derive(Clone, Debug, Default)]
pub struct RequestContext(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// Time spent waiting outside the proxy, in nanoseconds.
    waited: AtomicU64,
    /// Whether a layer reads the attempts (only then are they recorded).
    record_attempts: AtomicBool,
    attempts: Mutex<Vec<AttemptRecord>>,
    /// The identity `auth` verified.
    identity: OnceLock<String>,
    /// The client's virtual key and budget group, when `auth` found one.
    client_key: OnceLock<ClientKey>,
    /// The client's address, when the server noted it.
    client_addr: OnceLock<SocketAddr>,
}

impl RequestContext {
    /// The context of the request with these extensions, put there first
    /// when it has none.
    pub fn of(extensions: &mut http::Extensions) -> &RequestContext {
        extensions.get_or_insert_default::<RequestContext>()
    }

    /// Add time spent waiting outside the proxy (an upstream's head and
    /// first content, a retry's backoff).
    pub fn add_wait(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.waited.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The time spent waiting outside the proxy so far.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.0.waited.load(Ordering::Relaxed))
    }

    /// Ask for the attempts to be recorded (a layer that reads them).
    pub fn record_attempts(&self) {
        self.0.record_attempts.store(true, Ordering::Relaxed);
    }

    /// Record an attempt, built only when some layer reads them.
    pub fn push_attempt(&self, record: impl FnOnce() -> AttemptRecord) {
        if self.0.record_attempts.load(Ordering::Relaxed) {
            let record = record();
            self.0
                .attempts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record);
        }
    }

    /// The attempts recorded so far.
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.0
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Read the attempts recorded so far without copying them (`f` runs
    /// under the lock: it must not record an attempt).
    pub fn with_attempts<R>(&self, f: impl FnOnce(&[AttemptRecord]) -> R) -> R {
        f(&self.0.attempts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Note the identity `auth` verified (the first one noted stays).
    pub fn note_identity(&self, identity: &str) {
        let _ = self.0.identity.set(identity.to_string());
    }

    /// The identity `auth` verified, once noted.
    pub fn identity(&self) -> Option<&str> {
        self.0.identity.get().map(String::as_str)
    }

    /// Note the client's virtual key and budget group (`auth` does, for a
    /// client that has one; the first one noted stays).
    pub fn note_client_key(&self, key: ClientKey) {
        let _ = self.0.client_key.set(key);
    }

    /// The client's virtual key and budget group, when `auth` noted them:
    /// the key's name, budget and metadata for a layer that runs outside
    /// `auth` or reads them once the answer is over.
    pub fn client_key(&self) -> Option<&ClientKey> {
        self.0.client_key.get()
    }

    /// Note the client's address ([`Server`](crate::Server) does, for each
    /// request of a connection; the first one noted stays).
    pub fn note_client_addr(&self, addr: SocketAddr) {
        let _ = self.0.client_addr.set(addr);
    }

    /// The client's address, when the server noted it (an app served by
    /// another server has none unless that server notes it).
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.0.client_addr.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Outcome;

    fn record(backend: &str) -> AttemptRecord {
        AttemptRecord {
            backend: backend.into(),
            model: "m".into(),
            outcome: Outcome::Success,
            status: Some(200),
            error_kind: "none",
            elapsed: Duration::from_millis(5),
            usage: None,
        }
    }

    #[test]
    fn attempts_are_recorded_only_when_read() {
        let context = RequestContext::default();
        let mut built = false;
        context.push_attempt(|| {
            built = true;
            record("a")
        });
        assert!(!built, "nobody reads them: not even built");
        assert!(context.attempts().is_empty());
        context.record_attempts();
        context.clone().push_attempt(|| record("b"));
        assert_eq!(context.attempts(), [record("b")]);
    }

    #[test]
    fn one_context_per_request_shared_by_its_copies() {
        let mut extensions = http::Extensions::new();
        let first = RequestContext::of(&mut extensions).clone();
        let copy = extensions.clone();
        RequestContext::of(&mut extensions).add_wait(Duration::from_millis(3));
        copy.get::<RequestContext>()
            .unwrap()
            .add_wait(Duration::from_millis(4));
        assert_eq!(first.waited(), Duration::from_millis(7));
        first.note_identity("a");
        first.note_identity("b");
        assert_eq!(first.identity(), Some("a"));
    }
}
