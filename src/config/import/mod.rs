//! The other routers' config files, read as they are: [`detect`] tells by
//! content (never by file name) which format a file is, [`load`] builds the
//! [`Config`] from any of them (what `serve --config` and `check --config`
//! use), and [`import`] turns any of them into the equivalent commented
//! config.toml (`llm-router import FILE`).
//!
//! | format | how it is told | importer |
//! | --- | --- | --- |
//! | config.toml | TOML with tables | read as it is |
//! | LiteLLM `config.yaml` | a top-level `model_list` | [`litellm`](super::litellm) |
//! | a YAML `models:` map (`provider`, `endpoint`, `api_key`, `actual_model_name`, ...) with `server:`, `header_rules:`, `transformations:` | a top-level `models` mapping | `models_map` |
//! | a JSON `llm_router_config.json` of `openai` / `anthropic` key lists | a JSON object with `openai` or `anthropic` | `key_lists` |
//! | a YAML `providers:` list (`name`, `type`, `api_key_env`, `base_url`, `models`, `enabled`, `priority`) with `auth:` | a top-level `providers` list | `providers` |
//! | a `.env` file | `NAME=value` lines | `env_file` (the config is the environment's: [`zero`](super::zero)) |
//!
//! Every key of a file either maps to a config.toml setting or is a
//! [`Warning`] naming the file, the line and the key.
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::import::{self, Format};
//!
//! let yaml = "models:\n  gpt-4:\n    provider: openai\n    endpoint: \"https://api.openai.com/v1\"\n    api_key: \"sk-test\"\n";
//! let path = Path::new("config.yaml");
//! assert_eq!(import::detect(path, yaml).unwrap(), Format::ModelsMap);
//! let config = import::load(yaml, path, &|_| None).unwrap();
//! assert_eq!(config.models[0].name, "gpt-4");
//! assert!(import::import(yaml, path).unwrap().toml.contains("[[backends]]"));
//! ```

mod env_file;
mod key_lists;
mod models_map;
mod providers;
pub(crate) mod yaml;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::generated::{quote, Origin, Toml};
use super::{Config, ConfigError};
use yaml::{Entry, Node, Value};

/// A config file format llm-router reads (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// llm-router's own config.toml.
    Toml,
    /// A LiteLLM proxy `config.yaml` (`model_list`).
    LiteLlm,
    /// A YAML `models:` map with `server:`, `header_rules:`, `transformations:`.
    ModelsMap,
    /// A JSON object of `openai` / `anthropic` lists of keys by priority.
    KeyLists,
    /// A YAML `providers:` list with an optional `auth:` block.
    Providers,
    /// A `.env` file of environment variables.
    Dotenv,
}

impl Format {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Toml => "config.toml",
            Format::LiteLlm => "LiteLLM config (model_list)",
            Format::ModelsMap => "YAML config with a `models:` map",
            Format::KeyLists => "JSON config with `openai`/`anthropic` lists",
            Format::Providers => "YAML config with a `providers:` list",
            Format::Dotenv => ".env file",
        }
    }
}

/// A key of a source file that has no equivalent (or only an approximate one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The source file.
    pub file: String,
    /// Its 1-based line, when known.
    pub line: Option<usize>,
    /// The source's key (`models.gpt-4.retry_config`).
    pub key: String,
    /// What happens to it.
    pub message: String,
}

impl Warning {
    /// `line: key: message`, without the file (for the generated header).
    pub fn without_file(&self) -> String {
        match self.line {
            Some(l) => format!("{l}: {}: {}", self.key, self.message),
            None => format!("{}: {}", self.key, self.message),
        }
    }
}

