//! Keys that must never show up raw: [`Secret`] and [`mask_key`].
//!
//! ```
//! use llm_router::config::Secret;
//!
//! let key = Secret::new("sk-1234567890abcdef");
//! assert_eq!(format!("{key:?}"), "Secret(sk-...def)");
//! assert_eq!(key.expose(), "sk-1234567890abcdef");
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// A credential. `Debug` and `Display` print it masked; only
/// [`expose`](Secret::expose) gives the raw value, at the one place that
/// sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a raw key.
    pub fn new(raw: impl Into<Arc<str>>) -> Self {
        Secret(raw.into())
    }

    /// The raw key, for the header that carries it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form, safe for logs and answers.
    pub fn masked(&self) -> String {
        mask_key(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Mask a key: at most its first 4 and last 4 characters show, and never
/// more than a third of it (`sk-1234567890abcdef` -> `sk-...def`; 24
/// characters or more -> `sk-1...cdef`); keys shorter than 6 characters
/// become `***`.
///
/// ```
/// use llm_router::config::mask_key;
/// assert_eq!(mask_key("sk-1234567890abcdef"), "sk-...def");
/// assert_eq!(mask_key("sk-proj-1234567890abcdefghij"), "sk-p...ghij");
/// assert_eq!(mask_key("short"), "***");
/// ```
pub fn mask_key(raw: &str) -> String {
    let len = raw.chars().count();
    // A third of the key at most, 4 + 4 at most.
    let shown = (len / 3).min(8);
    if shown < 2 {
        return "***".to_string();
    }
    let head = shown.div_ceil(2);
    let tail = shown.saturating_sub(head);
    let mut out = String::with_capacity(shown.saturating_mul(4).saturating_add(3));
    out.extend(raw.chars().take(head));
    out.push_str("...");
    out.extend(raw.chars().skip(len.saturating_sub(tail)));
    out
}

/// Shortest key [`KeyMask`] masks in answers: a shorter one would garble
/// ordinary text and is no secret worth the name.
pub const MIN_MASKED_KEY: usize = 8;

/// Finds a backend's key in upstream bytes and replaces it with its mask
/// ([`mask_key`]), chunk by chunk: the longest end of a chunk that may
/// begin the key is held back until the next chunk says (see
/// [`KeyMask::mask_chunk`]), so a key split across chunks is still found,
/// and nothing else is ever held.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use llm_router::__private::secret::{KeyMask, Secret};
///
/// let mask = KeyMask::new(&Secret::new("sk-live-0123456789abcdef")).unwrap();
/// let mut carry = BytesMut::new();
/// let a = mask.mask_chunk(&mut carry, Bytes::from_static(b"bad key sk-live-01"));
/// let b = mask.mask_chunk(&mut carry, Bytes::from_static(b"23456789abcdef!"));
/// let c = mask.finish(&mut carry);
/// assert_eq!([a, b, c].concat(), b"bad key sk-l...cdef!");
/// ```
#[derive(Debug)]
pub struct KeyMask {
    finder: memchr::memmem::Finder<'static>,
    masked: Bytes,
}

impl KeyMask {
    /// A mask for `secret`; `None` when it is shorter than [`MIN_MASKED_KEY`].
    pub fn new(secret: &Secret) -> Option<Self> {
        let raw = secret.expose();
        if raw.len() < MIN_MASKED_KEY {
            return None;
        }
        Some(KeyMask {
            finder: memchr::memmem::Finder::new(raw.as_bytes()).into_owned(),
            masked: Bytes::from(secret.masked()),
        })
    }

    fn key(&self) -> &[u8] {
        self.finder.needle()
    }

    /// Whether `text` holds the key.
    pub fn is_in(&self, text: &[u8]) -> bool {
        self.finder.find(text).is_some()
    }

    /// `text` with every occurrence of the key masked.
    pub fn mask_all(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = self.finder.find(rest) {
            let (before, found) = rest.split_at_checked(at).unwrap_or((rest, &[]));
            out.extend_from_slice(before);
            out.extend_from_slice(&self.masked);
            rest = found.get(self.key().len()..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        out
    }

    /// The next chunk of a body, masked. `carry` holds what an earlier
    /// chunk ended with that may begin the key (at most the key's length
    /// less one byte); the end of this chunk that may begin it is kept there
    /// in turn. A chunk without the key, and with no such end, comes back
    /// as it is (no copy).
    pub fn mask_chunk(&self, carry: &mut BytesMut, chunk: Bytes) -> Bytes {
        let data: Bytes = if carry.is_empty() {
            chunk
        } else {
            carry.extend_from_slice(&chunk);
            carry.split().freeze()
        };
        // Past the last whole occurrence: a key that ends as it begins must
        // not have its end held (and its start sent unmasked).
        let last = self.finder.find_iter(&data).last();
        let last_end = last.map_or(0, |at| at.saturating_add(self.key().len()));
        let held = self.held_tail(data.get(last_end..).unwrap_or_default());
        let keep = data.len().saturating_sub(held);
        let (body, tail) = data.as_ref().split_at_checked(keep).unwrap_or((&data, &[]));
        carry.extend_from_slice(tail);
        // No occurrence in `data` (one search, not a second one of `body`).
        if last.is_none() {
            return data.slice(..keep);
        }
        Bytes::from(self.mask_all(body))
    }

    /// The end of the body: whatever was held back.
    pub fn finish(&self, carry: &mut BytesMut) -> Bytes {
        carry.split().freeze()
    }

    /// Length of the longest end of `data` that is a proper beginning of the
    /// key (and is not inside a whole occurrence of it).
    fn held_tail(&self, data: &[u8]) -> usize {
        let key = self.key();
        let window = key.len().saturating_sub(1).min(data.len());
        let from = data.len().saturating_sub(window);
        let Some(first) = key.first() else {
            return 0;
        };
        let tail = data.get(from..).unwrap_or_default();
        for at in memchr::memchr_iter(*first, tail) {
            let end = tail.get(at..).unwrap_or_default();
            if key.starts_with(end) {
                return end.len();
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_raw() {
        let s = Secret::new("sk-ant-api03-abcdefghijklmnop");
        assert!(!format!("{s:?}{s}").contains("abcdefghijkl"));
    }

    #[test]
    fn unicode_safe() {
        assert_eq!(mask_key("ééééééééééééééééé"), "ééé...éé");
    }

    /// Regression: masks showed 12 characters (75% of a 16-character key).
    #[test]
    fn masks_show_at_most_4_plus_4_and_a_third() {
        for len in 0..80 {
            let key: String = (0..len)
                .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
                .collect();
            let masked = mask_key(&key);
            let shown = masked.chars().count() - 3;
            assert!(shown * 3 <= len, "{len}: {masked}");
            assert!(shown <= 8, "{len}: {masked}");
            if masked != "***" {
                let (head, tail) = masked.split_once("...").unwrap();
                assert!(head.len() <= 4 && tail.len() <= 4, "{masked}");
                assert!(key.starts_with(head) && key.ends_with(tail), "{masked}");
            }
        }
        assert_eq!(mask_key("sk-1234567890abcdef"), "sk-...def");
        assert_eq!(mask_key("0123456789abcdef"), "012...ef");
        assert_eq!(mask_key("12345"), "***");
        assert_eq!(mask_key("123456"), "1...6");
    }

    /// Every way of cutting a body gives the same masked bytes, and no
    /// piece of output holds the key.
    #[test]
    fn a_key_split_anywhere_is_masked() {
        let key = "sk-live-0123456789abcdef";
        let mask = KeyMask::new(&Secret::new(key)).unwrap();
        let body = format!("{{\"error\":\"bad key {key}, again {key}\"}} s sk-l sk-live-0");
        let expected = body.replace(key, &mask_key(key));
        for size in 1..body.len() {
            let mut carry = BytesMut::new();
            let mut out = Vec::new();
            for piece in body.as_bytes().chunks(size) {
                let got = mask.mask_chunk(&mut carry, Bytes::copy_from_slice(piece));
                assert!(!String::from_utf8_lossy(&got).contains(key));
                assert!(carry.len() < key.len());
                out.extend_from_slice(&got);
            }
            out.extend_from_slice(&mask.finish(&mut carry));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunks of {size}"
            );
        }
        assert!(KeyMask::new(&Secret::new("short")).is_none());
        // A key that ends as it begins.
        let key = "abcd-xyz-abcd";
        let mask = KeyMask::new(&Secret::new(key)).unwrap();
        let mut carry = BytesMut::new();
        let a = mask.mask_chunk(&mut carry, Bytes::from(format!("x {key}")));
        let b = mask.finish(&mut carry);
        assert_eq!([a, b].concat(), format!("x {}", mask_key(key)).as_bytes());
    }
}
