//! `config.toml`: parsing, `${VAR}` substitution, environment overrides and
//! validation. This is the only module that knows serde; everything it
//! produces is plain typed values that the layers take as they are.
//!
//! Every error is a [`ConfigError`] naming the file, the line and the key:
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::Config;
//!
//! let text = "[server]\nlisten = \"127.0.0.1:9000\"\n\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"locl\" }]\n";
//! let err = Config::parse(text, Path::new("config.toml"), &|_| None).unwrap_err();
//! assert_eq!(err.to_string(),
//!     "config.toml:10: models[0].targets[0].backend: backend `locl` is not defined (defined: local)");
//! ```

mod auth;
mod backends;
mod cors;
pub mod discover;
pub mod dotenv;
mod env;
mod error;
mod generated;
mod headers;
pub mod import;
mod keys;
pub mod litellm;
mod loader;
mod log;
mod models;
mod names;
pub mod overrides;
mod pricing;
mod raw;
mod resilience;
mod server;
mod stack;
mod state;
mod tools;
mod transforms;
mod types;
mod warnings;
pub mod zero;

pub use crate::pricing::{Cost, Price, Pricing, PricingConfig, UnknownModel};
pub use crate::secret::{mask_key, Secret};
pub use crate::store::{StateConfig, StoreKind};
pub use error::ConfigError;
pub use loader::parse_duration;
pub use log::LogPolicy;
pub use names::env_name;
pub use resilience::BackendLimit;
pub use stack::LayerName;
pub use tools::{BackendTools, ToolsConfig};
pub use types::{ApiKeySetting, BackendConfig, Config, ModelConfig, ServerConfig, TargetConfig};

use std::path::Path;

use loader::Loader;
use raw::{clean_path, explain_serde_error, one_line, RawConfig};

impl Config {
    /// Read and validate a config file, with the process environment. The
    /// other routers' files (a LiteLLM config, the `models:`-map or
    /// `providers:` YAML, the `openai`/`anthropic` JSON, a `.env`), told by
    /// their content, are imported first (see [`import`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `env` as the environment (`${VAR}` and the
    /// [`overrides`]): the process environment, or it overlaid
    /// with a `.env` file, or a test's own lookup.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "config file not found; write an example one with `llm-router init {}`",
                    path.display()
                )
            } else {
                format!("cannot read the config file: {e}")
            },
        })?;
        import::load(&text, path, env)
    }

    /// Validate config text read from `path`, with `env` as the environment.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let substituted = env::substitute(text, env).map_err(|e| ConfigError {
            file: file.clone(),
            line: Some(e.line),
            key: e.key,
            message: e.message,
        })?;
        // Spans below are offsets into the substituted text: count lines there
        // (substitution never adds a line break, so the lines are the file's).
        let text: &str = &substituted;
        let loader = Loader {
            file: file.clone(),
            text,
            env,
        };
        // Syntax first, so that a TOML syntax error says so.
        if let Err(e) = substituted.parse::<toml::Table>() {
            return Err(ConfigError {
                file,
                line: e.span().map(|s| env::line_of(&substituted, s.start)),
                key: None,
                message: format!("invalid TOML: {}", one_line(e.message())),
            });
        }
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(
            &substituted,
        ))
        .map_err(|e| {
            let path = clean_path(&e.path().to_string());
            let inner = e.into_inner();
            ConfigError {
                file: file.clone(),
                line: inner.span().map(|s| env::line_of(&substituted, s.start)),
                message: explain_serde_error(&path, inner.message()),
                key: (path != "." && !path.is_empty()).then_some(path),
            }
        })?;

        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let server = loader.server(raw.server, &dir)?;
        let (mut stack, stack_explicit) = loader.stack(raw.stack)?;
        let retry = loader.retry(raw.retry)?;
        let circuit_breaker = loader.circuit_breaker(raw.circuit_breaker)?;
        let failover = loader.failover(raw.failover)?;
        let rate_limit = loader.rate_limit(raw.rate_limit)?;
        let auth = loader.auth(
            raw.auth.as_ref(),
            &raw.keys,
            &dir,
            &mut stack,
            stack_explicit,
        )?;
        loader.budget_order(&mut stack, stack_explicit)?;
        let headers = match &raw.headers {
            Some(h) => loader.header_rules(h, "headers")?,
            None => Default::default(),
        };
        let cors = loader.cors(raw.cors.as_ref())?;
        let tools = loader.tools(raw.tools.as_ref())?;
        let transforms = loader.transforms(&raw.transforms, &mut stack, stack_explicit)?;
        let pii = loader.pii(raw.pii.as_ref(), &mut stack, stack_explicit)?;
        let state = loader.state(raw.state.as_ref(), &dir)?;
        let log = loader.log(raw.log.as_ref(), &dir, &mut stack, stack_explicit)?;
        let pricing = loader.pricing(raw.pricing.as_ref())?;

        let mut backends: Vec<BackendConfig> = Vec::new();
        for (i, rb) in raw.backends.iter().enumerate() {
            let b = loader.backend(i, rb)?;
            if let Some(first) = raw.backends[..i]
                .iter()
                .find(|o| o.name.get_ref().trim() == b.name)
            {
                return Err(loader.err(
                    Some(rb.name.span()),
                    format!("backends[{i}].name"),
                    format!(
                        "duplicate backend name `{}` (first defined at line {})",
                        b.name,
                        env::line_of(text, first.name.span().start)
                    ),
                ));
            }
            backends.push(b);
        }
        let mut models: Vec<ModelConfig> = Vec::new();
        for (i, rm) in raw.models.iter().enumerate() {
            let m = loader.model(i, rm, &backends, &retry)?;
            // One name may have a route per client restriction (`clients`).
            if let Some((_, first)) = models
                .iter()
                .zip(&raw.models)
                .find(|(o, _)| o.name == m.name && o.clients == m.clients)
            {
                return Err(loader.err(
                    Some(rm.name.span()),
                    format!("models[{i}].name"),
                    format!(
                        "duplicate model name `{}` (first defined at line {})",
                        m.name,
                        env::line_of(text, first.name.span().start)
                    ),
                ));
            }
            models.push(m);
        }
        for (i, rm) in raw.models.iter().enumerate() {
            if let Some(fallback) = &rm.context_fallback {
                let name = fallback.get_ref();
                if name == rm.name.get_ref() {
                    return Err(loader.err(
                        Some(fallback.span()),
                        format!("models[{i}].context_fallback"),
                        "a model cannot be its own context fallback",
                    ));
                }
                if !models.iter().any(|m| &m.name == name) {
                    return Err(loader.err(
                        Some(fallback.span()),
                        format!("models[{i}].context_fallback"),
                        format!("model `{name}` is not defined in [[models]]"),
                    ));
                }
            }
        }
        if models.is_empty() {
            return Err(ConfigError {
                file,
                line: None,
                key: Some("models".into()),
                message:
                    "no [[models]] are defined, so no request could be routed; add at least one"
                        .into(),
            });
        }
        let mut config = Config {
            path: path.to_path_buf(),
            server,
            stack,
            stack_explicit,
            backends,
            models,
            retry,
            circuit_breaker,
            failover,
            rate_limit,
            auth,
            headers,
            cors,
            tools,
            transforms,
            pii,
            state,
            log,
            pricing,
            source_warnings: Vec::new(),
        };
        overrides::apply(&mut config, env)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