impl fmt::Display for Warning {
    /// `file:line: key: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}: {}", self.file, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// A config file turned into config.toml text.
#[derive(Debug)]
pub struct Imported {
    /// The format it was read as.
    pub format: Format,
    /// The generated config.toml, commented.
    pub toml: String,
    /// The keys with no equivalent (or only an approximate one).
    pub warnings: Vec<Warning>,
    /// The environment variables the text reads (`${NAME}`).
    pub variables: BTreeSet<String>,
    /// Where each generated line came from (`None`: the text is the file's own).
    generated: Option<Toml>,
    /// A `.env` file's variables: the environment under the process's.
    dotenv: Vec<(String, String)>,
    file: String,
}

impl Imported {
    /// An import's result (used by each importer).
    pub(crate) fn new(
        format: Format,
        generated: Toml,
        warnings: Vec<Warning>,
        file: String,
    ) -> Imported {
        let toml = generated.text();
        let variables = var_refs(&toml).into_iter().map(|(n, _)| n).collect();
        Imported {
            format,
            toml,
            warnings,
            variables,
            generated: Some(generated),
            dotenv: Vec::new(),
            file,
        }
    }

    /// Errors of the generated text, told in the source's terms.
    fn map_error(&self, e: ConfigError) -> ConfigError {
        match &self.generated {
            Some(t) => t.map_error(e, &self.file),
            None => e,
        }
    }

    /// Validate the generated text as `path` with every variable it needs
    /// (`${NAME}` without a default) set to a placeholder, so that an import
    /// does not need the keys.
    pub fn validate(&self, path: &Path) -> Result<Config, ConfigError> {
        let required: BTreeSet<String> = var_refs(&self.toml)
            .into_iter()
            .filter(|(_, has_default)| !has_default)
            .map(|(name, _)| name)
            .collect();
        let placeholder = |name: &str| {
            required
                .contains(name)
                .then(|| "https://placeholder.invalid".to_string())
        };
        Config::parse(&self.toml, path, &placeholder).map_err(|e| self.map_error(e))
    }

