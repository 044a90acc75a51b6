//! One transform rule: `regex_replace`, `jsonpath_drop` or `jsonpath_add`,
//! validated when it is built (a bad pattern or path never reaches a request).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonpath_rust::JsonPath;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::layers::edit::{edit_strings, Prefixes, RegexFinder};

/// Which side of the exchange a rule edits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The request, before it leaves (in the client's format).
    #[default]
    Request,
    /// The answer (in the client's format), streamed events included.
    Response,
}

impl Direction {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// A rule that could not be built: a bad pattern, path or flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(String);

impl TransformError {
    fn new(message: impl Into<String>) -> Self {
        TransformError(message.into())
    }
}

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

/// One transform. See the [module docs](crate::layers::transform).
#[derive(Clone, Debug)]
pub struct TransformRule {
    name: String,
    on: Direction,
    op: Op,
}

#[derive(Clone, Debug)]
enum Op {
    Regex {
        regex: Regex,
        flags: RegexFlags,
        replacement: String,
        holdback: usize,
        /// Built when a stream first needs it (request rules never do),
        /// shared by the rule's clones.
        prefixes: Arc<OnceLock<Option<Arc<Prefixes>>>>,
    },
    Drop {
        path: JsonPath,
    },
    Add {
        parent: Parent,
        key: String,
        value: Value,
    },
}

/// Where `jsonpath_add` inserts.
#[derive(Clone, Debug)]
enum Parent {
    /// A chain of object keys from the root: created when missing.
    Keys(Vec<String>),
    /// Any other JSONPath: every object it finds.
    Query(JsonPath),
}

impl TransformRule {
    /// The most bytes of a streamed text a `regex_replace` rule holds back by
    /// default, so that a match split across two events is still found. Only
    /// the tail from which the pattern could still match waits; this bounds
    /// it.
    pub const DEFAULT_HOLDBACK: usize = 64;

