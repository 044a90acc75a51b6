//! What failover does after each attempt: a pure function of the attempt's
//! result and the policy, with no I/O, so every rule is tested on its own.
//!
//! The loop in [`run`](super::run) does the I/O (calls a target, reads a
//! small error body, starts a cooldown); [`decide`] says which of those to
//! do next, and [`Tally`] keeps what the targets that could not be tried
//! said about coming back, for the answer when no target answered.

use std::time::Duration;

use http::Response;

use super::FailoverPolicy;
use crate::body::ProxyBody;
use crate::classify::{retry_after, Outcome};
use crate::error::ProxyError;

/// One attempt's result, as far as failover cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attempted {
    /// How the attempt went.
    pub outcome: Outcome,
    /// The answer's status, when there is an answer.
    pub status: Option<u16>,
    /// When to come back: the answer's `Retry-After`, or the error's.
    pub retry_after: Option<Duration>,
    /// A target skipped for an open circuit (not for a cooldown or a
    /// backend rate limit).
    pub circuit_open: bool,
}

impl Attempted {
    /// Read an attempt's result.
    pub(super) fn of(result: &Result<Response<ProxyBody>, ProxyError>) -> Self {
        match result {
            Ok(response) => {
                let outcome = Outcome::of(result);
                Attempted {
                    outcome,
                    status: Some(response.status().as_u16()),
                    // A success is answered as it is: its headers are not read.
                    retry_after: match outcome {
                        Outcome::Success => None,
                        _ => retry_after(response.headers()),
                    },
                    circuit_open: false,
                }
            }
            Err(e) => Attempted {
                outcome: Outcome::of(result),
                status: None,
                retry_after: e.retry_after(),
                circuit_open: !matches!(
                    e,
                    ProxyError::CoolingDown { .. } | ProxyError::BackendRateLimited { .. }
                ),
            },
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decision {
    /// Put this target aside for that long first.
    pub cooldown: Option<Duration>,
    /// Then this.
    pub then: Then,
}

/// The step after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Then {
    /// The attempt's result goes to the client.
    Answer,
    /// A 400 or 413: read its (small) body; a "context length exceeded"
    /// tries the model's context fallback, anything else is answered.
    CheckContext,
    /// Try the next target. `keep`: this result is the failure to answer
    /// with when no other target answers (a skipped target leaves none).
    Next {
        /// Keep this result as the last failure.
        keep: bool,
    },
}

impl Decision {
    fn then(then: Then) -> Self {
        Decision {
            cooldown: None,
            then,
        }
    }
}

/// The step after an attempt that came back as `attempted`. Notes what a
/// skipped target said about coming back in `tally`.
pub(super) fn decide(
    attempted: &Attempted,
    policy: &FailoverPolicy,
    tally: &mut Tally,
) -> Decision {
    match attempted.outcome {
        Outcome::Success | Outcome::Refused => Decision::then(Then::Answer),
        Outcome::ClientError => match attempted.status {
            Some(400 | 413) => Decision::then(Then::CheckContext),
            _ => Decision::then(Then::Answer),
        },
        // A 429 cools its target down for its `Retry-After`, or the
        // policy's cooldown.
        Outcome::RateLimited => Decision {
            cooldown: attempted
                .status
                .map(|_| attempted.retry_after.unwrap_or(policy.cooldown)),
            then: if policy.on.contains(&429) {
                Then::Next { keep: true }
            } else {
                Then::Answer
            },
        },
        // A 5xx that says when to come back (retry gave up on it) sits out
        // that long, like a 429.
        Outcome::ServerError => Decision {
            cooldown: attempted.status.and(attempted.retry_after),
            then: if policy.on.contains(&attempted.status.unwrap_or(500)) {
                Then::Next { keep: true }
            } else {
                Then::Answer
            },
        },
        Outcome::ConnectionError | Outcome::Timeout => Decision::then(Then::Next { keep: true }),
        Outcome::Skipped => {
            if let Some(back) = attempted.retry_after {
                tally.back_in(back);
            }
            tally.circuit_skipped |= attempted.circuit_open;
            Decision::then(Then::Next { keep: false })
        }
    }
}

/// What the targets that could not be tried said, for the answer when no
/// target answered at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    /// The earliest time a skipped target comes back.
    pub earliest_back: Option<Duration>,
    /// Whether a target was skipped for an open circuit.
    pub circuit_skipped: bool,
}

impl Tally {
    /// A target comes back in `after`.
    pub(super) fn back_in(&mut self, after: Duration) {
        self.earliest_back = Some(self.earliest_back.map_or(after, |e| e.min(after)));
    }

