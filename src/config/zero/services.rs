//! `ROUTER_SERVICES`: the backends of a zero-config proxy as a JSON list, the
//! way the routers our users come from took them:
//!
//! ```text
//! ROUTER_SERVICES='[
//!   {"name": "primary-cerebras", "backend_type": "cerebras", "api_key": "csk-...",
//!    "priority": 0, "rate_limit_requests": 100, "rate_limit_window": 60},
//!   {"name": "fallback-openai", "backend_type": "openai", "priority": 1}
//! ]'
//! ```
//!
//! Each service becomes a backend; one `*` route sends every model name to
//! them in `priority` order (lowest first; equal priorities share the load),
//! so a name like `llama3.1-8b` reaches the first service and fails over to
//! the next. `backend_type` is `openai`, `cerebras`, `deepinfra`, `ollama`
//! (OpenAI-compatible `.../v1` addresses are accepted), `anthropic`,
//! `gemini`, `custom` (any OpenAI-compatible API; `base_url` required) or
//! `mock`. Without `base_url` the type's usual address is used (and its
//! `<TYPE>_BASE_URL` variable, `OLLAMA_BASE_URL` for `ollama`); without
//! `api_key`, the type's well-known key variable (`CEREBRAS_API_KEY`, ...). `rate_limit_requests` per
//! `rate_limit_window` seconds (default 60) is the backend's own `rate_limit`.
//! Keys this proxy has no use for are warnings.

use serde_json::{Map, Value};

use super::super::env_name;
use super::super::generated::{quote, Origin, Toml};
use super::super::ConfigError;
use super::{EnvProvider, PROVIDERS};

/// The variable.
pub const VARIABLE: &str = "ROUTER_SERVICES";

/// The keys of a service this proxy reads.
const KEYS: &[&str] = &[
    "name",
    "backend_type",
    "base_url",
    "api_key",
    "priority",
    "rate_limit_requests",
    "rate_limit_window",
];

/// One service, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Service {
    index: usize,
    pub(super) name: String,
    backend_type: String,
    provider: &'static str,
    base_url: Option<String>,
    /// The default address's override variable, with the default.
    base_url_default: Option<(&'static str, &'static str)>,
    /// The key given in the JSON (never written into the config text).
    pub(super) api_key: Option<String>,
    /// The well-known variable the key comes from otherwise.
    key_var: Option<&'static str>,
    priority: u32,
    rate_limit: Option<(u64, u64)>,
}

/// The services of `ROUTER_SERVICES`, with warnings.
#[derive(Debug)]
pub(super) struct Services {
    pub(super) services: Vec<Service>,
    pub(super) warnings: Vec<String>,
}

fn err(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: "environment".into(),
        line: None,
        key: Some(key),
        message: message.into(),
    }
}

fn origin(key: String) -> Option<Origin> {
    Some(Origin {
        file: "environment".into(),
        line: None,
        key,
    })
}

/// The known `backend_type`s.
const TYPES: &[&str] = &[
    "openai",
    "cerebras",
    "deepinfra",
    "ollama",
    "anthropic",
    "gemini",
    "custom",
    "mock",
];

fn well_known(backend_type: &str) -> Option<&'static EnvProvider> {
    PROVIDERS.iter().find(|p| p.backend == backend_type)
}

/// Ollama's address without the `/v1` of its OpenAI-compatible API (this
/// proxy speaks Ollama's own API under it).
pub(super) fn ollama_root(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix("/v1").unwrap_or(url).to_string()
}

