//! The duration syntax of the config (`"250ms"`, `"1.5s"`, `"2m"`, `"1h"`),
//! shared by `config` and the keys file of `auth` (read again on reload).

use std::time::Duration;

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