    /// The config, with `env` as the environment (a `.env` file's own
    /// variables under it); errors name the source's lines and keys, and the
    /// import's warnings are part of [`Config::warnings`].
    pub fn config(
        &self,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let lookup = |name: &str| env(name).or_else(|| dotenv_var(&self.dotenv, name));
        let mut config = Config::parse(&self.toml, path, &lookup).map_err(|e| self.map_error(e))?;
        config.source_warnings = self.warnings.iter().map(|w| w.to_string()).collect();
        Ok(config)
    }
}

fn dotenv_var(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// The format of `text` (read from `path`, named in errors), told by its
/// content: a JSON object, TOML tables, `NAME=value` lines, or a YAML
/// mapping with `model_list`, `models` or `providers`.
pub fn detect(path: &Path, text: &str) -> Result<Format, ConfigError> {
    let file = path.display().to_string();
    let body = text.trim_start_matches('\u{feff}');
    let first = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    if first.is_some_and(|l| l.starts_with('{')) {
        let doc = yaml::parse(body, &file, "the file is empty")?;
        return by_keys(&doc.root, &file, true);
    }
    let dotenv_vars = || {
        super::dotenv::parse(body, &file)
            .ok()
            .filter(|v| !v.is_empty())
    };
    match body.parse::<toml::Table>() {
        // config.toml holds tables only; `NAME = value` at the top is a .env.
        Ok(table) => {
            if table.values().any(|v| !is_table_like(v)) && dotenv_vars().is_some() {
                return Ok(Format::Dotenv);
            }
            Ok(Format::Toml)
        }
        Err(_) => {
            if dotenv_vars().is_some() || looks_dotenv(body) {
                return Ok(Format::Dotenv);
            }
            let yamlish = body.lines().any(|l| {
                let l = l.trim_end();
                l.split_once(':').is_some_and(|(k, _)| {
                    !k.is_empty()
                        && !k.starts_with([' ', '\t', '#', '['])
                        && !k.contains(['=', '"'])
                })
            });
            if !yamlish {
                // Report it as the TOML it most likely is.
                return Ok(Format::Toml);
            }
            let doc = yaml::parse(body, &file, "the file is empty")?;
            by_keys(&doc.root, &file, false)
        }
    }
}

/// A `.env` with a bad line: no TOML table header, and `NAME=value` lines
/// written the shell's way (no space before `=`).
fn looks_dotenv(body: &str) -> bool {
    let lines = || {
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    };
    !lines().any(|l| l.starts_with('['))
        && lines().any(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            l.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
        })
}

fn is_table_like(v: &toml::Value) -> bool {
    match v {
        toml::Value::Table(_) => true,
        toml::Value::Array(items) => items.iter().all(|i| i.is_table()),
        _ => false,
    }
}

/// A YAML or JSON document's format, by its top-level keys.
fn by_keys(root: &Node, file: &str, json: bool) -> Result<Format, ConfigError> {
    let has = |k: &str| root.get(k).is_some();
    if has("model_list") {
        return Ok(Format::LiteLlm);
    }
    if json && (has("openai") || has("anthropic")) {
        return Ok(Format::KeyLists);
    }
    if root
        .get("providers")
        .is_some_and(|e| matches!(e.node.value, Value::Seq(_)))
    {
        return Ok(Format::Providers);
    }
    if root
        .get("models")
        .is_some_and(|e| matches!(e.node.value, Value::Map(_) | Value::Null))
    {
        return Ok(Format::ModelsMap);
    }
    if !json && (has("openai") || has("anthropic")) {
        return Ok(Format::KeyLists);
    }
    let found = root
        .entries()
        .map(|es| {
            es.iter()
                .map(|e| format!("`{}`", e.key))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| root.what().to_string());
    Err(ConfigError {
        file: file.to_string(),
        line: Some(root.line.max(1)),
        key: None,
        message: format!(
            "not a config llm-router reads (found {found}); expected config.toml, a LiteLLM config with `model_list`, a YAML config with a `models:` map or a `providers:` list, a JSON config with `openai`/`anthropic` lists, or a .env file"
        ),
    })
}

/// Build the config from `text` read from `path`, whatever its format, with
/// `env` as the environment (see the [module docs](self)).
pub fn load(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    match detect(path, text)? {
        Format::Toml => Config::parse(text, path, env),
        Format::Dotenv => env_file::load(text, path, env),
        _ => import(text, path)?.config(path, env),
    }
}

/// The config.toml equivalent to `text` read from `path`, whatever its
/// format (a config.toml is returned as it is).
pub fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let file = path.display().to_string();
    let format = detect(path, text)?;
    match format {
        Format::Toml => Ok(Imported {
            format,
            toml: text.to_string(),
            warnings: Vec::new(),
            variables: var_refs(text).into_iter().map(|(n, _)| n).collect(),
            generated: None,
            dotenv: Vec::new(),
            file,
        }),
        Format::LiteLlm => super::litellm::import(text, path),
        Format::ModelsMap => models_map::import(text, path),
        Format::KeyLists => key_lists::import(text, path),
        Format::Providers => providers::import(text, path),
        Format::Dotenv => env_file::import(text, path),
    }
}

// ---------------------------------------------------------------------------
// Shared by the importers.

/// `${NAME}` and `${NAME:-...}` references in a text: the name, and
/// whether it has a default.
pub(crate) fn var_refs(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let (name, has_default) = match inner.split_once(":-") {
            Some((name, _)) => (name, true),
            None => (inner, false),
        };
        if !name.trim().is_empty() {
            out.push((name.trim().to_string(), has_default));
        }
        rest = &after[end + 1..];
    }
    out
}

/// Seconds as a duration string: `"30s"`, `"1500ms"`.
pub(crate) fn duration(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{}s", secs as u64)
    } else {
        format!("{}ms", (secs * 1000.0).round().max(1.0) as u64)
    }
}

/// A backend or model name usable in config.toml (an id may hold anything).
pub(crate) fn clean_name(s: &str) -> String {
    let cleaned: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "backend".into()
    } else {
        cleaned
    }
}

/// What the new importers share: the file, its warnings, and helpers that
/// read a node or report one.
pub(crate) struct Source {
    pub(crate) file: String,
    pub(crate) warnings: Vec<Warning>,
}