    /// Replace every match of `pattern` in every string value of the JSON
    /// document (keys untouched). `replacement` may refer to groups as `$1`,
    /// `${name}` (write `$$` for a literal `$`), or Python-style as `\1`,
    /// `\g<name>`.
    pub fn regex_replace(
        name: impl Into<String>,
        pattern: &str,
        replacement: &str,
        flags: RegexFlags,
    ) -> Result<Self, TransformError> {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(flags.ignore_case)
            .multi_line(flags.multi_line)
            .dot_matches_new_line(flags.dot_all)
            .build()
            .map_err(|e| {
                TransformError::new(format!(
                    "invalid regular expression: {}",
                    one_line(&e.to_string())
                ))
            })?;
        let replacement = translate_replacement(replacement, &regex)?;
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Regex {
                regex,
                flags,
                replacement,
                holdback: Self::DEFAULT_HOLDBACK,
                prefixes: Arc::default(),
            },
        })
    }

    /// Remove every node `path` finds. Filters may compare with `==` or a
    /// single `=`: `$.messages[?(@.role=='system')]`.
    pub fn jsonpath_drop(name: impl Into<String>, path: &str) -> Result<Self, TransformError> {
        let normalized = normalize_jsonpath(path);
        let parsed = parse_jsonpath(&normalized)?;
        if normalized.trim() == "$" {
            return Err(TransformError::new(
                "`$` is the whole document, which cannot be dropped",
            ));
        }
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Drop { path: parsed },
        })
    }

    /// Set `value` at `path`, whose last step must be a key (`$.metadata`,
    /// `$.a['b']`). Missing objects along a plain chain of keys are created
    /// (`$.a.b` creates `a`); with a filter or wildcard before the last key
    /// (`$.messages[?(@.role=='user')].name`), the key is set in every object
    /// found. An existing value is replaced.
    pub fn jsonpath_add(
        name: impl Into<String>,
        path: &str,
        value: Value,
    ) -> Result<Self, TransformError> {
        let normalized = normalize_jsonpath(path);
        parse_jsonpath(&normalized)?;
        let (parent, key) = split_last_key(&normalized).ok_or_else(|| {
            TransformError::new(format!(
                "`{path}` must end with a key to set, like `$.metadata` or `$.a['b']`"
            ))
        })?;
        let parent = match plain_keys(parent) {
            Some(keys) => Parent::Keys(keys),
            None => Parent::Query(parse_jsonpath(parent)?),
        };
        Ok(TransformRule {
            name: name.into(),
            on: Direction::Request,
            op: Op::Add { parent, key, value },
        })
    }

    /// Apply the rule to `on` (the request by default).
    pub fn on(mut self, on: Direction) -> Self {
        self.on = on;
        self
    }

    /// For `regex_replace` on streamed answers: hold back at most `bytes` of
    /// text per event (default [`DEFAULT_HOLDBACK`](Self::DEFAULT_HOLDBACK));
    /// only the tail from which the pattern could still match waits at all.
    /// A longer match split across events may be missed.
    pub fn with_holdback(mut self, bytes: usize) -> Self {
        if let Op::Regex { holdback, .. } = &mut self.op {
            *holdback = bytes;
        }
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The side it edits.
    pub fn direction(&self) -> Direction {
        self.on
    }

    /// `regex_replace`, `jsonpath_drop` or `jsonpath_add`.
    pub fn kind(&self) -> &'static str {
        match self.op {
            Op::Regex { .. } => "regex_replace",
            Op::Drop { .. } => "jsonpath_drop",
            Op::Add { .. } => "jsonpath_add",
        }
    }

    /// Apply the rule to a whole JSON document; whether anything changed.
    ///
    /// ```
    /// use serde_json::json;
    /// use llm_router::layers::transform::TransformRule;
    ///
    /// let drop = TransformRule::jsonpath_drop("d", "$.messages[?(@.role='system')]").unwrap();
    /// let mut doc = json!({"messages": [{"role": "system"}, {"role": "user"}]});
    /// assert!(drop.apply(&mut doc));
    /// assert_eq!(doc, json!({"messages": [{"role": "user"}]}));
    /// ```
    pub fn apply(&self, doc: &mut Value) -> bool {
        match &self.op {
            Op::Regex {
                regex, replacement, ..
            } => edit_strings(
                doc,
                &mut |s| match regex.replace_all(s, replacement.as_str()) {
                    Cow::Owned(o) => Some(o),
                    Cow::Borrowed(_) => None,
                },
            ),
            Op::Drop { path } => {
                let mut found: Vec<Vec<Step>> = path
                    .find_as_path(doc)
                    .iter()
                    .filter_map(|p| parse_found(p))
                    .filter(|steps| !steps.is_empty())
                    .collect();
                // Deepest and last first, so earlier indices stay valid.
                found.sort_unstable_by(|a, b| b.cmp(a));
                found.dedup();
                found
                    .iter()
                    .fold(false, |changed, steps| remove_at(doc, steps) | changed)
            }
            Op::Add { parent, key, value } => {
                let set = |target: &mut Value| -> bool {
                    match target {
                        Value::Object(map) if map.get(key) != Some(value) => {
                            map.insert(key.clone(), value.clone());
                            true
                        }
                        _ => false,
                    }
                };
                match parent {
                    Parent::Keys(keys) => {
                        let mut at = doc;
                        for k in keys {
                            let Value::Object(map) = at else { return false };
                            at = map
                                .entry(k.clone())
                                .or_insert_with(|| Value::Object(Map::new()));
                        }
                        set(at)
                    }
                    Parent::Query(path) => {
                        let found: Vec<Vec<Step>> = path
                            .find_as_path(doc)
                            .iter()
                            .filter_map(|p| parse_found(p))
                            .collect();
                        found.iter().fold(false, |changed, steps| {
                            get_mut(doc, steps).is_some_and(set) | changed
                        })
                    }
                }
            }
        }
    }

    /// Whether it is a `regex_replace` rule.
    pub(crate) fn is_regex(&self) -> bool {
        matches!(self.op, Op::Regex { .. })
    }

    /// The streaming finder and its holdback, for `regex_replace`.
    pub(crate) fn finder(&self) -> Option<(RegexFinder, usize)> {
        match &self.op {
            Op::Regex {
                regex,
                flags,
                replacement,
                holdback,
                prefixes,
            } => {
                let prefixes = prefixes.get_or_init(|| {
                    let f = flags;
                    Prefixes::regex(regex.as_str(), f.ignore_case, f.multi_line, f.dot_all)
                        .map(Arc::new)
                });
                Some((
                    RegexFinder::new(regex.clone(), replacement.clone(), prefixes.clone()),
                    *holdback,
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Display for TransformRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, on {})",
            self.name,
            self.kind(),
            self.on.as_str()
        )
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The replacement in the regex crate's syntax, with every group it names
/// checked against the pattern.
fn translate_replacement(text: &str, regex: &Regex) -> Result<String, TransformError> {
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

fn parse_jsonpath(path: &str) -> Result<JsonPath, TransformError> {
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
fn split_last_key(path: &str) -> Option<(&str, String)> {
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
fn plain_keys(path: &str) -> Option<Vec<String>> {
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
enum Step {
    Index(usize),
    Key(String),
}

/// Parse a found path as jsonpath-rust reports it: `$.['a'][0].['b']`.
fn parse_found(path: &str) -> Option<Vec<Step>> {
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

fn get_mut<'a>(doc: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(doc, |at, step| match (step, at) {
        (Step::Key(k), Value::Object(map)) => map.get_mut(k),
        (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
        _ => None,
    })
}

fn remove_at(doc: &mut Value, steps: &[Step]) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat() -> Value {
        json!({"model": "m", "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "mail bob@example.com"},
            {"role": "system", "content": "again"},
            {"role": "assistant", "content": "ok"},
        ]})
    }

    #[test]
    fn regex_on_every_string_value_not_keys() {
        let r = TransformRule::regex_replace(
            "e",
            r"\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b",
            "[EMAIL]",
            RegexFlags::parse("IGNORECASE").unwrap(),
        )
        .unwrap();
        let mut doc = json!({"a@b.io": "x a@b.io", "list": ["c@d.io", 1, null]});
        assert!(r.apply(&mut doc));
        assert_eq!(
            doc,
            json!({"a@b.io": "x [EMAIL]", "list": ["[EMAIL]", 1, null]})
        );
        assert!(!r.apply(&mut doc));
    }

    #[test]
    fn replacement_syntaxes() {
        let flags = RegexFlags::default();
        let r = |rep: &str| TransformRule::regex_replace("r", r"(?P<user>\w+)@(\w+)", rep, flags);
        for (rep, want) in [
            ("$2:$1", "ex:jo"),
            (r"\2:\1", "ex:jo"),
            (r"\g<user>!", "jo!"),
            ("${user}x", "jox"),
            ("$$1", "$1"),
            ("cost $ 5", "cost $ 5"),
            (r"a\\b", r"a\b"),
        ] {
            let mut doc = json!("jo@ex");
            r(rep).unwrap().apply(&mut doc);
            assert_eq!(doc, json!(want), "{rep}");
        }
        assert!(r("$3").unwrap_err().to_string().contains("group `3`"));
        assert!(r(r"\g<nope>").is_err());
        assert!(r("${user").is_err());
    }

    #[test]
    fn flags() {
        let f = RegexFlags::parse("IGNORECASE,re.MULTILINE|s").unwrap();
        assert_eq!(
            f,
            RegexFlags {
                ignore_case: true,
                multi_line: true,
                dot_all: true
            }
        );
        let r = TransformRule::regex_replace("r", "^a.b$", "X", f).unwrap();
        let mut doc = json!("q\nA\nB\nz");
        r.apply(&mut doc);
        assert_eq!(doc, json!("q\nX\nz"));
        assert!(RegexFlags::parse("IGNORECASE|VERBOSE").is_err());
    }

    #[test]
    fn bad_regex_is_an_error() {
        let e = TransformRule::regex_replace("r", "a(b", "", RegexFlags::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid regular expression"),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn drop_system_messages_both_forms() {
        for path in [
            "$.messages[?(@.role=='system')]",
            "$.messages[?(@.role='system')]",
            "$.messages[?(@.role == \"system\")]",
        ] {
            let r = TransformRule::jsonpath_drop("d", path).unwrap();
            let mut doc = chat();
            assert!(r.apply(&mut doc), "{path}");
            let roles: Vec<&str> = doc["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["role"].as_str().unwrap())
                .collect();
            assert_eq!(roles, ["user", "assistant"], "{path}");
            assert!(!r.apply(&mut doc));
        }
    }

    #[test]
    fn drop_keys_and_descendants() {
        let r = TransformRule::jsonpath_drop("d", "$..content").unwrap();
        let mut doc = chat();
        r.apply(&mut doc);
        assert!(doc["messages"][0].get("content").is_none());
        let r = TransformRule::jsonpath_drop("d", "$['model']").unwrap();
        r.apply(&mut doc);
        assert!(doc.get("model").is_none());
        // A key with a quote and a bracket in it.
        let r = TransformRule::jsonpath_drop("d", "$.*").unwrap();
        let mut doc = json!({"a']b": 1, "c": [1]});
        assert!(r.apply(&mut doc));
        assert_eq!(doc, json!({}));
    }

    #[test]
    fn bad_jsonpath_is_an_error() {
        for bad in [
            "$.messages[?(@.role=='system'",
            "messages[",
            "$.a[?(@.b ==)]",
        ] {
            let e = TransformRule::jsonpath_drop("d", bad).unwrap_err();
            assert!(e.to_string().contains("invalid JSONPath"), "{bad}: {e}");
        }
        assert!(TransformRule::jsonpath_drop("d", "$").is_err());
        assert!(TransformRule::jsonpath_add("a", "$.messages[0]", json!(1)).is_err());
        assert!(TransformRule::jsonpath_add("a", "$..x", json!(1)).is_err());
    }

    #[test]
    fn add_creates_the_path() {
        let r = TransformRule::jsonpath_add("a", "$.metadata", json!({"source": "llm-router"}))
            .unwrap();
        let mut doc = json!({"model": "m"});
        assert!(r.apply(&mut doc));
        assert_eq!(
            doc,
            json!({"model": "m", "metadata": {"source": "llm-router"}})
        );
        assert!(!r.apply(&mut doc));

        let r = TransformRule::jsonpath_add("a", "$.a.b['c d']", json!(1)).unwrap();
        let mut doc = json!({"a": {"x": 0}});
        r.apply(&mut doc);
        assert_eq!(doc, json!({"a": {"x": 0, "b": {"c d": 1}}}));

        // Not an object on the way: nothing is set.
        let mut doc = json!({"a": "text"});
        assert!(!r.apply(&mut doc));
    }

    #[test]
    fn add_into_every_found_object() {
        let r = TransformRule::jsonpath_add("a", "$.messages[?(@.role=='user')].name", json!("u"))
            .unwrap();
        let mut doc = chat();
        assert!(r.apply(&mut doc));
        assert_eq!(doc["messages"][1]["name"], "u");
        assert!(doc["messages"][0].get("name").is_none());
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_jsonpath("$[?(@.a='x=y')]"), "$[?(@.a=='x=y')]");
        assert_eq!(
            normalize_jsonpath("$[?(@.a!=1 && @.b>=2)]"),
            "$[?(@.a!=1 && @.b>=2)]"
        );
        assert_eq!(normalize_jsonpath("$[?(@.a == 1)]"), "$[?(@.a == 1)]");
    }

    #[test]
    fn found_paths() {
        assert_eq!(
            parse_found("$.['a'][0].['b']").unwrap(),
            vec![Step::Key("a".into()), Step::Index(0), Step::Key("b".into())]
        );
        assert_eq!(parse_found("$").unwrap(), vec![]);
        assert_eq!(split_last_key("$.a.b"), Some(("$.a", "b".into())));
        assert_eq!(split_last_key("$.metadata"), Some(("$", "metadata".into())));
        assert_eq!(split_last_key("$['x y']"), Some(("$", "x y".into())));
        assert_eq!(
            plain_keys("$.a['b'].c"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(plain_keys("$.a[0]"), None);
    }
}
