//! [`BudgetSpec`]: a virtual key's `budget` — dollars or tokens over a
//! period. Parsed and checked here; the `budget` layer enforces it.

use std::fmt;
use std::time::Duration;

/// The longest rolling period accepted (`"3660d"`: ten years).
pub const MAX_ROLLING: Duration = Duration::from_secs(3660 * 86_400);

/// How much a budget allows per period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BudgetLimit {
    /// `usd = 100.0`: US dollars (finite, above 0).
    Usd(f64),
    /// `tokens = 5000000`: tokens (input and output together; above 0).
    Tokens(u64),
}

impl BudgetLimit {
    /// A dollar limit: finite and above 0.
    pub fn usd(usd: f64) -> Result<BudgetLimit, String> {
        if usd.is_finite() && usd > 0.0 {
            Ok(BudgetLimit::Usd(usd))
        } else {
            Err(format!("must be a number of dollars above 0, not {usd}"))
        }
    }

    /// A token limit: above 0.
    pub fn tokens(tokens: u64) -> Result<BudgetLimit, String> {
        if tokens > 0 {
            Ok(BudgetLimit::Tokens(tokens))
        } else {
            Err("must be at least 1".into())
        }
    }
}

/// The period a budget's spend is counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// `"day"`: a calendar day.
    Day,
    /// `"week"`: a calendar week.
    Week,
    /// `"month"`: a calendar month.
    Month,
    /// `"<N>d"` or `"<N>h"`: the spend of the last N days or hours, rolling.
    Rolling(Duration),
}

impl BudgetPeriod {
    /// `day`, `week`, `month`, or a rolling window `"<N>d"` / `"<N>h"` (N a
    /// whole number from 1, at most [`MAX_ROLLING`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use llm_router::layers::auth::BudgetPeriod;
    /// assert_eq!(BudgetPeriod::parse("month"), Ok(BudgetPeriod::Month));
    /// assert_eq!(BudgetPeriod::parse("30d"), Ok(BudgetPeriod::Rolling(Duration::from_secs(30 * 86_400))));
    /// assert_eq!(BudgetPeriod::parse("12h").unwrap().to_string(), "12h");
    /// assert!(BudgetPeriod::parse("1.5d").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<BudgetPeriod, String> {
        let hint = "a period is \"day\", \"week\", \"month\", or a rolling window of whole days or hours such as \"30d\" or \"12h\"";
        let t = text.trim();
        match t {
            "day" => return Ok(BudgetPeriod::Day),
            "week" => return Ok(BudgetPeriod::Week),
            "month" => return Ok(BudgetPeriod::Month),
            _ => {}
        }
        let (number, unit) = match (t.strip_suffix('d'), t.strip_suffix('h')) {
            (Some(n), _) => (n, 86_400u64),
            (None, Some(n)) => (n, 3_600u64),
            (None, None) => return Err(format!("`{text}` is not a period; {hint}")),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{text}` is not a period; {hint}"));
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is too long"))?;
        if n == 0 {
            return Err(format!("`{text}` is zero; {hint}"));
        }
        let secs = n
            .checked_mul(unit)
            .filter(|s| *s <= MAX_ROLLING.as_secs())
            .ok_or_else(|| {
                format!(
                    "`{text}` is longer than {} days",
                    MAX_ROLLING.as_secs() / 86_400
                )
            })?;
        Ok(BudgetPeriod::Rolling(Duration::from_secs(secs)))
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetPeriod::Day => f.write_str("day"),
            BudgetPeriod::Week => f.write_str("week"),
            BudgetPeriod::Month => f.write_str("month"),
            BudgetPeriod::Rolling(d) if d.as_secs() % 86_400 == 0 => {
                write!(f, "{}d", d.as_secs() / 86_400)
            }
            BudgetPeriod::Rolling(d) => write!(f, "{}h", d.as_secs() / 3_600),
        }
    }
}

/// A virtual key's `budget = { usd = .. | tokens = .., period = .. }`.
///
/// ```
/// use llm_router::layers::auth::{BudgetLimit, BudgetPeriod, BudgetSpec};
///
/// let spec = BudgetSpec::parse(Some(100.0), None, Some("month")).unwrap();
/// assert_eq!(spec.limit, BudgetLimit::Usd(100.0));
/// assert_eq!(spec.period, BudgetPeriod::Month);
/// // Exactly one of usd and tokens.
/// assert!(BudgetSpec::parse(Some(1.0), Some(10), Some("day")).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSpec {
    /// How much per period.
    pub limit: BudgetLimit,
    /// Over what period.
    pub period: BudgetPeriod,
}

/// Why a `budget` table is refused: the key within it (`usd`, `tokens`,
/// `period`, or empty for the table itself) and the reason.
pub type BudgetError = (&'static str, String);

impl BudgetSpec {
    /// Check a `budget` table's values: exactly one of `usd` and `tokens`,
    /// and a `period`.
    pub fn parse(
        usd: Option<f64>,
        tokens: Option<u64>,
        period: Option<&str>,
    ) -> Result<BudgetSpec, BudgetError> {
        let limit = match (usd, tokens) {
            (Some(usd), None) => BudgetLimit::usd(usd).map_err(|m| ("usd", m))?,
            (None, Some(tokens)) => BudgetLimit::tokens(tokens).map_err(|m| ("tokens", m))?,
            (Some(_), Some(_)) => {
                return Err((
                    "tokens",
                    "give either `usd` or `tokens`, not both (one budget per key)".into(),
                ))
            }
            (None, None) => {
                return Err((
                    "",
                    "needs `usd = <dollars>` or `tokens = <count>`, and a `period`".into(),
                ))
            }
        };
        let Some(period) = period else {
            return Err((
                "",
                "needs a `period`: \"day\", \"week\", \"month\", or a rolling \"<N>d\" / \"<N>h\""
                    .into(),
            ));
        };
        let period = BudgetPeriod::parse(period).map_err(|m| ("period", m))?;
        Ok(BudgetSpec { limit, period })
    }

    /// The spec as `/v1/key/info` and `/admin/keys` show it (the config's
    /// own shape).
    pub fn describe(&self) -> serde_json::Value {
        let mut v = serde_json::Map::new();
        match self.limit {
            BudgetLimit::Usd(usd) => v.insert("usd".into(), usd.into()),
            BudgetLimit::Tokens(t) => v.insert("tokens".into(), t.into()),
        };
        v.insert("period".into(), self.period.to_string().into());
        serde_json::Value::Object(v)
    }
}

impl fmt::Display for BudgetSpec {
    /// `$100 per month`, `5000000 tokens per 30d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            BudgetLimit::Usd(usd) => write!(f, "${usd} per {}", self.period),
            BudgetLimit::Tokens(t) => write!(f, "{t} tokens per {}", self.period),
        }
    }
}