    /// The error when no target could be tried for `model`: a 429 when every
    /// one was skipped for a rate limit or a cooldown (the client comes back
    /// after the earliest), else a 503.
    pub(super) fn give_up(&self, model: String) -> ProxyError {
        match self.earliest_back {
            Some(after) if !self.circuit_skipped => ProxyError::RateLimited {
                message: format!(
                    "Every target of `{model}` is rate limited or cooling down; retry after the Retry-After delay"
                ),
                retry_after: after,
            },
            _ => ProxyError::Unavailable {
                model,
                retry_after: self.earliest_back,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn answer(status: u16, retry_after: Option<&str>) -> Result<Response<ProxyBody>, ProxyError> {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(v) = retry_after {
            r.headers_mut().insert("retry-after", v.parse().unwrap());
        }
        Ok(r)
    }

    fn decide_on(result: Result<Response<ProxyBody>, ProxyError>) -> (Decision, Tally) {
        let mut tally = Tally::default();
        let decision = decide(
            &Attempted::of(&result),
            &FailoverPolicy::default(),
            &mut tally,
        );
        (decision, tally)
    }

    const NEXT: Then = Then::Next { keep: true };

    #[test]
    fn success_and_client_errors_are_answered() {
        assert_eq!(decide_on(answer(200, None)).0, Decision::then(Then::Answer));
        assert_eq!(decide_on(answer(404, None)).0, Decision::then(Then::Answer));
        assert_eq!(decide_on(answer(401, None)).0, Decision::then(Then::Answer));
        let refused = Err(ProxyError::BadRequest {
            message: "no".into(),
            code: "invalid_json",
        });
        assert_eq!(decide_on(refused).0, Decision::then(Then::Answer));
    }

    #[test]
    fn a_400_or_413_is_checked_for_context_length() {
        assert_eq!(decide_on(answer(400, None)).0.then, Then::CheckContext);
        assert_eq!(decide_on(answer(413, None)).0.then, Then::CheckContext);
    }

    #[test]
    fn a_429_cools_down_then_fails_over() {
        let (d, _) = decide_on(answer(429, Some("7")));
        assert_eq!(d.cooldown, Some(Duration::from_secs(7)));
        assert_eq!(d.then, NEXT);
        // Without Retry-After: the policy's cooldown.
        let (d, _) = decide_on(answer(429, None));
        assert_eq!(d.cooldown, Some(FailoverPolicy::default().cooldown));
    }

    #[test]
    fn a_status_outside_on_is_answered_after_its_cooldown() {
        let policy = FailoverPolicy {
            on: vec![502],
            ..FailoverPolicy::default()
        };
        let mut tally = Tally::default();
        let d = decide(&Attempted::of(&answer(429, Some("3"))), &policy, &mut tally);
        assert_eq!(d.cooldown, Some(Duration::from_secs(3)));
        assert_eq!(d.then, Then::Answer);
        let d = decide(&Attempted::of(&answer(500, None)), &policy, &mut tally);
        assert_eq!(d.then, Then::Answer);
        let d = decide(&Attempted::of(&answer(502, None)), &policy, &mut tally);
        assert_eq!(d.then, NEXT);
    }

    #[test]
    fn a_5xx_cools_down_only_when_it_says_when() {
        let (d, _) = decide_on(answer(503, Some("2")));
        assert_eq!(
            d,
            Decision {
                cooldown: Some(Duration::from_secs(2)),
                then: NEXT
            }
        );
        let (d, _) = decide_on(answer(500, None));
        assert_eq!(d, Decision::then(NEXT));
    }

    #[test]
    fn connection_errors_and_timeouts_fail_over_without_cooldown() {
        let connect = Err(ProxyError::UpstreamConnect {
            backend: "a".into(),
            source: "refused".into(),
        });
        assert_eq!(decide_on(connect).0, Decision::then(NEXT));
        let timeout = Err(ProxyError::UpstreamTimeout {
            backend: "a".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(decide_on(timeout).0, Decision::then(NEXT));
    }

    #[test]
    fn skipped_targets_keep_no_result_and_tally_their_return() {
        let open = Err(ProxyError::CircuitOpen {
            target: "a/m".into(),
            retry_after: Duration::from_secs(30),
        });
        let (d, tally) = decide_on(open);
        assert_eq!(d, Decision::then(Then::Next { keep: false }));
        assert_eq!(tally.earliest_back, Some(Duration::from_secs(30)));
        assert!(tally.circuit_skipped);
        let limited = Err(ProxyError::BackendRateLimited {
            backend: "a".into(),
            retry_after: Duration::from_secs(4),
        });
        let (_, tally) = decide_on(limited);
        assert!(!tally.circuit_skipped);
    }

    #[test]
    fn giving_up_is_a_429_for_limits_and_a_503_for_circuits() {
        let mut tally = Tally::default();
        tally.back_in(Duration::from_secs(9));
        tally.back_in(Duration::from_secs(2));
        let e = tally.give_up("m".into());
        assert!(
            matches!(e, ProxyError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(2))
        );
        tally.circuit_skipped = true;
        let e = tally.give_up("m".into());
        assert!(
            matches!(e, ProxyError::Unavailable { retry_after: Some(d), .. } if d == Duration::from_secs(2))
        );
        let e = Tally::default().give_up("m".into());
        assert!(matches!(
            e,
            ProxyError::Unavailable {
                retry_after: None,
                ..
            }
        ));
    }
}
