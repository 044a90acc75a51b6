//! Environment overrides: variables that change a parsed config, applied in
//! one place ([`Config::parse`] applies them last), whatever the config
//! was read from (config.toml, another router's file, or the environment).
//!
//! | variable | changes |
//! | --- | --- |
//! | `LLM_ROUTER_SERVER_HOST`, `PROXY_API_HOST`, `HOST` | the host of `[server] listen` (the first set wins, in this order) |
//! | `LLM_ROUTER_SERVER_PORT`, `PROXY_API_PORT`, `PORT` | its port (same order) |
//! | `LLM_ROUTER_BACKEND_<NAME>_API_KEY` | backend NAME's `api_key` |
//! | `LLM_ROUTER_MODEL_<NAME>_API_KEY` | the key sent for model NAME (every target of it) |
//! | `REQUEST_TIMEOUT` | every backend's `timeout`, in seconds (`"90"`, or a duration like `"90s"`) |
//! | `PROXY_API_RATE_LIMIT_REQUESTS` | `[rate_limit] requests` |
//! | `PROXY_API_RATE_LIMIT_WINDOW` | `[rate_limit] window`, in seconds |
//! | `PROXY_API_ALLOWED_ORIGINS` | `[cors] allow_origins` (a JSON list or comma-separated), and `cors` on |
//!
//! NAME is the backend's or model's name upper-cased, every other character
//! than a letter or digit written `_` (`gpt-4` -> `GPT_4`). `--host` and
//! `--port` win over all of these. An empty variable counts as unset; a bad
//! value is an error naming the variable (file `environment`).
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::Config;
//!
//! let text = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";
//! let env = |name: &str| match name {
//!     "PORT" => Some("9000".to_string()),
//!     "PROXY_API_PORT" => Some("9100".to_string()),
//!     "REQUEST_TIMEOUT" => Some("90".to_string()),
//!     _ => None,
//! };
//! let config = Config::parse(text, Path::new("config.toml"), &env).unwrap();
//! assert_eq!(config.server.port, 9100);
//! assert_eq!(config.backends[0].timeout.as_secs(), 90);
//! ```

use std::time::Duration;

use http::HeaderValue;

use super::{env_name, ApiKeySetting, Config, ConfigError, LayerName, TargetConfig};
use crate::layers::cors::Origins;

/// The variables for the listen host, the first set wins.
pub const HOST_VARIABLES: &[&str] = &["LLM_ROUTER_SERVER_HOST", "PROXY_API_HOST", "HOST"];
/// The variables for the listen port, the first set wins.
pub const PORT_VARIABLES: &[&str] = &["LLM_ROUTER_SERVER_PORT", "PROXY_API_PORT", "PORT"];

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_err(var: &str, message: String) -> ConfigError {
    ConfigError {
        file: "environment".into(),
        line: None,
        key: Some(var.into()),
        message,
    }
}

/// A variable that is set and not blank, trimmed.
fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The first of `names` that is set, with its name.
fn first(env: Env<'_>, names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|n| var(env, n).map(|v| (*n, v)))
}

/// Apply every override of the [module docs](self) to `config`.
pub(crate) fn apply(config: &mut Config, env: Env<'_>) -> Result<(), ConfigError> {
    listen(config, env)?;
    backend_keys(config, env);
    model_keys(config, env);
    request_timeout(config, env)?;
    rate_limit(config, env)?;
    allowed_origins(config, env)?;
    Ok(())
}

fn listen(config: &mut Config, env: Env<'_>) -> Result<(), ConfigError> {
    if let Some((_, host)) = first(env, HOST_VARIABLES) {
        config.server.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
    }
    if let Some((name, port)) = first(env, PORT_VARIABLES) {
        config.server.port = port
            .parse()
            .map_err(|_| env_err(name, format!("`{port}` is not a port number (0-65535)")))?;
    }
    Ok(())
}

fn key_setting(key: String) -> ApiKeySetting {
    if key == "passthrough" {
        ApiKeySetting::Passthrough
    } else {
        ApiKeySetting::Key(key)
    }
}

fn backend_keys(config: &mut Config, env: Env<'_>) {
    for b in &mut config.backends {
        let name = format!("LLM_ROUTER_BACKEND_{}_API_KEY", env_name(&b.name));
        if let Some(key) = var(env, &name) {
            b.api_key = Some(key_setting(key));
        }
    }
}

