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

mod backends;
mod deployments;
mod models;
mod providers;
mod settings;
mod values;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

use super::import::yaml;
use super::import::Warning;
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

/// A value for the generated text, with where it came from and a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Val {
    text: String,
    comment: String,
    line: usize,
    key: String,
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

#[cfg(test)]
mod tests;
