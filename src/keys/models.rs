//! [`ModelAllowList`]: which models a virtual key may ask for — exact names
//! and glob patterns (`*` any run of characters, `?` one character).

use std::fmt;

/// The longest pattern accepted in `models`.
pub const MAX_PATTERN_LEN: usize = 256;

/// The most entries one `models` list may hold.
pub const MAX_PATTERNS: usize = 1000;

/// Model names longer than this never match (no model name is that long;
/// it also bounds the matching work a client's string can cause).
pub const MAX_MODEL_NAME_LEN: usize = 1024;

/// One entry of a key's `models`: an exact name, or a glob pattern when it
/// holds `*` or `?`.
#[derive(Clone, PartialEq, Eq)]
pub struct ModelPattern {
    text: Box<str>,
    glob: bool,
}

impl ModelPattern {
    /// Check and keep one entry: not empty, at most [`MAX_PATTERN_LEN`]
    /// characters, no whitespace or control characters.
    ///
    /// ```
    /// use llm_router::layers::auth::ModelPattern;
    /// assert!(ModelPattern::parse("claude-*").unwrap().matches("claude-sonnet-4-0"));
    /// assert!(ModelPattern::parse("gpt 4").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<ModelPattern, String> {
        if text.is_empty() {
            return Err("is empty; give a model name or a pattern such as \"claude-*\"".into());
        }
        if text.chars().count() > MAX_PATTERN_LEN {
            return Err(format!("is longer than {MAX_PATTERN_LEN} characters"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{}` holds whitespace or a control character, which no model name has",
                text.escape_debug()
            ));
        }
        Ok(ModelPattern {
            glob: text.contains(['*', '?']),
            text: text.into(),
        })
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `model` is this name, or matches this pattern.
    pub fn matches(&self, model: &str) -> bool {
        if model.len() > MAX_MODEL_NAME_LEN {
            return false;
        }
        if self.glob {
            glob_match(self.text.as_bytes(), model.as_bytes())
        } else {
            *self.text == *model
        }
    }
}

impl fmt::Debug for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// `*` matches any run of bytes (the empty one too), `?` one character;
/// everything else matches itself. Greedy with one backtrack point: linear
/// in `text` for each `*` of the pattern, no recursion.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where the last `*` was, and where in `text` it now ends.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                // One character: a whole UTF-8 sequence.
                p += 1;
                t = next_char(text, t);
            }
            Some(c) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    // The `*` takes one more character; retry after it.
                    let st = next_char(text, st);
                    star = Some((sp, st));
                    p = sp + 1;
                    t = st;
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == b'*')
}

/// The index after the UTF-8 character starting at `at`.
fn next_char(text: &[u8], at: usize) -> usize {
    let mut end = at.saturating_add(1);
    while text.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        end += 1;
    }
    end.min(text.len())
}

/// A virtual key's `models`: the names and patterns it may ask for. No list
/// (`None` where it is held) allows every model; a list allows a model that
/// any entry matches.
///
/// ```
/// use llm_router::layers::auth::ModelAllowList;
///
/// let list = ModelAllowList::new(["gpt-4o", "claude-*"]).unwrap();
/// assert!(list.allows("gpt-4o"));
/// assert!(list.allows("claude-sonnet-4-0"));
/// assert!(!list.allows("gpt-4o-mini"));
/// assert!(ModelAllowList::new(Vec::<String>::new()).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ModelAllowList {
    patterns: Vec<ModelPattern>,
}

impl ModelAllowList {
    /// A list of these entries (each checked by [`ModelPattern::parse`]).
    /// An empty list is refused: it would allow no model at all.
    pub fn new<I, S>(entries: I) -> Result<ModelAllowList, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let p = ModelPattern::parse(e.as_ref()).map_err(|m| format!("[{i}] {m}"))?;
            patterns.push(p);
        }
        ModelAllowList::from_patterns(patterns)
    }

    /// A list of already checked entries (duplicates dropped).
    pub fn from_patterns(patterns: Vec<ModelPattern>) -> Result<ModelAllowList, String> {
        if patterns.is_empty() {
            return Err(
                "is empty, which allows no model; leave `models` out to allow every model".into(),
            );
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("has more than {MAX_PATTERNS} entries"));
        }
        let mut out: Vec<ModelPattern> = Vec::with_capacity(patterns.len());
        for p in patterns {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(ModelAllowList { patterns: out })
    }

    /// Whether `model` may be asked for.
    pub fn allows(&self, model: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(model))
    }

    /// The entries, as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(ModelPattern::as_str)
    }
}

impl fmt::Debug for ModelAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        ModelPattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn exact_names() {
        assert!(m("gpt-4o", "gpt-4o"));
        assert!(!m("gpt-4o", "gpt-4o-mini"));
        assert!(!m("gpt-4o", "GPT-4O"));
        assert!(!m("gpt-4o", ""));
    }

    #[test]
    fn globs() {
        assert!(m("claude-*", "claude-"));
        assert!(m("claude-*", "claude-sonnet-4-0"));
        assert!(!m("claude-*", "claud"));
        assert!(!m("claude-*", "xclaude-3"));
        assert!(m("*", "anything/at-all"));
        assert!(m("*-mini", "gpt-4o-mini"));
        assert!(!m("*-mini", "gpt-4o-mini-2"));
        assert!(m("gpt-*-mini", "gpt-4o-mini"));
        assert!(m("gpt-*-mini", "gpt--mini"));
        assert!(!m("gpt-*-mini", "gpt-mini"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abcbc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("gpt-4?", "gpt-4o"));
        assert!(!m("gpt-4?", "gpt-4"));
        assert!(m("m?del", "mödel"), "? is one character, not one byte");
        assert!(m("**", ""));
        assert!(m("openai/*", "openai/gpt-4o"));
    }

    #[test]
    fn many_stars_on_a_long_name_stay_cheap() {
        let name = "a".repeat(MAX_MODEL_NAME_LEN);
        assert!(!m("*a*a*a*a*a*a*a*b", &name));
        assert!(m("*a*a*a*a*a*a*a*", &name));
        // Past the bound nothing matches, not even `*`.
        assert!(!m("*", &"a".repeat(MAX_MODEL_NAME_LEN + 1)));
    }

    #[test]
    fn bad_entries() {
        assert!(ModelPattern::parse("").is_err());
        assert!(ModelPattern::parse("a b").is_err());
        assert!(ModelPattern::parse("a\nb").is_err());
        assert!(ModelPattern::parse(&"x".repeat(MAX_PATTERN_LEN + 1)).is_err());
        let e = ModelAllowList::new(["ok", ""]).unwrap_err();
        assert!(e.starts_with("[1]"), "{e}");
        let list = ModelAllowList::new(["a", "a", "b*"]).unwrap();
        assert_eq!(list.patterns().collect::<Vec<_>>(), ["a", "b*"]);
    }
}
