//! A `.env` file as the config: its variables (read with
//! [`dotenv`](crate::config::dotenv), under the process environment, which
//! wins) build the config as the environment does without a config file
//! ([`zero`](crate::config::zero)). A variable llm-router does not read is a
//! warning naming its line.

use std::path::Path;

use super::{header, Format, Imported, Warning};
use crate::config::generated::Toml;
use crate::config::{dotenv, zero, Config, ConfigError};

/// The variables the contract says llm-router honours, besides the patterns
/// in [`is_known`].
const KNOWN: &[&str] = &[
    "ROUTER_SERVICES",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "CEREBRAS_API_KEY",
    "DEEPINFRA_TOKEN",
    "DEEPINFRA_API_KEY",
    "OLLAMA_BASE_URL",
    "AUTH_KEY",
    "ENABLE_AUTH",
    "AUTH_HEADER_NAME",
    "LLM_ROUTER_SERVER_HOST",
    "LLM_ROUTER_SERVER_PORT",
    "PROXY_API_HOST",
    "PROXY_API_PORT",
    "PROXY_API_RATE_LIMIT_REQUESTS",
    "PROXY_API_RATE_LIMIT_WINDOW",
    "PROXY_API_ALLOWED_ORIGINS",
    "HOST",
    "PORT",
    "REQUEST_TIMEOUT",
    "RUST_LOG",
];

/// Whether llm-router reads the variable `name`.
fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
        || name
            .strip_prefix("AUTH_KEY_")
            .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
        || (name.ends_with("_BASE_URL") && !name.starts_with("LLM_ROUTER_"))
        || (name.starts_with("LLM_ROUTER_MODEL_") && name.ends_with("_API_KEY"))
        || (name.starts_with("LLM_ROUTER_BACKEND_") && name.ends_with("_API_KEY"))
}

/// The 1-based line where `name` is set (`NAME=`, `export NAME=`).
fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").map_or(l, str::trim_start);
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

struct Read {
    vars: Vec<(String, String)>,
    warnings: Vec<Warning>,
}

fn read(text: &str, path: &Path) -> Result<Read, ConfigError> {
    let file = path.display().to_string();
    let vars = dotenv::parse(text, &file)?;
    let mut warnings = Vec::new();
    for (name, _) in &vars {
        if !is_known(name) && !warnings.iter().any(|w: &Warning| &w.key == name) {
            warnings.push(Warning {
                file: file.clone(),
                line: line_of(text, name),
                key: name.clone(),
                message: "not a variable llm-router reads; ignored".into(),
            });
        }
    }
    Ok(Read { vars, warnings })
}

/// An error about the environment, told as the `.env` line that set it.
fn in_file(e: ConfigError, text: &str, path: &Path) -> ConfigError {
    if e.file != "environment" && e.file != zero::PATH {
        return e;
    }
    let line = e.key.as_deref().and_then(|k| line_of(text, k));
    ConfigError {
        file: path.display().to_string(),
        line: line.or(e.line),
        ..e
    }
}

/// The config of a `.env` file, with `env` (the process environment) over it.
pub(super) fn load(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let Read { vars, warnings } = read(text, path)?;
    let lookup = |name: &str| {
        env(name).or_else(|| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    };
    let built = zero::from_environment(&lookup).map_err(|e| in_file(e, text, path))?;
    let mut config = built.config;
    // A reload reads the file again.
    config.path = path.to_path_buf();
    config.source_warnings = warnings.iter().map(|w| w.to_string()).collect();
    if built.mock {
        config.source_warnings.push(format!(
            "{}: no provider variable is set: the mock backend answers",
            path.display()
        ));
    }
    Ok(config)
}

/// The config.toml equivalent to a `.env` file (its own variables only).
pub(super) fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let Read { vars, warnings } = read(text, path)?;
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let built = zero::from_environment(&lookup).map_err(|e| in_file(e, text, path))?;
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut t = Toml::default();
    header(
        &mut t,
        path,
        Format::Dotenv,
        &warnings,
        &format!(
            "`${{NAME}}` reads the environment variable NAME; the .env set {}.\nKeep those variables in the environment (or start with `--config` naming the .env).\n",
            names.join(", ")
        ),
    );
    t.blank();
    // zero's own header says no file was found: not so here.
    for l in built.toml.lines().skip_while(|l| l.starts_with('#')) {
        t.line(l);
    }
    let mut imported = Imported::new(Format::Dotenv, t, warnings, path.display().to_string());
    imported.dotenv = vars;
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_variables_and_lines() {
        assert!(is_known("AUTH_KEY_07"));
        assert!(!is_known("AUTH_KEY_7"));
        assert!(is_known("OPENAI_BASE_URL"));
        assert!(is_known("LLM_ROUTER_MODEL_GPT_4_API_KEY"));
        assert!(!is_known("PROXY_API_DEBUG"));
        let text = "# c\nA=1\n  export PROXY_API_DEBUG = false\n";
        assert_eq!(line_of(text, "PROXY_API_DEBUG"), Some(3));
        assert_eq!(line_of(text, "A"), Some(2));
    }

    #[test]
    fn a_dotenv_config() {
        let text = "OPENAI_API_KEY=sk-file\nPROXY_API_DEBUG=false\n";
        let c = load(text, Path::new(".env"), &|_| None).unwrap();
        assert_eq!(c.backends[0].provider, "openai");
        assert_eq!(c.path, Path::new(".env"));
        assert_eq!(
            c.source_warnings,
            [".env:2: PROXY_API_DEBUG: not a variable llm-router reads; ignored"]
        );
        // The process environment wins.
        let env = |n: &str| (n == "OPENAI_API_KEY").then(|| "sk-process".to_string());
        let c = load(text, Path::new(".env"), &env).unwrap();
        assert!(
            matches!(&c.backends[0].api_key, Some(crate::config::ApiKeySetting::Key(k)) if k == "sk-process")
        );
        let i = import(text, Path::new(".env")).unwrap();
        assert!(i.toml.contains("OPENAI_API_KEY"), "{}", i.toml);
        let c = i.config(Path::new("config.toml"), &|_| None).unwrap();
        assert_eq!(c.backends[0].provider, "openai");
        let e = load("A=1\nnot a line\n", Path::new(".env"), &|_| None).unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
