//! The detectors' regular expressions: each detector's candidates, the
//! one-pass prefilter over all of them, and the prefixes a stream holds
//! back. Candidates are then checked by [`validate`](super::validate).

use std::sync::{Arc, LazyLock};

use regex::{Regex, RegexSet};

use super::validate::{
    api_key_ok, card_ok, email_ok, iban_end, intl_phone_end, ipv4_ok, ipv6_end, ssn_ok, us_phone_ok,
};
use super::{Detector, Finding, Scrubber};
use crate::layers::edit::Prefixes;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in PII pattern")
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}"));
static PHONE_INTL: LazyLock<Regex> =
    LazyLock::new(|| re(r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}"));
static PHONE_US: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\([0-9]{3}\) ?|\b[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9](?:[ -]?[0-9]){12,18}\b"));
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"));
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| re(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}"));
static API_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\bsk-[A-Za-z0-9_-]{16,}",
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
        r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        r"|\bAIza[0-9A-Za-z_-]{35}\b",
        r"|\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}\b",
        r"|\bxox[abposr]-[0-9A-Za-z-]{10,}\b",
    ))
});

/// The shortest text [`API_KEY`] can match (`xox?-` and ten more).
pub(super) const API_KEY_MIN_LEN: usize = 15;

/// Every detector's pattern, in the order [`Detector::patterns`] names them.
fn patterns() -> [&'static str; 9] {
    [
        EMAIL.as_str(),
        PHONE_INTL.as_str(),
        PHONE_US.as_str(),
        CARD.as_str(),
        SSN.as_str(),
        IPV4.as_str(),
        IPV6.as_str(),
        IBAN.as_str(),
        API_KEY.as_str(),
    ]
}

/// Every detector's pattern in one set. `None` (never expected) runs every
/// detector.
pub(super) static PREFILTER: LazyLock<Option<RegexSet>> =
    LazyLock::new(|| RegexSet::new(patterns()).ok());

/// Where a detector's pattern could still match in a growing text (streamed
/// answers hold back only that). `None` (never expected): streams hold back
/// their fixed tail.
static PREFIXES: LazyLock<Option<Arc<Prefixes>>> =
    LazyLock::new(|| Prefixes::any_of(&patterns()).map(Arc::new));

impl Scrubber {
    /// [`Prefixes`] of its detectors' patterns, with the pattern indices to
    /// ask about (`None`: all of them). Always the same [`Prefixes`] (the
    /// streams' lazy DFA caches are shared per thread on that ground).
    pub(crate) fn prefixes(&self) -> Option<(Arc<Prefixes>, Option<Vec<usize>>)> {
        let prefixes = PREFIXES.as_ref()?.clone();
        let only = (self.detectors().count() < Detector::ALL.len()).then(|| {
            self.detectors()
                .flat_map(|d| d.patterns().iter().copied())
                .collect()
        });
        Some((prefixes, only))
    }
}

impl Detector {
    /// Indices of this detector's patterns in [`PREFILTER`].
    pub(super) fn patterns(self) -> &'static [usize] {
        match self {
            Detector::Email => &[0],
            Detector::Phone => &[1, 2],
            Detector::CreditCard => &[3],
            Detector::Ssn => &[4],
            Detector::Ipv4 => &[5],
            Detector::Ipv6 => &[6],
            Detector::Iban => &[7],
            Detector::ApiKey => &[8],
        }
    }
}

pub(super) fn detect(d: Detector, text: &str, out: &mut Vec<Finding>) {
    let mut push = |start: usize, end: usize| {
        out.push(Finding {
            detector: d,
            start,
            end,
        })
    };
    match d {
        Detector::Email => valid(&EMAIL, text, email_ok).for_each(|(s, e)| push(s, e)),
        Detector::Phone => {
            for m in PHONE_INTL.find_iter(text) {
                if let Some(end) = intl_phone_end(text, m.start(), m.end()) {
                    push(m.start(), end);
                }
            }
            valid(&PHONE_US, text, us_phone_ok).for_each(|(s, e)| push(s, e));
        }
        Detector::CreditCard => valid(&CARD, text, card_ok).for_each(|(s, e)| push(s, e)),
        Detector::Ssn => valid(&SSN, text, ssn_ok).for_each(|(s, e)| push(s, e)),
        Detector::Ipv4 => valid(&IPV4, text, ipv4_ok).for_each(|(s, e)| push(s, e)),
        Detector::Ipv6 => {
            for m in IPV6.find_iter(text) {
                if let Some(end) = ipv6_end(text, m.start(), m.end()) {
                    push(m.start(), end);
                }
            }
        }
        Detector::Iban => {
            let mut at = 0;
            while let Some(m) = IBAN.find_at(text, at) {
                match iban_end(text, m.start(), m.end()) {
                    Some(end) => {
                        push(m.start(), end);
                        at = end;
                    }
                    None => at = m.start() + 1,
                }
            }
        }
        Detector::ApiKey => {
            for m in API_KEY.find_iter(text) {
                if api_key_ok(m.as_str()) {
                    push(m.start(), m.end());
                }
            }
        }
    }
}

/// Every match of `re` in `text` that `ok` accepts, as a byte range.
fn valid<'t>(
    re: &'static Regex,
    text: &'t str,
    ok: fn(&str, usize, usize) -> bool,
) -> impl Iterator<Item = (usize, usize)> + 't {
    re.find_iter(text)
        .map(|m| (m.start(), m.end()))
        .filter(move |&(start, end)| ok(text, start, end))
}
