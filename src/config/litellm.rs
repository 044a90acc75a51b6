//! LiteLLM proxy configs (`config.yaml`): `llm-router import-litellm
//! config.yaml` (or `import`) prints the equivalent, commented config.toml,
//! and `serve` / `check --config config.yaml` read such a file directly (told
//! by its top-level `model_list`; see [`import`](super::import)).
//!
//! What maps to what:
//!
//! | LiteLLM | llm-router |
//! | --- | --- |
//! | `model_list[].model_name` (a model group) | a `[[models]]` name (`*` patterns included) |
//! | `litellm_params.model` `openai/`, `anthropic/`, `gemini/`, `ollama/`, `ollama_chat/`, `azure/`, `cerebras/`, `deepinfra/`, `openrouter/`, `hosted_vllm/`, `groq/`, `mistral/`, ... (none = openai) | a `[[backends]]` entry (provider, base_url) and a target with the model after the prefix |
//! | `api_base`, `api_key` (`os.environ/NAME` -> `${NAME}`) | `base_url`, `api_key` |
//! | `rpm` | the backend's `rate_limit = { requests = rpm, window = "60s" }` |
//! | `timeout`, `stream_timeout` | `timeout`, `first_byte_timeout` |
//! | `order`, `weight` | target `priority`, `weight` |
//! | `max_retries`, `num_retries` | `[retry] max_retries` |
//! | `retry_after` | `[retry] initial_delay` |
//! | `allowed_fails` | `[circuit_breaker] failure_threshold` (allowed_fails + 1) |
//! | `cooldown_time` | `[failover] cooldown` and `[circuit_breaker] open_for` |
//! | `fallbacks`, `default_fallbacks` | the fallback groups' targets, appended at lower priority |
//! | `context_window_fallbacks` | `context_fallback` |
//! | `model_group_alias` | another `[[models]]` entry with the group's targets |
//! | `request_timeout`, `router_settings.timeout` | every backend's `timeout` |
//! | `router_settings.stream_timeout` | every backend's `first_byte_timeout` |
//! | `general_settings.master_key` | `[auth] keys` (and `auth` in the order) |
//! | `proxy_server_config` `host`, `port` | `[server] listen` |
//! | `environment_variables` | defaults of the `${NAME:-...}` that read them |
//!
//! Every other key is reported as a warning naming it (`file:line: key:
//! message`); none is dropped silently. The simpler form of older routers —
//! `model_list` items with `id`, `group_name`, `model_name`, `provider` and
//! `api_key: ${VAR}` — is read too.
//!
//! ```
//! use std::path::Path;
//! let yaml = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/OPENAI_API_KEY\n      rpm: 60\n";
//! let imported = llm_router::config::litellm::import(yaml, Path::new("config.yaml")).unwrap();
//! assert!(imported.toml.contains("api_key = \"${OPENAI_API_KEY}\""));
//! let config = imported.validate(Path::new("config.toml")).unwrap();
//! assert_eq!(config.models[0].name, "gpt-4o");
//! assert_eq!(config.backends[0].rate_limit.unwrap().requests, 60);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::generated::{quote, Origin, Toml};
use super::import::yaml::{self, Entry, Node, Value};
use super::import::{clean_name, duration, retry_section, Format, Warning};
use super::{Config, ConfigError};

pub use super::import::Imported;

/// Whether `text` read from `path` is a LiteLLM config: a `.yaml`/`.yml`
/// file, or one (not `.toml`) with a top-level `model_list:`. (What
/// [`Config::load`] reads is told by content: see
/// [`import::detect`](super::import::detect).)
pub fn is_litellm(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => true,
        Some(e) if e.eq_ignore_ascii_case("toml") => false,
        _ => text.lines().any(|l| l.starts_with("model_list:")),
    }
}

/// Import `text` (read from `path`) and build its config with `env`.
pub fn load(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    import(text, path)?.config(path, env)
}

// ---------------------------------------------------------------------------
// Providers

/// A LiteLLM provider prefix and what it becomes.
#[derive(Debug)]
struct ProviderInfo {
    /// LiteLLM's name (the prefix before `/`).
    litellm: &'static str,
    /// The llm-router provider.
    provider: &'static str,
    /// The base_url when the config has no `api_base`.
    base_url: Option<&'static str>,
    /// LiteLLM's default key variable for it.
    key_var: Option<&'static str>,
}

