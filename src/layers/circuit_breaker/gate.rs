//! [`CircuitGate`]: the breaker's handle in a call's extensions, through
//! which a `retry` below the breaker asks before each retry.

use std::sync::Arc;

use super::{Admission, Breakers};
use crate::classify::Outcome;
use crate::error::ProxyError;
use crate::routing::TargetKey;

/// Put into each admitted call's extensions by the breaker, for a `retry`
/// below it: [`CircuitGate::may_retry`] before a retry's backoff,
/// [`CircuitGate::admit_retry`] after it. See the [module
/// docs](crate::layers::circuit_breaker).
///
/// ```
/// use std::sync::Arc;
/// use llm_router::__private::classify::Outcome;
/// use llm_router::layers::circuit_breaker::{Admission, BreakerPolicy, Breakers, CircuitGate};
/// use llm_router::routing::TargetKey;
///
/// let breakers = Arc::new(Breakers::new(BreakerPolicy { failure_threshold: 2, ..Default::default() }));
/// let gate = CircuitGate::new(breakers.clone(), TargetKey::join("a", "m"), Admission::Normal);
/// assert!(gate.may_retry(Outcome::ServerError)); // the first failure counts; retried
/// assert!(!gate.may_retry(Outcome::ServerError)); // the second would open the circuit
/// assert!(gate.admit_retry().is_ok());
/// ```
#[derive(Clone)]
pub struct CircuitGate {
    breakers: Arc<Breakers>,
    key: TargetKey,
    admission: Admission,
}

impl CircuitGate {
    /// The gate of a call to `key` let through as `admission`.
    pub fn new(breakers: Arc<Breakers>, key: TargetKey, admission: Admission) -> Self {
        CircuitGate {
            breakers,
            key,
            admission,
        }
    }

    /// An attempt ended with `outcome` and retry would try again: whether
    /// it may (see [`Breakers::retrying`]).
    pub fn may_retry(&self, outcome: Outcome) -> bool {
        self.breakers.retrying(&self.key, self.admission, outcome)
    }

    /// Just before a retry is sent: [`ProxyError::CircuitOpen`] when the
    /// circuit opened meanwhile (the retry is not sent).
    pub fn admit_retry(&self) -> Result<(), ProxyError> {
        self.breakers
            .still_admits(&self.key, self.admission)
            .map_err(|retry_after| ProxyError::CircuitOpen {
                target: self.key.to_string(),
                retry_after,
            })
    }
}

impl std::fmt::Debug for CircuitGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitGate")
            .field("key", &self.key)
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}
