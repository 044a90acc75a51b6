//! Tests of the per-backend totals: error keys and the JSON view.

use super::stats::error_count_key;
use super::*;
use crate::classify::AttemptRecord;
use crate::classify::Outcome;

fn attempt(status: Option<u16>, kind: &'static str) -> AttemptRecord {
    AttemptRecord {
        backend: "b".into(),
        model: "m".into(),
        outcome: Outcome::ServerError,
        status,
        error_kind: kind,
        elapsed: std::time::Duration::ZERO,
    }
}

#[test]
fn error_counts_are_keyed_by_status_or_failure() {
    assert_eq!(
        error_count_key(&attempt(Some(429), "status_429")),
        "http_429"
    );
    assert_eq!(
        error_count_key(&attempt(Some(503), "status_5xx")),
        "http_503"
    );
    assert_eq!(error_count_key(&attempt(None, "timeout")), "timeout");
    assert_eq!(
        error_count_key(&attempt(None, "connect")),
        "connection_error"
    );
    assert_eq!(
        error_count_key(&attempt(Some(200), "stream")),
        "stream_error"
    );
    assert_eq!(error_count_key(&attempt(None, "refused")), "other");
}

#[test]
fn json_lists_each_backend_at_the_top_and_under_backends() {
    let metrics = Metrics::new();
    metrics.record_attempts(
        "m",
        &[attempt(Some(429), "status_429"), attempt(None, "timeout")],
    );
    let v = metrics.json();
    assert_eq!(v["b"]["total_requests"], 2, "{v}");
    assert_eq!(v["b"]["error_counts"]["http_429"], 1, "{v}");
    assert_eq!(v["b"]["error_counts"]["timeout"], 1, "{v}");
    assert_eq!(v["backends"]["b"], v["b"]);
}