/// Read `ROUTER_SERVICES` from `env` (`None` when unset or blank).
pub(super) fn read(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Services>, ConfigError> {
    let Some(text) = env(VARIABLE).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let list: Vec<Value> = match serde_json::from_str(&text) {
        Ok(Value::Array(list)) => list,
        Ok(_) => {
            return Err(err(
                VARIABLE.into(),
                "must be a JSON list of services, like [{\"name\": \"a\", \"backend_type\": \"openai\", \"api_key\": \"...\"}]",
            ))
        }
        Err(e) => {
            return Err(err(
                VARIABLE.into(),
                format!(
                    "is not valid JSON (line {} column {} of the value): {e}",
                    e.line(),
                    e.column()
                ),
            ))
        }
    };
    if list.is_empty() {
        return Err(err(VARIABLE.into(), "lists no service"));
    }
    let mut services: Vec<Service> = Vec::with_capacity(list.len());
    let mut warnings = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(err(format!("{VARIABLE}[{i}]"), "must be a JSON object"));
        };
        let service = service(i, obj, env)?;
        if let Some(first) = services.iter().find(|s| s.name == service.name) {
            return Err(err(
                format!("{VARIABLE}[{i}].name"),
                format!(
                    "duplicate service name `{}` (first as {VARIABLE}[{}])",
                    service.name, first.index
                ),
            ));
        }
        for key in obj.keys().filter(|k| !KEYS.contains(&k.as_str())) {
            warnings.push(format!(
                "environment: {VARIABLE}[{i}].{key}: not used by llm-router (ignored)"
            ));
        }
        if obj.contains_key("rate_limit_window") && !obj.contains_key("rate_limit_requests") {
            warnings.push(format!(
                "environment: {VARIABLE}[{i}].rate_limit_window: ignored without rate_limit_requests"
            ));
        }
        services.push(service);
    }
    Ok(Some(Services { services, warnings }))
}

fn string(obj: &Map<String, Value>, i: usize, key: &str) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(err(
            format!("{VARIABLE}[{i}].{key}"),
            format!("must be a string, not {other}"),
        )),
    }
}

