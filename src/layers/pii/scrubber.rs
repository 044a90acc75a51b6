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

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, LazyLock};

use regex::{Regex, RegexSet};

use crate::layers::edit::Prefixes;

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

// ---------------------------------------------------------------------------
// Detectors

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
const API_KEY_MIN_LEN: usize = 15;

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
static PREFILTER: LazyLock<Option<RegexSet>> = LazyLock::new(|| RegexSet::new(patterns()).ok());

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
    fn patterns(self) -> &'static [usize] {
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

fn detect(d: Detector, text: &str, out: &mut Vec<Finding>) {
    let mut push = |start: usize, end: usize| {
        out.push(Finding {
            detector: d,
            start,
            end,
        })
    };
    match d {
        Detector::Email => {
            for m in EMAIL.find_iter(text) {
                if email_ok(text, m.start(), m.end()) {
                    push(m.start(), m.end());
                }
            }
        }
        Detector::Phone => {
            for m in PHONE_INTL.find_iter(text) {
                if let Some(end) = intl_phone_end(text, m.start(), m.end()) {
                    push(m.start(), end);
                }
            }
            for m in PHONE_US.find_iter(text) {
                if us_phone_ok(text, m.start(), m.end()) {
                    push(m.start(), m.end());
                }
            }
        }
        Detector::CreditCard => {
            for m in CARD.find_iter(text) {
                if card_ok(text, m.start(), m.end()) {
                    push(m.start(), m.end());
                }
            }
        }
        Detector::Ssn => {
            for m in SSN.find_iter(text) {
                if ssn_ok(text, m.start(), m.end()) {
                    push(m.start(), m.end());
                }
            }
        }
        Detector::Ipv4 => {
            for m in IPV4.find_iter(text) {
                if ipv4_ok(text, m.start(), m.end()) {
                    push(m.start(), m.end());
                }
            }
        }
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

fn before(text: &str, i: usize) -> (Option<char>, Option<char>) {
    let mut it = text[..i].chars().rev();
    (it.next(), it.next())
}

fn after(text: &str, i: usize) -> (Option<char>, Option<char>) {
    let mut it = text[i..].chars();
    (it.next(), it.next())
}

fn is_digit(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_digit())
}

fn is_alnum(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Not glued to a longer number: no digit (or `digit<sep>`) right before or after.
fn number_bounded(text: &str, start: usize, end: usize, seps: &[char]) -> bool {
    let (b1, b2) = before(text, start);
    let (a1, a2) = after(text, end);
    let glued_before = is_alnum(b1) || (b1.is_some_and(|c| seps.contains(&c)) && is_digit(b2));
    let glued_after = is_alnum(a1) || (a1.is_some_and(|c| seps.contains(&c)) && is_digit(a2));
    !glued_before && !glued_after
}

fn email_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let (local, domain) = value.split_once('@').unwrap_or((value, ""));
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    // `icon@2x.png`: a retina image name, not an address.
    let first_label = domain.split('.').next().unwrap_or("");
    if first_label.len() >= 2
        && first_label.ends_with(['x', 'X'])
        && first_label[..first_label.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return false;
    }
    // `git@github.com:org/repo.git`: an scp-style address.
    let (a1, a2) = after(text, end);
    !(a1 == Some(':') && a2.is_some_and(|c| !c.is_whitespace()))
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The end of an international number starting at `start`: the longest
/// prefix of the candidate, ending after a group, with 8 to 15 digits.
fn intl_phone_end(text: &str, start: usize, end: usize) -> Option<usize> {
    // `a+12345678` is arithmetic, not a phone number.
    let (b1, _) = before(text, start);
    if is_alnum(b1) || matches!(b1, Some(')' | ']' | '+')) {
        return None;
    }
    let value = &text[start..end];
    let mut count = 0;
    let mut ends = Vec::new();
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            count += 1;
            if bytes.get(i + 1).is_none_or(|n| !n.is_ascii_digit()) {
                ends.push((start + i + 1, count));
            }
        }
    }
    ends.into_iter()
        .rev()
        .find(|&(e, n)| (8..=15).contains(&n) && number_bounded(text, start, e, &['.', '-']))
        .map(|(e, _)| e)
}

fn us_phone_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let d = digits(value);
    if d.len() != 10 || d[0] < 2 || d[3] < 2 {
        return false;
    }
    // One separator kind between the exchange and the line: 202-555-0143, 202.555.0143.
    if !value.starts_with('(') {
        let seps: Vec<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
        if seps.first() != seps.last() {
            return false;
        }
    }
    let (b1, _) = before(text, start);
    if b1 == Some('+') {
        return false; // the international form covers it
    }
    number_bounded(text, start, end, &['.', '-'])
}

