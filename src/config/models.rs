//! `[[models]]`: the raw serde structs of an entry and its targets, and
//! their validation into a [`ModelConfig`].

use serde::Deserialize;
use toml::Spanned;

use super::{resilience, BackendConfig, ConfigError, Loader, ModelConfig, TargetConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) name: Spanned<String>,
    strip_prefix: Option<Spanned<bool>>,
    targets: Spanned<Vec<RawTarget>>,
    pub(super) context_fallback: Option<Spanned<String>>,
    clients: Option<Spanned<Vec<String>>>,
    retry: Option<resilience::RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    backend: Spanned<String>,
    model: Option<String>,
    priority: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
}

impl Loader<'_> {
    pub(super) fn model(
        &self,
        i: usize,
        raw: &RawModel,
        backends: &[BackendConfig],
        retry: &crate::layers::retry::RetryPolicy,
    ) -> Result<ModelConfig, ConfigError> {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(
                Some(raw.name.span()),
                format!("models[{i}].name"),
                "must not be empty",
            ));
        }
        if name.contains('*') && name != "*" && crate::routing::pattern_prefix(&name).is_none() {
            return Err(self.err(
                Some(raw.name.span()),
                format!("models[{i}].name"),
                format!("`{name}`: `*` may only end a name, as a prefix pattern like \"gpt-*\", or be the whole name \"*\""),
            ));
        }
        let clients = match &raw.clients {
            None => None,
            Some(c) => Some(crate::routing::Clients::parse(c.get_ref()).map_err(|bad| {
                self.err(
                    Some(c.span()),
                    format!("models[{i}].clients"),
                    format!(
                        "unknown client API `{bad}`; expected one of: {}",
                        crate::routing::Clients::NAMES.join(", ")
                    ),
                )
            })?),
        };
        let strip_prefix = raw.strip_prefix.as_ref().is_some_and(|s| *s.get_ref());
        if let Some(s) = raw.strip_prefix.as_ref().filter(|s| *s.get_ref()) {
            if crate::routing::pattern_prefix(&name).is_none() {
                return Err(self.err(
                    Some(s.span()),
                    format!("models[{i}].strip_prefix"),
                    format!("model `{name}` is not a prefix pattern; strip_prefix needs a name like \"cerebras/*\""),
                ));
            }
        }
        if raw.targets.get_ref().is_empty() {
            return Err(self.err(
                Some(raw.targets.span()),
                format!("models[{i}].targets"),
                format!("model `{name}` needs at least one target"),
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in raw.targets.get_ref().iter().enumerate() {
            let key = |k: &str| format!("models[{i}].targets[{j}].{k}");
            let backend = t.backend.get_ref();
            if !backends.iter().any(|b| &b.name == backend) {
                let defined: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
                let defined = if defined.is_empty() {
                    "none".to_string()
                } else {
                    defined.join(", ")
                };
                return Err(self.err(
                    Some(t.backend.span()),
                    key("backend"),
                    format!("backend `{backend}` is not defined (defined: {defined})"),
                ));
            }
            let priority = match &t.priority {
                None => 1,
                Some(p) => u32::try_from(*p.get_ref()).map_err(|_| {
                    self.err(
                        Some(p.span()),
                        key("priority"),
                        "must be a whole number from 0 upward",
                    )
                })?,
            };
            let weight = match &t.weight {
                None => 1,
                Some(w) => match u32::try_from(*w.get_ref()) {
                    Ok(w) if w > 0 => w,
                    _ => {
                        return Err(self.err(
                            Some(w.span()),
                            key("weight"),
                            "must be a whole number from 1 upward",
                        ))
                    }
                },
            };
            targets.push(TargetConfig {
                backend: backend.clone(),
                model: t.model.clone().filter(|m| !m.is_empty() && m != "*"),
                priority,
                weight,
            });
        }
        Ok(ModelConfig {
            name,
            strip_prefix,
            targets,
            context_fallback: raw.context_fallback.as_ref().map(|c| c.get_ref().clone()),
            clients,
            retry: raw
                .retry
                .as_ref()
                .map(|r| self.model_retry(r, i, retry))
                .transpose()?,
        })
    }
}
