//! One transform rule: `regex_replace`, `jsonpath_drop` or `jsonpath_add`,
//! validated when it is built (a bad pattern or path never reaches a request).
//!
//! This module holds [`TransformRule`] and what it is built from; the
//! replacement syntax and flags of `regex_replace` are in `regex_replace`,
//! the JSONPath handling of `jsonpath_drop` and `jsonpath_add` in `jsonpath`.

mod jsonpath;
mod regex_replace;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonpath_rust::JsonPath;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::layers::edit::{edit_strings, Prefixes, RegexFinder};
use jsonpath::{
    get_mut, normalize_jsonpath, parse_found, parse_jsonpath, plain_keys, remove_at,
    split_last_key, Step,
};
use regex_replace::translate_replacement;
pub use regex_replace::RegexFlags;

/// Which side of the exchange a rule edits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The request, before it leaves (in the client's format).
    #[default]
    Request,
    /// The answer (in the client's format), streamed events included.
    Response,
}

impl Direction {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// A rule that could not be built: a bad pattern, path or flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(String);

impl TransformError {
    fn new(message: impl Into<String>) -> Self {
        TransformError(message.into())
    }
}

/// One transform. See the [module docs](crate::layers::transform).
#[derive(Clone, Debug)]
pub struct TransformRule {
    name: String,
    on: Direction,
    op: Op,
}

#[derive(Clone, Debug)]
enum Op {
    Regex {
        regex: Regex,
        flags: RegexFlags,
        replacement: String,
        holdback: usize,
        /// Built when a stream first needs it (request rules never do),
        /// shared by the rule's clones.
        prefixes: Arc<OnceLock<Option<Arc<Prefixes>>>>,
    },
    Drop {
        path: JsonPath,
    },
    Add {
        parent: Parent,
        key: String,
        value: Value,
    },
}

/// Where `jsonpath_add` inserts.
#[derive(Clone, Debug)]
enum Parent {
    /// A chain of object keys from the root: created when missing.
    Keys(Vec<String>),
    /// Any other JSONPath: every object it finds.
    Query(JsonPath),
}

impl TransformRule {
    /// The most bytes of a streamed text a `regex_replace` rule holds back by
    /// default, so that a match split across two events is still found. Only
    /// the tail from which the pattern could still match waits; this bounds
    /// it.
    pub const DEFAULT_HOLDBACK: usize = 64;

