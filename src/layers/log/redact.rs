//! What no log line may hold raw: API keys and, when `[pii]` is on, PII.
//!
//! Every string of a record that a client or an upstream could have put
//! there — the bodies' values and object keys, message text included, the
//! request id, client, address, path, model and backend names, error
//! messages — goes through [`Redactor::redact`] in the writer thread, off
//! the request path (what the proxy formats itself — times, numbers, the
//! endpoint, error codes — is not):
//!
//! 1. with `mask_api_keys`, the exact keys the proxy knows (client and admin
//!    keys of `auth`, re-read after a keys reload, and the backends' own
//!    keys; keys shorter than 8 characters are left out, as they would match
//!    ordinary words), then anything that looks like a key: `sk-…`/`sk-ant-…`
//!    (with a digit), `sk_live_…`, AWS `AKIA…`/`ASIA…`, GitHub `ghp_…`/
//!    `github_pat_…`, Google `AIza…`, Slack `xox?-…`, JWTs `eyJ….eyJ….…`,
//!    the token after `Bearer`, and the value after `api_key=`,
//!    `"x-api-key": `, `password:` and the like — each becomes
//!    [`mask_key`]'s `sk-...def`;
//! 2. with a scrubber (the `pii` layer's), PII is replaced as `[pii]` says
//!    (`redact` or `mask`; `reversible` redacts).
//!
//! Most strings hold nothing to redact, so that answer is reached cheaply:
//!
//! - lengths first: no exact key fits in a string shorter than the shortest
//!   key, and no key pattern in one under 12 bytes;
//! - one scan for keys: the exact keys and both patterns are also compiled
//!   into one gate (rebuilt with the exact keys), and only a string it
//!   matches goes through the three, to be masked;
//! - a memo: a string of 6 to 64 bytes that came out unchanged is
//!   remembered (at most 4,096, then all are forgotten; and all of them
//!   when a keys reload rebuilds the exact keys), so the keys and common
//!   values of every record — `content`, `assistant`, a model name — are
//!   checked once, not once a record. Longer text (a message) is checked
//!   every time.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::{Map, Value};

use crate::layers::auth::{KeySet, KeyStore};
use crate::layers::pii::Scrubber;
use crate::secret::mask_key;

/// Whole tokens that look like keys.
const TOKENS_PATTERN: &str = concat!(
    r"(?-u)\b(?:sk|rk)-[A-Za-z0-9_\-]{8,}",
    r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}",
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"|\bAIza[0-9A-Za-z_\-]{30,}",
    r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    r"|\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
);
static TOKENS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TOKENS_PATTERN).expect("key token pattern"));

/// Secrets named by what precedes them: group 1 is the secret.
const LABELLED_PATTERN: &str = concat!(
    r"(?i)(?:(?-u:\b)bearer\s+",
    r#"|(?-u:\b)(?:x-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key|client[_-]?secret|password|passwd)["']?\s*[:=]\s*["']?)"#,
    r#"([^\s"',;&<>]{8,})"#,
);
static LABELLED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(LABELLED_PATTERN).expect("labelled secret pattern"));

/// Masks keys and scrubs PII. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct Redactor {
    mask_keys: bool,
    scrubber: Option<Scrubber>,
    store: Option<Arc<KeyStore>>,
    secrets: Vec<String>,
    /// The exact-key matcher, and the key set it was built from.
    exact: Option<Regex>,
    /// The length in bytes of the shortest key `exact` matches.
    exact_min: usize,
    /// `exact`, [`TOKENS`] and [`LABELLED`] in one: a text it does not
    /// match holds no key, and one scan tells (most texts hold none).
    gate: Option<Regex>,
    built_from: Option<Arc<KeySet>>,
    built: bool,
    /// Strings known to come out of [`redact`](Self::redact) unchanged:
    /// short ones only, emptied when the exact keys change and when full.
    clean: HashSet<Box<str>, foldhash::fast::RandomState>,
}

