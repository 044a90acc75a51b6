//! No config file at all: a config built from well-known environment
//! variables, routing each model to the provider that serves it by name.
//!
//! | variable | backend | models |
//! | --- | --- | --- |
//! | `OPENAI_API_KEY` | `openai` (OpenAI) | `gpt-*`, `chatgpt-*`, `o1*`, `o3*`, `o4*`, `text-embedding-*`, `openai/*` |
//! | `ANTHROPIC_API_KEY` | `anthropic` (Anthropic) | `claude-*`, `anthropic/*` |
//! | `GEMINI_API_KEY` | `gemini` (Google Gemini) | `gemini-*`, `gemini/*` |
//! | `CEREBRAS_API_KEY` | `cerebras` (OpenAI-compatible, `https://api.cerebras.ai/v1`) | `cerebras/*` |
//! | `DEEPINFRA_TOKEN` (or `DEEPINFRA_API_KEY`) | `deepinfra` (OpenAI-compatible, `https://api.deepinfra.com/v1/openai`) | `deepinfra/*` |
//! | `OLLAMA_BASE_URL` | `ollama` (Ollama at that address; a trailing `/v1` is dropped) | `ollama/*` |
//!
//! A `provider/` prefix is removed from the name sent upstream
//! (`cerebras/llama-3.3-70b` asks Cerebras for `llama-3.3-70b`). Each hosted
//! provider's address can be changed with `<NAME>_BASE_URL` (`OPENAI_BASE_URL`,
//! `ANTHROPIC_BASE_URL`, `GEMINI_BASE_URL`, `CEREBRAS_BASE_URL`,
//! `DEEPINFRA_BASE_URL`). Any other name goes to the open-model hosts set
//! (Cerebras, DeepInfra, Ollama, by priority). With none of the variables set, the built-in `mock`
//! backend answers the models `echo` and `*`.
//!
//! `ROUTER_SERVICES` (a JSON list of services, see [`services`]) takes the
//! place of the table: its services are the backends, and one `*` route
//! sends every model to them by priority; the variables above then only
//! supply the keys of services that give none.
//!
//! ```
//! let env = |name: &str| (name == "ANTHROPIC_API_KEY").then(|| "sk-ant-test".to_string());
//! let zero = llm_router::config::zero::from_environment(&env).unwrap();
//! assert_eq!(zero.config.backends[0].provider, "anthropic");
//! let names: Vec<&str> = zero.config.models.iter().map(|m| m.name.as_str()).collect();
//! assert_eq!(names, ["claude-*", "anthropic/*"]);
//! assert!(!zero.mock);
//! ```

pub mod services;

use std::path::Path;

use super::generated::{quote, Origin, Toml};
use super::{Config, ConfigError};

/// One well-known variable and what it builds.
#[derive(Debug)]
struct EnvProvider {
    /// The variables that turn it on, the first set wins (the key;
    /// Ollama's address).
    vars: &'static [&'static str],
    backend: &'static str,
    provider: &'static str,
    /// Default address, and the variable that overrides it (`None`: `var` is the address).
    base_url: Option<(&'static str, &'static str)>,
    /// Model name patterns it serves as they are.
    patterns: &'static [&'static str],
    /// The `provider/` prefix it serves with the prefix removed.
    prefix: &'static str,
}

