//! Config text generated from another source — a LiteLLM `config.yaml`
//! ([`super::litellm`]) or the environment ([`super::zero`]) — line by line,
//! each line remembering where it came from, so that an error found when the
//! text is validated names the source's file, line and key rather than a line
//! of text the user never wrote.

use super::ConfigError;

/// Where a generated line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The source file (or `environment`).
    pub(crate) file: String,
    /// Its 1-based line, when it has one.
    pub(crate) line: Option<usize>,
    /// The source's key (`model_list[0].litellm_params.api_key`, `OPENAI_BASE_URL`).
    pub(crate) key: String,
}

/// Column where trailing comments start, when the line is shorter.
const COMMENT_COLUMN: usize = 40;

/// config.toml text built line by line.
#[derive(Debug, Default)]
pub(crate) struct Toml {
    lines: Vec<(String, Option<Origin>)>,
}

impl Toml {
    /// A line with no origin.
    pub(crate) fn line(&mut self, text: impl Into<String>) {
        self.lines.push((text.into(), None));
    }

    /// A line with a trailing `# comment` (none when `comment` is empty) and an origin.
    pub(crate) fn item(&mut self, text: impl Into<String>, comment: &str, origin: Option<Origin>) {
        let mut text = text.into();
        if !comment.is_empty() {
            let pad = COMMENT_COLUMN.saturating_sub(text.chars().count()).max(1);
            text.push_str(&" ".repeat(pad));
            text.push_str("# ");
            text.push_str(comment);
        }
        self.lines.push((text, origin));
    }

    /// `# text` (one comment line per line of `text`).
    pub(crate) fn comment(&mut self, text: &str) {
        for l in text.lines() {
            if l.is_empty() {
                self.lines.push(("#".into(), None));
            } else {
                self.lines.push((format!("# {l}"), None));
            }
        }
    }

    /// The lines of `other`, after these.
    pub(crate) fn append(&mut self, other: Toml) {
        self.lines.extend(other.lines);
    }

    /// An empty line.
    pub(crate) fn blank(&mut self) {
        self.lines.push((String::new(), None));
    }

    /// The text, ending in a newline.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for (l, _) in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    /// An error found in the generated text, told in terms of its source:
    /// the origin of the line it points at, or the source file with the
    /// generated key when the line has none.
    pub(crate) fn map_error(&self, e: ConfigError, source: &str) -> ConfigError {
        // Errors about the process environment (LLM_ROUTER_SERVER_PORT, AUTH_KEY)
        // are already told in its terms.
        if e.file == "environment" {
            return e;
        }
        let origin = e
            .line
            .and_then(|l| self.lines.get(l.checked_sub(1)?))
            .and_then(|(_, o)| o.clone());
        let generated = e
            .key
            .as_deref()
            .map(|k| format!(" (generated config.toml key `{k}`)"))
            .unwrap_or_default();
        match origin {
            Some(o) => ConfigError {
                file: o.file,
                line: o.line,
                key: Some(o.key),
                message: format!("{}{generated}", e.message),
            },
            None => ConfigError {
                file: source.to_string(),
                line: None,
                key: e.key.clone(),
                message: format!("{} (in the config.toml generated from it)", e.message),
            },
        }
    }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_toml() {
        for s in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\there",
            "é ü",
        ] {
            let doc = format!("v = {}", quote(s));
            let table: toml::Table = doc.parse().unwrap();
            assert_eq!(table["v"].as_str(), Some(s));
        }
    }

    #[test]
    fn comments_align_and_errors_map_to_the_origin() {
        let mut t = Toml::default();
        t.line("[server]");
        t.item(
            "listen = \"x\"",
            "from there",
            Some(Origin {
                file: "c.yaml".into(),
                line: Some(7),
                key: "general_settings.port".into(),
            }),
        );
        let text = t.text();
        assert!(text.contains(&format!("listen = \"x\"{}# from there", " ".repeat(28))));
        let e = ConfigError {
            file: "c.yaml".into(),
            line: Some(2),
            key: Some("server.listen".into()),
            message: "bad".into(),
        };
        let mapped = t.map_error(e.clone(), "c.yaml");
        assert_eq!(
            mapped.to_string(),
            "c.yaml:7: general_settings.port: bad (generated config.toml key `server.listen`)"
        );
        let unmapped = t.map_error(ConfigError { line: Some(1), ..e }, "c.yaml");
        assert_eq!(
            unmapped.to_string(),
            "c.yaml: server.listen: bad (in the config.toml generated from it)"
        );
    }
}