const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        litellm: "openai",
        provider: "openai",
        base_url: Some("https://api.openai.com/v1"),
        key_var: Some("OPENAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "text-completion-openai",
        provider: "openai",
        base_url: Some("https://api.openai.com/v1"),
        key_var: Some("OPENAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "anthropic",
        provider: "anthropic",
        base_url: Some("https://api.anthropic.com"),
        key_var: Some("ANTHROPIC_API_KEY"),
    },
    ProviderInfo {
        litellm: "gemini",
        provider: "gemini",
        base_url: Some("https://generativelanguage.googleapis.com"),
        key_var: Some("GEMINI_API_KEY"),
    },
    ProviderInfo {
        litellm: "ollama",
        provider: "ollama",
        base_url: Some("http://localhost:11434"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "ollama_chat",
        provider: "ollama",
        base_url: Some("http://localhost:11434"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "azure",
        provider: "openai",
        base_url: None,
        key_var: Some("AZURE_API_KEY"),
    },
    ProviderInfo {
        litellm: "cerebras",
        provider: "openai",
        base_url: Some("https://api.cerebras.ai/v1"),
        key_var: Some("CEREBRAS_API_KEY"),
    },
    ProviderInfo {
        litellm: "deepinfra",
        provider: "openai",
        base_url: Some("https://api.deepinfra.com/v1/openai"),
        key_var: Some("DEEPINFRA_API_KEY"),
    },
    ProviderInfo {
        litellm: "openrouter",
        provider: "openai",
        base_url: Some("https://openrouter.ai/api/v1"),
        key_var: Some("OPENROUTER_API_KEY"),
    },
    ProviderInfo {
        litellm: "hosted_vllm",
        provider: "openai",
        base_url: None,
        key_var: None,
    },
    ProviderInfo {
        litellm: "groq",
        provider: "openai",
        base_url: Some("https://api.groq.com/openai/v1"),
        key_var: Some("GROQ_API_KEY"),
    },
    ProviderInfo {
        litellm: "mistral",
        provider: "openai",
        base_url: Some("https://api.mistral.ai/v1"),
        key_var: Some("MISTRAL_API_KEY"),
    },
    ProviderInfo {
        litellm: "together_ai",
        provider: "openai",
        base_url: Some("https://api.together.xyz/v1"),
        key_var: Some("TOGETHERAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "fireworks_ai",
        provider: "openai",
        base_url: Some("https://api.fireworks.ai/inference/v1"),
        key_var: Some("FIREWORKS_AI_API_KEY"),
    },
    ProviderInfo {
        litellm: "xai",
        provider: "openai",
        base_url: Some("https://api.x.ai/v1"),
        key_var: Some("XAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "deepseek",
        provider: "openai",
        base_url: Some("https://api.deepseek.com/v1"),
        key_var: Some("DEEPSEEK_API_KEY"),
    },
    ProviderInfo {
        litellm: "perplexity",
        provider: "openai",
        base_url: Some("https://api.perplexity.ai"),
        key_var: Some("PERPLEXITYAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "lm_studio",
        provider: "openai",
        base_url: Some("http://localhost:1234/v1"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "nvidia_nim",
        provider: "openai",
        base_url: Some("https://integrate.api.nvidia.com/v1"),
        key_var: Some("NVIDIA_NIM_API_KEY"),
    },
];

fn provider_info(name: &str) -> Option<&'static ProviderInfo> {
    PROVIDERS.iter().find(|p| p.litellm == name)
}

fn known_prefixes() -> String {
    PROVIDERS
        .iter()
        .map(|p| format!("{}/", p.litellm))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// The importer

/// A value for the generated text, with where it came from and a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Val {
    text: String,
    comment: String,
    line: usize,
    key: String,
}

#[derive(Debug)]
struct Deployment {
    key: String,
    line: usize,
    group: String,
    group_line: usize,
    group_key: String,
    info: &'static ProviderInfo,
    provider_note: String,
    model: String,
    base_url: Option<Val>,
    api_key: Option<Val>,
    timeout: Option<Val>,
    stream_timeout: Option<Val>,
    rpm: Option<Val>,
    order: Option<u32>,
    weight: Option<u32>,
    id: Option<String>,
    headers: Vec<(String, Val)>,
}

#[derive(Debug)]
struct BackendOut {
    name: String,
    info: &'static ProviderInfo,
    provider_note: String,
    origin: (usize, String),
    base_url: Option<Val>,
    api_key: Option<Val>,
    timeout: Option<Val>,
    stream_timeout: Option<Val>,
    rpm: Option<Val>,
    headers: Vec<(String, Val)>,
    /// No rpm and no id of its own: other deployments may share it.
    shareable: bool,
    /// The deployments it serves (`model_list[0]`, ...).
    users: Vec<String>,
}

#[derive(Clone, Debug)]
struct TargetOut {
    backend: String,
    model: Option<String>,
    priority: u32,
    weight: u32,
    comment: String,
    line: usize,
    key: String,
}

#[derive(Debug)]
struct GroupOut {
    name: String,
    line: usize,
    key: String,
    comment: String,
    strip_prefix: bool,
    targets: Vec<TargetOut>,
    context_fallback: Option<Val>,
}

/// The global sections of the generated config.
#[derive(Debug)]
struct Sections {
    master_key: Option<Val>,
    retries: Option<Val>,
    retry_after: Option<Val>,
    failure_threshold: Option<Val>,
    cooldown: Option<Val>,
    /// `proxy_server_config` `host` / `port`, as `host:port`.
    listen: Option<Val>,
}

/// A setting that several LiteLLM keys may give: the first one found wins.
#[derive(Debug, Default)]
struct Setting {
    value: Option<Val>,
}

struct Importer {
    file: String,
    warnings: Vec<Warning>,
    env_defaults: BTreeMap<String, String>,
}

impl Importer {
    fn warn(&mut self, line: usize, key: &str, message: impl std::fmt::Display) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    fn origin(&self, line: usize, key: &str) -> Option<Origin> {
        Some(Origin {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
        })
    }

    /// `${NAME}` for an environment reference, with the default from
    /// `environment_variables` when it has one.
    fn var(&mut self, name: &str, fallback: Option<&str>) -> String {
        match (self.env_defaults.get(name), fallback) {
            (Some(v), _) => format!("${{{name}:-{v}}}"),
            (_, Some(f)) => format!("${{{name}:-{f}}}"),
            _ => format!("${{{name}}}"),
        }
    }

    /// A string setting: `os.environ/NAME` becomes `${NAME}`; `${NAME}` (the
    /// simple form) is kept.
    fn string(&mut self, entry: &Entry, key: &str) -> Result<Val, ConfigError> {
        let text = entry.node.text().ok_or_else(|| {
            self.err(
                entry.line,
                key,
                format!("must be a string, not {}", entry.node.what()),
            )
        })?;
        let text = text.trim().to_string();
        if let Some(name) = text.strip_prefix("os.environ/") {
            let var = self.var(name.trim(), None);
            return Ok(Val {
                text: var,
                comment: format!("{key}: os.environ/{}", name.trim()),
                line: entry.line,
                key: key.to_string(),
            });
        }
        Ok(Val {
            text,
            comment: key.to_string(),
            line: entry.line,
            key: key.to_string(),
        })
    }

    /// Seconds (a number, or a string holding one) as a duration string.
    fn seconds(&mut self, entry: &Entry, key: &str) -> Result<Option<Val>, ConfigError> {
        let Some(secs) = entry.node.number() else {
            return Err(self.err(
                entry.line,
                key,
                format!(
                    "must be a number of seconds, not {}",
                    entry
                        .node
                        .text()
                        .unwrap_or_else(|| entry.node.what().into())
                ),
            ));
        };
        if !(secs > 0.0 && secs.is_finite()) {
            self.warn(
                entry.line,
                key,
                format!("`{secs}` seconds is not a duration llm-router can use; ignored"),
            );
            return Ok(None);
        }
        Ok(Some(Val {
            text: duration(secs),
            comment: format!("{key}: {secs}"),
            line: entry.line,
            key: key.to_string(),
        }))
    }

    fn whole(&mut self, entry: &Entry, key: &str, min: u64) -> Result<u64, ConfigError> {
        match entry.node.number() {
            Some(n) if n.fract() == 0.0 && n >= min as f64 && n < 1e15 => Ok(n as u64),
            _ => Err(self.err(
                entry.line,
                key,
                format!(
                    "must be a whole number from {min} upward, not {}",
                    entry
                        .node
                        .text()
                        .unwrap_or_else(|| entry.node.what().into())
                ),
            )),
        }
    }

    /// One warning listing the keys of a mapping that have no equivalent.
    fn unmapped(&mut self, line: usize, key: &str, names: &[&str], why: &str) {
        if names.is_empty() {
            return;
        }
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let (what, verb) = if names.len() == 1 {
            ("key", "has")
        } else {
            ("keys", "have")
        };
        self.warn(
            line,
            key,
            format!("{what} {list} {verb} no equivalent {why}; ignored"),
        );
    }
}

/// Import a LiteLLM config. `path` is used in messages and the header.
pub fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let file = path.display().to_string();
    let syntax = |line: Option<usize>, message: String| ConfigError {
        file: file.clone(),
        line,
        key: None,
        message,
    };
    let doc = yaml::parse(
        text,
        &file,
        "the file is empty; a LiteLLM config needs a `model_list`",
    )?;
    let root = doc.root;
    let mut importer = Importer {
        file: file.clone(),
        warnings: Vec::new(),
        env_defaults: BTreeMap::new(),
    };
    if let Some(line) = doc.extra_document {
        importer.warn(line, "---", "only the first YAML document is read");
    }
    let Some(top) = root.entries() else {
        return Err(syntax(
            Some(root.line),
            format!(
                "a LiteLLM config is a mapping with `model_list`, not {}",
                root.what()
            ),
        ));
    };
    let top = top.to_vec();
    importer.run(&top, path, root.line)
}

impl Importer {
    fn run(
        mut self,
        top: &[Entry],
        path: &Path,
        root_line: usize,
    ) -> Result<Imported, ConfigError> {
        const SECTIONS: &[&str] = &[
            "model_list",
            "router_settings",
            "litellm_settings",
            "general_settings",
            "environment_variables",
            "proxy_server_config",
        ];
        for e in top {
            if !SECTIONS.contains(&e.key.as_str()) {
                let key = e.key.clone();
                self.warn(
                    e.line,
                    &key,
                    "section has no equivalent in llm-router; ignored",
                );
            }
        }
        let section = |name: &str| top.iter().find(|e| e.key == name);

        // environment_variables first: they are the defaults of `${NAME:-...}`.
        if let Some(env) = section("environment_variables") {
            match env.node.entries() {
                Some(entries) => {
                    for e in entries {
                        match e.node.text() {
                            Some(v) if !v.contains(['}', '"', '\\']) => {
                                self.env_defaults.insert(e.key.clone(), v);
                            }
                            _ => {
                                let key = format!("environment_variables.{}", e.key);
                                self.warn(e.line, &key, "cannot be a `${NAME:-default}` default (not a plain value without `}`, `\"` or `\\`); ignored");
                            }
                        }
                    }
                }
                None if matches!(env.node.value, Value::Null) => {}
                None => {
                    return Err(self.err(
                        env.line,
                        "environment_variables",
                        format!("must be a mapping, not {}", env.node.what()),
                    ))
                }
            }
        }

        let Some(list) = section("model_list") else {
            return Err(self.err(
                root_line,
                "model_list",
                "no `model_list`: a LiteLLM config lists its models there, and without any no request could be routed",
            ));
        };
        let items = match &list.node.value {
            Value::Seq(items) if !items.is_empty() => items.clone(),
            Value::Seq(_) | Value::Null => {
                return Err(self.err(list.line, "model_list", "is empty; add at least one model"))
            }
            _ => {
                return Err(self.err(
                    list.line,
                    "model_list",
                    format!("must be a list of models, not {}", list.node.what()),
                ))
            }
        };

        let mut retries = Setting::default();
        let mut deployments = Vec::new();
        for (i, item) in items.iter().enumerate() {
            deployments.push(self.deployment(i, item, &mut retries)?);
        }

        // Settings: router_settings wins over litellm_settings for keys both take.
        let router = section("router_settings");
        let litellm = section("litellm_settings");
        let general = section("general_settings");
        for (name, s) in [
            ("router_settings", router),
            ("litellm_settings", litellm),
            ("general_settings", general),
        ] {
            if let Some(s) = s {
                if s.node.entries().is_none() && !matches!(s.node.value, Value::Null) {
                    return Err(self.err(
                        s.line,
                        name,
                        format!("must be a mapping, not {}", s.node.what()),
                    ));
                }
            }
        }
        let settings: Vec<(&str, &Entry)> =
            [("router_settings", router), ("litellm_settings", litellm)]
                .into_iter()
                .filter_map(|(n, s)| s.map(|s| (n, s)))
                .flat_map(|(n, s)| {
                    s.node
                        .entries()
                        .unwrap_or_default()
                        .iter()
                        .map(move |e| (n, e))
                })
                .collect();
        let mut global_timeout: Option<Val> = None;
        let mut global_stream_timeout: Option<Val> = None;
        let mut retry_after: Option<Val> = None;
        let mut allowed_fails: Option<(u64, Val)> = None;
        let mut cooldown: Option<Val> = None;
        let mut fallbacks: Option<&Entry> = None;
        let mut fallbacks_key = String::new();
        let mut default_fallbacks: Option<(&Entry, String)> = None;
        let mut context_fallbacks: Option<(&Entry, String)> = None;
        let mut aliases: Option<(&Entry, String)> = None;
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        let mut unmapped: BTreeMap<&str, (usize, Vec<&str>)> = BTreeMap::new();
        for (section_name, e) in settings {
            let key = format!("{section_name}.{}", e.key);
            let name = e.key.as_str();
            let takes = matches!(
                name,
                "num_retries"
                    | "timeout"
                    | "request_timeout"
                    | "stream_timeout"
                    | "retry_after"
                    | "allowed_fails"
                    | "cooldown_time"
                    | "fallbacks"
                    | "default_fallbacks"
                    | "context_window_fallbacks"
            );
            // `timeout` and `request_timeout` are the same setting.
            let setting = if name == "request_timeout" {
                "timeout"
            } else {
                name
            };
            if takes {
                if let Some(first) = seen.get(setting) {
                    let first = first.clone();
                    self.warn(e.line, &key, format!("{first} is used instead"));
                    continue;
                }
                seen.insert(setting, key.clone());
            }
            match name {
                "num_retries" => {
                    let n = self.whole(e, &key, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{key} (per target here; LiteLLM retries the group)"),
                        line: e.line,
                        key: key.clone(),
                    };
                    self.retries(&mut retries, val, true);
                }
                "timeout" | "request_timeout" => global_timeout = self.seconds(e, &key)?,
                "stream_timeout" => global_stream_timeout = self.seconds(e, &key)?,
                "retry_after" => retry_after = self.seconds(e, &key)?,
                "allowed_fails" => {
                    let n = self.whole(e, &key, 0)?;
                    allowed_fails = Some((
                        n,
                        Val {
                            text: (n + 1).to_string(),
                            comment: format!(
                                "{key} = {n}: a deployment cools down after more than {n} failures"
                            ),
                            line: e.line,
                            key: key.clone(),
                        },
                    ));
                }
                "cooldown_time" => cooldown = self.seconds(e, &key)?,
                "fallbacks" => {
                    fallbacks = Some(e);
                    fallbacks_key = key.clone();
                }
                "default_fallbacks" => default_fallbacks = Some((e, key.clone())),
                "context_window_fallbacks" => context_fallbacks = Some((e, key.clone())),
                "model_group_alias" if section_name == "router_settings" => {
                    aliases = Some((e, key.clone()))
                }
                "routing_strategy" => {
                    let strategy = e.node.text().unwrap_or_default();
                    if strategy != "simple-shuffle" {
                        self.warn(e.line, &key, format!(
                            "`{strategy}` has no equivalent: targets of equal priority share the load by weight (simple-shuffle)"
                        ));
                    }
                }
                "drop_params" => self.warn(
                    e.line,
                    &key,
                    "no equivalent: llm-router forwards a request's parameters as the client sent them (translated between provider formats where needed), so a provider may refuse one it does not support",
                ),
                "redis_host" | "redis_port" | "redis_password" | "redis_url" => self.warn(
                    e.line,
                    &key,
                    "no equivalent yet: cooldowns, circuits and limits are kept in memory, per llm-router process",
                ),
                _ => unmapped
                    .entry(section_name)
                    .or_insert((e.line, Vec::new()))
                    .1
                    .push(name),
            }
        }
        for (section_name, (line, names)) in unmapped {
            let line = section(section_name).map_or(line, |s| s.line);
            self.unmapped(line, section_name, &names, "in llm-router");
        }

        // general_settings: master_key.
        let mut master_key: Option<Val> = None;
        if let Some(g) = general {
            let mut names = Vec::new();
            for e in g.node.entries().unwrap_or_default() {
                if e.key == "master_key" {
                    let key = "general_settings.master_key";
                    master_key = Some(self.string(e, key)?);
                } else {
                    names.push(e.key.as_str());
                }
            }
            self.unmapped(g.line, "general_settings", &names, "in llm-router");
        }

        // proxy_server_config: host and port.
        let listen = match section("proxy_server_config") {
            Some(p) => self.proxy_server_config(p)?,
            None => None,
        };

        // Backends and targets.
        let (backends, backend_of) = self.backends(
            &deployments,
            global_timeout.as_ref(),
            global_stream_timeout.as_ref(),
        );
        let mut groups = self.groups(&deployments, &backends, &backend_of)?;
        let originals: Vec<(String, Vec<TargetOut>, bool)> = groups
            .iter()
            .map(|g| (g.name.clone(), g.targets.clone(), g.strip_prefix))
            .collect();
        let mut with_fallbacks: BTreeSet<String> = BTreeSet::new();
        if let Some(f) = fallbacks {
            for (group, list, line, key) in self.fallback_rules(f, &fallbacks_key)? {
                with_fallbacks.insert(group.clone());
                self.append_fallbacks(&mut groups, &originals, &group, &list, line, &key);
            }
        }
        if let Some((f, key)) = default_fallbacks {
            let list = self.name_list(&f.node, &key)?;
            for g in groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>() {
                if !with_fallbacks.contains(&g) {
                    let own: Vec<String> = list.iter().filter(|n| **n != g).cloned().collect();
                    self.append_fallbacks(&mut groups, &originals, &g, &own, f.line, &key);
                }
            }
        }
        if let Some((f, key)) = context_fallbacks {
            for (group, list, line, key) in self.fallback_rules(f, &key)? {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                if !names.contains(&group.as_str()) {
                    self.warn(
                        line,
                        &key,
                        format!("`{group}` is no model_name in model_list; ignored"),
                    );
                    continue;
                }
                let Some(first) = list.first() else { continue };
                if !names.contains(&first.as_str()) {
                    self.warn(
                        line,
                        &key,
                        format!("`{first}` is no model_name in model_list; ignored"),
                    );
                    continue;
                }
                if list.len() > 1 {
                    self.warn(line, &key, format!(
                        "only the first context-window fallback of `{group}` is used (`{first}`); llm-router tries one"
                    ));
                }
                if let Some(g) = groups.iter_mut().find(|g| g.name == group) {
                    g.context_fallback = Some(Val {
                        text: first.clone(),
                        comment: key.clone(),
                        line,
                        key: key.clone(),
                    });
                }
            }
        }
        if let Some((a, key)) = aliases {
            self.aliases(&mut groups, a, &key)?;
        }

        // In the file's order.
        self.warnings.sort_by_key(|w| w.line);

        let sections = Sections {
            master_key,
            retries: retries.value,
            retry_after,
            failure_threshold: allowed_fails.map(|(_, v)| v),
            cooldown,
            listen,
        };
        let t = self.write(path, &sections, &backends, &groups);
        Ok(Imported::new(Format::LiteLlm, t, self.warnings, self.file))
    }

    /// `proxy_server_config`: `host` and `port` become `[server] listen`
    /// (a missing one keeps LiteLLM's default, `0.0.0.0` and `4000`).
    fn proxy_server_config(&mut self, p: &Entry) -> Result<Option<Val>, ConfigError> {
        let entries = match &p.node.value {
            Value::Map(m) => m,
            Value::Null => return Ok(None),
            _ => {
                return Err(self.err(
                    p.line,
                    "proxy_server_config",
                    format!("must be a mapping, not {}", p.node.what()),
                ))
            }
        };
        let mut host: Option<(String, usize, String)> = None;
        let mut port: Option<(u64, usize, String)> = None;
        let mut names = Vec::new();
        for e in entries {
            let key = format!("proxy_server_config.{}", e.key);
            match e.key.as_str() {
                "host" => {
                    let h = self.string(e, &key)?.text;
                    host = Some((h.trim_matches(['[', ']']).to_string(), e.line, key));
                }
                "port" => {
                    let n = self.whole(e, &key, 0)?;
                    if n > u64::from(u16::MAX) {
                        return Err(self.err(
                            e.line,
                            &key,
                            format!("`{n}` is not a port (0-65535)"),
                        ));
                    }
                    port = Some((n, e.line, key));
                }
                _ => names.push(e.key.as_str()),
            }
        }
        self.unmapped(p.line, "proxy_server_config", &names, "in llm-router");
        if host.is_none() && port.is_none() {
            return Ok(None);
        }
        let h = host.as_ref().map_or("0.0.0.0", |h| h.0.as_str());
        let n = port.as_ref().map_or(4000, |p| p.0);
        let text = if h.contains(':') {
            format!("[{h}]:{n}")
        } else {
            format!("{h}:{n}")
        };
        // The line named is the port's when there is one (a bad host is
        // found by the listen check too, but the port is the likelier culprit).
        let (line, key) = match (&port, &host) {
            (Some((_, l, k)), _) | (None, Some((_, l, k))) => (*l, k.clone()),
            (None, None) => (p.line, "proxy_server_config".to_string()),
        };
        Ok(Some(Val {
            text,
            comment: "proxy_server_config host and port".into(),
            line,
            key,
        }))
    }

    /// The config.toml text: header, sections, backends, models.
    fn write(
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

    /// `[retry] max_retries` from `num_retries` (wins) or a deployment's
    /// `max_retries` (the first; a different one is a warning).
    fn retries(&mut self, setting: &mut Setting, val: Val, from_settings: bool) {
        let Some(first) = &setting.value else {
            setting.value = Some(val);
            return;
        };
        if first.text == val.text {
            return;
        }
        // The value that stays, and the one that gives way.
        let (kept, dropped) = if from_settings {
            (val, first.clone())
        } else {
            (first.clone(), val)
        };
        self.warn(
            dropped.line,
            &dropped.key,
            format!(
                "[retry] max_retries is global in llm-router; {} = {} is used instead of {}",
                kept.key, kept.text, dropped.text
            ),
        );
        setting.value = Some(kept);
    }

    fn deployment(
        &mut self,
        i: usize,
        item: &Node,
        retries: &mut Setting,
    ) -> Result<Deployment, ConfigError> {
        let key = format!("model_list[{i}]");
        let Some(entries) = item.entries() else {
            return Err(self.err(
                item.line,
                &key,
                format!(
                    "must be a mapping with `model_name` and `litellm_params`, not {}",
                    item.what()
                ),
            ));
        };
        if item.get("litellm_params").is_none()
            && (item.get("provider").is_some() || item.get("group_name").is_some())
        {
            return self.simple_deployment(i, item, entries, retries);
        }
        let name = item.get("model_name").ok_or_else(|| {
            self.err(
                item.line,
                &key,
                "missing `model_name` (the name clients ask for)",
            )
        })?;
        let group = name.node.text().ok_or_else(|| {
            self.err(
                name.line,
                &format!("{key}.model_name"),
                format!("must be a string, not {}", name.node.what()),
            )
        })?;
        let params = item.get("litellm_params").ok_or_else(|| {
            self.err(
                item.line,
                &key,
                format!("model `{group}` has no `litellm_params` (with `model: provider/name`)"),
            )
        })?;
        let pkey = format!("{key}.litellm_params");
        let Some(p) = params.node.entries() else {
            return Err(self.err(
                params.line,
                &pkey,
                format!("must be a mapping, not {}", params.node.what()),
            ));
        };
        let model = params.node.get("model").ok_or_else(|| {
            self.err(
                params.line,
                &pkey,
                format!("model `{group}` has no `litellm_params.model` (like `openai/gpt-4o`)"),
            )
        })?;
        let model_key = format!("{pkey}.model");
        let model_text = model.node.text().ok_or_else(|| {
            self.err(
                model.line,
                &model_key,
                format!("must be a string, not {}", model.node.what()),
            )
        })?;
        let custom = match params.node.get("custom_llm_provider") {
            Some(c) => Some(c.node.text().ok_or_else(|| {
                self.err(
                    c.line,
                    &format!("{pkey}.custom_llm_provider"),
                    "must be a string",
                )
            })?),
            None => None,
        };
        let (info, upstream, note) = split_provider(&model_text, custom.as_deref())
            .map_err(|m| self.err(model.line, &model_key, m))?;
        let mut d = Deployment {
            key: key.clone(),
            line: item.line,
            group: group.trim().to_string(),
            group_line: name.line,
            group_key: format!("{key}.model_name"),
            info,
            provider_note: format!("{model_key}: {note}"),
            model: upstream,
            base_url: None,
            api_key: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            order: None,
            weight: None,
            id: None,
            headers: Vec::new(),
        };
        let mut unmapped = Vec::new();
        for e in p {
            let k = format!("{pkey}.{}", e.key);
            match e.key.as_str() {
                "model" | "custom_llm_provider" => {}
                "api_base" | "base_url" => d.base_url = Some(self.string(e, &k)?),
                "api_key" => d.api_key = Some(self.string(e, &k)?),
                "timeout" => d.timeout = self.seconds(e, &k)?,
                "stream_timeout" => d.stream_timeout = self.seconds(e, &k)?,
                "rpm" => d.rpm = Some(self.rpm(e, &k)?),
                "tpm" => self.tpm(e.line, &k),
                "max_retries" => {
                    let n = self.whole(e, &k, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{k} (global in llm-router)"),
                        line: e.line,
                        key: k.clone(),
                    };
                    self.retries(retries, val, false);
                }
                "order" => d.order = Some(self.whole(e, &k, 0)?.min(u32::MAX as u64) as u32),
                "weight" => d.weight = Some(self.weight(e, &k)?),
                "organization" => {
                    let v = self.string(e, &k)?;
                    d.headers.push(("openai-organization".into(), v));
                }
                "extra_headers" => match e.node.entries() {
                    Some(h) => {
                        for he in h {
                            let hk = format!("{k}.{}", he.key);
                            let v = self.string(he, &hk)?;
                            d.headers.push((he.key.to_ascii_lowercase(), v));
                        }
                    }
                    None => {
                        return Err(self.err(e.line, &k, format!("must be a mapping of header names to values, not {}", e.node.what())))
                    }
                },
                "api_version" if info.litellm == "azure" => self.warn(
                    e.line,
                    &k,
                    "not needed: the deployment is imported at Azure's OpenAI-compatible v1 endpoint (`<api_base>/openai/v1`), which takes no api-version",
                ),
                other => unmapped.push(other),
            }
        }
        self.unmapped(params.line, &pkey, &unmapped, "(default request parameters and provider-specific settings are not injected by llm-router)");
        if info.litellm == "azure" {
            let Some(base) = &mut d.base_url else {
                return Err(self.err(
                    params.line,
                    &pkey,
                    format!("model `{group}`: an azure/ deployment needs `api_base` (https://<resource>.openai.azure.com)"),
                ));
            };
            base.text = format!("{}/openai/v1", base.text.trim_end_matches('/'));
            base.comment = format!("{}, at Azure's OpenAI-compatible v1 endpoint", base.comment);
            self.warn(model.line, &model_key, format!(
                "azure/{}: imported as provider openai at `<api_base>/openai/v1` with the deployment name as the model; Azure resources without the v1 API need their own adapter",
                d.model
            ));
        }
        if d.base_url.is_none() && info.base_url.is_none() {
            return Err(self.err(
                params.line,
                &pkey,
                format!(
                    "model `{group}`: a {}/ deployment needs `api_base` (the server's address)",
                    info.litellm
                ),
            ));
        }
        // Deployment-level keys.
        let mut unmapped = Vec::new();
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "model_name" | "litellm_params" => {}
                "rpm" => {
                    if d.rpm.is_none() {
                        d.rpm = Some(self.rpm(e, &k)?);
                    }
                }
                "tpm" => self.tpm(e.line, &k),
                "model_info" => {
                    let mut meta = Vec::new();
                    for m in e.node.entries().unwrap_or_default() {
                        if m.key == "id" {
                            d.id = m.node.text();
                        } else {
                            meta.push(m.key.as_str());
                        }
                    }
                    self.unmapped(e.line, &k, &meta, "(model metadata)");
                }
                other => unmapped.push(other),
            }
        }
        self.unmapped(item.line, &key, &unmapped, "in llm-router");
        Ok(d)
    }

    /// The simple form: `{ id, group_name, model_name, provider, api_key }`.
    fn simple_deployment(
        &mut self,
        i: usize,
        item: &Node,
        entries: &[Entry],
        retries: &mut Setting,
    ) -> Result<Deployment, ConfigError> {
        let key = format!("model_list[{i}]");
        let text_of = |this: &Self, name: &str| -> Result<Option<(String, usize)>, ConfigError> {
            match item.get(name) {
                None => Ok(None),
                Some(e) => e
                    .node
                    .text()
                    .map(|t| Some((t.trim().to_string(), e.line)))
                    .ok_or_else(|| {
                        this.err(
                            e.line,
                            &format!("{key}.{name}"),
                            format!("must be a string, not {}", e.node.what()),
                        )
                    }),
            }
        };
        let model = text_of(self, "model_name")?.ok_or_else(|| {
            self.err(
                item.line,
                &key,
                "missing `model_name` (the model to ask the provider for)",
            )
        })?;
        let (group, group_line, group_key) = match text_of(self, "group_name")? {
            Some((g, l)) => (g, l, format!("{key}.group_name")),
            None => (model.0.clone(), model.1, format!("{key}.model_name")),
        };
        let provider = text_of(self, "provider")?.ok_or_else(|| {
            self.err(
                item.line,
                &key,
                format!("model `{group}` has no `provider`"),
            )
        })?;
        let info = provider_info(&provider.0).ok_or_else(|| {
            self.err(
                provider.1,
                &format!("{key}.provider"),
                format!(
                    "unknown provider `{}`; known: {}",
                    provider.0,
                    PROVIDERS
                        .iter()
                        .map(|p| p.litellm)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let (_, mut upstream, _) = split_provider(&model.0, Some(info.litellm))
            .map_err(|m| self.err(model.1, &format!("{key}.model_name"), m))?;
        // `model_name: openrouter/openai/gpt-4o` with `provider: openai`:
        // LiteLLM's `openrouter/` names the service, and OpenRouter's own
        // model id is the rest (`openai/gpt-4o`).
        if let Some(rest) = upstream
            .strip_prefix("openrouter/")
            .filter(|r| !r.is_empty())
        {
            upstream = rest.to_string();
        }
        let mut d = Deployment {
            key: key.clone(),
            line: item.line,
            group,
            group_line,
            group_key,
            info,
            provider_note: format!("{key}.provider"),
            model: upstream,
            base_url: None,
            api_key: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            order: None,
            weight: None,
            id: None,
            headers: Vec::new(),
        };
        let mut unmapped = Vec::new();
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "model_name" | "group_name" | "provider" => {}
                "id" => d.id = e.node.text(),
                "api_base" | "base_url" => d.base_url = Some(self.string(e, &k)?),
                "api_key" => d.api_key = Some(self.string(e, &k)?),
                "timeout" => d.timeout = self.seconds(e, &k)?,
                "stream_timeout" => d.stream_timeout = self.seconds(e, &k)?,
                "rpm" => d.rpm = Some(self.rpm(e, &k)?),
                "tpm" => self.tpm(e.line, &k),
                "order" | "priority" => {
                    d.order = Some(self.whole(e, &k, 0)?.min(u32::MAX as u64) as u32)
                }
                "weight" => d.weight = Some(self.weight(e, &k)?),
                "max_retries" => {
                    let n = self.whole(e, &k, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{k} (global in llm-router)"),
                        line: e.line,
                        key: k.clone(),
                    };
                    self.retries(retries, val, false);
                }
                other => unmapped.push(other),
            }
        }
        self.unmapped(item.line, &key, &unmapped, "in llm-router");
        if d.base_url.is_none() && info.base_url.is_none() {
            return Err(self.err(
                item.line,
                &key,
                format!(
                    "model `{}`: a {} deployment needs `api_base`",
                    d.group, info.litellm
                ),
            ));
        }
        Ok(d)
    }

    fn rpm(&mut self, e: &Entry, key: &str) -> Result<Val, ConfigError> {
        let n = self.whole(e, key, 1)?;
        Ok(Val {
            text: n.to_string(),
            comment: format!("{key}: {n} requests a minute"),
            line: e.line,
            key: key.to_string(),
        })
    }

    fn tpm(&mut self, line: usize, key: &str) {
        self.warn(
            line,
            key,
            "no per-backend token limit in llm-router (only [rate_limit] tokens, per client); ignored",
        );
    }

    fn weight(&mut self, e: &Entry, key: &str) -> Result<u32, ConfigError> {
        match e.node.number() {
            Some(w) if w > 0.0 && w.is_finite() => {
                if w.fract() != 0.0 {
                    self.warn(
                        e.line,
                        key,
                        format!(
                            "weights are whole numbers in llm-router; {w} is rounded to {}",
                            w.round().max(1.0)
                        ),
                    );
                }
                Ok(w.round().clamp(1.0, u32::MAX as f64) as u32)
            }
            _ => Err(self.err(e.line, key, "must be a number greater than 0")),
        }
    }

    /// One backend per deployment; deployments without an rpm or an id of
    /// their own that agree on provider, address, key, timeouts and headers
    /// share one. Returns the backends and, per deployment, its backend's index.
    fn backends(
        &mut self,
        deployments: &[Deployment],
        global_timeout: Option<&Val>,
        global_stream_timeout: Option<&Val>,
    ) -> (Vec<BackendOut>, Vec<usize>) {
        let mut out: Vec<BackendOut> = Vec::new();
        let mut of_deployment = Vec::with_capacity(deployments.len());
        for d in deployments {
            let api_key = match (&d.api_key, d.info.key_var) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(var)) => Some(Val {
                    text: self.var(var, Some("")),
                    comment: format!(
                        "LiteLLM's default key variable for {}/ (unset: no key)",
                        d.info.litellm
                    ),
                    line: d.line,
                    key: d.key.clone(),
                }),
                (None, None) => None,
            };
            let candidate = BackendOut {
                name: String::new(),
                info: d.info,
                provider_note: d.provider_note.clone(),
                origin: (d.line, d.key.clone()),
                base_url: d.base_url.clone(),
                api_key,
                timeout: d.timeout.clone().or_else(|| global_timeout.cloned()),
                stream_timeout: d
                    .stream_timeout
                    .clone()
                    .or_else(|| global_stream_timeout.cloned()),
                rpm: d.rpm.clone(),
                headers: d.headers.clone(),
                shareable: d.rpm.is_none() && d.id.is_none(),
                users: vec![d.key.clone()],
            };
            if candidate.shareable {
                if let Some(i) = out
                    .iter()
                    .position(|b| b.shareable && b.same_as(&candidate))
                {
                    out[i].users.push(d.key.clone());
                    of_deployment.push(i);
                    continue;
                }
            }
            let base = match &d.id {
                Some(id) => clean_name(id),
                None => d
                    .info
                    .litellm
                    .replace("ollama_chat", "ollama")
                    .replace('_', "-"),
            };
            let mut name = base.clone();
            let mut n = 2;
            while out.iter().any(|b| b.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            of_deployment.push(out.len());
            out.push(BackendOut { name, ..candidate });
        }
        (out, of_deployment)
    }

    fn groups(
        &mut self,
        deployments: &[Deployment],
        backends: &[BackendOut],
        backend_of: &[usize],
    ) -> Result<Vec<GroupOut>, ConfigError> {
        let mut groups: Vec<GroupOut> = Vec::new();
        for (d, &b) in deployments.iter().zip(backend_of) {
            let backend = backends[b].name.clone();
            let name = d.group.clone();
            let pattern = name.contains('*');
            let mut strip = false;
            let model = if pattern {
                let Some(prefix) = name.strip_suffix('*').filter(|p| !p.contains('*')) else {
                    return Err(self.err(
                        d.group_line,
                        &d.group_key,
                        format!("`{name}`: llm-router takes `*` only at the end of a model name (a prefix pattern like `openai/*`) or alone"),
                    ));
                };
                match d.model.strip_suffix('*') {
                    Some(m) if m.contains('*') => None,
                    Some(m) if m == prefix => Some(None),
                    Some("") => {
                        strip = !prefix.is_empty();
                        Some(None)
                    }
                    Some(_) => None,
                    None => Some(Some(d.model.clone())),
                }
                .ok_or_else(|| {
                    self.err(
                        d.line,
                        &format!("{}.litellm_params.model", d.key),
                        format!(
                            "`{}` for model_name `{name}`: llm-router can send the client's name, the part after the prefix, or a fixed model, not another pattern",
                            d.model
                        ),
                    )
                })?
            } else if d.model.contains('*') {
                return Err(self.err(
                    d.line,
                    &format!("{}.litellm_params.model", d.key),
                    format!("`{}` is a pattern, but model_name `{name}` is not", d.model),
                ));
            } else {
                Some(d.model.clone())
            };
            let target = TargetOut {
                backend,
                model,
                priority: d.order.unwrap_or(1),
                weight: d.weight.unwrap_or(1),
                comment: d.key.clone(),
                line: d.line,
                key: d.key.clone(),
            };
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => {
                    if g.strip_prefix != strip {
                        return Err(self.err(
                            d.line,
                            &d.key,
                            format!("the deployments of `{name}` disagree on whether the prefix is part of the model sent upstream; llm-router needs one rule per model name"),
                        ));
                    }
                    g.targets.push(target);
                }
                None => groups.push(GroupOut {
                    name,
                    line: d.group_line,
                    key: d.group_key.clone(),
                    comment: d.group_key.clone(),
                    strip_prefix: strip,
                    targets: vec![target],
                    context_fallback: None,
                }),
            }
        }
        Ok(groups)
    }

    /// `[{group: [fallback, ...]}, ...]` (also `{group: [...]}`) -> rules.
    #[allow(clippy::type_complexity)]
    fn fallback_rules(
        &mut self,
        e: &Entry,
        key: &str,
    ) -> Result<Vec<(String, Vec<String>, usize, String)>, ConfigError> {
        let mut rules = Vec::new();
        let maps: Vec<(usize, &Node)> = match &e.node.value {
            Value::Seq(items) => items.iter().enumerate().collect(),
            Value::Map(_) => vec![(0, &e.node)],
            Value::Null => Vec::new(),
            _ => {
                return Err(self.err(
                    e.line,
                    key,
                    format!(
                        "must be a list like [{{\"gpt-4o\": [\"claude-sonnet\"]}}], not {}",
                        e.node.what()
                    ),
                ))
            }
        };
        for (i, m) in maps {
            let item_key = format!("{key}[{i}]");
            let Some(entries) = m.entries() else {
                return Err(self.err(
                    m.line,
                    &item_key,
                    format!(
                        "must be a mapping of a model_name to its fallbacks, not {}",
                        m.what()
                    ),
                ));
            };
            for r in entries {
                let rk = format!("{item_key}.{}", r.key);
                let list = self.name_list(&r.node, &rk)?;
                rules.push((r.key.clone(), list, r.line, rk));
            }
        }
        Ok(rules)
    }

    fn name_list(&self, node: &Node, key: &str) -> Result<Vec<String>, ConfigError> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .map(|n| {
                    n.text().ok_or_else(|| {
                        self.err(
                            n.line,
                            key,
                            format!("must list model names, not {}", n.what()),
                        )
                    })
                })
                .collect(),
            Value::Str(s) => Ok(vec![s.clone()]),
            _ => Err(self.err(
                node.line,
                key,
                format!("must be a list of model names, not {}", node.what()),
            )),
        }
    }

    fn append_fallbacks(
        &mut self,
        groups: &mut [GroupOut],
        originals: &[(String, Vec<TargetOut>, bool)],
        group: &str,
        list: &[String],
        line: usize,
        key: &str,
    ) {
        let Some(gi) = groups.iter().position(|g| g.name == group) else {
            self.warn(
                line,
                key,
                format!("`{group}` is no model_name in model_list; ignored"),
            );
            return;
        };
        for fallback in list {
            let Some((_, targets, strip)) = originals.iter().find(|(n, _, _)| n == fallback) else {
                self.warn(
                    line,
                    key,
                    format!("fallback `{fallback}` is no model_name in model_list; ignored"),
                );
                continue;
            };
            if fallback == group {
                continue;
            }
            let g = &mut groups[gi];
            if *strip && !g.strip_prefix {
                self.warn(line, key, format!(
                    "fallback `{fallback}` strips its prefix from the model name; as a fallback of `{group}` its targets get the client's name unchanged"
                ));
            }
            let base = g.targets.iter().map(|t| t.priority).max().unwrap_or(0);
            let min = targets.iter().map(|t| t.priority).min().unwrap_or(0);
            for t in targets {
                if g.targets
                    .iter()
                    .any(|o| o.backend == t.backend && o.model == t.model)
                {
                    continue;
                }
                let mut t = t.clone();
                t.priority = base.saturating_add(1).saturating_add(t.priority - min);
                t.comment = format!("fallback `{fallback}` ({key}), {}", t.key);
                t.line = line;
                t.key = key.to_string();
                g.targets.push(t);
            }
        }
    }

    fn aliases(
        &mut self,
        groups: &mut Vec<GroupOut>,
        a: &Entry,
        key: &str,
    ) -> Result<(), ConfigError> {
        let Some(entries) = a.node.entries() else {
            return Err(self.err(
                a.line,
                key,
                format!("must map an alias to a model_name, not {}", a.node.what()),
            ));
        };
        for e in entries {
            let k = format!("{key}.{}", e.key);
            let target = match (&e.node.value, e.node.get("model")) {
                (Value::Map(_), Some(m)) => {
                    if e.node.get("hidden").is_some() {
                        self.warn(e.line, &k, "`hidden` has no equivalent: the alias is listed in /v1/models like any model");
                    }
                    m.node.text()
                }
                _ => e.node.text(),
            };
            let Some(target) = target else {
                return Err(self.err(e.line, &k, "must name a model_name"));
            };
            if groups.iter().any(|g| g.name == e.key) {
                self.warn(
                    e.line,
                    &k,
                    format!("`{}` is a model_name itself; the alias is ignored", e.key),
                );
                continue;
            }
            let Some(g) = groups.iter().find(|g| g.name == target) else {
                self.warn(
                    e.line,
                    &k,
                    format!("`{target}` is no model_name in model_list; ignored"),
                );
                continue;
            };
            let alias = GroupOut {
                name: e.key.clone(),
                line: e.line,
                key: k.clone(),
                comment: format!("{k}: an alias of `{target}`"),
                strip_prefix: false,
                targets: g.targets.clone(),
                context_fallback: g.context_fallback.clone(),
            };
            groups.push(alias);
        }
        Ok(())
    }
}

impl BackendOut {
    /// Whether `other` reaches the same place in the same way.
    fn same_as(&self, other: &BackendOut) -> bool {
        let text = |v: &Option<Val>| v.as_ref().map(|v| v.text.clone());
        self.info.litellm == other.info.litellm
            && text(&self.base_url) == text(&other.base_url)
            && text(&self.api_key) == text(&other.api_key)
            && text(&self.timeout) == text(&other.timeout)
            && text(&self.stream_timeout) == text(&other.stream_timeout)
            && self
                .headers
                .iter()
                .map(|(h, v)| (h, &v.text))
                .eq(other.headers.iter().map(|(h, v)| (h, &v.text)))
    }
}

/// `provider/model` -> the provider and the model sent upstream.
fn split_provider(
    model: &str,
    custom: Option<&str>,
) -> Result<(&'static ProviderInfo, String, String), String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("is empty; write the provider and the model, like `openai/gpt-4o`".into());
    }
    if let Some(custom) = custom {
        let info = provider_info(custom).ok_or_else(|| {
            format!(
                "custom_llm_provider `{custom}` has no equivalent in llm-router; known: {}",
                PROVIDERS
                    .iter()
                    .map(|p| p.litellm)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let rest = model
            .strip_prefix(&format!("{custom}/"))
            .unwrap_or(model)
            .to_string();
        return Ok((info, rest, format!("custom_llm_provider {custom}")));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(info) = provider_info(prefix) {
            if rest.is_empty() {
                return Err(format!("`{model}` names no model after `{prefix}/`"));
            }
            return Ok((info, rest.to_string(), format!("the `{prefix}/` prefix")));
        }
        return Err(format!(
            "unknown provider prefix `{prefix}/` in `{model}`; llm-router speaks {} (OpenAI-compatible APIs: `openai/` with `api_base`)",
            known_prefixes()
        ));
    }
    // No prefix: LiteLLM infers the provider from the name; Claude models are
    // Anthropic's, the rest OpenAI's.
    if model.starts_with("claude-") {
        let info = provider_info("anthropic").expect("anthropic is listed");
        return Ok((
            info,
            model.to_string(),
            "no prefix, a Claude model: anthropic".into(),
        ));
    }
    let info = provider_info("openai").expect("openai is listed");
    Ok((info, model.to_string(), "no prefix: openai".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_ok(yaml: &str) -> Imported {
        let imported = import(yaml, Path::new("config.yaml"))
            .unwrap_or_else(|e| panic!("import failed: {e}\n{yaml}"));
        imported
            .validate(Path::new("config.toml"))
            .unwrap_or_else(|e| panic!("invalid: {e}\n{}", imported.toml));
        imported
    }

    fn import_err(yaml: &str) -> String {
        import(yaml, Path::new("config.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn provider_prefixes() {
        let (i, m, _) = split_provider("openai/gpt-4o", None).unwrap();
        assert_eq!((i.provider, m.as_str()), ("openai", "gpt-4o"));
        let (i, m, _) = split_provider("deepinfra/meta-llama/Llama-3.3-70B", None).unwrap();
        assert_eq!(i.base_url, Some("https://api.deepinfra.com/v1/openai"));
        assert_eq!(m, "meta-llama/Llama-3.3-70B");
        let (i, _, _) = split_provider("ollama_chat/llama3", None).unwrap();
        assert_eq!(i.provider, "ollama");
        let (i, m, _) = split_provider("gpt-4o-mini", None).unwrap();
        assert_eq!((i.provider, m.as_str()), ("openai", "gpt-4o-mini"));
        let (i, _, _) = split_provider("claude-3-5-sonnet-20241022", None).unwrap();
        assert_eq!(i.provider, "anthropic");
        let (i, m, _) = split_provider("meta-llama/x", Some("hosted_vllm")).unwrap();
        assert_eq!((i.litellm, m.as_str()), ("hosted_vllm", "meta-llama/x"));
        let e = split_provider("bedrock/anthropic.claude-v2", None).unwrap_err();
        assert!(e.contains("unknown provider prefix `bedrock/`"), "{e}");
        assert!(e.contains("cerebras/"), "{e}");
    }

    #[test]
    fn durations_from_seconds() {
        assert_eq!(duration(30.0), "30s");
        assert_eq!(duration(0.5), "500ms");
        assert_eq!(duration(1.25), "1250ms");
    }

    #[test]
    fn detection() {
        assert!(is_litellm(Path::new("c.yaml"), ""));
        assert!(is_litellm(Path::new("c.YML"), ""));
        assert!(!is_litellm(Path::new("c.toml"), "model_list:\n"));
        assert!(is_litellm(
            Path::new("litellm.conf"),
            "# x\nmodel_list:\n  - a\n"
        ));
        assert!(!is_litellm(Path::new("config"), "[[models]]\n"));
    }

    #[test]
    fn proxy_server_config_sets_the_address() {
        let imported = import_ok(
            "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  host: 127.0.0.1\n  port: 8090\n  workers: 2\n",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        assert_eq!(c.server.listen(), "127.0.0.1:8090");
        let w: Vec<String> = imported.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            ["config.yaml:4: proxy_server_config: key `workers` has no equivalent in llm-router; ignored"]
        );
        let e = import(
            "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  port: 70000\n",
            Path::new("config.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(5));
        // Only the port: LiteLLM's default host.
        let imported = import_ok(
            "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  port: 8090\n",
        );
        assert!(
            imported.toml.contains("listen = \"0.0.0.0:8090\""),
            "{}",
            imported.toml
        );
    }

    #[test]
    fn a_minimal_config() {
        let imported = import_ok(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/OPENAI_API_KEY\n",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.backends[0].name, "openai");
        assert_eq!(c.backends[0].provider, "openai");
        assert_eq!(c.models[0].targets[0].model.as_deref(), Some("gpt-4o"));
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        assert!(imported.variables.contains("OPENAI_API_KEY"));
        assert!(imported.toml.starts_with(
            "# llm-router configuration imported from the LiteLLM config `config.yaml`"
        ));
    }

    #[test]
    fn deployments_share_a_backend_unless_they_have_limits() {
        let imported = import_ok(
            "model_list:
  - model_name: a
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/K }
  - model_name: b
    litellm_params: { model: openai/gpt-4o-mini, api_key: os.environ/K }
  - model_name: c
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/K, rpm: 10 }
  - model_name: d
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/OTHER }
",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["openai", "openai-2", "openai-3"]);
        let backend_of = |m: &str| {
            c.models.iter().find(|x| x.name == m).unwrap().targets[0]
                .backend
                .clone()
        };
        assert_eq!(backend_of("a"), "openai");
        assert_eq!(backend_of("b"), "openai");
        assert_eq!(backend_of("c"), "openai-2");
        assert_eq!(backend_of("d"), "openai-3");
        assert_eq!(c.backends[1].rate_limit.unwrap().requests, 10);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = import_err(
            "model_list:\n  - model_name: x\n    litellm_params:\n      model: bedrock/claude\n",
        );
        assert!(e.starts_with("config.yaml:4: model_list[0].litellm_params.model: unknown provider prefix `bedrock/`"), "{e}");
        let e =
            import_err("model_list:\n  - model_name: x\n    litellm_params:\n      api_key: k\n");
        assert!(e.starts_with("config.yaml:3: model_list[0].litellm_params: model `x` has no `litellm_params.model`"), "{e}");
        let e = import_err("model_list:\n  - litellm_params:\n      model: openai/x\n");
        assert!(
            e.starts_with("config.yaml:2: model_list[0]: missing `model_name`"),
            "{e}"
        );
        let e = import_err("model_list:\n  - model_name: x\n    litellm_params: [\n");
        assert!(e.starts_with("config.yaml:"), "{e}");
        assert!(e.contains("invalid YAML"), "{e}");
        let e = import_err("router_settings: {}\n");
        assert!(e.contains("no `model_list`"), "{e}");
        let e = import_err(
            "model_list:\n  - model_name: x\n    litellm_params:\n      model: hosted_vllm/llama\n",
        );
        assert!(e.contains("needs `api_base`"), "{e}");
        let e = import_err("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      rpm: lots\n");
        assert!(
            e.starts_with(
                "config.yaml:5: model_list[0].litellm_params.rpm: must be a whole number"
            ),
            "{e}"
        );
    }

    #[test]
    fn unset_variables_are_reported_at_the_yaml_line() {
        let imported = import(
            "model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/NOT_SET_ANYWHERE\n",
            Path::new("config.yaml"),
        )
        .unwrap();
        let e = imported
            .config(Path::new("config.yaml"), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config.yaml:5: model_list[0].litellm_params.api_key: "),
            "{e}"
        );
        assert!(e.contains("NOT_SET_ANYWHERE"), "{e}");
    }

    #[test]
    fn unknown_keys_are_warnings_naming_them() {
        let imported = import_ok(
            "model_list:
  - model_name: x
    litellm_params:
      model: openai/x
      temperature: 0.2
      tpm: 1000
    model_info:
      id: dep-1
      mode: chat
litellm_settings:
  drop_params: true
  success_callback: [langfuse]
general_settings:
  database_url: postgres://x
server_settings: {}
",
        );
        let w = imported
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "config.yaml:3: model_list[0].litellm_params: key `temperature` has no equivalent",
            "config.yaml:6: model_list[0].litellm_params.tpm: no per-backend token limit",
            "config.yaml:7: model_list[0].model_info: key `mode` has no equivalent",
            "config.yaml:11: litellm_settings.drop_params: no equivalent",
            "litellm_settings: key `success_callback` has no equivalent",
            "general_settings: key `database_url` has no equivalent",
            "config.yaml:15: server_settings: section has no equivalent",
        ] {
            assert!(w.contains(needle), "missing {needle:?} in\n{w}");
        }
        // The deployment's id names its backend, and the warnings head the file.
        assert!(
            imported.toml.contains("name = \"dep-1\""),
            "{}",
            imported.toml
        );
        assert!(
            imported
                .toml
                .contains("#   config.yaml:6: model_list[0].litellm_params.tpm"),
            "{}",
            imported.toml
        );
    }

    #[test]
    fn wildcards_become_prefix_patterns() {
        let imported = import_ok(
            "model_list:
  - model_name: \"anthropic/*\"
    litellm_params: { model: \"anthropic/*\" }
  - model_name: \"gpt-*\"
    litellm_params: { model: \"openai/gpt-*\" }
  - model_name: \"*\"
    litellm_params: { model: \"*\" }
",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        let m = |n: &str| c.models.iter().find(|m| m.name == n).unwrap();
        assert!(m("anthropic/*").strip_prefix);
        assert_eq!(m("anthropic/*").targets[0].model, None);
        assert!(!m("gpt-*").strip_prefix);
        assert_eq!(m("gpt-*").targets[0].model, None);
        assert_eq!(m("*").targets[0].model, None);
        let e = import_err(
            "model_list:\n  - model_name: \"a*b\"\n    litellm_params: { model: openai/x }\n",
        );
        assert!(
            e.starts_with("config.yaml:2: model_list[0].model_name: `a*b`"),
            "{e}"
        );
    }

    #[test]
    fn merge_keys_and_anchors() {
        let imported = import_ok(
            "x-defaults: &defaults
  api_key: os.environ/OPENAI_API_KEY
  rpm: 30
model_list:
  - model_name: a
    litellm_params:
      <<: *defaults
      model: openai/a
",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        assert_eq!(c.backends[0].rate_limit.unwrap().requests, 30);
        assert!(imported.warnings[0]
            .to_string()
            .contains("x-defaults: section has no equivalent"));
    }

    #[test]
    fn environment_variables_become_defaults() {
        let imported = import_ok(
            "environment_variables:\n  OPENAI_API_KEY: sk-from-yaml\nmodel_list:\n  - model_name: a\n    litellm_params: { model: openai/a, api_key: os.environ/OPENAI_API_KEY }\n",
        );
        assert!(
            imported
                .toml
                .contains("api_key = \"${OPENAI_API_KEY:-sk-from-yaml}\""),
            "{}",
            imported.toml
        );
    }

    #[test]
    fn router_settings_map_to_sections() {
        let imported = import_ok(
            "model_list:
  - model_name: a
    litellm_params: { model: openai/a }
  - model_name: b
    litellm_params: { model: openai/b, api_base: \"http://127.0.0.1:1/v1\" }
router_settings:
  stream_timeout: 20
  timeout: 45
  default_fallbacks: [\"b\"]
  allowed_fails: 0
litellm_settings:
  request_timeout: 10
",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        for b in &c.backends {
            assert_eq!(b.timeout, std::time::Duration::from_secs(45));
            assert_eq!(b.first_byte_timeout, std::time::Duration::from_secs(20));
        }
        let a: Vec<(&str, u32)> = c.models[0]
            .targets
            .iter()
            .map(|t| (t.backend.as_str(), t.priority))
            .collect();
        assert_eq!(a, [("openai", 1), ("openai-2", 2)]);
        assert_eq!(c.models[1].targets.len(), 1);
        assert_eq!(c.circuit_breaker.failure_threshold, 1);
        assert!(
            imported.warnings.iter().any(|w| w.to_string().contains(
                "litellm_settings.request_timeout: router_settings.timeout is used instead"
            )),
            "{:?}",
            imported.warnings
        );
    }

    #[test]
    fn simple_form() {
        let imported = import_ok(
            "model_list:
  - id: primary
    group_name: smart
    model_name: gpt-4o
    provider: openai
    api_key: ${OPENAI_API_KEY}
    priority: 1
  - id: backup
    group_name: smart
    model_name: llama-3.3-70b
    provider: cerebras
    api_key: ${CEREBRAS_API_KEY}
    priority: 2
",
        );
        let c = imported.validate(Path::new("config.toml")).unwrap();
        assert_eq!(c.models.len(), 1);
        let t = &c.models[0].targets;
        assert_eq!((t[0].backend.as_str(), t[0].priority), ("primary", 1));
        assert_eq!(
            (t[1].backend.as_str(), t[1].model.as_deref()),
            ("backup", Some("llama-3.3-70b"))
        );
        assert_eq!(
            c.backends[1].base_url.as_deref(),
            Some("https://api.cerebras.ai/v1")
        );
        assert!(imported.variables.contains("CEREBRAS_API_KEY"));
    }
}
