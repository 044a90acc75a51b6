//! `${VAR}` / `${VAR:-default}` substitution inside the string values of a
//! TOML document, before it is parsed. Comments are left alone (so commented
//! examples may name variables that are not set), line numbers are kept, and
//! substituted values are escaped for the kind of string they land in.

/// A substitution that failed: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvError {
    /// 1-based line.
    pub line: usize,
    /// The dotted key the string belongs to, as far as it can be told.
    pub key: Option<String>,
    /// What went wrong.
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

/// Replace `${VAR}` and `${VAR:-default}` in every string of `text`.
pub(crate) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                out.push_str(&text[i..end]);
                i = end;
            }
            b'"' | b'\'' => {
                let quote = bytes[i];
                let triple = text[i..].starts_with(if quote == b'"' { "\"\"\"" } else { "'''" });
                let (kind, open) = match (quote, triple) {
                    (b'"', false) => (Kind::Basic, 1),
                    (b'"', true) => (Kind::MultiBasic, 3),
                    (_, false) => (Kind::Literal, 1),
                    (_, true) => (Kind::MultiLiteral, 3),
                };
                let start = i + open;
                let end = find_string_end(text, start, kind);
                out.push_str(&text[i..start]);
                out.push_str(&substitute_in(text, start, end, kind, env)?);
                // Copy the closing delimiter, if the string has one.
                let close = match bytes.get(end) {
                    Some(b'"') | Some(b'\'') => open,
                    _ => 0,
                };
                out.push_str(&text[end..(end + close).min(text.len())]);
                i = (end + close).min(text.len());
            }
            _ => {
                let next = text[i..]
                    .find(['#', '"', '\''])
                    .map_or(text.len(), |n| i + n);
                out.push_str(&text[i..next]);
                i = next;
            }
        }
    }
    Ok(out)
}

/// The index of the closing delimiter of a string whose content starts at `start`
/// (or the end of the line/text for an unterminated one; the TOML parser reports that).
fn find_string_end(text: &str, start: usize, kind: Kind) -> usize {
    let bytes = text.as_bytes();
    let mut j = start;
    while j < bytes.len() {
        match (kind, bytes[j]) {
            (Kind::Basic | Kind::MultiBasic, b'\\') => j += 2,
            (Kind::Basic, b'"') | (Kind::Literal, b'\'') => return j,
            (Kind::Basic | Kind::Literal, b'\n') => return j,
            (Kind::MultiBasic, b'"') if text[j..].starts_with("\"\"\"") => return j,
            (Kind::MultiLiteral, b'\'') if text[j..].starts_with("'''") => return j,
            _ => j += 1,
        }
    }
    bytes.len().min(j)
}

fn substitute_in(
    text: &str,
    start: usize,
    end: usize,
    kind: Kind,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let content = &text[start..end];
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    let mut offset = start;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let at = offset + pos;
        let err = |message: String| EnvError {
            line: line_of(text, at),
            key: key_at(text, at),
            message,
        };
        let Some(close) = rest[pos..].find('}') else {
            return Err(err("`${` without a closing `}`".into()));
        };
        let inner = &rest[pos + 2..pos + close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(err(format!(
                "`${{{inner}}}` is not a valid variable reference (use ${{NAME}} or ${{NAME:-default}})"
            )));
        }
        let value = match (env(name), default) {
            (Some(v), Some(d)) if v.is_empty() => d.to_string(),
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(err(format!(
                "environment variable {name} is not set (write ${{{name}:-default}} to allow that)"
            )))
            }
        };
        out.push_str(&escape(&value, kind).map_err(|m| err(format!("{name}: {m}")))?);
        let consumed = pos + close + 1;
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push_str(rest);
    Ok(out)
}

fn escape(value: &str, kind: Kind) -> Result<String, String> {
    match kind {
        Kind::Basic | Kind::MultiBasic => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
            Ok(out)
        }
        Kind::Literal if value.contains(['\'', '\n', '\r']) => Err(
            "the value contains a quote or a line break, which a '...' string cannot hold; use a \"...\" string".into(),
        ),
        Kind::MultiLiteral if value.contains("'''") => {
            Err("the value contains ''', which a '''...''' string cannot hold".into())
        }
        _ => Ok(value.to_string()),
    }
}

/// 1-based line of byte offset `at`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Best guess at the dotted key owning the value at `at`: the nearest table
/// header above it and the nearest `key =` before it on its line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
    let before = &text[line_start..at];
    let key = before.rfind('=').and_then(|eq| {
        let head = before[..eq].trim_end();
        let start = head
            .rfind(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '"')
            })
            .map_or(0, |n| n + 1);
        let key = head[start..].trim_matches('"');
        (!key.is_empty()).then(|| key.to_string())
    });
    let header = |l: &str| -> Option<(String, bool)> {
        let l = l.trim();
        l.starts_with('[').then(|| {
            let name = l
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            (name, l.starts_with("[["))
        })
    };
    let above = &text[..line_start];
    let table = above.lines().rev().find_map(header).map(|(name, array)| {
        if !array {
            return name;
        }
        // `[[backends]]`: which entry, counted like the key paths of other errors.
        let index = above
            .lines()
            .filter_map(header)
            .filter(|(n, a)| *a && *n == name)
            .count()
            - 1;
        format!("{name}[{index}]")
    });
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            "QUOTE" => Some("a\"b\\c\nd".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_in_strings_only() {
        let t = "# api_key = \"${MISSING}\"\na = \"${KEY}\" # ${MISSING}\nb = '${KEY}x'\n";
        let out = substitute(t, &env).unwrap();
        assert_eq!(
            out,
            "# api_key = \"${MISSING}\"\na = \"sk-1\" # ${MISSING}\nb = 'sk-1x'\n"
        );
    }

    #[test]
    fn defaults() {
        let out = substitute(
            "a = \"${MISSING:-dflt}\"\nb = \"${EMPTY:-e}\"\nc = \"${MISSING:-}\"",
            &env,
        )
        .unwrap();
        assert_eq!(out, "a = \"dflt\"\nb = \"e\"\nc = \"\"");
    }

    #[test]
    fn unset_names_var_line_and_key() {
        let t = "[server]\nlisten = \"x\"\n\n[auth]\nkeys = [\"${PROXY_KEY}\"]\n";
        let e = substitute(t, &env).unwrap_err();
        assert_eq!(e.line, 5);
        assert_eq!(e.key.as_deref(), Some("auth.keys"));
        assert!(e.message.contains("PROXY_KEY"), "{}", e.message);
    }

    #[test]
    fn escapes_values() {
        let out = substitute("a = \"${QUOTE}\"", &env).unwrap();
        let v: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(v["a"].as_str().unwrap(), "a\"b\\c\nd");
        assert_eq!(out.lines().count(), 1);
        assert!(substitute("a = '${QUOTE}'", &env).is_err());
    }

    #[test]
    fn bad_reference() {
        assert!(substitute("a = \"${1X}\"", &env).is_err());
        assert!(substitute("a = \"${KEY\"", &env).is_err());
        assert_eq!(
            substitute("a = \"$HOME $\"", &env).unwrap(),
            "a = \"$HOME $\""
        );
    }

    #[test]
    fn multiline_strings() {
        let t = "a = \"\"\"\nx ${KEY}\n\"\"\"\nb = '''${KEY}'''";
        let out = substitute(t, &env).unwrap();
        assert!(out.contains("x sk-1"));
        assert!(out.ends_with("'''sk-1'''"));
    }
}
