//! The `[[models]]` of the generated config: one per model group with its
//! targets, plus `fallbacks`, `default_fallbacks` and `model_group_alias`.

use super::backends::BackendOut;
use super::deployments::Deployment;
use super::{Importer, Val};
use crate::config::import::yaml::{Entry, Node, Value};
use crate::config::ConfigError;

#[derive(Clone, Debug)]
pub(super) struct TargetOut {
    pub(super) backend: String,
    pub(super) model: Option<String>,
    pub(super) priority: u32,
    pub(super) weight: u32,
    pub(super) comment: String,
    pub(super) line: usize,
    pub(super) key: String,
}

#[derive(Debug)]
pub(super) struct GroupOut {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) key: String,
    pub(super) comment: String,
    pub(super) strip_prefix: bool,
    pub(super) targets: Vec<TargetOut>,
    pub(super) context_fallback: Option<Val>,
}

impl Importer {
    pub(super) fn groups(
        &mut self,
        deployments: &[Deployment],
        backends: &[BackendOut],
        backend_of: &[usize],
    ) -> Result<Vec<GroupOut>, ConfigError> {
        let mut groups: Vec<GroupOut> = Vec::new();
        for (d, &b) in deployments.iter().zip(backend_of) {
            let backend = backends[b].name.clone();
            let name = d.group.clone();
            let pattern = name.contains('*');
            let mut strip = false;
            let model = if pattern {
                let Some(prefix) = name.strip_suffix('*').filter(|p| !p.contains('*')) else {
                    return Err(self.err(
                        d.group_line,
                        &d.group_key,
                        format!("`{name}`: llm-router takes `*` only at the end of a model name (a prefix pattern like `openai/*`) or alone"),
                    ));
                };
                match d.model.strip_suffix('*') {
                    Some(m) if m.contains('*') => None,
                    Some(m) if m == prefix => Some(None),
                    Some("") => {
                        strip = !prefix.is_empty();
                        Some(None)
                    }
                    Some(_) => None,
                    None => Some(Some(d.model.clone())),
                }
                .ok_or_else(|| {
                    self.err(
                        d.line,
                        &format!("{}.litellm_params.model", d.key),
                        format!(
                            "`{}` for model_name `{name}`: llm-router can send the client's name, the part after the prefix, or a fixed model, not another pattern",
                            d.model
                        ),
                    )
                })?
            } else if d.model.contains('*') {
                return Err(self.err(
                    d.line,
                    &format!("{}.litellm_params.model", d.key),
                    format!("`{}` is a pattern, but model_name `{name}` is not", d.model),
                ));
            } else {
                Some(d.model.clone())
            };
            let target = TargetOut {
                backend,
                model,
                priority: d.order.unwrap_or(1),
                weight: d.weight.unwrap_or(1),
                comment: d.key.clone(),
                line: d.line,
                key: d.key.clone(),
            };
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => {
                    if g.strip_prefix != strip {
                        return Err(self.err(
                            d.line,
                            &d.key,
                            format!("the deployments of `{name}` disagree on whether the prefix is part of the model sent upstream; llm-router needs one rule per model name"),
                        ));
                    }
                    g.targets.push(target);
                }
                None => groups.push(GroupOut {
                    name,
                    line: d.group_line,
                    key: d.group_key.clone(),
                    comment: d.group_key.clone(),
                    strip_prefix: strip,
                    targets: vec![target],
                    context_fallback: None,
                }),
            }
        }
        Ok(groups)
    }

    /// `[{group: [fallback, ...]}, ...]` (also `{group: [...]}`) -> rules.
    #[allow(clippy::type_complexity)]
    pub(super) fn fallback_rules(
        &mut self,
        e: &Entry,
        key: &str,
    ) -> Result<Vec<(String, Vec<String>, usize, String)>, ConfigError> {
        let mut rules = Vec::new();
        let maps: Vec<(usize, &Node)> = match &e.node.value {
            Value::Seq(items) => items.iter().enumerate().collect(),
            Value::Map(_) => vec![(0, &e.node)],
            Value::Null => Vec::new(),
            _ => {
                return Err(self.err(
                    e.line,
                    key,
                    format!(
                        "must be a list like [{{\"gpt-4o\": [\"claude-sonnet\"]}}], not {}",
                        e.node.what()
                    ),
                ))
            }
        };
        for (i, m) in maps {
            let item_key = format!("{key}[{i}]");
            let Some(entries) = m.entries() else {
                return Err(self.err(
                    m.line,
                    &item_key,
                    format!(
                        "must be a mapping of a model_name to its fallbacks, not {}",
                        m.what()
                    ),
                ));
            };
            for r in entries {
                let rk = format!("{item_key}.{}", r.key);
                let list = self.name_list(&r.node, &rk)?;
                rules.push((r.key.clone(), list, r.line, rk));
            }
        }
        Ok(rules)
    }

    pub(super) fn name_list(&self, node: &Node, key: &str) -> Result<Vec<String>, ConfigError> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .map(|n| {
                    n.text().ok_or_else(|| {
                        self.err(
                            n.line,
                            key,
                            format!("must list model names, not {}", n.what()),
                        )
                    })
                })
                .collect(),
            Value::Str(s) => Ok(vec![s.clone()]),
            _ => Err(self.err(
                node.line,
                key,
                format!("must be a list of model names, not {}", node.what()),
            )),
        }
    }

    pub(super) fn append_fallbacks(
        &mut self,
        groups: &mut [GroupOut],
        originals: &[(String, Vec<TargetOut>, bool)],
        group: &str,
        list: &[String],
        line: usize,
        key: &str,
    ) {
        let Some(gi) = groups.iter().position(|g| g.name == group) else {
            self.warn(
                line,
                key,
                format!("`{group}` is no model_name in model_list; ignored"),
            );
            return;
        };
        for fallback in list {
            let Some((_, targets, strip)) = originals.iter().find(|(n, _, _)| n == fallback) else {
                self.warn(
                    line,
                    key,
                    format!("fallback `{fallback}` is no model_name in model_list; ignored"),
                );
                continue;
            };
            if fallback == group {
                continue;
            }
            let g = &mut groups[gi];
            if *strip && !g.strip_prefix {
                self.warn(line, key, format!(
                    "fallback `{fallback}` strips its prefix from the model name; as a fallback of `{group}` its targets get the client's name unchanged"
                ));
            }
            let base = g.targets.iter().map(|t| t.priority).max().unwrap_or(0);
            let min = targets.iter().map(|t| t.priority).min().unwrap_or(0);
            for t in targets {
                if g.targets
                    .iter()
                    .any(|o| o.backend == t.backend && o.model == t.model)
                {
                    continue;
                }
                let mut t = t.clone();
                t.priority = base.saturating_add(1).saturating_add(t.priority - min);
                t.comment = format!("fallback `{fallback}` ({key}), {}", t.key);
                t.line = line;
                t.key = key.to_string();
                g.targets.push(t);
            }
        }
    }

    pub(super) fn aliases(
        &mut self,
        groups: &mut Vec<GroupOut>,
        a: &Entry,
        key: &str,
    ) -> Result<(), ConfigError> {
        let Some(entries) = a.node.entries() else {
            return Err(self.err(
                a.line,
                key,
                format!("must map an alias to a model_name, not {}", a.node.what()),
            ));
        };
        for e in entries {
            let k = format!("{key}.{}", e.key);
            let target = match (&e.node.value, e.node.get("model")) {
                (Value::Map(_), Some(m)) => {
                    if e.node.get("hidden").is_some() {
                        self.warn(e.line, &k, "`hidden` has no equivalent: the alias is listed in /v1/models like any model");
                    }
                    m.node.text()
                }
                _ => e.node.text(),
            };
            let Some(target) = target else {
                return Err(self.err(e.line, &k, "must name a model_name"));
            };
            if groups.iter().any(|g| g.name == e.key) {
                self.warn(
                    e.line,
                    &k,
                    format!("`{}` is a model_name itself; the alias is ignored", e.key),
                );
                continue;
            }
            let Some(g) = groups.iter().find(|g| g.name == target) else {
                self.warn(
                    e.line,
                    &k,
                    format!("`{target}` is no model_name in model_list; ignored"),
                );
                continue;
            };
            let alias = GroupOut {
                name: e.key.clone(),
                line: e.line,
                key: k.clone(),
                comment: format!("{k}: an alias of `{target}`"),
                strip_prefix: false,
                targets: g.targets.clone(),
                context_fallback: g.context_fallback.clone(),
            };
            groups.push(alias);
        }
        Ok(())
    }
}
