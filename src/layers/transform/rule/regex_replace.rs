//! `regex_replace`: its flags, and its replacement text translated to the
//! regex crate's syntax (Python's `\1` and `\g<name>` too) with every group
//! it names checked against the pattern.

use regex::Regex;

use super::TransformError;

/// The flags of a `regex_replace` rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegexFlags {
    /// `IGNORECASE` (`I`): letters match either case.
    pub ignore_case: bool,
    /// `MULTILINE` (`M`): `^` and `$` match at line starts and ends.
    pub multi_line: bool,
    /// `DOTALL` (`S`): `.` matches a newline too.
    pub dot_all: bool,
}

impl RegexFlags {
    /// Parse flag names separated by `,` or `|` (`"IGNORECASE|MULTILINE"`,
    /// `"ignorecase, dotall"`; `I`, `M` and `S` are accepted too).
    ///
    /// ```
    /// use llm_router::layers::transform::RegexFlags;
    /// let f = RegexFlags::parse("IGNORECASE | DOTALL").unwrap();
    /// assert!(f.ignore_case && f.dot_all && !f.multi_line);
    /// assert!(RegexFlags::parse("VERBOSE").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, TransformError> {
        let mut flags = RegexFlags::default();
        for name in text
            .split([',', '|'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            flags.set(name)?;
        }
        Ok(flags)
    }

    /// Turn on the flag called `name`.
    pub fn set(&mut self, name: &str) -> Result<(), TransformError> {
        // Python's spelling (`re.IGNORECASE`) is accepted too.
        let bare = name.trim().trim_start_matches("re.");
        match bare.to_ascii_uppercase().as_str() {
            "IGNORECASE" | "I" => self.ignore_case = true,
            "MULTILINE" | "M" => self.multi_line = true,
            "DOTALL" | "S" => self.dot_all = true,
            _ => {
                return Err(TransformError::new(format!(
                    "unknown regex flag `{name}`; expected IGNORECASE, MULTILINE or DOTALL"
                )))
            }
        }
        Ok(())
    }
}

/// The replacement in the regex crate's syntax, with every group it names
/// checked against the pattern.
pub(super) fn translate_replacement(text: &str, regex: &Regex) -> Result<String, TransformError> {
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    let groups = regex.captures_len();
    let check = |group: &str| -> Result<(), TransformError> {
        let ok = match group.parse::<usize>() {
            Ok(n) => n < groups,
            Err(_) => names.contains(&group),
        };
        if ok {
            Ok(())
        } else {
            Err(TransformError::new(format!(
                "the replacement refers to group `{group}`, which the pattern does not have"
            )))
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek().map(|&(_, n)| n) {
                Some(d) if d.is_ascii_digit() => {
                    let mut group = String::new();
                    while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                        group.push(d);
                        chars.next();
                    }
                    check(&group)?;
                    out.push_str(&format!("${{{group}}}"));
                }
                Some('g') if text[i + 2..].starts_with('<') => {
                    let rest = &text[i + 3..];
                    let close = rest.find('>').ok_or_else(|| {
                        TransformError::new("`\\g<` in the replacement has no closing `>`")
                    })?;
                    let group = &rest[..close];
                    check(group)?;
                    out.push_str(&format!("${{{group}}}"));
                    for _ in 0..close + 3 {
                        chars.next();
                    }
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => match chars.peek().map(|&(_, n)| n) {
                Some('$') => {
                    chars.next();
                    out.push_str("$$");
                }
                Some('{') => {
                    let rest = &text[i + 2..];
                    let close = rest.find('}').ok_or_else(|| {
                        TransformError::new("`${` in the replacement has no closing `}`")
                    })?;
                    check(&rest[..close])?;
                    out.push_str(&text[i..i + 3 + close]);
                    for _ in 0..close + 2 {
                        chars.next();
                    }
                }
                Some(n) if n.is_ascii_alphanumeric() || n == '_' => {
                    let rest = &text[i + 1..];
                    let len = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let group = &rest[..len];
                    check(group)?;
                    // Braced, so `$1a` cannot be read as group `1a`.
                    out.push_str(&format!("${{{group}}}"));
                    for _ in 0..len {
                        chars.next();
                    }
                }
                _ => out.push_str("$$"),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}
