//! The label sets of the Prometheus families, the histograms' buckets, and
//! how circuits are named in `circuit_state`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::routing::RouteTable;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) model: String,
    pub(super) backend: String,
    pub(super) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabels {
    pub(super) model: String,
    pub(super) backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ErrorLabels {
    pub(super) backend: String,
    pub(super) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendLabel {
    pub(super) backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ModelLabel {
    pub(super) model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TargetLabel {
    pub(super) target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TokenLabels {
    pub(super) model: String,
    pub(super) backend: String,
    pub(super) direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CostLabels {
    pub(super) model: String,
    pub(super) backend: String,
    pub(super) key: String,
}

/// The `key` label of a request no key was verified for.
pub(super) const NO_KEY: &str = "none";

/// The `key` label of a verified client whose name the config does not list.
pub(super) const OTHER_KEY: &str = "(other)";

/// The `key` label of a request: the verified identity when it is one of
/// the configured key names, else [`OTHER_KEY`] (a raw key or a JWT
/// subject never becomes a label), or [`NO_KEY`].
pub(super) fn key_label(
    identity: Option<&str>,
    names: &std::collections::HashSet<String>,
) -> String {
    match identity {
        None => NO_KEY.to_string(),
        Some(id) if names.contains(id) => id.to_string(),
        Some(_) => OTHER_KEY.to_string(),
    }
}

pub(super) type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub(super) fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub(super) fn overhead_histogram() -> Histogram {
    // 10 µs .. ~80 ms
    Histogram::new(exponential_buckets(0.000_01, 2.0, 14))
}

/// The `model` label of a request that matched no configured route.
pub const UNKNOWN_MODEL: &str = "(unknown)";

/// What the circuits' labels are drawn from: the targets of the routes of
/// the stack built last (see [`MetricsLayer::with_routes`](super::MetricsLayer::with_routes)).
#[derive(Debug, Default)]
pub(super) struct CircuitNames {
    /// Target keys (`backend/model`) with a configured upstream model.
    fixed: std::collections::HashSet<String>,
    /// The backends' names, longest first.
    backends: Vec<String>,
}

impl CircuitNames {
    pub(super) fn of(routes: &RouteTable) -> Self {
        let mut names = CircuitNames::default();
        for route in routes.routes() {
            for target in route.targets() {
                let backend = target.backend().name();
                match target.model() {
                    Some(model) if model != "*" => {
                        names.fixed.insert(format!("{backend}/{model}"));
                    }
                    _ => {}
                }
                if !names.backends.iter().any(|b| b == backend) {
                    names.backends.push(backend.to_string());
                }
            }
        }
        names.backends.sort_by_key(|b| std::cmp::Reverse(b.len()));
        names
    }

    /// The label of a circuit: its key when the config names its model,
    /// `backend/*` when the client chose it, `None` for a backend no
    /// route uses any more.
    pub(super) fn label(&self, key: &str) -> Option<String> {
        if self.fixed.contains(key) {
            return Some(key.to_string());
        }
        self.backends
            .iter()
            .find(|b| {
                key.strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|b| format!("{b}/*"))
    }
}
