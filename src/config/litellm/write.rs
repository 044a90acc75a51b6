//! Writing the commented config.toml: header, global sections, backends,
//! models.

use std::fmt::Write as _;
use std::path::Path;

use super::backends::BackendOut;
use super::models::GroupOut;
use super::settings::Sections;
use super::{Importer, Val};
use crate::config::generated::{quote, Toml};
use crate::config::import::retry_section;

impl Importer {
    /// The config.toml text: header, sections, backends, models.
    pub(super) fn write(
        &self,
        path: &Path,
        sections: &Sections,
        backends: &[BackendOut],
        groups: &[GroupOut],
    ) -> Toml {
        let mut t = Toml::default();
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.file.clone());
        t.comment(&format!(
            "llm-router configuration imported from the LiteLLM config `{source}`\nby `llm-router import-litellm`. Each setting names the LiteLLM key it came from.\n`${{NAME}}` reads the environment variable NAME (LiteLLM's `os.environ/NAME`).\nCheck it with:  llm-router check --config config.toml"
        ));
        if !self.warnings.is_empty() {
            t.comment(
                "\nNot carried over, or only approximately (each also printed as a warning):",
            );
            for w in &self.warnings {
                t.comment(&format!("  {source}:{}", w.without_file()));
            }
        }
        t.blank();
        t.line("[server]");
        match &sections.listen {
            Some(l) => t.item(
                format!("listen = {}", quote(&l.text)),
                &l.comment,
                self.origin(l.line, &l.key),
            ),
            None => t.item(
                "listen = \"0.0.0.0:4000\"",
                "LiteLLM's default address, so clients keep their URL",
                None,
            ),
        }
        t.blank();
        t.line("[stack]");
        t.comment("Middleware order, outermost first (see middleware.md).");
        if let Some(k) = &sections.master_key {
            t.item(
                "order = [\"auth\", \"failover\", \"circuit_breaker\", \"retry\"]",
                "auth: general_settings.master_key",
                self.origin(k.line, &k.key),
            );
            t.blank();
            t.line("[auth]");
            t.item(
                format!("keys = [{}]", quote(&k.text)),
                &k.comment,
                self.origin(k.line, &k.key),
            );
        } else {
            t.line("order = [\"failover\", \"circuit_breaker\", \"retry\"]");
        }
        // [retry], with fast fallback (another deployment before a retry).
        let mut retry = Vec::new();
        if let Some(v) = &sections.retries {
            retry.push((
                format!("max_retries = {}", v.text),
                v.comment.clone(),
                self.origin(v.line, &v.key),
            ));
        }
        if let Some(v) = &sections.retry_after {
            retry.push((
                format!("initial_delay = {}", quote(&v.text)),
                v.comment.clone(),
                self.origin(v.line, &v.key),
            ));
        }
        retry_section(&mut t, retry);
        if sections.failure_threshold.is_some() || sections.cooldown.is_some() {
            t.blank();
            t.line("[circuit_breaker]");
            if let Some(v) = &sections.failure_threshold {
                self.emit(&mut t, "failure_threshold", &v.text, v);
            }
            if let Some(v) = &sections.cooldown {
                let text = quote(&v.text);
                self.emit(&mut t, "open_for", &text, v);
            }
        }
        if let Some(v) = &sections.cooldown {
            t.blank();
            t.line("[failover]");
            let text = quote(&v.text);
            self.emit(&mut t, "cooldown", &text, v);
        }

        t.blank();
        t.comment("--- Backends: one per LiteLLM deployment (deployments with the same\n--- provider, address and key and no rpm of their own share one)");
        for b in backends {
            t.blank();
            t.line("[[backends]]");
            let (line, key) = &b.origin;
            let users = format!("serves {}", b.users.join(", "));
            t.item(
                format!("name = {}", quote(&b.name)),
                &users,
                self.origin(*line, key),
            );
            t.item(
                format!("provider = {}", quote(b.info.provider)),
                &b.provider_note,
                self.origin(*line, key),
            );
            match &b.base_url {
                Some(v) => {
                    let text = quote(&v.text);
                    self.emit(&mut t, "base_url", &text, v);
                }
                None => {
                    if let Some(url) = b.info.base_url {
                        t.item(
                            format!("base_url = {}", quote(url)),
                            &format!("LiteLLM's default for {}/", b.info.litellm),
                            self.origin(*line, key),
                        );
                    }
                }
            }
            if let Some(v) = &b.api_key {
                let text = quote(&v.text);
                self.emit(&mut t, "api_key", &text, v);
            }
            if let Some(v) = &b.timeout {
                let text = quote(&v.text);
                self.emit(&mut t, "timeout", &text, v);
            }
            if let Some(v) = &b.stream_timeout {
                let text = quote(&v.text);
                self.emit(&mut t, "first_byte_timeout", &text, v);
            }
            if let Some(v) = &b.rpm {
                let text = format!("{{ requests = {}, window = \"60s\" }}", v.text);
                self.emit(&mut t, "rate_limit", &text, v);
            }
            if !b.headers.is_empty() {
                let pairs: Vec<String> = b
                    .headers
                    .iter()
                    .map(|(h, v)| format!("{} = {}", quote(h), quote(&v.text)))
                    .collect();
                let first = &b.headers[0].1;
                let comments: Vec<&str> = b.headers.iter().map(|(_, v)| v.key.as_str()).collect();
                t.item(
                    format!("headers = {{ force = {{ {} }} }}", pairs.join(", ")),
                    &comments.join(", "),
                    self.origin(first.line, &first.key),
                );
            }
        }

        t.blank();
        t.comment("--- Models: one per LiteLLM model_name (model group)");
        for g in groups {
            t.blank();
            t.line("[[models]]");
            t.item(
                format!("name = {}", quote(&g.name)),
                &g.comment,
                self.origin(g.line, &g.key),
            );
            if g.strip_prefix {
                t.item(
                    "strip_prefix = true",
                    "the part the `*` matched is the model sent upstream",
                    self.origin(g.line, &g.key),
                );
            }
            t.line("targets = [");
            for target in &g.targets {
                let mut inline = format!("  {{ backend = {}", quote(&target.backend));
                if let Some(m) = &target.model {
                    let _ = write!(inline, ", model = {}", quote(m));
                }
                let _ = write!(
                    inline,
                    ", priority = {}, weight = {} }},",
                    target.priority, target.weight
                );
                t.item(
                    inline,
                    &target.comment,
                    self.origin(target.line, &target.key),
                );
            }
            t.line("]");
            if let Some(v) = &g.context_fallback {
                let text = quote(&v.text);
                self.emit(&mut t, "context_fallback", &text, v);
            }
        }

        t
    }

    fn emit(&self, t: &mut Toml, name: &str, value: &str, v: &Val) {
        t.item(
            format!("{name} = {value}"),
            &v.comment,
            self.origin(v.line, &v.key),
        );
    }
}