/// The Luhn checksum.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the major networks (Visa, Mastercard, Amex, Discover,
/// JCB, Diners, UnionPay, Maestro).
fn known_issuer(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    match d[0] {
        // Visa; Mastercard 51-55, Maestro 50 and 56-58; Discover, UnionPay, Maestro.
        4..=6 => true,
        2 => (2221..=2720).contains(&n(4)),
        3 => (34..=39).contains(&n(2)) || (300..=305).contains(&n(3)),
        _ => false,
    }
}

fn card_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let d = digits(value);
    if !(13..=19).contains(&d.len()) || !known_issuer(&d) || !luhn(&d) {
        return false;
    }
    let seps: Vec<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
    if let Some(&sep) = seps.first() {
        if seps.iter().any(|&c| c != sep) {
            return false;
        }
        let groups: Vec<usize> = value.split(sep).map(str::len).collect();
        if groups[0] != 4 || groups[1..].iter().any(|&g| !(3..=6).contains(&g)) {
            return false;
        }
    }
    // A space after a card is just a space (`4111 1111 1111 1111 12/25`).
    number_bounded(text, start, end, &['-', '.'])
}

fn ssn_ok(text: &str, start: usize, end: usize) -> bool {
    let d = digits(&text[start..end]);
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    if area == 0 || area == 666 || area >= 900 {
        return false;
    }
    if d[3] == 0 && d[4] == 0 || d[5..].iter().all(|&x| x == 0) {
        return false;
    }
    number_bounded(text, start, end, &['-', '.'])
}

fn ipv4_ok(text: &str, start: usize, end: usize) -> bool {
    let valid = text[start..end]
        .split('.')
        .all(|o| (o.len() == 1 || !o.starts_with('0')) && o.parse::<u16>().is_ok_and(|v| v <= 255));
    if !valid || !number_bounded(text, start, end, &['.']) {
        return false;
    }
    // 0.0.0.0, loopback, broadcast and netmasks (255.255.255.0) say nothing
    // about anyone.
    let Ok(ip) = text[start..end].parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let bits = u32::from(ip);
    if ip.is_unspecified() || ip.is_loopback() || bits.leading_ones() + bits.trailing_zeros() == 32
    {
        return false;
    }
    // `Chrome/120.0.0.0` is a product version.
    let (b1, b2) = before(text, start);
    if b1 == Some('/') && is_alnum(b2) {
        return false;
    }
    // `version 1.2.3.4`, `section 1.2.3.4`.
    let head = text[..start].trim_end_matches([' ', ':', '=']);
    let from = head.char_indices().rev().nth(11).map_or(0, |(i, _)| i);
    let lead = head[from..].to_lowercase();
    ![
        "version", "ver", "v", "release", "build", "section", "sec", "§", "chapter",
    ]
    .iter()
    .any(|w| {
        lead.ends_with(w)
            && !lead[..lead.len() - w.len()]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    })
}

fn ipv6_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let (b1, _) = before(text, start);
    if is_alnum(b1) || matches!(b1, Some(':' | '.')) {
        return None;
    }
    // A trailing `:` (end of a sentence, `addr:port`) is not part of it.
    let mut end = end;
    let mut value = &text[start..end];
    if value.parse::<Ipv6Addr>().is_err() && value.ends_with(':') && !value.ends_with("::") {
        end -= 1;
        value = &text[start..end];
    }
    value.parse::<Ipv6Addr>().ok()?;
    let (a1, _) = after(text, end);
    if is_alnum(a1) || a1 == Some(':') {
        return None;
    }
    let groups = value.split(':').filter(|g| !g.is_empty()).count();
    let hex = value.bytes().filter(u8::is_ascii_hexdigit).count();
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    (groups >= 2 && hex >= 5 && has_digit).then_some(end)
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    })
}

