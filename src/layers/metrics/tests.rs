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
        usage: None,
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

#[test]
fn the_key_label_is_a_configured_name_or_bounded() {
    use super::labels::key_label;
    let names: std::collections::HashSet<String> = ["team-a".to_string()].into();
    assert_eq!(key_label(Some("team-a"), &names), "team-a");
    assert_eq!(key_label(Some("sk-secret-key-123456"), &names), "(other)");
    assert_eq!(key_label(Some("jwt:alice"), &names), "(other)");
    assert_eq!(key_label(None, &names), "none");
}

#[cfg(feature = "observability")]
#[test]
fn a_priced_answer_counts_its_cost() {
    use super::body::Done;
    use super::labels::RouteLabels;
    use crate::config::Price;
    use crate::usage::{Usage, UsageSlot};

    let metrics = std::sync::Arc::new(Metrics::new());
    let slot = UsageSlot::priced(Some(Price::new(2.5, 10.0)));
    slot.set(Usage {
        prompt_tokens: 1_000,
        completion_tokens: 100,
        ..Usage::default()
    });
    let done = |slot: UsageSlot| Done {
        metrics: metrics.clone(),
        route: RouteLabels {
            model: "gpt-4o".into(),
            backend: "openai".into(),
        },
        started: tokio::time::Instant::now(),
        slot: Some(slot),
        key: "team-a".into(),
    };
    done(slot.clone()).record_for_test();
    done(slot).record_for_test();
    // Unpriced: no series.
    done(UsageSlot::default()).record_for_test();
    let text = metrics.encode(None);
    assert!(
        text.contains(
            r#"llm_router_cost_usd_total{model="gpt-4o",backend="openai",key="team-a"} 0.007"#
        ),
        "{text}"
    );
    assert_eq!(
        text.matches("llm_router_cost_usd_total{").count(),
        1,
        "{text}"
    );
}
