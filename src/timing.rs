//! The proxy's own time, `x-llm-router-overhead-ms`: the request's time
//! less what it spent waiting outside the proxy, which the
//! [`RequestContext`](crate::request::RequestContext) collects.
//!
//! ```
//! use std::time::Duration;
//! use llm_router::__private::timing::as_millis_header;
//!
//! assert_eq!(as_millis_header(Duration::from_micros(42)), "0.042");
//! ```

use std::time::Duration;

/// The header carrying the proxy's own time, in milliseconds.
pub const OVERHEAD_HEADER: &str = "x-llm-router-overhead-ms";

/// [`OVERHEAD_HEADER`] as a header name (no parse or allocation where it is used).
pub const OVERHEAD_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(OVERHEAD_HEADER);

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
