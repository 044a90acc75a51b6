//! [`CircuitBreakerLayer`]: applies [`CircuitBreaker`](super::CircuitBreaker).

use std::sync::Arc;

use tower::Layer;

use super::{Breakers, CircuitBreaker};

/// Applies [`CircuitBreaker`]. See the [module docs](crate::layers::circuit_breaker).
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breakers: Arc<Breakers>,
}

impl CircuitBreakerLayer {
    /// Breakers from a shared registry.
    pub fn new(breakers: Arc<Breakers>) -> Self {
        CircuitBreakerLayer { breakers }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            breakers: self.breakers.clone(),
            target: None,
        }
    }
}
