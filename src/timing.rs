//! The proxy's own time: [`Waited`] collects the time a request spends
//! waiting outside the proxy (for the upstream's head and first content, in
//! retry backoff), so that `x-llm-router-overhead-ms` can report the rest.
//!
//! ```
//! use std::time::Duration;
//! use llm_router::timing::Waited;
//!
//! let waited = Waited::default();
//! waited.add(Duration::from_millis(120));
//! waited.clone().add(Duration::from_millis(30)); // clones share the total
//! assert_eq!(waited.get(), Duration::from_millis(150));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The header carrying the proxy's own time, in milliseconds.
pub const OVERHEAD_HEADER: &str = "x-llm-router-overhead-ms";

/// Time spent waiting outside the proxy; shared by every copy of a request.
#[derive(Clone, Debug, Default)]
pub struct Waited(Arc<AtomicU64>);

impl Waited {
    /// Add a wait.
    pub fn add(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// Format a duration as milliseconds with microsecond precision (`0.042`).
pub fn as_millis_header(d: Duration) -> http::HeaderValue {
    let text = format!("{:.3}", d.as_secs_f64() * 1e3);
    http::HeaderValue::try_from(text).unwrap_or(http::HeaderValue::from_static("0"))
}
