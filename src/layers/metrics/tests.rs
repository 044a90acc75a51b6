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
    let route = super::series::SeriesTable::of(None).get(Some("m"));
    metrics.record_attempts(
        &route,
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
    use crate::config::Price;
    use crate::request::RequestContext;
    use crate::usage::{Usage, UsageSlot};

    let metrics = std::sync::Arc::new(Metrics::new());
    let slot = UsageSlot::priced(Some(Price::new(2.5, 10.0)));
    slot.set(Usage {
        prompt_tokens: 1_000,
        completion_tokens: 100,
        ..Usage::default()
    });
    let route = super::series::SeriesTable::of(None).get(Some("gpt-4o"));
    let context = RequestContext::default();
    context.note_identity("team-a");
    let key_names = std::sync::Arc::new(["team-a".to_string()].into());
    let done = |slot: UsageSlot| Done {
        metrics: metrics.clone(),
        route: route.clone(),
        path: route.path(&metrics, "openai"),
        started: tokio::time::Instant::now(),
        slot: Some(slot),
        context: context.clone(),
        key_names: std::sync::Arc::clone(&key_names),
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

#[test]
fn a_route_finds_its_series_once_and_counts_into_them() {
    use crate::routing::{ModelRoute, RouteTable};
    use crate::upstream::provider::mock::Mock;
    use crate::upstream::{Backend, Target};
    use std::sync::Arc;

    let metrics = Metrics::new();
    let backend = Arc::new(Backend::builder("openai", Arc::new(Mock)).build().unwrap());
    let routes = RouteTable::new(vec![ModelRoute::new(
        "gpt-4o",
        vec![Target::new(backend, Some("gpt-4o"))],
    )]);
    let table = super::series::SeriesTable::of(Some(&routes));
    let route = table.get(Some("gpt-4o"));
    assert!(Arc::ptr_eq(&route, &table.get(Some("gpt-4o"))));
    let path = route.path(&metrics, "openai");
    assert!(Arc::ptr_eq(&path, &route.path(&metrics, "openai")));
    for status in [200, 200, 429] {
        route.totals(&metrics).count_request(status);
        path.count_status(&metrics, status);
    }
    let summary = metrics.summary();
    assert_eq!(summary["requests"], 3, "{summary}");
    assert_eq!(summary["errors"], 1, "{summary}");
    assert_eq!(
        summary["models"]["gpt-4o"]["statuses"]["200"], 2,
        "{summary}"
    );
    assert_eq!(
        summary["models"]["gpt-4o"]["statuses"]["429"], 1,
        "{summary}"
    );
    let text = metrics.encode(None);
    assert!(
        text.contains(
            r#"llm_router_requests_total{model="gpt-4o",backend="openai",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"llm_router_requests_total{model="gpt-4o",backend="openai",status="429"} 1"#
        ),
        "{text}"
    );
    // A request of no route.
    assert_eq!(table.get(None).model, UNKNOWN_MODEL);
}
