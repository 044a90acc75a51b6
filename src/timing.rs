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

/// [`OVERHEAD_HEADER`] as a header name (no parse or allocation where it is used).
pub const OVERHEAD_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(OVERHEAD_HEADER);

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
    // Written by hand: this runs on every answer, and float formatting is
    // a noticeable share of the proxy's own time.
    let micros = d.as_micros();
    let (ms, frac) = (micros / 1000, micros % 1000);
    let mut buf = [0u8; 48];
    let mut end = buf.len();
    for digit in [frac % 10, frac / 10 % 10, frac / 100] {
        end -= 1;
        buf[end] = b'0' + digit as u8;
    }
    end -= 1;
    buf[end] = b'.';
    let mut ms = ms;
    loop {
        end -= 1;
        buf[end] = b'0' + (ms % 10) as u8;
        ms /= 10;
        if ms == 0 || end == 0 {
            break;
        }
    }
    http::HeaderValue::from_bytes(&buf[end..]).unwrap_or(http::HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_header_is_milliseconds_with_three_decimals() {
        let h = |d| as_millis_header(d).to_str().unwrap().to_string();
        assert_eq!(h(Duration::ZERO), "0.000");
        assert_eq!(h(Duration::from_nanos(42_900)), "0.042");
        assert_eq!(h(Duration::from_micros(1_234_567)), "1234.567");
        assert_eq!(h(Duration::from_secs(86_400 * 365)), "31536000000.000");
    }
}