/// The ISO 13616 (ISO 7064 mod 97-10) checksum of a compact IBAN.
pub(crate) fn iban_checksum_ok(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The end of a valid IBAN starting at `start`, cut to its country's length.
fn iban_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let (b1, _) = before(text, start);
    if is_alnum(b1) {
        return None;
    }
    let want = iban_length(&text[start..start + 2])?;
    let mut compact = String::with_capacity(want);
    let mut stop = None;
    for (i, c) in text[start..end].char_indices() {
        if c != ' ' {
            compact.push(c);
            if compact.len() == want {
                stop = Some(start + i + 1);
                break;
            }
        }
    }
    let stop = stop?;
    let (a1, _) = after(text, stop);
    if is_alnum(a1) {
        return None;
    }
    // Spaced IBANs come in groups of four.
    let printed = &text[start..stop];
    if printed.contains(' ') {
        let groups: Vec<&str> = printed.split(' ').collect();
        let last = groups.len() - 1;
        if groups
            .iter()
            .enumerate()
            .any(|(i, g)| g.len() != 4 && !(i == last && (1..=4).contains(&g.len())))
        {
            return None;
        }
    }
    iban_checksum_ok(&compact).then_some(stop)
}

fn api_key_ok(value: &str) -> bool {
    match value.strip_prefix("sk-") {
        // `sk-` keys carry digits; a long hyphenated word does not.
        Some(rest) => rest.bytes().any(|b| b.is_ascii_digit()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Scrubber::default().scrub_text(text).into_owned()
    }

    fn kinds(text: &str) -> Vec<(Detector, String)> {
        Scrubber::default()
            .find(text)
            .iter()
            .map(|f| (f.detector, f.text(text).to_string()))
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            redact("write to jane.doe+news@mail.example.co.uk!"),
            "write to [EMAIL]!"
        );
        assert_eq!(redact("A@B.IO"), "[EMAIL]");
        for no in [
            "git@github.com:org/repo.git",
            "icon@2x.png",
            "user@localhost",
            "@decorator",
            "pkg@1.2.3",
        ] {
            assert_eq!(redact(no), no);
        }
    }

    #[test]
    fn phones() {
        for yes in [
            "+44 20 7946 0958",
            "+1-202-555-0143",
            "(202) 555-0143",
            "202-555-0143",
            "202.555.0143",
            "+33 1 23 45 67 89",
            "+49 (0)30 1234567",
        ] {
            assert_eq!(
                redact(&format!("call {yes} now")),
                "call [PHONE] now",
                "{yes}"
            );
        }
        for no in [
            "123-456-7890", // area code 1xx
            "202-555.0143", // mixed separators
            "x+12345678",   // arithmetic
            "+1",
            "2024-01-15",
            "1-800-555",
            "202-555-01439",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
    }

    #[test]
    fn cards() {
        for yes in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "5555555555554444",
            "3782 822463 10005",
            "6011111111111117",
        ] {
            assert_eq!(
                redact(&format!("card {yes}.")),
                "card [CREDIT_CARD].",
                "{yes}"
            );
        }
        for no in [
            "4111 1111 1111 1112", // Luhn fails
            "0000000000000000",
            "1705312800000",    // ms timestamp
            "9111111111111111", // no such issuer
            "4111 11111 111 1111 1",
            "1234-5678-9012-3456-7890",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
    }

    #[test]
    fn ssns() {
        assert_eq!(redact("SSN 123-45-6789."), "SSN [SSN].");
        for no in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "1123-45-6789",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
    }

    #[test]
    fn ips() {
        assert_eq!(
            redact("from 192.168.1.20 and 10.0.0.1:8080"),
            "from [IP_ADDRESS] and [IP_ADDRESS]:8080"
        );
        assert_eq!(
            redact("host 2001:db8::8a2e:370:7334 up"),
            "host [IP_ADDRESS] up"
        );
        assert_eq!(redact("fe80::1ff:fe23:4567:890a"), "[IP_ADDRESS]");
        assert_eq!(
            redact("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443"),
            "[[IP_ADDRESS]]:443"
        );
        for no in [
            "256.1.1.1",
            "1.2.3.4.5",
            "v1.2.3.4",
            "version 10.0.19041.1",
            "Chrome/120.0.0.0",
            "01.02.03.04",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.0",
            "std::io::Result",
            "Vec::new()",
            "12:30:45",
            "::1",
            "00:1a:2b:3c:4d:5e",
            "2024-01-15T10:30:00Z",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
    }

    #[test]
    fn ibans() {
        assert_eq!(
            redact("IBAN GB82 WEST 1234 5698 7654 32 please"),
            "IBAN [IBAN] please"
        );
        assert_eq!(redact("DE89370400440532013000"), "[IBAN]");
        assert_eq!(redact("FR1420041010050500013M02606."), "[IBAN].");
        for no in [
            "GB82 WEST 1234 5698 7654 33",
            "DE89370400440532013001",
            "XX12345678901234",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
        assert!(iban_checksum_ok("NL91ABNA0417164300"));
    }

    #[test]
    fn api_keys() {
        for yes in [
            "sk-proj-abcDEF1234567890abcdefXYZ",
            "sk-ant-api03-AbCdEf1234567890_-xyzXYZ0123456789",
            "sk-1234567890abcdef",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ] {
            assert_eq!(redact(&format!("key={yes} ok")), "key=[API_KEY] ok", "{yes}");
        }
        // Keys without a digit, alone (the shortest a key can be) and in
        // text without a digit or '@' (which skips every other detector).
        for yes in ["xoxb-abcdefghij", "AIzaSyAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfG"] {
            assert_eq!(redact(yes), "[API_KEY]", "{yes}");
            assert_eq!(redact(&format!("token {yes}.")), "token [API_KEY].");
        }
        for no in [
            "sk-learn",
            "sk-this-is-a-long-hyphenated-phrase",
            "AKIA1234",
        ] {
            assert_eq!(redact(no), no, "{no}");
        }
    }

    #[test]
    fn overlaps_prefer_first_then_longest() {
        let k = kinds("4111-1111-1111-1111 and 123-45-6789");
        assert_eq!(
            k,
            vec![
                (Detector::CreditCard, "4111-1111-1111-1111".to_string()),
                (Detector::Ssn, "123-45-6789".to_string())
            ]
        );
    }

    #[test]
    fn mask_keeps_ends() {
        assert_eq!(mask("jane@example.com"), "ja************om");
        assert_eq!(mask("abcd"), "****");
        assert_eq!(mask("héllo"), "hé*lo");
        let s = Scrubber::new(&[Detector::Phone], PiiAction::Mask);
        assert_eq!(s.scrub_text("+44 20 7946 0958"), "+4************58");
    }

    #[test]
    fn only_selected_detectors_run() {
        let s = Scrubber::new(&[Detector::Email], PiiAction::Redact);
        assert_eq!(s.scrub_text("a@b.io 123-45-6789"), "[EMAIL] 123-45-6789");
        assert_eq!(s.detectors().collect::<Vec<_>>(), vec![Detector::Email]);
    }

    #[test]
    fn vault_numbers_by_first_appearance() {
        let s = Scrubber::new(&Detector::ALL, PiiAction::Reversible);
        let mut v = Vault::default();
        let out = s.scrub_with("b@x.io 10.0.0.1 a@x.io b@x.io 2001:db8::1:2", &mut v);
        assert_eq!(
            out,
            "<EMAIL_1> <IP_ADDRESS_1> <EMAIL_2> <EMAIL_1> <IP_ADDRESS_2>"
        );
        assert_eq!(v.len(), 4);
        assert_eq!(
            v.restore("<EMAIL_2>, <IP_ADDRESS_1>, <EMAIL_9>"),
            "a@x.io, 10.0.0.1, <EMAIL_9>"
        );
        // Scrubbing more text with the same vault keeps the numbers.
        assert_eq!(s.scrub_with("a@x.io", &mut v), "<EMAIL_2>");
    }

    #[test]
    fn restore_escapes_for_json() {
        let mut v = Vault::default();
        v.placeholder_for(Detector::Email, "q\"uote@x.io");
        assert_eq!(
            v.restore_with("{\"to\":\"<EMAIL_1>\"}", true),
            "{\"to\":\"q\\\"uote@x.io\"}"
        );
    }

    #[test]
    fn partial_placeholders() {
        let mut v = Vault::default();
        assert_eq!(v.pending_placeholder("see <"), None);
        v.placeholder_for(Detector::Email, "a@b.io");
        v.placeholder_for(Detector::Phone, "+44 20 7946 0958");
        assert_eq!(v.pending_placeholder("see <EMA"), Some(4));
        assert_eq!(v.pending_placeholder("see <"), Some(4));
        assert_eq!(v.pending_placeholder("see <EMAIL_1"), Some(4));
        assert_eq!(v.pending_placeholder("see <PHONE_"), Some(4));
        assert_eq!(v.pending_placeholder("see <EMAIL_1>"), None);
        assert_eq!(v.pending_placeholder("see <EMAIL_2"), None);
        assert_eq!(v.pending_placeholder("see <SSN"), None);
        assert_eq!(v.pending_placeholder("a < b"), None);
        assert_eq!(v.pending_placeholder("<html"), None);
        assert_eq!(v.pending_placeholder("<EMAIL_1> <E"), Some(10));
    }

    #[test]
    fn luhn_and_mod97() {
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("79927398710")));
        assert!(iban_checksum_ok("GB82WEST12345698765432"));
        assert!(!iban_checksum_ok("GB82WEST12345698765433"));
    }
}