impl Source {
    pub(crate) fn new(path: &Path) -> Source {
        Source {
            file: path.display().to_string(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn warn(&mut self, line: usize, key: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    pub(crate) fn origin(&self, line: usize, key: &str) -> Option<Origin> {
        Some(Origin {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
        })
    }

    /// A scalar as trimmed text.
    pub(crate) fn string(&self, e: &Entry, key: &str) -> Result<String, ConfigError> {
        e.node.text().map(|t| t.trim().to_string()).ok_or_else(|| {
            self.err(
                e.line,
                key,
                format!("must be a string, not {}", e.node.what()),
            )
        })
    }

    /// Seconds (a number, or a string holding one) as a duration string;
    /// `None` (with a warning) for zero or less.
    pub(crate) fn seconds(&mut self, e: &Entry, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(secs) = e.node.number() else {
            return Err(self.err(
                e.line,
                key,
                format!(
                    "must be a number of seconds, not {}",
                    e.node.text().unwrap_or_else(|| e.node.what().into())
                ),
            ));
        };
        if !(secs > 0.0 && secs.is_finite()) {
            self.warn(
                e.line,
                key,
                format!("`{secs}` seconds is not a duration llm-router can use; ignored"),
            );
            return Ok(None);
        }
        Ok(Some(duration(secs)))
    }

    /// A whole number from `min` upward.
    pub(crate) fn whole(&self, e: &Entry, key: &str, min: u64) -> Result<u64, ConfigError> {
        match e.node.number() {
            Some(n) if n.fract() == 0.0 && n >= min as f64 && n < 1e15 => Ok(n as u64),
            _ => Err(self.err(
                e.line,
                key,
                format!(
                    "must be a whole number from {min} upward, not {}",
                    e.node.text().unwrap_or_else(|| e.node.what().into())
                ),
            )),
        }
    }

    /// A boolean.
    pub(crate) fn boolean(&self, e: &Entry, key: &str) -> Result<bool, ConfigError> {
        e.node.boolean().ok_or_else(|| {
            self.err(
                e.line,
                key,
                format!("must be true or false, not {}", e.node.what()),
            )
        })
    }

    /// The entries of a mapping (an empty value has none).
    pub(crate) fn mapping<'n>(&self, e: &'n Entry, key: &str) -> Result<&'n [Entry], ConfigError> {
        match &e.node.value {
            Value::Map(m) => Ok(m),
            Value::Null => Ok(&[]),
            _ => Err(self.err(
                e.line,
                key,
                format!("must be a mapping, not {}", e.node.what()),
            )),
        }
    }

    /// The items of a list (an empty value has none).
    pub(crate) fn list<'n>(&self, e: &'n Entry, key: &str) -> Result<&'n [Node], ConfigError> {
        match &e.node.value {
            Value::Seq(s) => Ok(s),
            Value::Null => Ok(&[]),
            _ => Err(self.err(
                e.line,
                key,
                format!("must be a list, not {}", e.node.what()),
            )),
        }
    }

    /// One warning per key with no equivalent.
    pub(crate) fn unmapped(&mut self, e: &Entry, key: &str, why: &str) {
        self.warn(e.line, key, format!("no equivalent {why}; ignored"));
    }

    /// The warnings in the file's order.
    pub(crate) fn sorted_warnings(&mut self) -> Vec<Warning> {
        self.warnings.sort_by_key(|w| w.line);
        self.warnings.clone()
    }
}

/// The header of a generated config: where it came from, how variables are
/// read, the warnings, and how to check it.
pub(crate) fn header(t: &mut Toml, path: &Path, format: Format, warnings: &[Warning], note: &str) {
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    t.comment(&format!(
        "llm-router configuration imported from `{source}` ({})\nby `llm-router import`. Each setting names the key it came from.\n{note}Check it with:  llm-router check --config config.toml",
        format.describe()
    ));
    if !warnings.is_empty() {
        t.comment("\nNot carried over, or only approximately (each also printed as a warning):");
        for w in warnings {
            t.comment(&format!("  {source}:{}", w.without_file()));
        }
    }
}

