//! The importer's common steps: warnings and errors at a YAML line and key,
//! origins for the generated text, and reading scalar values (strings with
//! `os.environ/NAME`, seconds, whole numbers).

use super::{Importer, Val};
use crate::config::generated::Origin;
use crate::config::import::yaml::Entry;
use crate::config::import::{duration, Warning};
use crate::config::ConfigError;

impl Importer {
    pub(super) fn warn(&mut self, line: usize, key: &str, message: impl std::fmt::Display) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    pub(super) fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    pub(super) fn origin(&self, line: usize, key: &str) -> Option<Origin> {
        Some(Origin {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
        })
    }

    /// `${NAME}` for an environment reference, with the default from
    /// `environment_variables` when it has one.
    pub(super) fn var(&mut self, name: &str, fallback: Option<&str>) -> String {
        match (self.env_defaults.get(name), fallback) {
            (Some(v), _) => format!("${{{name}:-{v}}}"),
            (_, Some(f)) => format!("${{{name}:-{f}}}"),
            _ => format!("${{{name}}}"),
        }
    }

    /// A string setting: `os.environ/NAME` becomes `${NAME}`; `${NAME}` (the
    /// simple form) is kept.
    pub(super) fn string(&mut self, entry: &Entry, key: &str) -> Result<Val, ConfigError> {
        let text = entry.node.text().ok_or_else(|| {
            self.err(
                entry.line,
                key,
                format!("must be a string, not {}", entry.node.what()),
            )
        })?;
        let text = text.trim().to_string();
        if let Some(name) = text.strip_prefix("os.environ/") {
            let var = self.var(name.trim(), None);
            return Ok(Val {
                text: var,
                comment: format!("{key}: os.environ/{}", name.trim()),
                line: entry.line,
                key: key.to_string(),
            });
        }
        Ok(Val {
            text,
            comment: key.to_string(),
            line: entry.line,
            key: key.to_string(),
        })
    }

    /// Seconds (a number, or a string holding one) as a duration string.
    pub(super) fn seconds(&mut self, entry: &Entry, key: &str) -> Result<Option<Val>, ConfigError> {
        let Some(secs) = entry.node.number() else {
            return Err(self.err(
                entry.line,
                key,
                format!(
                    "must be a number of seconds, not {}",
                    entry
                        .node
                        .text()
                        .unwrap_or_else(|| entry.node.what().into())
                ),
            ));
        };
        if !(secs > 0.0 && secs.is_finite()) {
            self.warn(
                entry.line,
                key,
                format!("`{secs}` seconds is not a duration llm-router can use; ignored"),
            );
            return Ok(None);
        }
        Ok(Some(Val {
            text: duration(secs),
            comment: format!("{key}: {secs}"),
            line: entry.line,
            key: key.to_string(),
        }))
    }

    pub(super) fn whole(&mut self, entry: &Entry, key: &str, min: u64) -> Result<u64, ConfigError> {
        match entry.node.number() {
            Some(n) if n.fract() == 0.0 && n >= min as f64 && n < 1e15 => Ok(n as u64),
            _ => Err(self.err(
                entry.line,
                key,
                format!(
                    "must be a whole number from {min} upward, not {}",
                    entry
                        .node
                        .text()
                        .unwrap_or_else(|| entry.node.what().into())
                ),
            )),
        }
    }

    /// One warning listing the keys of a mapping that have no equivalent.
    pub(super) fn unmapped(&mut self, line: usize, key: &str, names: &[&str], why: &str) {
        if names.is_empty() {
            return;
        }
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let (what, verb) = if names.len() == 1 {
            ("key", "has")
        } else {
            ("keys", "have")
        };
        self.warn(
            line,
            key,
            format!("{what} {list} {verb} no equivalent {why}; ignored"),
        );
    }
}
