//! [`Vault`]: the values behind the numbered placeholders of one request
//! (`reversible`), and their restoring in the answer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::Detector;

/// The values behind the placeholders of one request (`reversible`).
///
/// Each distinct value gets the next number of its label, by first
/// appearance: `<EMAIL_1>`, `<EMAIL_2>`, `<PHONE_1>`; the same value always
/// gets the same placeholder.
#[derive(Clone, Debug, Default)]
pub struct Vault {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, String>,
    counts: HashMap<&'static str, usize>,
}

/// Placeholders [`Vault::restore`] recognises.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<(?:EMAIL|PHONE|CREDIT_CARD|SSN|IP_ADDRESS|IBAN|API_KEY)_[0-9]{1,6}>")
        .expect("placeholder regex")
});

/// The longest placeholder: `<CREDIT_CARD_999999>`.
pub(crate) const MAX_PLACEHOLDER: usize = 20;

impl Vault {
    /// The placeholder of `value`, numbering it if it is new.
    pub fn placeholder_for(&mut self, detector: Detector, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let label = detector.label();
        let n = self.counts.entry(label).or_insert(0);
        *n += 1;
        let placeholder = format!("<{label}_{n}>");
        self.by_value.insert(value.to_string(), placeholder.clone());
        self.by_placeholder
            .insert(placeholder.clone(), value.to_string());
        placeholder
    }

    /// The value behind `placeholder`.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// How many distinct values were replaced.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// `text` with every known placeholder replaced by its value (unknown
    /// ones are left as they are).
    pub fn restore<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.restore_with(text, false)
    }

    /// Like [`restore`](Self::restore); with `json_escape`, values are
    /// escaped for the inside of a JSON string (tool-call arguments).
    pub(crate) fn restore_with<'a>(&self, text: &'a str, json_escape: bool) -> Cow<'a, str> {
        if self.is_empty() || !text.contains('<') {
            return Cow::Borrowed(text);
        }
        PLACEHOLDER.replace_all(text, |caps: &regex::Captures<'_>| {
            let p = &caps[0];
            match self.original(p) {
                Some(v) if json_escape => {
                    let quoted = serde_json::Value::from(v).to_string();
                    quoted[1..quoted.len() - 1].to_string()
                }
                Some(v) => v.to_string(),
                None => p.to_string(),
            }
        })
    }
}

impl Vault {
    /// Where the beginning of one of its placeholders ends `text`
    /// (`"see <EMA"` → `Some(4)` when `<EMAIL_1>` is one), so a stream can
    /// hold that part back: only a strict prefix of a known placeholder
    /// waits (`<`, `<EM`, `<EMAIL_1`), anything else is sent.
    pub(crate) fn pending_placeholder(&self, text: &str) -> Option<usize> {
        let lt = text.rfind('<')?;
        let tail = text.get(lt..)?;
        (tail.len() < MAX_PLACEHOLDER
            && self
                .by_placeholder
                .keys()
                .any(|p| p.len() > tail.len() && p.starts_with(tail)))
        .then_some(lt)
    }
}