/// A whole number from `min`, as a JSON number or a string of one.
fn number(
    obj: &Map<String, Value>,
    i: usize,
    key: &str,
    min: u64,
) -> Result<Option<u64>, ConfigError> {
    let bad = || {
        err(
            format!("{VARIABLE}[{i}].{key}"),
            format!("must be a whole number from {min} upward"),
        )
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n >= min).map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn service(
    i: usize,
    obj: &Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Service, ConfigError> {
    let key = |k: &str| format!("{VARIABLE}[{i}].{k}");
    let backend_type = string(obj, i, "backend_type")?
        .map(|t| t.to_ascii_lowercase())
        .ok_or_else(|| {
            err(
                key("backend_type"),
                format!("is missing; one of: {}", TYPES.join(", ")),
            )
        })?;
    if !TYPES.contains(&backend_type.as_str()) {
        return Err(err(
            key("backend_type"),
            format!(
                "unknown backend_type `{backend_type}`; one of: {} (any OpenAI-compatible API is \"custom\" with its base_url)",
                TYPES.join(", ")
            ),
        ));
    }
    let name = string(obj, i, "name")?.unwrap_or_else(|| backend_type.clone());
    let known = well_known(&backend_type);
    let provider = match backend_type.as_str() {
        "custom" => "openai",
        "mock" => "mock",
        _ => known.map_or("openai", |p| p.provider),
    };
    let mut base_url = string(obj, i, "base_url")?;
    if backend_type == "ollama" {
        let from_env = env("OLLAMA_BASE_URL").filter(|u| !u.trim().is_empty());
        base_url = Some(ollama_root(
            base_url
                .as_deref()
                .or(from_env.as_deref())
                .unwrap_or("http://localhost:11434"),
        ));
    }
    if backend_type == "custom" && base_url.is_none() {
        return Err(err(
            key("base_url"),
            "is required with backend_type \"custom\" (the API root, like \"https://api.example.com/v1\")",
        ));
    }
    let key_var = known
        .and_then(|p| p.base_url.map(|_| p.vars))
        .and_then(|vars| {
            vars.iter()
                .copied()
                .find(|v| env(v).is_some_and(|k| !k.trim().is_empty()))
        });
    let priority = number(obj, i, "priority", 0)?.unwrap_or(0);
    let priority = u32::try_from(priority).map_err(|_| err(key("priority"), "is too large"))?;
    let rate_limit = match number(obj, i, "rate_limit_requests", 1)? {
        None => None,
        Some(requests) => Some((
            requests,
            number(obj, i, "rate_limit_window", 1)?.unwrap_or(60),
        )),
    };
    Ok(Service {
        index: i,
        name,
        backend_type,
        provider,
        base_url_default: if obj.contains_key("base_url") {
            None
        } else {
            known.and_then(|p| p.base_url)
        },
        base_url,
        api_key: string(obj, i, "api_key")?,
        key_var,
        priority,
        rate_limit,
    })
}

impl Services {
    /// The variable through which a service's own `api_key` reaches the
    /// config (the backend key override, which a real variable of the same
    /// name still wins over).
    pub(super) fn key_variable(service: &Service) -> String {
        format!("LLM_ROUTER_BACKEND_{}_API_KEY", env_name(&service.name))
    }

    /// Its `api_key`, as the value of [`Services::key_variable`].
    pub(super) fn key_for(&self, variable: &str) -> Option<String> {
        self.services
            .iter()
            .find(|s| s.api_key.is_some() && Self::key_variable(s) == variable)
            .and_then(|s| s.api_key.clone())
    }

    /// Write the backends and the `*` route; returns the summary line.
    pub(super) fn write(&self, t: &mut Toml) -> String {
        for s in &self.services {
            let key = |k: &str| origin(format!("{VARIABLE}[{}].{k}", s.index));
            t.blank();
            t.line("[[backends]]");
            t.item(format!("name = {}", quote(&s.name)), "", key("name"));
            t.item(
                format!("provider = {}", quote(s.provider)),
                &format!("backend_type {}", s.backend_type),
                key("backend_type"),
            );
            match (&s.base_url, s.base_url_default) {
                (Some(url), _) => t.item(format!("base_url = {}", quote(url)), "", key("base_url")),
                (None, Some((default, var))) => t.item(
                    format!("base_url = \"${{{var}:-{default}}}\""),
                    "",
                    origin(var.into()),
                ),
                (None, None) => {}
            }
            match (&s.api_key, s.key_var) {
                (Some(_), _) => t.comment(&format!(
                    "api_key: from {VARIABLE} (or {})",
                    Self::key_variable(s)
                )),
                (None, Some(var)) => {
                    t.item(format!("api_key = \"${{{var}}}\""), "", origin(var.into()))
                }
                (None, None) => {}
            }
            if let Some((requests, window)) = s.rate_limit {
                t.item(
                    format!("rate_limit = {{ requests = {requests}, window = \"{window}s\" }}"),
                    "",
                    key("rate_limit_requests"),
                );
            }
        }
        let mut order: Vec<&Service> = self.services.iter().collect();
        order.sort_by_key(|s| s.priority);
        t.blank();
        t.line("[[models]]");
        t.line("name = \"*\"");
        t.line("targets = [");
        for s in &order {
            t.item(
                format!(
                    "  {{ backend = {}, priority = {} }},",
                    quote(&s.name),
                    s.priority
                ),
                "",
                origin(format!("{VARIABLE}[{}].priority", s.index)),
            );
        }
        t.line("]");
        let names: Vec<String> = order
            .iter()
            .map(|s| format!("{} ({}, priority {})", s.name, s.backend_type, s.priority))
            .collect();
        format!(
            "{VARIABLE} -> every model (*) by priority: {}",
            names.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn read_one(json: &str) -> Result<Services, ConfigError> {
        read(&env_of(&[(VARIABLE, json)])).map(|s| s.unwrap())
    }

    #[test]
    fn unset_or_blank_is_none() {
        assert!(read(&env_of(&[])).unwrap().is_none());
        assert!(read(&env_of(&[(VARIABLE, "  ")])).unwrap().is_none());
    }

    #[test]
    fn types_defaults_and_warnings() {
        let s = read_one(
            r#"[{"name":"c","backend_type":"Cerebras","priority":"2","rate_limit_requests":100,"extra":1},
                {"backend_type":"ollama","base_url":"http://10.0.0.1:11434/v1/"},
                {"name":"x","backend_type":"custom","base_url":"http://127.0.0.1:9/v1","api_key":"sk-x","rate_limit_window":5}]"#,
        )
        .unwrap();
        let [c, o, x] = &s.services[..] else {
            panic!("{s:?}")
        };
        assert_eq!((c.provider, c.priority), ("openai", 2));
        assert_eq!(c.rate_limit, Some((100, 60)));
        assert_eq!(
            c.base_url_default.map(|d| d.0),
            Some("https://api.cerebras.ai/v1")
        );
        assert_eq!((o.name.as_str(), o.provider), ("ollama", "ollama"));
        assert_eq!(o.base_url.as_deref(), Some("http://10.0.0.1:11434"));
        assert_eq!(x.provider, "openai");
        assert_eq!(
            s.key_for("LLM_ROUTER_BACKEND_X_API_KEY").as_deref(),
            Some("sk-x")
        );
        assert_eq!(s.key_for("LLM_ROUTER_BACKEND_C_API_KEY"), None);
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(
            s.warnings[0].contains("ROUTER_SERVICES[0].extra"),
            "{:?}",
            s.warnings
        );
        assert!(
            s.warnings[1].contains("[2].rate_limit_window"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn errors_name_the_service_and_key() {
        for (json, key) in [
            ("{", "ROUTER_SERVICES"),
            ("{}", "ROUTER_SERVICES"),
            ("[]", "ROUTER_SERVICES"),
            ("[1]", "ROUTER_SERVICES[0]"),
            (r#"[{"name":"a"}]"#, "ROUTER_SERVICES[0].backend_type"),
            (
                r#"[{"backend_type":"grpc"}]"#,
                "ROUTER_SERVICES[0].backend_type",
            ),
            (
                r#"[{"backend_type":"custom"}]"#,
                "ROUTER_SERVICES[0].base_url",
            ),
            (
                r#"[{"backend_type":"openai","priority":-1}]"#,
                "ROUTER_SERVICES[0].priority",
            ),
            (
                r#"[{"backend_type":"openai","rate_limit_requests":0}]"#,
                "ROUTER_SERVICES[0].rate_limit_requests",
            ),
            (
                r#"[{"backend_type":"openai","api_key":7}]"#,
                "ROUTER_SERVICES[0].api_key",
            ),
            (
                r#"[{"backend_type":"openai"},{"backend_type":"openai"}]"#,
                "ROUTER_SERVICES[1].name",
            ),
        ] {
            let e = read_one(json).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{json}: {e}");
            assert_eq!(e.file, "environment", "{json}: {e}");
        }
    }

    #[test]
    fn an_ollama_service_defaults_to_ollama_base_url() {
        let json = r#"[{"backend_type":"ollama"}]"#;
        let s = read(&env_of(&[(VARIABLE, json)])).unwrap().unwrap();
        assert_eq!(
            s.services[0].base_url.as_deref(),
            Some("http://localhost:11434")
        );
        let env = env_of(&[(VARIABLE, json), ("OLLAMA_BASE_URL", "http://gpu:11434/v1")]);
        let s = read(&env).unwrap().unwrap();
        assert_eq!(s.services[0].base_url.as_deref(), Some("http://gpu:11434"));
    }

    #[test]
    fn the_key_comes_from_the_type_variable_when_absent() {
        let env = env_of(&[
            (VARIABLE, r#"[{"name":"d","backend_type":"deepinfra"}]"#),
            ("DEEPINFRA_API_KEY", "di-key"),
        ]);
        let s = read(&env).unwrap().unwrap();
        assert_eq!(s.services[0].key_var, Some("DEEPINFRA_API_KEY"));
        let mut t = Toml::default();
        s.write(&mut t);
        assert!(
            t.text().contains("api_key = \"${DEEPINFRA_API_KEY}\""),
            "{}",
            t.text()
        );
    }
}
