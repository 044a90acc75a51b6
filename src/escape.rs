//! [`Escaped`]: a client's (or an upstream's) string made safe for a text
//! log line.
//!
//! The stderr log is text, one event a line. A value formatted with `%`
//! (`Display`) is written as it is, so a model name holding `\n` would start
//! a line of its own, and one holding ` status=200` would add a field that
//! was never there. Wrapped in [`Escaped`], the value is written quoted,
//! with `"`, `\` and every control or line-breaking character escaped
//! (`\n`, `\u{1b}`, `\u{2028}`), and cut after [`Escaped::MAX_CHARS`]
//! characters (a 20 KB model name is not worth 20 KB of log).
//!
//! ```
//! use llm_router::__private::escape::Escaped;
//!
//! let model = "gpt-4\nINFO forged line";
//! assert_eq!(
//!     Escaped(model).to_string(),
//!     r#""gpt-4\nINFO forged line""#
//! );
//! // In a tracing event: `tracing::warn!(model = %Escaped(&model), "...")`.
//! ```

use std::fmt::{self, Display, Write};

/// A value whose `Display` is the wrapped value's, quoted and escaped for a
/// text log line (see the module docs of `escape`).
#[derive(Clone, Copy, Debug)]
pub struct Escaped<T>(pub T);

impl<T> Escaped<T> {
    /// At most this many characters of the value are written; a longer one
    /// ends with `…`.
    pub const MAX_CHARS: usize = 256;
}

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let mut out = Escaper {
            f,
            left: Self::MAX_CHARS,
            cut: false,
        };
        // `Escaper` stops taking characters at the cap (the value's own
        // formatting still runs, its output dropped).
        write!(out, "{}", self.0)?;
        let cut = out.cut;
        if cut {
            f.write_char('…')?;
        }
        f.write_char('"')
    }
}

/// Writes what it is given escaped, up to `left` characters.
struct Escaper<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.left == 0 {
                self.cut = true;
                return Ok(());
            }
            self.left -= 1;
            match c {
                '"' => self.f.write_str("\\\"")?,
                '\\' => self.f.write_str("\\\\")?,
                '\n' => self.f.write_str("\\n")?,
                '\r' => self.f.write_str("\\r")?,
                '\t' => self.f.write_str("\\t")?,
                // C0 and C1 controls (ESC starts terminal sequences), DEL,
                // and the Unicode line and paragraph separators.
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                    write!(self.f, "\\u{{{:x}}}", u32::from(c))?
                }
                c => self.f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_quotes_and_separators_are_escaped() {
        let show = |s: &str| Escaped(s).to_string();
        assert_eq!(show("gpt-4o"), r#""gpt-4o""#);
        assert_eq!(
            show("m\nINFO llm_router: forged\r\n"),
            r#""m\nINFO llm_router: forged\r\n""#
        );
        assert_eq!(show("a\"b\\c\td"), r#""a\"b\\c\td""#);
        assert_eq!(
            show("\u{1b}[31mred\u{0}\u{7f}\u{85}\u{2028}\u{2029}"),
            r#""\u{1b}[31mred\u{0}\u{7f}\u{85}\u{2028}\u{2029}""#
        );
        // Printable text, any script, stays as it is.
        assert_eq!(show("modèle 模型 😀"), "\"modèle 模型 😀\"");
        // The line never holds a raw line break or control, whatever the value.
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            let shown = show(&format!("a{c}b"));
            assert!(
                !shown.contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn long_values_are_cut() {
        let long = "é".repeat(10_000);
        let shown = Escaped(&long).to_string();
        assert_eq!(
            shown,
            format!("\"{}…\"", "é".repeat(Escaped::<()>::MAX_CHARS))
        );
        let exact = "x".repeat(Escaped::<()>::MAX_CHARS);
        assert_eq!(Escaped(&exact).to_string(), format!("\"{exact}\""));
    }

    #[test]
    fn any_display_value_is_escaped() {
        let e = crate::error::ProxyError::ModelNotFound("evil\nWARN forged".into());
        let shown = Escaped(&e).to_string();
        assert!(shown.contains("evil\\nWARN forged"), "{shown}");
        assert!(!shown.contains('\n'));
    }
}