/// `LLM_ROUTER_MODEL_<NAME>_API_KEY`: the backends of model NAME send this
/// key. A backend that other models use too is copied for this model
/// (named `<backend>@<model>`), so that the others keep their key.
fn model_keys(config: &mut Config, env: Env<'_>) {
    for m in 0..config.models.len() {
        let model = config.models[m].name.clone();
        let Some(key) = var(
            env,
            &format!("LLM_ROUTER_MODEL_{}_API_KEY", env_name(&model)),
        ) else {
            continue;
        };
        for t in 0..config.models[m].targets.len() {
            let backend = config.models[m].targets[t].backend.clone();
            let shared = config.models.iter().enumerate().any(|(other, o)| {
                other != m
                    && o.targets
                        .iter()
                        .any(|t: &TargetConfig| t.backend == backend)
            });
            let Some(index) = config.backends.iter().position(|b| b.name == backend) else {
                continue;
            };
            if !shared {
                config.backends[index].api_key = Some(key_setting(key.clone()));
                continue;
            }
            let mut name = format!("{backend}@{model}");
            while config.backends.iter().any(|b| b.name == name) {
                name.push('_');
            }
            let mut copy = config.backends[index].clone();
            copy.name = name.clone();
            copy.api_key = Some(key_setting(key.clone()));
            config.backends.push(copy);
            config.models[m].targets[t].backend = name;
        }
    }
}

/// Seconds (`"60"`, `"1.5"`) or a duration (`"60s"`, `"2m"`), above zero.
fn seconds(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        Ok(_) => Err(format!("`{value}` must be a number of seconds above 0")),
        Err(_) => super::parse_duration(value).and_then(|d| {
            if d.is_zero() {
                Err(format!("`{value}` must be above 0"))
            } else {
                Ok(d)
            }
        }),
    };
    parsed.map_err(|m| env_err(name, format!("{m} (a number of seconds, like \"60\")")))
}

fn request_timeout(config: &mut Config, env: Env<'_>) -> Result<(), ConfigError> {
    if let Some(value) = var(env, "REQUEST_TIMEOUT") {
        let timeout = seconds("REQUEST_TIMEOUT", &value)?;
        for b in &mut config.backends {
            b.timeout = timeout;
        }
    }
    Ok(())
}

fn rate_limit(config: &mut Config, env: Env<'_>) -> Result<(), ConfigError> {
    let mut set = false;
    if let Some(value) = var(env, "PROXY_API_RATE_LIMIT_REQUESTS") {
        let requests = value
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                env_err(
                    "PROXY_API_RATE_LIMIT_REQUESTS",
                    format!("`{value}` must be a whole number of requests above 0"),
                )
            })?;
        config.rate_limit.requests = Some(requests);
        set = true;
    }
    if let Some(value) = var(env, "PROXY_API_RATE_LIMIT_WINDOW") {
        config.rate_limit.window = seconds("PROXY_API_RATE_LIMIT_WINDOW", &value)?;
        set = true;
    }
    if set && !config.stack.contains(&LayerName::RateLimit) {
        config.source_warnings.push(
            "PROXY_API_RATE_LIMIT_* is set but `rate_limit` is not in [stack] order, so it has no effect"
                .into(),
        );
    }
    Ok(())
}