const PROVIDERS: &[EnvProvider] = &[
    EnvProvider {
        vars: &["OPENAI_API_KEY"],
        backend: "openai",
        provider: "openai",
        base_url: Some(("https://api.openai.com/v1", "OPENAI_BASE_URL")),
        patterns: &[
            "gpt-*",
            "chatgpt-*",
            "o1*",
            "o3*",
            "o4*",
            "text-embedding-*",
        ],
        prefix: "openai/*",
    },
    EnvProvider {
        vars: &["ANTHROPIC_API_KEY"],
        backend: "anthropic",
        provider: "anthropic",
        base_url: Some(("https://api.anthropic.com", "ANTHROPIC_BASE_URL")),
        patterns: &["claude-*"],
        prefix: "anthropic/*",
    },
    EnvProvider {
        vars: &["GEMINI_API_KEY"],
        backend: "gemini",
        provider: "gemini",
        base_url: Some((
            "https://generativelanguage.googleapis.com",
            "GEMINI_BASE_URL",
        )),
        patterns: &["gemini-*"],
        prefix: "gemini/*",
    },
    EnvProvider {
        vars: &["CEREBRAS_API_KEY"],
        backend: "cerebras",
        provider: "openai",
        base_url: Some(("https://api.cerebras.ai/v1", "CEREBRAS_BASE_URL")),
        patterns: &[],
        prefix: "cerebras/*",
    },
    EnvProvider {
        vars: &["DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY"],
        backend: "deepinfra",
        provider: "openai",
        base_url: Some(("https://api.deepinfra.com/v1/openai", "DEEPINFRA_BASE_URL")),
        patterns: &[],
        prefix: "deepinfra/*",
    },
    EnvProvider {
        vars: &["OLLAMA_BASE_URL"],
        backend: "ollama",
        provider: "ollama",
        base_url: None,
        patterns: &[],
        prefix: "ollama/*",
    },
];

/// The variables read, in order.
pub const VARIABLES: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "CEREBRAS_API_KEY",
    "DEEPINFRA_TOKEN",
    "DEEPINFRA_API_KEY",
    "OLLAMA_BASE_URL",
    "ROUTER_SERVICES",
];

/// The `path` of a config built from the environment.
pub const PATH: &str = "<environment>";

/// A config built from the environment, and how.
#[derive(Debug)]
pub struct FromEnvironment {
    /// The config.
    pub config: Config,
    /// One line per variable used: `OPENAI_API_KEY -> backend openai: gpt-*, ...`.
    pub summary: Vec<String>,
    /// None of the variables was set: the `mock` backend serves `echo` and `*`.
    pub mock: bool,
    /// The equivalent config.toml (keys as `${VAR}`).
    pub toml: String,
}

fn env_origin(var: &str) -> Option<Origin> {
    Some(Origin {
        file: "environment".into(),
        line: None,
        key: var.into(),
    })
}