    /// Replace every match of `pattern` in every string value of the JSON
    /// document (keys untouched). `replacement` may refer to groups as `$1`,
    /// `${name}` (write `$$` for a literal `$`), or Python-style as `\1`,
    /// `\g<name>`.
    pub fn regex_replace(
        name: impl Into<String>,
        pattern: &str,
        replacement: &str,
        flags: RegexFlags,
    ) -> Result<Self, TransformError> {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(flags.ignore_case)
            .multi_line(flags.multi_line)
            .dot_matches_new_line(flags.dot_all)
            .build()
            .map_err(|e| {
                TransformError::new(format!(
                    "invalid regular expression: {}",
                    one_line(&e.to_string())
                ))
            })?;
        let replacement = translate_replacement(replacement, &regex)?;
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Regex {
                regex,
                flags,
                replacement,
                holdback: Self::DEFAULT_HOLDBACK,
                prefixes: Arc::default(),
            },
        })
    }

    /// Remove every node `path` finds. Filters may compare with `==` or a
    /// single `=`: `$.messages[?(@.role=='system')]`.
    pub fn jsonpath_drop(name: impl Into<String>, path: &str) -> Result<Self, TransformError> {
        let normalized = normalize_jsonpath(path);
        let parsed = parse_jsonpath(&normalized)?;
        if normalized.trim() == "$" {
            return Err(TransformError::new(
                "`$` is the whole document, which cannot be dropped",
            ));
        }
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Drop { path: parsed },
        })
    }

    /// Set `value` at `path`, whose last step must be a key (`$.metadata`,
    /// `$.a['b']`). Missing objects along a plain chain of keys are created
    /// (`$.a.b` creates `a`); with a filter or wildcard before the last key
    /// (`$.messages[?(@.role=='user')].name`), the key is set in every object
    /// found. An existing value is replaced.
    pub fn jsonpath_add(
        name: impl Into<String>,
        path: &str,
        value: Value,
    ) -> Result<Self, TransformError> {
        let normalized = normalize_jsonpath(path);
        parse_jsonpath(&normalized)?;
        let (parent, key) = split_last_key(&normalized).ok_or_else(|| {
            TransformError::new(format!(
                "`{path}` must end with a key to set, like `$.metadata` or `$.a['b']`"
            ))
        })?;
        let parent = match plain_keys(parent) {
            Some(keys) => Parent::Keys(keys),
            None => Parent::Query(parse_jsonpath(parent)?),
        };
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Add { parent, key, value },
        })
    }

    /// Apply the rule to `on` (the request by default).
    pub fn on(mut self, on: Direction) -> Self {
        self.on = on;
        self
    }

    /// For `regex_replace` on streamed answers: hold back at most `bytes` of
    /// text per event (default [`DEFAULT_HOLDBACK`](Self::DEFAULT_HOLDBACK));
    /// only the tail from which the pattern could still match waits at all.
    /// A longer match split across events may be missed.
    pub fn with_holdback(mut self, bytes: usize) -> Self {
        if let Op::Regex { holdback, .. } = &mut self.op {
            *holdback = bytes;
        }
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The side it edits.
    pub fn direction(&self) -> Direction {
        self.on
    }

    /// `regex_replace`, `jsonpath_drop` or `jsonpath_add`.
    pub fn kind(&self) -> &'static str {
        match self.op {
            Op::Regex { .. } => "regex_replace",
            Op::Drop { .. } => "jsonpath_drop",
            Op::Add { .. } => "jsonpath_add",
        }
    }

    /// Apply the rule to a whole JSON document; whether anything changed.
    ///
    /// ```
    /// use serde_json::json;
    /// use llm_router::layers::transform::TransformRule;
    ///
    /// let drop = TransformRule::jsonpath_drop("d", "$.messages[?(@.role='system')]").unwrap();
    /// let mut doc = json!({"messages": [{"role": "system"}, {"role": "user"}]});
    /// assert!(drop.apply(&mut doc));
    /// assert_eq!(doc, json!({"messages": [{"role": "user"}]}));
    /// ```
    pub fn apply(&self, doc: &mut Value) -> bool {
        match &self.op {
            Op::Regex {
                regex, replacement, ..
            } => edit_strings(
                doc,
                &mut |s| match regex.replace_all(s, replacement.as_str()) {
                    Cow::Owned(o) => Some(o),
                    Cow::Borrowed(_) => None,
                },
            ),
            Op::Drop { path } => {
                let mut found: Vec<Vec<Step>> = path
                    .find_as_path(doc)
                    .iter()
                    .filter_map(|p| parse_found(p))
                    .filter(|steps| !steps.is_empty())
                    .collect();
                // Deepest and last first, so earlier indices stay valid.
                found.sort_unstable_by(|a, b| b.cmp(a));
                found.dedup();
                found
                    .iter()
                    .fold(false, |changed, steps| remove_at(doc, steps) | changed)
            }
            Op::Add { parent, key, value } => {
                let set = |target: &mut Value| -> bool {
                    match target {
                        Value::Object(map) if map.get(key) != Some(value) => {
                            map.insert(key.clone(), value.clone());
                            true
                        }
                        _ => false,
                    }
                };
                match parent {
                    Parent::Keys(keys) => {
                        let mut at = doc;
                        for k in keys {
                            let Value::Object(map) = at else { return false };
                            at = map
                                .entry(k.clone())
                                .or_insert_with(|| Value::Object(Map::new()));
                        }
                        set(at)
                    }
                    Parent::Query(path) => {
                        let found: Vec<Vec<Step>> = path
                            .find_as_path(doc)
                            .iter()
                            .filter_map(|p| parse_found(p))
                            .collect();
                        found.iter().fold(false, |changed, steps| {
                            get_mut(doc, steps).is_some_and(set) | changed
                        })
                    }
                }
            }
        }
    }

    /// Whether it is a `regex_replace` rule.
    pub(crate) fn is_regex(&self) -> bool {
        matches!(self.op, Op::Regex { .. })
    }

    /// The streaming finder and its holdback, for `regex_replace`.
    pub(crate) fn finder(&self) -> Option<(RegexFinder, usize)> {
        match &self.op {
            Op::Regex {
                regex,
                flags,
                replacement,
                holdback,
                prefixes,
            } => {
                let prefixes = prefixes.get_or_init(|| {
                    let f = flags;
                    Prefixes::regex(regex.as_str(), f.ignore_case, f.multi_line, f.dot_all)
                        .map(Arc::new)
                });
                Some((
                    RegexFinder::new(regex.clone(), replacement.clone(), prefixes.clone()),
                    *holdback,
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Display for TransformRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, on {})",
            self.name,
            self.kind(),
            self.on.as_str()
        )
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
