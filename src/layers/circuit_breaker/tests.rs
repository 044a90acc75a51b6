//! Tests of the circuit registry: transitions, probes, the bounded table,
//! and retries through the gate.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::classify::Outcome;
use crate::error::ProxyError;
use crate::routing::TargetKey;

fn breakers() -> Breakers {
    Breakers::new(BreakerPolicy {
        failure_threshold: 3,
        open_for: Duration::from_secs(10),
        half_open_requests: 2,
    })
}

#[tokio::test(start_paused = true)]
async fn opens_after_threshold_then_half_opens_and_closes() {
    let b = breakers();
    for _ in 0..2 {
        let a = b.admit("t").unwrap();
        b.record("t", a, Outcome::ServerError);
    }
    // A success resets the count.
    let a = b.admit("t").unwrap();
    b.record("t", a, Outcome::Success);
    for _ in 0..3 {
        let a = b.admit("t").unwrap();
        b.record("t", a, Outcome::Timeout);
    }
    assert_eq!(b.admit("t"), Err(Duration::from_secs(10)));
    tokio::time::advance(Duration::from_secs(10)).await;
    // Two probes, a third concurrent request is refused.
    assert_eq!(b.admit("t"), Ok(Admission::Probe));
    assert_eq!(b.admit("t"), Ok(Admission::Probe));
    assert!(b.admit("t").is_err());
    b.record("t", Admission::Probe, Outcome::Success);
    assert!(b.admit("t").is_err(), "one probe still in flight");
    b.record("t", Admission::Probe, Outcome::Success);
    assert_eq!(b.admit("t"), Ok(Admission::Normal));
    assert_eq!(b.snapshot()[0].state, "closed");
}

#[tokio::test(start_paused = true)]
async fn failed_probe_reopens_and_429_does_not_count() {
    let b = breakers();
    for _ in 0..10 {
        let a = b.admit("t").unwrap();
        b.record("t", a, Outcome::RateLimited);
    }
    assert_eq!(b.admit("t"), Ok(Admission::Normal));
    for _ in 0..3 {
        b.record("t", Admission::Normal, Outcome::ConnectionError);
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    let a = b.admit("t").unwrap();
    assert_eq!(a, Admission::Probe);
    b.record("t", a, Outcome::ServerError);
    assert_eq!(b.admit("t"), Err(Duration::from_secs(10)));
    assert_eq!(b.snapshot()[0].state, "open");
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_frees_its_slot() {
    let b = breakers();
    for _ in 0..3 {
        b.record("t", Admission::Normal, Outcome::ServerError);
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    let a1 = b.admit("t").unwrap();
    let _a2 = b.admit("t").unwrap();
    assert!(b.admit("t").is_err());
    b.release("t", a1);
    assert_eq!(b.admit("t"), Ok(Admission::Probe));
}

fn len(b: &Breakers) -> usize {
    b.lock().map.len()
}

/// Regression (issue 15): a `*` route kept one entry per client-chosen
/// model name forever.
#[tokio::test(start_paused = true)]
async fn closed_circuits_without_failures_are_not_kept() {
    let b = breakers();
    for i in 0..100 {
        let key = format!("up/model-{i}");
        let a = b.admit(&key).unwrap();
        b.record(&key, a, Outcome::Success);
    }
    assert_eq!(len(&b), 0);
    // A failure is kept until a success clears it.
    b.record("up/x", Admission::Normal, Outcome::ServerError);
    assert_eq!(b.snapshot()[0].consecutive_failures, 1);
    b.record("up/x", Admission::Normal, Outcome::Success);
    assert_eq!(len(&b), 0);
}

#[tokio::test(start_paused = true)]
async fn the_table_is_bounded() {
    let b = Breakers::new(BreakerPolicy {
        failure_threshold: 1,
        open_for: Duration::from_secs(10),
        half_open_requests: 1,
    });
    // Every unique name fails once: each opens a circuit.
    for i in 0..MAX_CIRCUITS + 500 {
        b.record(
            &format!("up/m-{i}"),
            Admission::Normal,
            Outcome::ServerError,
        );
    }
    assert_eq!(len(&b), MAX_CIRCUITS);
    // The circuits already open stay open; the newest names are not tracked.
    assert!(b.is_open("up/m-0"));
    assert!(!b.is_open(&format!("up/m-{}", MAX_CIRCUITS + 1)));
    assert_eq!(b.admit("up/new"), Ok(Admission::Normal));
    // Once they expired, room is made again (after the sweep pause).
    tokio::time::advance(Duration::from_secs(10)).await;
    b.record("up/new", Admission::Normal, Outcome::ServerError);
    assert!(b.is_open("up/new"));
    assert_eq!(len(&b), 1);

    // Closed circuits with failures make room as well.
    let b = breakers();
    for i in 0..MAX_CIRCUITS + 500 {
        b.record(
            &format!("up/m-{i}"),
            Admission::Normal,
            Outcome::ServerError,
        );
    }
    assert!(len(&b) <= MAX_CIRCUITS);
    assert!(b
        .snapshot()
        .iter()
        .any(|c| c.target == format!("up/m-{}", MAX_CIRCUITS + 499)));
}

/// Retries below the breaker: a failure about to be retried counts at
/// once; the one that reaches the threshold is not retried; a probe is
/// never retried; a retry whose circuit opened meanwhile is not sent.
#[tokio::test(start_paused = true)]
async fn retries_go_through_the_breaker() {
    let b = Arc::new(breakers());
    let first = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Normal);
    assert!(
        first.may_retry(Outcome::RateLimited),
        "a 429 counts nothing"
    );
    assert!(first.may_retry(Outcome::ServerError));
    assert!(first.may_retry(Outcome::Timeout));
    assert_eq!(b.snapshot()[0].consecutive_failures, 2);
    assert!(!first.may_retry(Outcome::ServerError), "the third opens it");
    assert!(first.admit_retry().is_ok());
    b.record("up/m", Admission::Normal, Outcome::ServerError);
    assert!(b.is_open("up/m"));
    let other = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Normal);
    assert!(!other.may_retry(Outcome::ServerError));
    assert!(matches!(
        other.admit_retry(),
        Err(ProxyError::CircuitOpen { .. })
    ));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(b.admit("up/m"), Ok(Admission::Probe));
    let probe = CircuitGate::new(b.clone(), TargetKey::join("up", "m"), Admission::Probe);
    assert!(!probe.may_retry(Outcome::ConnectionError));
    assert!(probe.may_retry(Outcome::RateLimited));
    assert!(probe.admit_retry().is_ok());
}
