//! A typed builder of test configs: sections as values, rendered to the
//! `config.toml` text the proxy reads, so a test names what it sets instead
//! of pasting TOML fragments.
//!
//! ```ignore
//! let config = TestConfig::new()
//!     .stack(&["failover", "circuit_breaker", "retry"])
//!     .backend(BackendToml::openai("a", &a.base_url()).set("timeout", "\"200ms\""))
//!     .model(ModelToml::new("m").target("a", "a-model", 1))
//!     .section("retry", &[("max_retries", "0")])
//!     .toml();
//! ```

#![allow(dead_code)]

use std::fmt::Write as _;

/// A whole config, rendered by [`TestConfig::toml`].
#[derive(Clone, Debug, Default)]
pub struct TestConfig {
    server: Vec<(String, String)>,
    stack: Option<Vec<String>>,
    backends: Vec<BackendToml>,
    models: Vec<ModelToml>,
    sections: Vec<(String, Vec<(String, String)>)>,
    raw: Vec<String>,
}

impl TestConfig {
    /// An empty config (the proxy's defaults).
    pub fn new() -> Self {
        TestConfig::default()
    }

    /// `[server] key = value` (`value` is TOML: quote strings).
    pub fn server(mut self, key: &str, value: &str) -> Self {
        self.server.push((key.into(), value.into()));
        self
    }

    /// `[stack] order = [...]`.
    pub fn stack(mut self, order: &[&str]) -> Self {
        self.stack = Some(order.iter().map(|s| s.to_string()).collect());
        self
    }

    /// A `[[backends]]` entry.
    pub fn backend(mut self, backend: BackendToml) -> Self {
        self.backends.push(backend);
        self
    }

    /// A `[[models]]` entry.
    pub fn model(mut self, model: ModelToml) -> Self {
        self.models.push(model);
        self
    }

    /// A plain section: `[name]` with `key = value` lines (`value` is TOML).
    pub fn section(mut self, name: &str, entries: &[(&str, &str)]) -> Self {
        self.sections.push((
            name.into(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        self
    }

    /// TOML text appended as it is (for what the builder does not model).
    pub fn raw(mut self, text: &str) -> Self {
        self.raw.push(text.into());
        self
    }

    /// The `config.toml` text.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        if !self.server.is_empty() {
            out.push_str("[server]\n");
            for (k, v) in &self.server {
                let _ = writeln!(out, "{k} = {v}");
            }
            out.push('\n');
        }
        if let Some(order) = &self.stack {
            let names: Vec<String> = order.iter().map(|n| format!("\"{n}\"")).collect();
            let _ = writeln!(out, "[stack]\norder = [{}]\n", names.join(", "));
        }
        for (name, entries) in &self.sections {
            let _ = writeln!(out, "[{name}]");
            for (k, v) in entries {
                let _ = writeln!(out, "{k} = {v}");
            }
            out.push('\n');
        }
        for b in &self.backends {
            out.push_str(&b.toml());
        }
        for m in &self.models {
            out.push_str(&m.toml());
        }
        for r in &self.raw {
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

/// One `[[backends]]` entry.
#[derive(Clone, Debug)]
pub struct BackendToml {
    name: String,
    provider: String,
    base_url: Option<String>,
    extra: Vec<(String, String)>,
}

impl BackendToml {
    /// A backend of `provider` at `base_url`.
    pub fn new(name: &str, provider: &str, base_url: Option<&str>) -> Self {
        BackendToml {
            name: name.into(),
            provider: provider.into(),
            base_url: base_url.map(str::to_string),
            extra: Vec::new(),
        }
    }

    /// An OpenAI-compatible backend at `base_url`.
    pub fn openai(name: &str, base_url: &str) -> Self {
        BackendToml::new(name, "openai", Some(base_url))
    }

    /// The built-in mock.
    pub fn mock(name: &str) -> Self {
        BackendToml::new(name, "mock", None)
    }

    /// `key = value` in the entry (`value` is TOML: quote strings).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[[backends]]\nname = \"{}\"\nprovider = \"{}\"\n",
            self.name, self.provider
        );
        if let Some(url) = &self.base_url {
            let _ = writeln!(out, "base_url = \"{url}\"");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(out, "{k} = {v}");
        }
        out.push('\n');
        out
    }
}

/// One `[[models]]` entry.
#[derive(Clone, Debug)]
pub struct ModelToml {
    name: String,
    targets: Vec<String>,
    extra: Vec<(String, String)>,
}

impl ModelToml {
    /// A model named `name` (add its targets).
    pub fn new(name: &str) -> Self {
        ModelToml {
            name: name.into(),
            targets: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A target: `backend`, the model asked for there, its priority.
    pub fn target(mut self, backend: &str, model: &str, priority: u32) -> Self {
        self.targets.push(format!(
            "{{ backend = \"{backend}\", model = \"{model}\", priority = {priority} }}"
        ));
        self
    }

    /// A target sending the client's model name unchanged.
    pub fn passthrough_target(mut self, backend: &str) -> Self {
        self.targets.push(format!("{{ backend = \"{backend}\" }}"));
        self
    }

    /// `key = value` in the entry (`value` is TOML).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[[models]]\nname = \"{}\"\ntargets = [{}]\n",
            self.name,
            self.targets.join(", ")
        );
        for (k, v) in &self.extra {
            let _ = writeln!(out, "{k} = {v}");
        }
        out.push('\n');
        out
    }
}
