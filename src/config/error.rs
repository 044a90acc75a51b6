//! [`ConfigError`]: what every step of loading a config returns on failure.

use std::fmt;

/// A configuration error: file, line, key and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment` for a bad override variable).
    pub file: String,
    /// 1-based line, when the error has one.
    pub line: Option<usize>,
    /// Dotted key path (`backends[1].timeout`), when the error has one.
    pub key: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
