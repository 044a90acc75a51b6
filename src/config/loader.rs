//! [`Loader`], the validating second stage shared by every section: its
//! error constructor and generic helpers, and the duration syntax.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{env, ConfigError};

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

/// Parse a duration string: a number and a unit, `ms`, `s`, `m` or `h`
/// (`"250ms"`, `"1.5s"`, `"2m"`).
///
/// ```
/// use std::time::Duration;
/// use llm_router::config::parse_duration;
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let hint = "durations are a number and a unit: \"250ms\", \"1s\", \"2m\", \"1h\"";
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {hint}"))?;
    let millis = match unit.trim() {
        "ms" => value,
        "s" => value * 1e3,
        "m" => value * 60e3,
        "h" => value * 3600e3,
        "" => return Err(format!("`{text}` has no unit; {hint}")),
        other => return Err(format!("unknown unit `{other}` in `{text}`; {hint}")),
    };
    if !millis.is_finite() || millis > 1e13 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_micros((millis * 1e3).round() as u64))
}
