//! [`Metrics::encode`]: the OpenMetrics exposition text, with the circuit
//! states read at scrape time.

use super::labels::TargetLabel;
use super::Metrics;
use crate::layers::circuit_breaker::Breakers;
use crate::FastMap;

impl Metrics {
    /// The exposition text (OpenMetrics, which Prometheus reads), with the
    /// circuit states of `breakers` read at this moment.
    pub fn encode(&self, breakers: Option<&Breakers>) -> String {
        if let Some(breakers) = breakers {
            let views = breakers.snapshot();
            // One series per label, the worst state of the circuits under it.
            let mut current: FastMap<String, i64> = FastMap::default();
            {
                let names = self.circuit_names.lock().unwrap_or_else(|e| e.into_inner());
                for view in views {
                    let value = match view.state {
                        "open" => 2,
                        "half_open" => 1,
                        _ => 0,
                    };
                    let label = match names.as_ref() {
                        Some(names) => match names.label(&view.target) {
                            Some(label) => label,
                            None => continue,
                        },
                        // A registry no layer gave routes to (a stack
                        // composed in code): the keys as they are.
                        None => view.target,
                    };
                    let worst = current.entry(label).or_insert(value);
                    *worst = (*worst).max(value);
                }
            }
            let mut published = self
                .circuit_targets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for gone in published.iter().filter(|t| !current.contains_key(*t)) {
                self.circuit_state.remove(&TargetLabel {
                    target: gone.clone(),
                });
            }
            *published = current.keys().cloned().collect();
            for (target, value) in current {
                self.circuit_state
                    .get_or_create(&TargetLabel { target })
                    .set(value);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
    }
}