/// Which budget a client spends from: its virtual key's own, or the one its
/// budget group shares. The `budget` layer keeps one ledger entry per id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BudgetId {
    /// A virtual key's own budget, by the key's name.
    Key(String),
    /// A budget shared by every client of a group (keys whose metadata has
    /// the same value under the group's key, JWTs whose claim names it).
    Group(super::BudgetGroup),
}

impl fmt::Display for BudgetId {
    /// `key:<name>` or `group:<key>=<value>`, as logs show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetId::Key(name) => write!(f, "key:{name}"),
            BudgetId::Group(g) => write!(f, "group:{}={}", g.key, g.value),
        }
    }
}

/// The budget a client spends from, resolved by `auth` from the key set in
/// force: its id and its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyBudget {
    /// Which budget.
    pub id: BudgetId,
    /// How much, over what period.
    pub spec: BudgetSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(BudgetPeriod::parse("day"), Ok(BudgetPeriod::Day));
        assert_eq!(BudgetPeriod::parse(" week "), Ok(BudgetPeriod::Week));
        assert_eq!(
            BudgetPeriod::parse("1h"),
            Ok(BudgetPeriod::Rolling(Duration::from_secs(3600)))
        );
        assert_eq!(BudgetPeriod::parse("48h").unwrap().to_string(), "2d");
        assert_eq!(BudgetPeriod::parse("7d").unwrap().to_string(), "7d");
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1.5h",
            "1m",
            "30s",
            "monthly",
            "Day",
            "99999999999999999999d",
            "3661d",
        ] {
            assert!(BudgetPeriod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs() {
        let s = BudgetSpec::parse(None, Some(5_000_000), Some("30d")).unwrap();
        assert_eq!(s.limit, BudgetLimit::Tokens(5_000_000));
        assert_eq!(
            s.describe(),
            serde_json::json!({"tokens": 5_000_000, "period": "30d"})
        );
        assert_eq!(s.to_string(), "5000000 tokens per 30d");
        let usd = BudgetSpec::parse(Some(12.5), None, Some("day")).unwrap();
        assert_eq!(usd.to_string(), "$12.5 per day");
        assert_eq!(
            BudgetSpec::parse(None, None, Some("day")).unwrap_err().0,
            ""
        );
        assert_eq!(BudgetSpec::parse(Some(1.0), None, None).unwrap_err().0, "");
        assert_eq!(
            BudgetSpec::parse(Some(0.0), None, Some("day"))
                .unwrap_err()
                .0,
            "usd"
        );
        assert_eq!(
            BudgetSpec::parse(Some(f64::NAN), None, Some("day"))
                .unwrap_err()
                .0,
            "usd"
        );
        assert_eq!(
            BudgetSpec::parse(None, Some(0), Some("day")).unwrap_err().0,
            "tokens"
        );
        assert_eq!(
            BudgetSpec::parse(Some(1.0), None, Some("year"))
                .unwrap_err()
                .0,
            "period"
        );
    }
}
