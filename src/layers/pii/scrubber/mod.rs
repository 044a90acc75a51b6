//! The pure part of the PII layer: detection, redaction, masking and
//! reversible placeholders. No tower, no I/O, no async — plain functions over
//! `&str`, unit-tested and benchmarkable on their own.
//!
//! ```
//! use llm_router::layers::pii::{Detector, PiiAction, Scrubber, Vault};
//!
//! let redact = Scrubber::new(&Detector::ALL, PiiAction::Redact);
//! assert_eq!(
//!     redact.scrub_text("Mail jane.doe@example.com or call +44 20 7946 0958."),
//!     "Mail [EMAIL] or call [PHONE]."
//! );
//! let mask = Scrubber::new(&[Detector::Email], PiiAction::Mask);
//! assert_eq!(mask.scrub_text("jane@example.com"), "ja************om");
//!
//! let reversible = Scrubber::new(&Detector::ALL, PiiAction::Reversible);
//! let mut vault = Vault::default();
//! let up = reversible.scrub_with("a@x.io, b@y.io, a@x.io", &mut vault);
//! assert_eq!(up, "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>");
//! assert_eq!(vault.restore("Reply to <EMAIL_2>"), "Reply to b@y.io");
//! ```
//!
//! # Detectors
//!
//! Each detector finds candidates with a regular expression, then validates
//! them, so that ordinary numbers, dates, times and versions are left alone:
//!
//! | detector | finds | validation |
//! | --- | --- | --- |
//! | `email` | `local@domain.tld` | not `user@host:path` (scp/ssh addresses), not `name@2x.png` |
//! | `phone` | `+44 20 7946 0958`, `+1-202-555-0143`; US `(202) 555-0143`, `202-555-0143`, `202.555.0143` | 8–15 digits after `+`; US numbers follow the NANP (area and exchange start with 2–9), one separator kind |
//! | `credit_card` | 13–19 digits, optionally in groups split by spaces or dashes | Luhn checksum, a known issuer prefix, groups of 3–6 after a first group of 4 |
//! | `ssn` | `123-45-6789` | area not 000, 666 or 9xx; group not 00; serial not 0000 |
//! | `ipv4` | `192.168.1.20` | octets 0–255 without leading zeros; not part of a longer dotted number; not after `version`, `v`, `section`, or `Product/`; not `0.0.0.0`, loopback (`127.x`), or a netmask (`255.255.255.0`, broadcast) |
//! | `ipv6` | `2001:db8::8a2e:370:7334` | parses as an IPv6 address, ≥ 2 groups, ≥ 5 hex digits with a decimal digit among them (so `::1`, `Vec::new` and times are left alone) |
//! | `iban` | `GB82 WEST 1234 5698 7654 32`, `DE89370400440532013000` | the country's length and the ISO 13616 mod-97 checksum |
//! | `api_key` | `sk-…`/`sk-ant-…` (16+ chars, with a digit), AWS `AKIA…`/`ASIA…` (20), GitHub `ghp_…`/`github_pat_…`, JWTs `eyJ….eyJ….…`, Google `AIza…`, Stripe `sk_live_…`, Slack `xox?-…` | the shape |
//!
//! Where two findings overlap, the one starting first wins, then the longer.

mod patterns;
mod validate;
mod vault;

use std::borrow::Cow;

pub use vault::Vault;

use patterns::{detect, API_KEY_MIN_LEN, PREFILTER};

/// A kind of personal or secret data the scrubber can find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Phone numbers (international with `+`, and US forms).
    Phone,
    /// Payment card numbers (Luhn-checked).
    CreditCard,
    /// US social security numbers.
    Ssn,
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// International bank account numbers (mod-97 checked).
    Iban,
    /// API keys, access tokens and JWTs.
    ApiKey,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 8] = [
        Detector::Email,
        Detector::Phone,
        Detector::CreditCard,
        Detector::Ssn,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Iban,
        Detector::ApiKey,
    ];

    /// The config name (`email`, `credit_card`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::CreditCard => "credit_card",
            Detector::Ssn => "ssn",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Iban => "iban",
            Detector::ApiKey => "api_key",
        }
    }

    /// Parse a config name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The label used in placeholders (`EMAIL`, `IP_ADDRESS`, ...); IPv4 and
    /// IPv6 share `IP_ADDRESS`.
    pub fn label(self) -> &'static str {
        match self {
            Detector::Email => "EMAIL",
            Detector::Phone => "PHONE",
            Detector::CreditCard => "CREDIT_CARD",
            Detector::Ssn => "SSN",
            Detector::Ipv4 | Detector::Ipv6 => "IP_ADDRESS",
            Detector::Iban => "IBAN",
            Detector::ApiKey => "API_KEY",
        }
    }

    /// The `redact` placeholder (`[EMAIL]`, ...).
    pub fn placeholder(self) -> &'static str {
        match self {
            Detector::Email => "[EMAIL]",
            Detector::Phone => "[PHONE]",
            Detector::CreditCard => "[CREDIT_CARD]",
            Detector::Ssn => "[SSN]",
            Detector::Ipv4 | Detector::Ipv6 => "[IP_ADDRESS]",
            Detector::Iban => "[IBAN]",
            Detector::ApiKey => "[API_KEY]",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether a match needs a decimal digit (lets text without one skip it).
    fn needs_digit(self) -> bool {
        !matches!(self, Detector::Email | Detector::ApiKey)
    }
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is done with what the detectors find.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PiiAction {
    /// Replace with a placeholder: `[EMAIL]`, `[PHONE]`, ...
    #[default]
    Redact,
    /// Keep the first two and last two characters, star the rest.
    Mask,
    /// Replace with a numbered placeholder (`<EMAIL_1>`) and remember the
    /// value in a [`Vault`], so the answer can be restored.
    Reversible,
}

impl PiiAction {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::Redact => "redact",
            PiiAction::Mask => "mask",
            PiiAction::Reversible => "reversible",
        }
    }
}

