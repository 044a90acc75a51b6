//! Keys that must never show up raw: [`Secret`] and [`mask_key`].
//!
//! ```
//! use llm_router::secret::Secret;
//!
//! let key = Secret::new("sk-1234567890abcdef");
//! assert_eq!(format!("{key:?}"), "Secret(sk-12345...cdef)");
//! assert_eq!(key.expose(), "sk-1234567890abcdef");
//! ```

use std::fmt;
use std::sync::Arc;

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

/// Mask a key as its first eight and last four characters
/// (`sk-1234567890abcdef` -> `sk-12345...cdef`); short keys become `***`.
///
/// ```
/// assert_eq!(llm_router::secret::mask_key("sk-1234567890abcdef"), "sk-12345...cdef");
/// assert_eq!(llm_router::secret::mask_key("short"), "***");
/// ```
pub fn mask_key(raw: &str) -> String {
    if raw.is_ascii() {
        // A character is a byte: no list of them to build.
        if raw.len() < 16 {
            return "***".to_string();
        }
        let mut out = String::with_capacity(15);
        out.push_str(&raw[..8]);
        out.push_str("...");
        out.push_str(&raw[raw.len() - 4..]);
        return out;
    }
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() < 16 {
        return "***".to_string();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
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
        assert_eq!(mask_key("ééééééééééééééééé"), "éééééééé...éééé");
    }
}