/// Build the config from `env` (see the [module docs](self)).
pub fn from_environment(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FromEnvironment, ConfigError> {
    let set = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    let mut t = Toml::default();
    t.comment("Built from the environment: no config file was found.");
    let mut summary = Vec::new();
    let services = services::read(env)?;
    let used: Vec<(&EnvProvider, &str)> = PROVIDERS
        .iter()
        .filter_map(|p| p.vars.iter().find(|v| set(v)).map(|v| (p, *v)))
        .collect();
    if let Some(services) = &services {
        summary.push(services.write(&mut t));
        if !used.is_empty() {
            let vars: Vec<&str> = used.iter().map(|(_, v)| *v).collect();
            summary.push(format!(
                "{} not routed on their own while {} is set (they only give services without an api_key or base_url theirs)",
                vars.join(", "),
                services::VARIABLE
            ));
        }
    } else {
        write_providers(&mut t, &used, env, &mut summary);
    }
    let mock = services.is_none() && used.is_empty();
    if mock {
        t.blank();
        t.line("[[backends]]");
        t.line("name = \"mock\"");
        t.line("provider = \"mock\"");
        for name in ["echo", "*"] {
            t.blank();
            t.line("[[models]]");
            t.line(format!("name = {}", quote(name)));
            t.line("targets = [{ backend = \"mock\" }]");
        }
        summary.push(format!(
            "none of {} is set: the mock backend answers the models `echo` and `*` (it echoes the last user message)",
            VARIABLES.join(", ")
        ));
    }
    let toml = t.text();
    // A service's own api_key reaches the config as its backend key
    // override, which a real variable of that name wins over.
    let lookup = |name: &str| env(name).or_else(|| services.as_ref().and_then(|s| s.key_for(name)));
    let mut config = Config::parse(&toml, Path::new(PATH), &lookup)
        .map_err(|e| t.map_error(e, "environment"))?;
    if let Some(services) = &services {
        // Keys of ROUTER_SERVICES this proxy has no use for: part of
        // `Config::warnings`.
        config
            .source_warnings
            .extend(services.warnings.iter().cloned());
    }
    Ok(FromEnvironment {
        config,
        summary,
        mock,
        toml,
    })
}

/// The backends and routes of the well-known variables that are set.
fn write_providers(
    t: &mut Toml,
    used: &[(&EnvProvider, &str)],
    env: &dyn Fn(&str) -> Option<String>,
    summary: &mut Vec<String>,
) {
    for (p, var) in used {
        t.blank();
        t.line("[[backends]]");
        t.line(format!("name = {}", quote(p.backend)));
        t.line(format!("provider = {}", quote(p.provider)));
        match p.base_url {
            Some((default, url_var)) => {
                t.item(
                    format!("base_url = \"${{{url_var}:-{default}}}\""),
                    "",
                    env_origin(url_var),
                );
                t.item(format!("api_key = \"${{{var}}}\""), "", env_origin(var));
            }
            // Ollama: the address, without the `/v1` of its OpenAI-compatible API.
            None => t.item(
                format!(
                    "base_url = {}",
                    quote(&services::ollama_root(&env(var).unwrap_or_default()))
                ),
                "",
                env_origin(var),
            ),
        }
    }
    for (p, var) in used {
        for pattern in p.patterns {
            t.blank();
            t.line("[[models]]");
            t.line(format!("name = {}", quote(pattern)));
            t.line(format!("targets = [{{ backend = {} }}]", quote(p.backend)));
        }
        t.blank();
        t.line("[[models]]");
        t.line(format!("name = {}", quote(p.prefix)));
        t.line("strip_prefix = true");
        t.line(format!("targets = [{{ backend = {} }}]", quote(p.backend)));
        let models: Vec<&str> = p.patterns.iter().copied().chain([p.prefix]).collect();
        summary.push(format!(
            "{var} -> backend {} ({}): {}",
            p.backend,
            p.provider,
            models.join(", ")
        ));
    }
    // Any other name (`llama3.1-8b`, as the `.env` routers' users send): the
    // hosts of open models (no name family of their own) by priority, in the
    // table's order; failover moves on when one fails or is rate-limited.
    // A name of another family (`claude-*` with only OpenAI set) stays a 404
    // rather than being sent to a provider that does not serve it.
    let rest: Vec<&str> = used
        .iter()
        .filter(|(p, _)| p.patterns.is_empty())
        .map(|(p, _)| p.backend)
        .collect();
    if !rest.is_empty() {
        let targets: Vec<String> = rest
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{{ backend = {}, priority = {} }}", quote(b), i + 1))
            .collect();
        t.blank();
        t.line("[[models]]");
        t.line("name = \"*\"");
        t.line(format!("targets = [{}]", targets.join(", ")));
        summary.push(format!(
            "any other model name -> {} (in that order)",
            rest.join(", then ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::route_table;

    fn with(vars: &[(&str, &str)]) -> Result<FromEnvironment, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_environment(&move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    /// backend and upstream model for a requested name.
    fn route(zero: &FromEnvironment, model: &str) -> Option<(String, String)> {
        let table = route_table(&zero.config).unwrap();
        let route = table.resolve(model)?;
        let t = &route.targets()[0];
        Some((
            t.backend().name().to_string(),
            t.upstream_model(model).to_string(),
        ))
    }

    #[test]
    fn nothing_set_serves_the_mock() {
        let zero = with(&[("OPENAI_API_KEY", "  ")]).unwrap();
        assert!(zero.mock);
        assert_eq!(zero.config.backends[0].provider, "mock");
        assert_eq!(route(&zero, "echo").unwrap().0, "mock");
        assert_eq!(route(&zero, "anything").unwrap().0, "mock");
        assert!(zero.summary[0].contains("mock"), "{:?}", zero.summary);
    }

    #[test]
    fn every_variable_routes_by_name() {
        let zero = with(&[
            ("OPENAI_API_KEY", "sk-o"),
            ("ANTHROPIC_API_KEY", "sk-a"),
            ("GEMINI_API_KEY", "g"),
            ("CEREBRAS_API_KEY", "c"),
            ("DEEPINFRA_TOKEN", "d"),
            ("OLLAMA_BASE_URL", "http://127.0.0.1:11434"),
        ])
        .unwrap();
        assert!(!zero.mock);
        let r = |m: &str| route(&zero, m).map(|(b, m)| format!("{b}:{m}"));
        assert_eq!(r("gpt-4o").as_deref(), Some("openai:gpt-4o"));
        assert_eq!(r("o1").as_deref(), Some("openai:o1"));
        assert_eq!(r("o3-mini").as_deref(), Some("openai:o3-mini"));
        assert_eq!(r("o4-mini").as_deref(), Some("openai:o4-mini"));
        assert_eq!(
            r("text-embedding-3-small").as_deref(),
            Some("openai:text-embedding-3-small")
        );
        assert_eq!(r("openai/gpt-4o").as_deref(), Some("openai:gpt-4o"));
        assert_eq!(
            r("claude-sonnet-4-0").as_deref(),
            Some("anthropic:claude-sonnet-4-0")
        );
        assert_eq!(
            r("gemini-2.0-flash").as_deref(),
            Some("gemini:gemini-2.0-flash")
        );
        assert_eq!(
            r("cerebras/llama-3.3-70b").as_deref(),
            Some("cerebras:llama-3.3-70b")
        );
        assert_eq!(
            r("deepinfra/meta-llama/Llama-3.3-70B-Instruct").as_deref(),
            Some("deepinfra:meta-llama/Llama-3.3-70B-Instruct")
        );
        assert_eq!(r("ollama/llama3").as_deref(), Some("ollama:llama3"));
        // Any other name: the open-model hosts by priority.
        assert_eq!(r("llama3.1-8b").as_deref(), Some("cerebras:llama3.1-8b"));
        let star = zero.config.models.iter().find(|m| m.name == "*").unwrap();
        let order: Vec<&str> = star.targets.iter().map(|t| t.backend.as_str()).collect();
        assert_eq!(order, ["cerebras", "deepinfra", "ollama"]);
        // With only name-family providers, another name is no one's.
        let only_openai = with(&[("OPENAI_API_KEY", "sk-o")]).unwrap();
        assert_eq!(route(&only_openai, "claude-sonnet-4-0"), None);
        let b = |name: &str| {
            zero.config
                .backends
                .iter()
                .find(|b| b.name == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            b("cerebras").base_url.as_deref(),
            Some("https://api.cerebras.ai/v1")
        );
        assert_eq!(b("cerebras").provider, "openai");
        assert_eq!(
            b("deepinfra").base_url.as_deref(),
            Some("https://api.deepinfra.com/v1/openai")
        );
        assert_eq!(
            b("ollama").base_url.as_deref(),
            Some("http://127.0.0.1:11434")
        );
        assert!(b("ollama").api_key.is_none());
        assert_eq!(
            b("openai").api_key,
            Some(crate::config::ApiKeySetting::Key("sk-o".into()))
        );
        assert_eq!(
            zero.summary.len(),
            7,
            "one line per variable, one for the rest"
        );
        // The keys never appear in the text.
        assert!(!zero.toml.contains("sk-o"));
    }

    #[test]
    fn base_urls_can_be_overridden() {
        let zero = with(&[
            ("OPENAI_API_KEY", "sk"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ])
        .unwrap();
        assert_eq!(
            zero.config.backends[0].base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
    }

    #[test]
    fn aliases_and_ollama_v1() {
        let zero = with(&[
            ("DEEPINFRA_API_KEY", "di"),
            ("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1"),
        ])
        .unwrap();
        let deepinfra = &zero.config.backends[0];
        assert_eq!(deepinfra.name, "deepinfra");
        assert_eq!(
            deepinfra.api_key,
            Some(crate::config::ApiKeySetting::Key("di".into()))
        );
        assert!(
            zero.summary[0].starts_with("DEEPINFRA_API_KEY"),
            "{:?}",
            zero.summary
        );
        assert_eq!(
            zero.config.backends[1].base_url.as_deref(),
            Some("http://127.0.0.1:11434")
        );
        // DEEPINFRA_TOKEN wins over its alias.
        let zero = with(&[("DEEPINFRA_TOKEN", "t"), ("DEEPINFRA_API_KEY", "a")]).unwrap();
        assert_eq!(
            zero.config.backends[0].api_key,
            Some(crate::config::ApiKeySetting::Key("t".into()))
        );
    }

    /// Seed 003's advanced configuration.
    const SERVICES: &str = r#"[
      {"name": "primary-cerebras", "backend_type": "cerebras", "base_url": "https://api.cerebras.ai/v1",
       "api_key": "your_cerebras_key", "priority": 1, "rate_limit_requests": 100, "rate_limit_window": 60},
      {"name": "fallback-openai", "backend_type": "openai", "base_url": "https://api.openai.com/v1",
       "api_key": "sk-your_openai_key", "priority": 0, "rate_limit_requests": 50, "rate_limit_window": 30}
    ]"#;

    #[test]
    fn router_services_route_every_model_by_priority() {
        let zero = with(&[("ROUTER_SERVICES", SERVICES), ("OPENAI_API_KEY", "sk-env")]).unwrap();
        assert!(!zero.mock);
        let names: Vec<&str> = zero
            .config
            .backends
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(names, ["primary-cerebras", "fallback-openai"]);
        let b = &zero.config.backends[0];
        assert_eq!(b.provider, "openai");
        assert_eq!(
            b.api_key,
            Some(crate::config::ApiKeySetting::Key(
                "your_cerebras_key".into()
            ))
        );
        let limit = b.rate_limit.unwrap();
        assert_eq!((limit.requests, limit.window.as_secs()), (100, 60));
        let limit = zero.config.backends[1].rate_limit.unwrap();
        assert_eq!((limit.requests, limit.window.as_secs()), (50, 30));
        assert_eq!(zero.config.models.len(), 1);
        let table = route_table(&zero.config).unwrap();
        let route = table.resolve("llama3.1-8b").unwrap();
        let targets: Vec<(&str, u32)> = route
            .targets()
            .iter()
            .map(|t| (t.backend().name(), t.get_priority()))
            .collect();
        assert_eq!(targets, [("fallback-openai", 0), ("primary-cerebras", 1)]);
        assert_eq!(
            route.targets()[0].upstream_model("llama3.1-8b"),
            "llama3.1-8b"
        );
        assert!(
            zero.summary[0].starts_with("ROUTER_SERVICES"),
            "{:?}",
            zero.summary
        );
        assert!(
            zero.summary[1].contains("OPENAI_API_KEY"),
            "{:?}",
            zero.summary
        );
        assert!(
            zero.config.warnings().is_empty(),
            "{:?}",
            zero.config.warnings()
        );
        let odd = SERVICES.replace("\"priority\": 0,", "\"priority\": 0, \"enabled\": true,");
        let zero = with(&[("ROUTER_SERVICES", &odd)]).unwrap();
        assert_eq!(
            zero.config.warnings(),
            ["environment: ROUTER_SERVICES[1].enabled: not used by llm-router (ignored)"]
        );
        // The keys never appear in the text.
        assert!(!zero.toml.contains("your_cerebras_key"), "{}", zero.toml);
        // A backend key variable still wins over the service's own key.
        let zero = with(&[
            ("ROUTER_SERVICES", SERVICES),
            (
                "LLM_ROUTER_BACKEND_PRIMARY_CEREBRAS_API_KEY",
                "csk-override",
            ),
        ])
        .unwrap();
        assert_eq!(
            zero.config.backends[0].api_key,
            Some(crate::config::ApiKeySetting::Key("csk-override".into()))
        );
    }

    #[test]
    fn a_bad_service_is_named() {
        let e = with(&[(
            "ROUTER_SERVICES",
            r#"[{"name":"a","backend_type":"custom","base_url":"ftp://x"}]"#,
        )])
        .unwrap_err();
        assert_eq!(e.file, "environment");
        assert_eq!(e.key.as_deref(), Some("ROUTER_SERVICES[0].base_url"), "{e}");
    }

    #[test]
    fn a_bad_variable_is_named() {
        let e = with(&[("OLLAMA_BASE_URL", "localhost:11434")]).unwrap_err();
        assert_eq!(e.file, "environment");
        assert_eq!(e.key.as_deref(), Some("OLLAMA_BASE_URL"));
        assert!(
            e.to_string().starts_with("environment: OLLAMA_BASE_URL: "),
            "{e}"
        );
    }
}