impl Redactor {
    /// Shortest configured key matched exactly.
    const MIN_EXACT: usize = 8;
    /// Strings at most this long (in bytes) are remembered when clean.
    const MEMO_MAX_LEN: usize = 64;
    /// At most this many are remembered (then all are forgotten).
    const MEMO_CAP: usize = 4096;
    /// Under this length a string is never worth remembering: no key
    /// pattern fits in it (see [`mask_patterns`]), and the scrubber's own
    /// first check turns it away.
    const MEMO_MIN_LEN: usize = 6;

    pub(crate) fn new(
        mask_keys: bool,
        scrubber: Option<Scrubber>,
        store: Option<Arc<KeyStore>>,
        secrets: Vec<String>,
    ) -> Redactor {
        Redactor {
            mask_keys,
            scrubber,
            store,
            secrets,
            exact: None,
            exact_min: usize::MAX,
            gate: None,
            built_from: None,
            built: false,
            clean: HashSet::default(),
        }
    }

    /// Rebuild the exact-key matcher if the key set changed (a reload).
    pub(crate) fn refresh(&mut self) {
        if !self.mask_keys {
            return;
        }
        let current = self.store.as_ref().map(|s| s.keys());
        let same = match (&current, &self.built_from) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same && self.built {
            return;
        }
        let mut keys: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        if let Some(set) = &current {
            keys.extend(set.client_keys().iter().map(|k| k.key.expose()));
            keys.extend(set.admin_keys().iter().map(|k| k.expose()));
        }
        keys.retain(|k| k.chars().count() >= Self::MIN_EXACT);
        // Longest first, so a key that contains another is masked whole.
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        keys.dedup();
        let pattern = keys
            .iter()
            .map(|k| regex::escape(k))
            .collect::<Vec<_>>()
            .join("|");
        self.exact = if keys.is_empty() {
            None
        } else {
            Regex::new(&pattern).ok()
        };
        let mut gate = format!("(?:{TOKENS_PATTERN})|(?:{LABELLED_PATTERN})");
        if self.exact.is_some() {
            gate = format!("{pattern}|{gate}");
        } else if !keys.is_empty() {
            gate.clear();
        }
        // Without it (too large a pattern, say), every check runs.
        self.gate = (!gate.is_empty()).then(|| Regex::new(&gate).ok()).flatten();
        self.exact_min = keys.iter().map(|k| k.len()).min().unwrap_or(usize::MAX);
        self.built_from = current;
        self.built = true;
        // A string clean before may hold one of the new keys.
        self.clean.clear();
    }