/// A route's `targets = [...]`, one `(backend, priority, key, line)` a
/// line, each commented with the key its priority came from.
pub(crate) fn write_targets<'a>(
    body: &mut Toml,
    src: &Source,
    targets: impl Iterator<Item = (&'a str, impl std::fmt::Display, &'a str, usize)>,
) {
    body.line("targets = [");
    for (backend, priority, key, line) in targets {
        body.item(
            format!(
                "  {{ backend = {}, priority = {priority} }},",
                quote(backend)
            ),
            &format!("{key}.priority"),
            src.origin(line, key),
        );
    }
    body.line("]");
}

/// `[retry]` with `lines` (text, comment, origin) and `other_targets_first =
/// true` (fast fallback: on a failure, the next target before a retry of the
/// same one), as the routers imported from behave.
pub(crate) fn retry_section(t: &mut Toml, lines: Vec<(String, String, Option<Origin>)>) {
    t.blank();
    t.line("[retry]");
    for (text, comment, origin) in lines {
        t.item(text, &comment, origin);
    }
    let line = "other_targets_first = true";
    let why = "on a failure, try the next target before retrying this one";
    t.item(line, why, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(text: &str) -> Format {
        detect(Path::new("f"), text).unwrap()
    }

    #[test]
    fn detection_by_content() {
        assert_eq!(
            format("[server]\nlisten = \"x\"\n[[models]]\n"),
            Format::Toml
        );
        assert_eq!(format(""), Format::Toml);
        assert_eq!(format("model_list:\n  - model_name: a\n"), Format::LiteLlm);
        assert_eq!(
            format("models:\n  gpt-4:\n    provider: openai\n"),
            Format::ModelsMap
        );
        assert_eq!(format("# c\nproviders:\n  - name: a\n"), Format::Providers);
        assert_eq!(format("{\"openai\": []}"), Format::KeyLists);
        assert_eq!(format("  {\n \"anthropic\": [] }"), Format::KeyLists);
        assert_eq!(format("OPENAI_API_KEY=sk-1\nPORT=8000\n"), Format::Dotenv);
        assert_eq!(format("PORT=8000\n"), Format::Dotenv);
        assert_eq!(format("export A=\"x\"\n"), Format::Dotenv);
        // A bad line is the .env's error, not TOML's.
        assert_eq!(format("A=1\nnot a variable\n"), Format::Dotenv);
        assert_eq!(format("[server]\nlisten = [\n"), Format::Toml);
        // A name says nothing: content decides.
        assert_eq!(
            detect(Path::new("config.yaml"), "[[models]]\nname = \"a\"\n").unwrap(),
            Format::Toml
        );
        assert_eq!(
            detect(Path::new("x.toml"), "models:\n  a: {}\n").unwrap(),
            Format::ModelsMap
        );
    }

    #[test]
    fn unknown_shapes_are_named() {
        let e = detect(Path::new("c.yaml"), "routes:\n  a: 1\n").unwrap_err();
        assert_eq!(e.file, "c.yaml");
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("found `routes`"), "{e}");
        let e = detect(Path::new("c.json"), "{\"x\": 1}").unwrap_err();
        assert!(e.message.contains("`openai`/`anthropic`"), "{e}");
        let e = detect(Path::new("c.yaml"), "models:\n  a: [\n").unwrap_err();
        assert!(e.message.contains("invalid YAML"), "{e}");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn helpers() {
        assert_eq!(duration(30.0), "30s");
        assert_eq!(duration(0.5), "500ms");
        assert_eq!(clean_name("a b/c"), "a-b-c");
        assert_eq!(
            var_refs("${A} ${B:-x} ${ }"),
            [("A".to_string(), false), ("B".to_string(), true)]
        );
        let w = Warning {
            file: "c.yaml".into(),
            line: Some(3),
            key: "a.b".into(),
            message: "m".into(),
        };
        assert_eq!(w.to_string(), "c.yaml:3: a.b: m");
        assert_eq!(w.without_file(), "3: a.b: m");
    }
}
