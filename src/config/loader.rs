//! [`Loader`], the validating second stage shared by every section: its
//! error constructor and generic helpers, and the duration syntax.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{env, ConfigError};
pub use crate::duration::parse_duration;

/// Reads and validates; collects nothing but the first error.
pub(super) struct Loader<'a> {
    pub(super) file: String,
    pub(super) text: &'a str,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Loader<'_> {
    pub(super) fn err(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: span.map(|s| env::line_of(self.text, s.start)),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    pub(super) fn line_of_header(&self, header: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let l = l.trim_start();
                l.starts_with(&format!("[{header}]"))
                    || l.starts_with(&format!("[[{header}]]"))
                    || l.starts_with(&format!("{header} "))
                    || l.starts_with(&format!("{header}="))
            })
            .map(|n| n + 1)
    }

    pub(super) fn duration(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        match parse_duration(v.get_ref()) {
            Ok(d) if d.is_zero() => Err(self.err(
                Some(v.span()),
                key,
                format!(
                    "`{}` is zero; a duration must be greater than 0",
                    v.get_ref()
                ),
            )),
            Ok(d) => Ok(d),
            Err(m) => Err(self.err(Some(v.span()), key, m)),
        }
    }
}