    /// One string, redacted. Short strings that come out unchanged are
    /// remembered, so the keys and common values of every record (`role`,
    /// `assistant`, a model name) are checked once, not once a record.
    pub(crate) fn redact<'a>(&mut self, text: &'a str) -> Cow<'a, str> {
        let memo = (Self::MEMO_MIN_LEN..=Self::MEMO_MAX_LEN).contains(&text.len())
            && (self.scrubber.is_some() || self.mask_keys && text.len() >= self.cheap_under());
        if memo && self.clean.contains(text) {
            return Cow::Borrowed(text);
        }
        let out = self.redact_uncached(text);
        if memo && matches!(out, Cow::Borrowed(_)) {
            if self.clean.len() >= Self::MEMO_CAP {
                self.clean.clear();
            }
            self.clean.insert(text.into());
        }
        out
    }

    /// Shorter than this, masking keys costs a length check or two: no
    /// exact key and no key pattern fits.
    fn cheap_under(&self) -> usize {
        self.exact_min.min(MASK_MIN_LEN)
    }

    /// [`redact`](Self::redact) without the memo.
    pub(crate) fn redact_uncached<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        let may_hold_key = self.mask_keys
            && text.len() >= self.cheap_under()
            && self.gate.as_ref().is_none_or(|g| g.is_match(text));
        if may_hold_key {
            if let Some(exact) = self
                .exact
                .as_ref()
                .filter(|e| text.len() >= self.exact_min && e.is_match(text))
            {
                if let Cow::Owned(s) =
                    exact.replace_all(text, |c: &regex::Captures<'_>| mask_key(&c[0]))
                {
                    out = Cow::Owned(s);
                }
            }
            if let Cow::Owned(s) = mask_patterns(&out) {
                out = Cow::Owned(s);
            }
        }
        if let Some(scrubber) = &self.scrubber {
            if let Cow::Owned(s) = scrubber.scrub_text(&out) {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Every string of `value` (object keys included), redacted in place.
    pub(crate) fn redact_value(&mut self, value: &mut Value) {
        self.refresh();
        self.walk(value);
    }

    pub(crate) fn walk(&mut self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(new) = self.redact(s) {
                    *s = new;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.walk(v)),
            Value::Object(map) => {
                let renamed = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if renamed {
                    let old = std::mem::take(map);
                    let mut new = Map::with_capacity(old.len());
                    for (k, mut v) in old {
                        self.walk(&mut v);
                        new.insert(self.redact(&k).into_owned(), v);
                    }
                    *map = new;
                } else {
                    map.values_mut().for_each(|v| self.walk(v));
                }
            }
            _ => {}
        }
    }
}

/// Shorter than this (in bytes), a text holds nothing [`mask_patterns`]
/// masks.
const MASK_MIN_LEN: usize = 12;

/// Mask everything that looks like a key (see the [module docs](self)).
pub(crate) fn mask_patterns(text: &str) -> Cow<'_, str> {
    // Nearly every string of a record is short or holds no key.
    if text.len() < MASK_MIN_LEN {
        return Cow::Borrowed(text);
    }
    // `is_match` first: most strings hold no key, and it stops early and
    // allocates nothing.
    let tokens = if !TOKENS.is_match(text) {
        Cow::Borrowed(text)
    } else {
        TOKENS.replace_all(text, |c: &regex::Captures<'_>| {
            let token = &c[0];
            let needs_digit = token.starts_with("sk-") || token.starts_with("rk-");
            if needs_digit && !token.bytes().any(|b| b.is_ascii_digit()) {
                token.to_string()
            } else {
                mask_key(token)
            }
        })
    };
    if !LABELLED.is_match(&tokens) {
        return match tokens {
            Cow::Owned(s) if s != text => Cow::Owned(s),
            _ => Cow::Borrowed(text),
        };
    }
    let labelled = LABELLED.replace_all(&tokens, |c: &regex::Captures<'_>| {
        let whole = c.get(0).expect("match");
        let secret = c.get(1).expect("group 1");
        let masked = if secret.as_str().contains("...") || secret.as_str() == "***" {
            // Already masked by the first pass.
            secret.as_str().to_string()
        } else {
            mask_key(secret.as_str())
        };
        format!(
            "{}{masked}",
            &whole.as_str()[..secret.start() - whole.start()]
        )
    });
    let out = match labelled {
        Cow::Owned(s) => s,
        Cow::Borrowed(_) => match tokens {
            Cow::Owned(s) => s,
            Cow::Borrowed(_) => return Cow::Borrowed(text),
        },
    };
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::auth::AuthPolicy;
    use crate::layers::pii::{Detector, PiiAction};

    #[test]
    fn key_shapes_are_masked() {
        let cases = [
            ("key sk-1234567890abcdef here", "key sk-...def here"),
            ("sk-ant-api03-AbCdEfGh12345678-xyz9", "sk-a...xyz9"),
            ("AKIAIOSFODNN7EXAMPLE", "AKI...PLE"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_...6789"),
            (
                "Authorization: Bearer abc.def-ghi_jkl012",
                "Authorization: Bearer abc...012",
            ),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_nature-1",
                "token eyJh...re-1",
            ),
            (
                r#"{"api_key": "plainsecretvalue99"}"#,
                r#"{"api_key": "pla...e99"}"#,
            ),
            ("password=hunter2hunter2", "password=hu...r2"),
            ("x-api-key: k-0123456789abcdefgh", "x-api-key: k-0...fgh"),
        ];
        for (text, want) in cases {
            assert_eq!(mask_patterns(text), want, "{text}");
        }
        // Words that only look like the start of a key are left alone.
        for text in [
            "sk-learning-rate is a flag",
            "a short sk-123",
            "ordinary text, nothing secret",
            "Bearer",
        ] {
            assert!(matches!(mask_patterns(text), Cow::Borrowed(_)), "{text}");
        }
        // Masking is stable: a masked text is not masked again.
        let once = mask_patterns("Bearer sk-1234567890abcdef").into_owned();
        assert_eq!(once, "Bearer sk-...def");
        assert_eq!(mask_patterns(&once), once);
    }

    #[test]
    fn exact_keys_and_reloads() {
        let store = Arc::new(KeyStore::new(
            AuthPolicy::new().key("team-a-secret-0001").key("short"),
        ));
        let mut r = Redactor::new(true, None, Some(store), vec!["backend-secret-xyz".into()]);
        let mut v = serde_json::json!({
            "text": "keys team-a-secret-0001 and backend-secret-xyz, short",
            "team-a-secret-0001": 1,
        });
        r.redact_value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("team-a-secret-0001"), "{text}");
        assert!(!text.contains("backend-secret-xyz"), "{text}");
        assert!(text.contains("tea...001"), "{text}");
        assert!(text.contains("short"), "{text}");
    }

    #[test]
    fn pii_after_keys() {
        let scrubber = Scrubber::new(&Detector::ALL, PiiAction::Redact);
        let mut r = Redactor::new(true, Some(scrubber), None, Vec::new());
        assert_eq!(
            r.redact("mail jo@example.com, card 4111 1111 1111 1111, key sk-1234567890abcdef"),
            "mail [EMAIL], card [CREDIT_CARD], key sk-...def"
        );
        let mut off = Redactor::new(false, None, None, Vec::new());
        assert_eq!(off.redact("sk-1234567890abcdef"), "sk-1234567890abcdef");
    }

    #[test]
    fn the_memo_forgets_on_a_reload_and_when_full() {
        let dir = std::env::temp_dir().join(format!(
            "llm-router-redact-memo-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys.txt");
        std::fs::write(&file, "old-key-0000000001\n").unwrap();
        let store = Arc::new(KeyStore::new(AuthPolicy::new().keys_file(&file).unwrap()));
        let mut r = Redactor::new(true, None, Some(store.clone()), Vec::new());
        r.refresh();
        let text = "a new-key-0000000002 here";
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
        assert!(r.clean.contains(text));
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
        assert_eq!(r.redact("old-key-0000000001"), "old...001");
        // The new key comes in with a reload: the memo no longer vouches.
        std::fs::write(&file, "old-key-0000000001\nnew-key-0000000002\n").unwrap();
        store.reload().unwrap();
        r.refresh();
        assert_eq!(r.redact(text), "a new...002 here");
        std::fs::remove_dir_all(&dir).unwrap();
        // Bounded.
        for n in 0..Redactor::MEMO_CAP + 10 {
            let text = format!("plain text number {n}");
            assert!(matches!(r.redact(&text), Cow::Borrowed(_)));
            assert!(r.clean.len() <= Redactor::MEMO_CAP);
        }
        // Only short strings are kept, and only clean ones.
        let long = "word ".repeat(20);
        r.redact(&long);
        r.redact("key sk-1234567890abcdef");
        assert!(!r.clean.contains(long.as_str()));
        assert!(!r.clean.contains("key sk-1234567890abcdef"));
        assert_eq!(r.redact("key sk-1234567890abcdef"), "key sk-...def");
    }

    #[test]
    fn the_gate_lets_every_key_through() {
        // Whatever one of the three patterns finds, the gate finds.
        let store = Arc::new(KeyStore::new(AuthPolicy::new().key("team-a-secret-0001")));
        let mut r = Redactor::new(true, None, Some(store), vec!["backend-secret-xyz".into()]);
        r.refresh();
        assert!(r.gate.is_some());
        for text in [
            "key sk-1234567890abcdef here",
            "AKIAIOSFODNN7EXAMPLE",
            "Authorization: BEARER abc.def-ghi_jkl012",
            "x-api-key: k-0123456789abcdefgh",
            "PASSWORD=hunter2hunter2",
            "uses team-a-secret-0001 and backend-secret-xyz",
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_nature-1",
        ] {
            let gated = r.redact_uncached(text);
            let mut ungated = r.clone();
            ungated.gate = None;
            assert_ne!(gated, text, "{text}");
            assert_eq!(gated, ungated.redact_uncached(text), "{text}");
        }
    }
}
