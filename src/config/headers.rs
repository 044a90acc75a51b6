//! `[headers]` and a backend's `headers`: the raw serde struct and its
//! conversion into the `headers` layer's [`HeaderRules`].

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::layers::headers::{proxy_owned, HeaderMatcher, HeaderRules};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaders {
    drop_all: Option<bool>,
    drop: Option<Vec<Spanned<String>>>,
    add: Option<BTreeMap<String, Spanned<String>>>,
    force: Option<BTreeMap<String, Spanned<String>>>,
}

impl Loader<'_> {
    /// Header rules: `[headers]`, or a backend's `headers` (`prefix` is the key path).
    pub(super) fn header_rules(
        &self,
        raw: &RawHeaders,
        prefix: &str,
    ) -> Result<HeaderRules, ConfigError> {
        let mut rules = HeaderRules::new().drop_all(raw.drop_all.unwrap_or(false));
        for (i, d) in raw.drop.iter().flatten().enumerate() {
            let matcher = HeaderMatcher::parse(d.get_ref().trim()).map_err(|e| {
                self.err(Some(d.span()), format!("{prefix}.drop[{i}]"), e.to_string())
            })?;
            rules = rules.drop(matcher);
        }
        for (table, list) in [("add", &raw.add), ("force", &raw.force)] {
            let mut seen: Vec<HeaderName> = Vec::new();
            for (name, value) in list.iter().flatten() {
                let key = format!("{prefix}.{table}.{name}");
                let header = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                    .map_err(|_| {
                        self.err(
                            Some(value.span()),
                            key.clone(),
                            format!("`{name}` is not a valid header name"),
                        )
                    })?;
                if let Some(why) = proxy_owned(&header) {
                    return Err(self.err(
                        Some(value.span()),
                        key,
                        format!("`{header}` cannot be set by header rules: {why}"),
                    ));
                }
                if seen.contains(&header) {
                    return Err(self.err(
                        Some(value.span()),
                        key,
                        format!(
                            "`{header}` is listed twice in `{table}` (header names ignore case)"
                        ),
                    ));
                }
                let value = HeaderValue::from_str(value.get_ref()).map_err(|_| {
                    self.err(
                        Some(value.span()),
                        key.clone(),
                        "the value contains a line break or another character no header can carry",
                    )
                })?;
                rules = if table == "add" {
                    rules.add(header.clone(), value)
                } else {
                    rules.force(header.clone(), value)
                };
                seen.push(header);
            }
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    #[test]
    fn header_rules_parse() {
        let c = parse(&format!(
            "{MIN}\n[headers]\ndrop = [\"x-forwarded-for\", \"^x-.*\"]\nadd = {{ \"User-Agent\" = \"llm-router\" }}\nforce = {{ \"x-api-version\" = \"2024-01\" }}\n"
        ))
        .unwrap();
        assert!(!c.headers.is_empty());
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "1".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        h.insert("accept", "1".parse().unwrap());
        c.headers.apply(&mut h);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h["user-agent"], "llm-router");
        assert_eq!(h["x-api-version"], "2024-01");
    }

    #[test]
    fn header_rule_errors() {
        let e = parse(&format!("{MIN}\n[headers]\ndrop = [\"ok\", \"x-(\"]\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(10), Some("headers.drop[1]")),
            "{e}"
        );
        assert!(e.message.contains("regex"), "{e}");
        let e = parse(&format!(
            "{MIN}\n[headers]\nforce = {{ \"authorization\" = \"Bearer x\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("headers.force.authorization"), "{e}");
        assert!(e.message.contains("credential"), "{e}");
        let e = parse(&format!(
            "{MIN}\n[headers]\nadd = {{ \"connection\" = \"close\" }}\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("hop-by-hop"), "{e}");
        let e = parse(&format!(
            "{MIN}\n[headers]\nadd = {{ \"X-A\" = \"1\", \"x-a\" = \"2\" }}\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = parse(&format!("{MIN}\n[headers]\nadd = {{ \"x-a\" = 1 }}\n")).unwrap_err();
        assert_eq!(e.line, Some(10), "{e}");
        let e = parse(&format!("{MIN}\n[headers]\ndrop_al = true\n")).unwrap_err();
        assert!(e.message.contains("did you mean `drop_all`"), "{e}");
    }

    #[test]
    fn backend_header_rules() {
        let text = MIN.replace(
            "provider = \"mock\"",
            "provider = \"mock\"\nheaders = { force = { \"x-team\" = \"a\" }, drop = [\"^x-debug\"] }",
        );
        let c = parse(&text).unwrap();
        assert!(!c.backends[0].headers.is_empty());
        let text = MIN.replace(
            "provider = \"mock\"",
            "provider = \"mock\"\nheaders = { drop = [\"[\"] }",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("backends[0].headers.drop[0]")),
            "{e}"
        );
    }
}