/// One piece of PII found in a text: a byte range and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub detector: Detector,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character.
    pub end: usize,
}

impl Finding {
    /// The found text.
    pub fn text<'a>(&self, haystack: &'a str) -> &'a str {
        &haystack[self.start..self.end]
    }
}

/// Finds and replaces PII. Cheap to copy; the regular expressions are
/// compiled once per process. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scrubber {
    set: u16,
    action: PiiAction,
}

impl Default for Scrubber {
    /// Every detector, `redact`.
    fn default() -> Self {
        Scrubber::new(&Detector::ALL, PiiAction::Redact)
    }
}

impl Scrubber {
    /// A scrubber running `detect` and applying `action`.
    pub fn new(detect: &[Detector], action: PiiAction) -> Self {
        Scrubber {
            set: detect.iter().fold(0, |s, d| s | d.bit()),
            action,
        }
    }

    /// The action.
    pub fn action(&self) -> PiiAction {
        self.action
    }

    /// The detectors that run.
    pub fn detectors(&self) -> impl Iterator<Item = Detector> + '_ {
        Detector::ALL
            .into_iter()
            .filter(move |d| self.set & d.bit() != 0)
    }

    /// Every piece of PII in `text`, in order, without overlaps.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.find_into(text, &mut out);
        out
    }

    /// Like [`find`](Self::find), into a reused vector (cleared first).
    pub fn find_into(&self, text: &str, out: &mut Vec<Finding>) {
        out.clear();
        if text.len() < 6 {
            return;
        }
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        let has_at = text.contains('@');
        if !has_digit && !has_at {
            // Only a key can be there: its own pattern, whose literal
            // prefixes are searched first, is far cheaper than the set.
            if self.set & Detector::ApiKey.bit() != 0 && text.len() >= API_KEY_MIN_LEN {
                detect(Detector::ApiKey, text, out);
            }
            return;
        }
        // One pass of every detector's pattern at once tells which ones can
        // match at all; most text has none, and then no detector runs.
        let mut hits = None;
        for d in self.detectors() {
            if d.needs_digit() && !has_digit || d == Detector::Email && !has_at {
                continue;
            }
            if let Some(set) = PREFILTER.as_ref() {
                let hits = hits.get_or_insert_with(|| set.matches(text));
                if !d.patterns().iter().any(|&i| hits.matched(i)) {
                    continue;
                }
            }
            detect(d, text, out);
        }
        if out.len() > 1 {
            // First start wins, then the longer, then the detector order.
            out.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end), f.detector));
            let mut end = 0;
            out.retain(|f| {
                let keep = f.start >= end;
                if keep {
                    end = f.end;
                }
                keep
            });
        }
    }

    /// Scrub `text` for logs and other one-way uses: `redact` or `mask` per
    /// the action (`reversible` redacts, as there is no answer to restore).
    pub fn scrub_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.find(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let action = match self.action {
            PiiAction::Reversible => PiiAction::Redact,
            other => other,
        };
        Cow::Owned(replace(text, &findings, |f, value| {
            one_way(action, f.detector, value)
        }))
    }

    /// Scrub `text` per the action; `reversible` numbers values in `vault`.
    pub fn scrub_with<'a>(&self, text: &'a str, vault: &mut Vault) -> Cow<'a, str> {
        let findings = self.find(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(replace(text, &findings, |f, value| match self.action {
            PiiAction::Reversible => vault.placeholder_for(f.detector, value),
            action => one_way(action, f.detector, value),
        }))
    }

    /// The replacement of one finding under a one-way action.
    pub(crate) fn one_way(&self, detector: Detector, value: &str) -> String {
        let action = match self.action {
            PiiAction::Reversible => PiiAction::Redact,
            other => other,
        };
        one_way(action, detector, value)
    }
}

fn one_way(action: PiiAction, detector: Detector, value: &str) -> String {
    match action {
        PiiAction::Mask => mask(value),
        _ => detector.placeholder().to_string(),
    }
}

fn replace(
    text: &str,
    findings: &[Finding],
    mut with: impl FnMut(&Finding, &str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for f in findings {
        out.push_str(&text[pos..f.start]);
        out.push_str(&with(f, f.text(text)));
        pos = f.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Keep the first two and last two characters and star the rest
/// (`jane@example.com` → `ja************om`); four characters or fewer are
/// starred entirely.
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 || i >= n - 2 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests;
