//! `[[transforms]]` and `[pii]`: raw serde structs and their conversion into
//! the layers' typed rules and policy. A bad pattern, JSONPath, flag or
//! detector is reported here, with its line and key, never at request time.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, LayerName, Loader};
use crate::layers::pii::{Detector, PiiAction, PiiPolicy, PiiScope};
use crate::layers::transform::{Direction, RegexFlags, TransformRule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransform {
    name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    pattern: Option<Spanned<String>>,
    replacement: Option<Spanned<String>>,
    flags: Option<Spanned<toml::Value>>,
    path: Option<Spanned<String>>,
    value: Option<Spanned<toml::Value>>,
    on: Option<Spanned<String>>,
    enabled: Option<bool>,
    holdback: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPii {
    detect: Option<Spanned<Vec<Spanned<String>>>>,
    action: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    holdback: Option<Spanned<i64>>,
}

/// A TOML value as JSON (dates and times become strings).
fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

impl Loader<'_> {
    fn holdback(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        default: usize,
    ) -> Result<usize, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if (1..=65536).contains(n.get_ref()) => Ok(*n.get_ref() as usize),
            Some(n) => Err(self.err(
                Some(n.span()),
                key,
                format!(
                    "must be a number of bytes from 1 to 65536, not {}",
                    n.get_ref()
                ),
            )),
        }
    }

    /// `[[transforms]]`, in order; disabled ones are validated, then left out.
    /// Without `[stack]`, `transform` runs only when there are some.
    pub(super) fn transforms(
        &self,
        raw: &[RawTransform],
        stack: &mut Vec<LayerName>,
        stack_explicit: bool,
    ) -> Result<Vec<TransformRule>, ConfigError> {
        let mut rules = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let key = |k: &str| format!("transforms[{i}].{k}");
            let name = t
                .name
                .as_ref()
                .map(|n| n.get_ref().trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("transforms[{i}]"));
            let kind = t.kind.get_ref().as_str();
            let need = |v: &Option<Spanned<String>>,
                        k: &str|
             -> Result<(String, std::ops::Range<usize>), ConfigError> {
                v.as_ref()
                    .map(|s| (s.get_ref().clone(), s.span()))
                    .ok_or_else(|| {
                        self.err(
                            Some(t.kind.span()),
                            key(k),
                            format!("a `{kind}` transform needs `{k}`"),
                        )
                    })
            };
            let refuse = |v: Option<std::ops::Range<usize>>, k: &str| -> Result<(), ConfigError> {
                match v {
                    Some(span) => Err(self.err(
                        Some(span),
                        key(k),
                        format!("`{k}` does not apply to a `{kind}` transform"),
                    )),
                    None => Ok(()),
                }
            };
            let span_of = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
            let rule = match kind {
                "regex_replace" => {
                    refuse(span_of(&t.path), "path")?;
                    refuse(t.value.as_ref().map(Spanned::span), "value")?;
                    let (pattern, pattern_span) = need(&t.pattern, "pattern")?;
                    let replacement = t
                        .replacement
                        .as_ref()
                        .map(|r| r.get_ref().clone())
                        .unwrap_or_default();
                    let flags = match &t.flags {
                        None => RegexFlags::default(),
                        Some(f) => {
                            let bad = |m: String| self.err(Some(f.span()), key("flags"), m);
                            match f.get_ref() {
                                toml::Value::String(s) => {
                                    RegexFlags::parse(s).map_err(|e| bad(e.to_string()))?
                                }
                                toml::Value::Array(items) => {
                                    let mut flags = RegexFlags::default();
                                    for item in items {
                                        let name = item.as_str().ok_or_else(|| {
                                            bad("flags must be strings".into())
                                        })?;
                                        flags.set(name).map_err(|e| bad(e.to_string()))?;
                                    }
                                    flags
                                }
                                _ => {
                                    return Err(bad(
                                        "must be a string like \"IGNORECASE|MULTILINE\"".into(),
                                    ))
                                }
                            }
                        }
                    };
                    let rule = TransformRule::regex_replace(name, &pattern, &replacement, flags)
                        .map_err(|e| {
                            let message = e.to_string();
                            if message.contains("replacement") {
                                let span = t.replacement.as_ref().map(Spanned::span);
                                self.err(span, key("replacement"), message)
                            } else {
                                self.err(Some(pattern_span), key("pattern"), message)
                            }
                        })?;
                    rule.with_holdback(self.holdback(
                        &t.holdback,
                        &key("holdback"),
                        TransformRule::DEFAULT_HOLDBACK,
                    )?)
                }
                "jsonpath_drop" | "jsonpath_add" => {
                    refuse(span_of(&t.pattern), "pattern")?;
                    refuse(span_of(&t.replacement), "replacement")?;
                    refuse(t.flags.as_ref().map(Spanned::span), "flags")?;
                    refuse(t.holdback.as_ref().map(Spanned::span), "holdback")?;
                    let (path, path_span) = need(&t.path, "path")?;
                    let built = if kind == "jsonpath_drop" {
                        refuse(t.value.as_ref().map(Spanned::span), "value")?;
                        TransformRule::jsonpath_drop(name, &path)
                    } else {
                        let value = t.value.as_ref().ok_or_else(|| {
                            self.err(
                                Some(t.kind.span()),
                                key("value"),
                                "a `jsonpath_add` transform needs `value`",
                            )
                        })?;
                        TransformRule::jsonpath_add(name, &path, toml_to_json(value.get_ref()))
                    };
                    built.map_err(|e| self.err(Some(path_span), key("path"), e.to_string()))?
                }
                other => {
                    return Err(self.err(
                        Some(t.kind.span()),
                        key("type"),
                        format!(
                            "unknown transform type `{other}`; expected \"regex_replace\", \"jsonpath_drop\" or \"jsonpath_add\""
                        ),
                    ))
                }
            };
            let on = match &t.on {
                None => Direction::Request,
                Some(on) => match on.get_ref().as_str() {
                    "request" => Direction::Request,
                    "response" => Direction::Response,
                    other => {
                        return Err(self.err(
                            Some(on.span()),
                            key("on"),
                            format!("must be \"request\" or \"response\", not \"{other}\""),
                        ))
                    }
                },
            };
            if t.enabled.unwrap_or(true) {
                rules.push(rule.on(on));
            }
        }
        if !stack_explicit && rules.is_empty() {
            stack.retain(|l| *l != LayerName::Transform);
        }
        Ok(rules)
    }

    /// `[pii]` (`None` when absent). Without `[stack]`, `pii` runs only when
    /// the section is written: scrubbing requests nobody asked to scrub would
    /// surprise.
    pub(super) fn pii(
        &self,
        raw: Option<&RawPii>,
        stack: &mut Vec<LayerName>,
        stack_explicit: bool,
    ) -> Result<Option<PiiPolicy>, ConfigError> {
        let Some(raw) = raw else {
            if !stack_explicit {
                stack.retain(|l| *l != LayerName::Pii);
            }
            return Ok(None);
        };
        let mut policy = PiiPolicy::default();
        if let Some(detect) = &raw.detect {
            let mut list = Vec::new();
            for (i, name) in detect.get_ref().iter().enumerate() {
                let found: &[Detector] = match name.get_ref().as_str() {
                    "ip" | "ip_address" => &[Detector::Ipv4, Detector::Ipv6],
                    other => match Detector::ALL.iter().find(|d| d.as_str() == other) {
                        Some(d) => std::slice::from_ref(d),
                        None => {
                            let known: Vec<&str> =
                                Detector::ALL.iter().map(|d| d.as_str()).collect();
                            return Err(self.err(
                                Some(name.span()),
                                format!("pii.detect[{i}]"),
                                format!(
                                    "unknown detector `{other}`; known detectors: {} (and ip_address for both IP versions)",
                                    known.join(", ")
                                ),
                            ));
                        }
                    },
                };
                for d in found {
                    if !list.contains(d) {
                        list.push(*d);
                    }
                }
            }
            if list.is_empty() {
                return Err(self.err(
                    Some(detect.span()),
                    "pii.detect",
                    "lists no detector; leave `detect` out to run them all",
                ));
            }
            policy.detect = list;
        }
        if let Some(action) = &raw.action {
            policy.action = match action.get_ref().as_str() {
                "redact" => PiiAction::Redact,
                "mask" => PiiAction::Mask,
                "reversible" => PiiAction::Reversible,
                other => {
                    return Err(self.err(
                        Some(action.span()),
                        "pii.action",
                        format!("must be \"redact\", \"mask\" or \"reversible\", not \"{other}\""),
                    ))
                }
            };
        }
        if let Some(on) = &raw.on {
            policy.on = match on.get_ref().as_str() {
                "request" => PiiScope::Request,
                "response" => PiiScope::Response,
                "both" => PiiScope::Both,
                other => {
                    return Err(self.err(
                        Some(on.span()),
                        "pii.on",
                        format!("must be \"request\", \"response\" or \"both\", not \"{other}\""),
                    ))
                }
            };
            if policy.action == PiiAction::Reversible && policy.on != PiiScope::Request {
                return Err(self.err(
                    Some(on.span()),
                    "pii.on",
                    "`reversible` replaces values in the request and restores them in the answer, so it takes on = \"request\"",
                ));
            }
        }
        policy.holdback =
            self.holdback(&raw.holdback, "pii.holdback", PiiPolicy::DEFAULT_HOLDBACK)?;
        Ok(Some(policy))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::layers::pii::{Detector, PiiAction, PiiScope};
    use crate::stack::LayerName;

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    #[test]
    fn transforms_parse_in_order() {
        let c = parse(&format!(
            r#"{MIN}
[[transforms]]
name = "sanitize_emails"
type = "regex_replace"
pattern = '\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{{2,}}\b'
replacement = "[EMAIL]"
flags = "IGNORECASE"
on = "request"
enabled = true

[[transforms]]
name = "remove_system_prompts"
type = "jsonpath_drop"
path = "$.messages[?(@.role='system')]"

[[transforms]]
name = "add_metadata"
type = "jsonpath_add"
path = "$.metadata"
value = {{ source = "llm-router", n = 1 }}
on = "response"

[[transforms]]
type = "regex_replace"
pattern = "x"
enabled = false
"#
        ))
        .unwrap();
        let names: Vec<&str> = c.transforms.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            ["sanitize_emails", "remove_system_prompts", "add_metadata"]
        );
        assert_eq!(
            c.transforms[2].direction(),
            crate::layers::transform::Direction::Response
        );
        // No [stack]: the transforms run.
        assert!(c.stack.contains(&LayerName::Transform));
        assert!(!c.stack.contains(&LayerName::Pii));
    }

    #[test]
    fn bad_regex_names_line_and_key() {
        let e = parse(&format!(
            "{MIN}\n[[transforms]]\ntype = \"regex_replace\"\npattern = \"a(b\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
        assert_eq!(e.key.as_deref(), Some("transforms[0].pattern"), "{e}");
        assert!(e.message.starts_with("invalid regular expression"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn bad_jsonpath_names_line_and_key() {
        let e = parse(&format!(
            "{MIN}\n[[transforms]]\ntype = \"regex_replace\"\npattern = \"a\"\n\n[[transforms]]\ntype = \"jsonpath_drop\"\npath = \"$.messages[?(@.role=='system'\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(15), "{e}");
        assert_eq!(e.key.as_deref(), Some("transforms[1].path"), "{e}");
        assert!(e.message.contains("invalid JSONPath"), "{e}");
    }

    #[test]
    fn transform_shape_errors() {
        let cases = [
            (
                "type = \"regex\"",
                "transforms[0].type",
                "unknown transform type",
            ),
            (
                "type = \"regex_replace\"",
                "transforms[0].pattern",
                "needs `pattern`",
            ),
            (
                "type = \"jsonpath_add\"\npath = \"$.a\"",
                "transforms[0].value",
                "needs `value`",
            ),
            (
                "type = \"jsonpath_drop\"\npath = \"$.a\"\npattern = \"x\"",
                "transforms[0].pattern",
                "does not apply",
            ),
            (
                "type = \"regex_replace\"\npattern = \"x\"\nflags = \"VERBOSE\"",
                "transforms[0].flags",
                "unknown regex flag",
            ),
            (
                "type = \"regex_replace\"\npattern = \"x\"\nreplacement = \"$1\"",
                "transforms[0].replacement",
                "group `1`",
            ),
            (
                "type = \"regex_replace\"\npattern = \"x\"\non = \"both\"",
                "transforms[0].on",
                "\"request\" or \"response\"",
            ),
            (
                "type = \"regex_replace\"\npattern = \"x\"\nholdback = 0",
                "transforms[0].holdback",
                "from 1",
            ),
            (
                "type = \"jsonpath_add\"\npath = \"$.a[0]\"\nvalue = 1",
                "transforms[0].path",
                "must end with a key",
            ),
            (
                "type = \"regex_replace\"\npattern = \"x\"\nsurprise = 1",
                "transforms[0].surprise",
                "unknown key",
            ),
        ];
        for (body, key, message) in cases {
            let e = parse(&format!("{MIN}\n[[transforms]]\n{body}\n")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
            assert!(e.message.contains(message), "{body}: {e}");
            assert!(e.line.is_some(), "{body}: {e}");
        }
    }

    #[test]
    fn pii_section() {
        let c = parse(&format!(
            "{MIN}\n[pii]\ndetect = [\"email\", \"ip_address\", \"email\"]\naction = \"mask\"\non = \"both\"\n"
        ))
        .unwrap();
        let p = c.pii.unwrap();
        assert_eq!(p.detect, [Detector::Email, Detector::Ipv4, Detector::Ipv6]);
        assert_eq!(p.action, PiiAction::Mask);
        assert_eq!(p.on, PiiScope::Both);
        assert!(c.stack.contains(&LayerName::Pii));

        let c = parse(&format!("{MIN}\n[pii]\n")).unwrap();
        assert_eq!(c.pii.unwrap(), Default::default());
        // No section, no [stack]: off.
        let c = parse(MIN).unwrap();
        assert!(c.pii.is_none() && !c.stack.contains(&LayerName::Pii));
    }

    #[test]
    fn pii_errors() {
        let cases = [
            (
                "detect = [\"email\", \"passport\"]",
                "pii.detect[1]",
                "unknown detector `passport`",
            ),
            ("detect = []", "pii.detect", "lists no detector"),
            (
                "action = \"hash\"",
                "pii.action",
                "\"redact\", \"mask\" or \"reversible\"",
            ),
            ("on = \"logs\"", "pii.on", "\"both\""),
            (
                "action = \"reversible\"\non = \"both\"",
                "pii.on",
                "reversible",
            ),
        ];
        for (body, key, message) in cases {
            let e = parse(&format!("{MIN}\n[pii]\n{body}\n")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
            assert!(e.message.contains(message), "{body}: {e}");
            assert_eq!(e.line, Some(9 + body.lines().count()), "{body}: {e}");
        }
    }
}