/// The origins of `PROXY_API_ALLOWED_ORIGINS`: a JSON list of strings, or
/// comma-separated; `*` alone is any origin.
fn parse_origins(value: &str) -> Result<Origins, String> {
    let items: Vec<String> = if value.starts_with('[') {
        serde_json::from_str::<Vec<String>>(value)
            .map_err(|e| format!("is not a JSON list of strings ({e})"))?
    } else {
        value.split(',').map(str::to_string).collect()
    };
    let items: Vec<&str> = items
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if items.is_empty() {
        return Err("lists no origin".into());
    }
    if items.contains(&"*") {
        if items.len() > 1 {
            return Err("\"*\" allows any origin; it cannot be listed with others".into());
        }
        return Ok(Origins::Any);
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let text = item.trim_end_matches('/');
        let bad = |why: &str| {
            format!(
                "`{item}` {why}; an origin is scheme://host[:port], like \"https://app.example\""
            )
        };
        let uri: http::Uri = text.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme().is_none() || uri.host().is_none_or(str::is_empty) {
            return Err(bad("has no scheme or no host"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad("has a path"));
        }
        out.push(HeaderValue::from_str(text).map_err(|_| bad("is not a valid header value"))?);
    }
    Ok(Origins::List(out))
}

fn allowed_origins(config: &mut Config, env: Env<'_>) -> Result<(), ConfigError> {
    const NAME: &str = "PROXY_API_ALLOWED_ORIGINS";
    let Some(value) = var(env, NAME) else {
        return Ok(());
    };
    let origins = parse_origins(&value).map_err(|m| env_err(NAME, m))?;
    let mut cors = config.cors.take().unwrap_or_default();
    cors.allow_origins = origins;
    if let Some(problem) = cors.problem() {
        return Err(env_err(NAME, format!("with [cors]: {problem}")));
    }
    config.cors = Some(cors);
    // `cors` is outermost when present.
    if !config.stack.contains(&LayerName::Cors) {
        config.stack.insert(0, LayerName::Cors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Config::parse(text, Path::new("c.toml"), &env)
    }

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        parse_with(MIN, vars)
    }

    #[test]
    fn host_and_port_by_precedence() {
        let c = with(&[("HOST", "0.0.0.0"), ("PORT", "8000")]).unwrap();
        assert_eq!(c.server.listen(), "0.0.0.0:8000");
        let c = with(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "8000"),
            ("PROXY_API_HOST", "127.0.0.2"),
            ("PROXY_API_PORT", "8100"),
        ])
        .unwrap();
        assert_eq!(c.server.listen(), "127.0.0.2:8100");
        let c = with(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "8000"),
            ("PROXY_API_HOST", "127.0.0.2"),
            ("PROXY_API_PORT", "8100"),
            ("LLM_ROUTER_SERVER_HOST", "[::1]"),
            ("LLM_ROUTER_SERVER_PORT", "8200"),
        ])
        .unwrap();
        assert_eq!(c.server.listen(), "[::1]:8200");
        // Blank counts as unset; the file's listen stays without any.
        let c = parse_with(
            &format!("[server]\nlisten = \"127.0.0.3:7000\"\n{MIN}"),
            &[("PORT", " ")],
        )
        .unwrap();
        assert_eq!(c.server.listen(), "127.0.0.3:7000");
        for name in PORT_VARIABLES {
            let e = with(&[(name, "80a")]).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(*name), "{e}");
            assert_eq!(e.file, "environment");
        }
    }

    #[test]
    fn request_timeout_sets_every_backend() {
        let two =
            format!("{MIN}[[backends]]\nname = \"o\"\nprovider = \"openai\"\ntimeout = \"5s\"\n");
        let c = parse_with(&two, &[("REQUEST_TIMEOUT", "90")]).unwrap();
        assert!(c
            .backends
            .iter()
            .all(|b| b.timeout == Duration::from_secs(90)));
        let c = with(&[("REQUEST_TIMEOUT", "1.5")]).unwrap();
        assert_eq!(c.backends[0].timeout, Duration::from_millis(1500));
        let c = with(&[("REQUEST_TIMEOUT", "2m")]).unwrap();
        assert_eq!(c.backends[0].timeout, Duration::from_secs(120));
        for bad in ["0", "-1", "soon", "0s"] {
            let e = with(&[("REQUEST_TIMEOUT", bad)]).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("REQUEST_TIMEOUT"), "{bad}: {e}");
        }
    }

    #[test]
    fn rate_limit_requests_and_window() {
        let c = with(&[("PROXY_API_RATE_LIMIT_REQUESTS", "100")]).unwrap();
        assert_eq!(c.rate_limit.requests, Some(100));
        assert_eq!(c.rate_limit.window, Duration::from_secs(60));
        let c = with(&[
            ("PROXY_API_RATE_LIMIT_REQUESTS", "5"),
            ("PROXY_API_RATE_LIMIT_WINDOW", "10"),
        ])
        .unwrap();
        assert_eq!(c.rate_limit.requests, Some(5));
        assert_eq!(c.rate_limit.window, Duration::from_secs(10));
        assert!(c.warnings().iter().all(|w| !w.contains("PROXY_API")));
        let e = with(&[("PROXY_API_RATE_LIMIT_REQUESTS", "0")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("PROXY_API_RATE_LIMIT_REQUESTS"));
        let e = with(&[("PROXY_API_RATE_LIMIT_WINDOW", "x")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("PROXY_API_RATE_LIMIT_WINDOW"));
        // Not in the order: said so.
        let c = parse_with(
            &format!("[stack]\norder = [\"failover\"]\n{MIN}"),
            &[("PROXY_API_RATE_LIMIT_REQUESTS", "5")],
        )
        .unwrap();
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.contains("PROXY_API_RATE_LIMIT")),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn allowed_origins_turn_cors_on() {
        let c = with(&[]).unwrap();
        assert!(c.cors.is_none());
        assert!(!c.stack.contains(&LayerName::Cors));
        let c = with(&[(
            "PROXY_API_ALLOWED_ORIGINS",
            "https://app.example, http://localhost:3000/",
        )])
        .unwrap();
        assert_eq!(c.stack[0], LayerName::Cors);
        assert_eq!(
            c.cors.unwrap().allow_origins,
            Origins::List(vec![
                HeaderValue::from_static("https://app.example"),
                HeaderValue::from_static("http://localhost:3000")
            ])
        );
        let c = with(&[(
            "PROXY_API_ALLOWED_ORIGINS",
            r#"["https://a.example","https://b.example"]"#,
        )])
        .unwrap();
        assert!(matches!(c.cors.unwrap().allow_origins, Origins::List(l) if l.len() == 2));
        let c = with(&[("PROXY_API_ALLOWED_ORIGINS", r#"["*"]"#)]).unwrap();
        assert_eq!(c.cors.unwrap().allow_origins, Origins::Any);
        // An explicit order with cors in it keeps its place.
        let c = parse_with(
            &format!("[stack]\norder = [\"log\", \"cors\", \"failover\"]\n{MIN}"),
            &[("PROXY_API_ALLOWED_ORIGINS", "*")],
        )
        .unwrap();
        assert_eq!(
            c.stack,
            [LayerName::Log, LayerName::Cors, LayerName::Failover]
        );
        for bad in [
            "app.example",
            "https://a.example/path",
            "[1",
            "*,https://a.example",
        ] {
            let e = with(&[("PROXY_API_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert_eq!(
                e.key.as_deref(),
                Some("PROXY_API_ALLOWED_ORIGINS"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn model_keys_override_their_targets() {
        let text = "[[backends]]\nname = \"o\"\nprovider = \"openai\"\napi_key = \"sk-file\"\n\n[[backends]]\nname = \"solo\"\nprovider = \"openai\"\n\n[[models]]\nname = \"gpt-4\"\ntargets = [{ backend = \"o\" }, { backend = \"solo\", priority = 2 }]\n\n[[models]]\nname = \"gpt-4o-mini\"\ntargets = [{ backend = \"o\" }]\n";
        let c = parse_with(text, &[("LLM_ROUTER_MODEL_GPT_4_API_KEY", "sk-model")]).unwrap();
        let key = |backend: &str| {
            c.backends
                .iter()
                .find(|b| b.name == backend)
                .unwrap()
                .api_key
                .clone()
        };
        // `o` is shared with gpt-4o-mini: gpt-4 gets its own copy.
        assert_eq!(c.models[0].targets[0].backend, "o@gpt-4");
        assert_eq!(key("o@gpt-4"), Some(ApiKeySetting::Key("sk-model".into())));
        assert_eq!(key("o"), Some(ApiKeySetting::Key("sk-file".into())));
        assert_eq!(c.models[1].targets[0].backend, "o");
        // `solo` serves gpt-4 only: changed in place.
        assert_eq!(c.models[0].targets[1].backend, "solo");
        assert_eq!(key("solo"), Some(ApiKeySetting::Key("sk-model".into())));
        // The model's key wins over the backend's.
        let c = parse_with(
            text,
            &[
                ("LLM_ROUTER_BACKEND_SOLO_API_KEY", "sk-backend"),
                ("LLM_ROUTER_MODEL_GPT_4_API_KEY", "sk-model"),
            ],
        )
        .unwrap();
        let solo = c.backends.iter().find(|b| b.name == "solo").unwrap();
        assert_eq!(solo.api_key, Some(ApiKeySetting::Key("sk-model".into())));
        // And the config still builds.
        crate::stack::route_table(&c).unwrap();
    }

    #[test]
    fn backend_keys_and_passthrough() {
        let c = with(&[("LLM_ROUTER_BACKEND_M_API_KEY", "passthrough")]).unwrap();
        assert_eq!(c.backends[0].api_key, Some(ApiKeySetting::Passthrough));
    }
}
