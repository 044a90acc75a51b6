//! JSONPath for `jsonpath_drop` and `jsonpath_add`: parsing a path (with
//! readable errors, single-`=` filters accepted), splitting off its last key,
//! and walking to and removing the nodes the engine finds.

use jsonpath_rust::JsonPath;
use serde_json::Value;

use super::{one_line, TransformError};

pub(super) fn parse_jsonpath(path: &str) -> Result<JsonPath, TransformError> {
    JsonPath::try_from(path).map_err(|e| {
        TransformError::new(format!(
            "invalid JSONPath `{path}`: {}",
            jsonpath_reason(&e.to_string())
        ))
    })
}

/// The parser's (pest's) multi-line report as `at character N: expected X`.
fn jsonpath_reason(message: &str) -> String {
    let at = message
        .split_once("--> ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|pos| pos.split_once(':'))
        .map(|(_, col)| col.to_string());
    let expected = message
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("= "))
        .map(str::to_string);
    match (at, expected) {
        (Some(at), Some(expected)) => format!("at character {at}: {expected}"),
        _ => one_line(message),
    }
}

/// Filters written with a single `=` (`@.role='system'`) become `==`;
/// quoted text is left alone.
pub(crate) fn normalize_jsonpath(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q && prev != '\\' {
                    quote = None;
                }
                out.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '=' if !matches!(prev, '=' | '!' | '<' | '>' | '~')
                    && chars.peek() != Some(&'=') =>
                {
                    out.push_str("==");
                }
                c => out.push(c),
            },
        }
        prev = c;
    }
    out
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '\\' | '#')
}

/// `$.a.b` → (`$.a`, `b`); `$.a['b c']` → (`$.a`, `b c`).
pub(super) fn split_last_key(path: &str) -> Option<(&str, String)> {
    let p = path.trim();
    for (close, open) in [("']", "['"), ("\"]", "[\"")] {
        if let Some(body) = p.strip_suffix(close) {
            let at = body.rfind(open)?;
            let key = &body[at + 2..];
            let parent = &p[..at];
            return Some((parent.strip_suffix('.').unwrap_or(parent), key.to_string()));
        }
    }
    let dot = p.rfind(|c: char| !is_key_char(c))?;
    let key = &p[dot + 1..];
    if !p[dot..].starts_with('.') || key.is_empty() || p[..dot].ends_with('.') {
        return None;
    }
    Some((&p[..dot], key.to_string()))
}

/// `$`, `$.a.b`, `$['a'].b` → the keys; anything else (indices, filters,
/// wildcards) → `None`.
pub(super) fn plain_keys(path: &str) -> Option<Vec<String>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let r = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(q) = r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")) {
            let close = if r.starts_with("['") { "']" } else { "\"]" };
            let end = q.find(close)?;
            keys.push(q[..end].to_string());
            rest = &q[end + 2..];
        } else if rest.starts_with('.') {
            let end = r.find(|c: char| !is_key_char(c)).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            keys.push(r[..end].to_string());
            rest = &r[end..];
        } else {
            return None;
        }
    }
    Some(keys)
}

/// One step of a path the JSONPath engine reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Index(usize),
    Key(String),
}

/// Parse a found path as jsonpath-rust reports it: `$.['a'][0].['b']`.
pub(super) fn parse_found(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(".['") {
            // Keys are not escaped: the key ends at the first `']` that is
            // followed by the end or by the next step.
            let mut from = 0;
            loop {
                let at = from + r[from..].find("']")?;
                let after = &r[at + 2..];
                if after.is_empty() || after.starts_with(".['") || after.starts_with('[') {
                    steps.push(Step::Key(r[..at].to_string()));
                    rest = after;
                    break;
                }
                from = at + 1;
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            steps.push(Step::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

pub(super) fn get_mut<'a>(doc: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(doc, |at, step| match (step, at) {
        (Step::Key(k), Value::Object(map)) => map.get_mut(k),
        (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
        _ => None,
    })
}

pub(super) fn remove_at(doc: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    match (last, get_mut(doc, parent)) {
        (Step::Key(k), Some(Value::Object(map))) => map.shift_remove(k).is_some(),
        (Step::Index(i), Some(Value::Array(items))) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}
