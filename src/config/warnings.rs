//! [`Config::warnings`]: settings that are valid but probably not what was meant.

use std::collections::HashSet;

use super::{Config, LayerName};

impl Config {
    /// Things that are valid but probably not what was meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.source_warnings.clone();
        if let Some(weak) = self.auth.jwt.as_ref().and_then(|j| j.weakness()) {
            out.push(format!("auth.jwt.secret: {weak}"));
        }
        if !self.stack.contains(&LayerName::Failover) {
            for m in self.models.iter().filter(|m| m.targets.len() > 1) {
                out.push(format!(
                    "model `{}` has {} targets but `failover` is not in [stack] order: only the first target by priority is used",
                    m.name,
                    m.targets.len()
                ));
            }
        }
        for (set, layer, section) in [
            (
                !self.auth.is_empty(),
                LayerName::Auth,
                "[auth] keys (or [[keys]]) are",
            ),
            (!self.headers.is_empty(), LayerName::Headers, "[headers] is"),
            (self.cors.is_some(), LayerName::Cors, "[cors] is"),
            (
                !self.transforms.is_empty(),
                LayerName::Transform,
                "[[transforms]] is",
            ),
            (self.pii.is_some(), LayerName::Pii, "[pii] is"),
            (self.log.is_some(), LayerName::Log, "[log] is"),
            (
                self.models.iter().any(|m| m.retry.is_some()),
                LayerName::Retry,
                "a model's `retry` is",
            ),
        ] {
            if set && !self.stack.contains(&layer) {
                out.push(format!(
                    "{section} set but `{layer}` is not in [stack] order, so it has no effect"
                ));
            }
        }
        if self.stack.contains(&LayerName::Auth) && !self.stack.contains(&LayerName::RateLimit) {
            for k in self.auth.keys.iter().filter_map(|k| k.virtual_key.as_ref()) {
                if k.rate_limit().is_some() {
                    out.push(format!(
                        "key `{}` has a rate_limit but `rate_limit` is not in [stack] order, so it has no effect",
                        k.name()
                    ));
                }
            }
        }
        let virtual_keys = || {
            self.auth
                .keys
                .iter()
                .filter_map(|k| k.virtual_key.as_deref())
        };
        if let Some(k) = virtual_keys().find(|k| k.budget().is_some()) {
            if !self.stack.contains(&LayerName::Budget) {
                out.push(format!(
                    "key `{}` has a budget but `budget` is not in [stack] order (add it after \"auth\"), so no budget is enforced",
                    k.name()
                ));
            } else if !self.stack.contains(&LayerName::Auth) {
                out.push(
                    "`budget` is in [stack] order without `auth`: no client carries a budget, so none is enforced"
                        .to_string(),
                );
            }
        }
        for (name, group) in crate::keys::conflicting_group_budgets(virtual_keys()) {
            out.push(format!(
                "key `{name}` gives budget group `{}={}` a budget other than the one an earlier key of the group gives it; the group shares the first one",
                group.key, group.value
            ));
        }
        let used: HashSet<&str> = self
            .models
            .iter()
            .flat_map(|m| m.targets.iter().map(|t| t.backend.as_str()))
            .collect();
        for b in self
            .backends
            .iter()
            .filter(|b| !used.contains(b.name.as_str()))
        {
            out.push(format!("backend `{}` is not used by any model", b.name));
        }
        out
    }
}
