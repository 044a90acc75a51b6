//! The YAML config with a `models:` map (one entry per name clients send),
//! and `server:`, `header_rules:` and `transformations:` sections.
//!
//! | source | config.toml |
//! | --- | --- |
//! | `models.NAME` | a `[[backends]]` entry named NAME and a `[[models]]` route NAME to it |
//! | `provider` (`openai`, `anthropic`, `ollama`), `endpoint` | `provider`, `base_url` |
//! | `api_key` | `api_key = "${LLM_ROUTER_MODEL_<NAME>_API_KEY:-key}"` (the variable still overrides it) |
//! | `actual_model_name` | the target's `model` |
//! | `timeout`, `connect_timeout` (seconds), `ssl_verify` | `timeout`, `connect_timeout`, `tls_verify` |
//! | `retry_config` (`max_retries`, `retry_status_codes`, `backoff_factor`, `initial_delay`, `max_delay`) | the route's `retry = { max_retries, retry_on, backoff_factor, initial_delay, max_delay }` |
//! | `server.host`, `server.port` | `[server] listen` |
//! | `server.log_requests`, `log_responses`, `mask_api_keys` | `[log] requests`, `responses`, `mask_api_keys` |
//! | `header_rules` `drop_all`, `drop_headers`, `add_headers`, `force_headers` | `[headers] drop_all`, `drop`, `add`, `force` |
//! | `transformations[]` (`regex_replace`, `jsonpath_drop`, `jsonpath_add`) | `[[transforms]]` |

use std::path::Path;

use super::yaml::{self, Entry, Node, Value};
use super::{clean_name, header, retry_section, Format, Imported, Source};
use crate::config::generated::{quote, Toml};
use crate::config::{env_name, ConfigError};

/// The router's own default address.
const DEFAULT_HOST: &str = "0.0.0.0";
const DEFAULT_PORT: u64 = 8000;

/// Import the file (see the [module docs](self)).
pub(super) fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let mut src = Source::new(path);
    let doc = yaml::parse(text, &src.file, "the file is empty; add a `models:` map")?;
    if let Some(line) = doc.extra_document {
        src.warn(line, "---", "only the first YAML document is read");
    }
    let top = doc.root.entries().unwrap_or_default();
    let mut body = Toml::default();
    let mut models: Option<&Entry> = None;
    let mut server: Option<&Entry> = None;
    let mut headers: Option<&Entry> = None;
    let mut transforms: Option<&Entry> = None;
    for e in top {
        match e.key.as_str() {
            "models" => models = Some(e),
            "server" => server = Some(e),
            "header_rules" => headers = Some(e),
            "transformations" => transforms = Some(e),
            other => src.unmapped(e, other, "in llm-router (not a section of this format)"),
        }
    }
    write_server(&mut src, &mut body, server)?;
    retry_section(&mut body, Vec::new());
    if let Some(h) = headers {
        write_headers(&mut src, &mut body, h)?;
    }
    if let Some(t) = transforms {
        write_transforms(&mut src, &mut body, t)?;
    }
    let Some(models) = models else {
        return Err(src.err(
            doc.root.line.max(1),
            "models",
            "no `models:` map, so no request could be routed",
        ));
    };
    let entries = src.mapping(models, "models")?;
    if entries.is_empty() {
        return Err(src.err(models.line, "models", "is empty; add at least one model"));
    }
    for m in entries {
        write_model(&mut src, &mut body, m)?;
    }
    let warnings = src.sorted_warnings();
    let mut t = Toml::default();
    header(
        &mut t,
        path,
        Format::ModelsMap,
        &warnings,
        "A model's key can still be replaced with LLM_ROUTER_MODEL_<NAME>_API_KEY, as before.\n",
    );
    t.append(body);
    Ok(Imported::new(
        Format::ModelsMap,
        t,
        warnings,
        path.display().to_string(),
    ))
}

fn write_server(src: &mut Source, t: &mut Toml, server: Option<&Entry>) -> Result<(), ConfigError> {
    let mut host = (DEFAULT_HOST.to_string(), None::<(usize, String)>);
    let mut port = (DEFAULT_PORT, None::<(usize, String)>);
    let mut log: Vec<(&str, bool, usize, String)> = Vec::new();
    if let Some(s) = server {
        for e in src.mapping(s, "server")? {
            let key = format!("server.{}", e.key);
            match e.key.as_str() {
                "host" => {
                    let h = src.string(e, &key)?;
                    host = (h.trim_matches(['[', ']']).to_string(), Some((e.line, key)));
                }
                "port" => {
                    let n = src.whole(e, &key, 0)?;
                    if n > u64::from(u16::MAX) {
                        return Err(src.err(
                            e.line,
                            &key,
                            format!("`{n}` is not a port (0-65535)"),
                        ));
                    }
                    port = (n, Some((e.line, key)));
                }
                "log_requests" => log.push(("requests", src.boolean(e, &key)?, e.line, key)),
                "log_responses" => log.push(("responses", src.boolean(e, &key)?, e.line, key)),
                "mask_api_keys" => log.push(("mask_api_keys", src.boolean(e, &key)?, e.line, key)),
                _ => src.unmapped(e, &key, "in llm-router"),
            }
        }
    }
    let listen = if host.0.contains(':') {
        format!("[{}]:{}", host.0, port.0)
    } else {
        format!("{}:{}", host.0, port.0)
    };
    t.blank();
    t.line("[server]");
    match port.1.or(host.1) {
        Some((line, key)) => t.item(
            format!("listen = {}", quote(&listen)),
            "server.host and server.port",
            src.origin(line, &key),
        ),
        None => t.item(
            format!("listen = {}", quote(&listen)),
            "the router's default address, so clients keep their URL",
            None,
        ),
    }
    // A request or answer log only when one was asked for.
    if log
        .iter()
        .any(|(k, on, _, _)| *on && matches!(*k, "requests" | "responses"))
    {
        t.blank();
        t.line("[log]");
        t.item("dir = \"logs\"", "JSON lines, next to this file", None);
        for (k, on, line, key) in &log {
            t.item(format!("{k} = {on}"), key, src.origin(*line, key));
        }
    }
    Ok(())
}

fn write_model(src: &mut Source, t: &mut Toml, m: &Entry) -> Result<(), ConfigError> {
    let name = m.key.trim().to_string();
    let base = format!("models.{name}");
    let entries = src.mapping(m, &base)?;
    let mut provider: Option<(String, usize)> = None;
    let mut lines: Vec<(String, String, usize, String)> = Vec::new();
    let mut key_literal: Option<(String, usize, String)> = None;
    let mut actual: Option<String> = None;
    let mut retry: Option<&Entry> = None;
    for e in entries {
        let key = format!("{base}.{}", e.key);
        match e.key.as_str() {
            "provider" => {
                let p = src.string(e, &key)?.to_ascii_lowercase();
                if crate::upstream::provider::by_name(&p).is_none() || p == "mock" {
                    return Err(src.err(
                        e.line,
                        &key,
                        format!(
                            "unknown provider `{p}`; expected openai, anthropic, ollama or gemini"
                        ),
                    ));
                }
                provider = Some((p, e.line));
            }
            "endpoint" => {
                let url = src.string(e, &key)?;
                lines.push((
                    format!("base_url = {}", quote(&url)),
                    key.clone(),
                    e.line,
                    key,
                ));
            }
            "api_key" => key_literal = Some((src.string(e, &key)?, e.line, key)),
            "actual_model_name" => actual = Some(src.string(e, &key)?),
            "timeout" | "connect_timeout" => {
                if let Some(d) = src.seconds(e, &key)? {
                    let secs = e.node.text().unwrap_or_default();
                    lines.push((
                        format!("{} = {}", e.key, quote(&d)),
                        format!("{key}: {secs}"),
                        e.line,
                        key,
                    ));
                }
            }
            "ssl_verify" => {
                let on = src.boolean(e, &key)?;
                lines.push((format!("tls_verify = {on}"), key.clone(), e.line, key));
            }
            "retry_config" => retry = Some(e),
            _ => src.unmapped(e, &key, "in llm-router"),
        }
    }
    let Some((provider, provider_line)) = provider else {
        return Err(src.err(
            m.line,
            &base,
            "has no `provider` (openai, anthropic or ollama)",
        ));
    };
    let backend = clean_name(&name);
    t.blank();
    t.line("[[backends]]");
    t.item(
        format!("name = {}", quote(&backend)),
        &base,
        src.origin(m.line, &base),
    );
    t.item(
        format!("provider = {}", quote(&provider)),
        &format!("{base}.provider"),
        src.origin(provider_line, &format!("{base}.provider")),
    );
    for (text, comment, line, key) in &lines {
        t.item(text.clone(), comment, src.origin(*line, key));
    }
    // The variable the router read a model's key from still wins.
    let var = format!("LLM_ROUTER_MODEL_{}_API_KEY", env_name(&name));
    match key_literal {
        Some((k, line, key)) if !k.contains(['}', '"', '\\', '$']) => t.item(
            format!("api_key = \"${{{var}:-{k}}}\""),
            &key,
            src.origin(line, &key),
        ),
        Some((k, line, key)) => t.item(
            format!("api_key = {}", quote(&k)),
            &key,
            src.origin(line, &key),
        ),
        None => t.item(
            format!("api_key = \"${{{var}:-}}\""),
            "no key unless the variable is set",
            None,
        ),
    }
    t.blank();
    t.line("[[models]]");
    t.item(
        format!("name = {}", quote(&name)),
        &base,
        src.origin(m.line, &base),
    );
    let target = match &actual {
        Some(a) => format!(
            "targets = [{{ backend = {}, model = {} }}]",
            quote(&backend),
            quote(a)
        ),
        None => format!("targets = [{{ backend = {} }}]", quote(&backend)),
    };
    let comment = if actual.is_some() {
        format!("{base}.actual_model_name")
    } else {
        "the model is asked for by the client's name".to_string()
    };
    t.item(target, &comment, src.origin(m.line, &base));
    if let Some(r) = retry {
        write_retry(src, t, r, &format!("{base}.retry_config"))?;
    }
    Ok(())
}

/// `retry_config` as the route's `retry = { ... }`.
fn write_retry(src: &mut Source, t: &mut Toml, r: &Entry, base: &str) -> Result<(), ConfigError> {
    let mut fields: Vec<String> = Vec::new();
    for e in src.mapping(r, base)? {
        let key = format!("{base}.{}", e.key);
        match e.key.as_str() {
            "max_retries" => fields.push(format!("max_retries = {}", src.whole(e, &key, 0)?)),
            "retry_status_codes" => {
                let mut codes = Vec::new();
                for item in src.list(e, &key)? {
                    match item.number() {
                        Some(n) if n.fract() == 0.0 && (100.0..600.0).contains(&n) => {
                            codes.push((n as u64).to_string())
                        }
                        _ => {
                            return Err(src.err(
                                item.line,
                                &key,
                                "must list HTTP status codes (100-599)",
                            ))
                        }
                    }
                }
                fields.push(format!("retry_on = [{}]", codes.join(", ")));
            }
            "backoff_factor" => match e.node.number() {
                Some(f) if f >= 1.0 && f.is_finite() => {
                    fields.push(format!("backoff_factor = {f:?}"))
                }
                _ => return Err(src.err(e.line, &key, "must be a number from 1 upward")),
            },
            "initial_delay" | "max_delay" => {
                if let Some(d) = src.seconds(e, &key)? {
                    fields.push(format!("{} = {}", e.key, quote(&d)));
                }
            }
            _ => src.unmapped(e, &key, "in llm-router's retry"),
        }
    }
    let line = format!("retry = {{ {} }}", fields.join(", "));
    t.item(line, base, src.origin(r.line, base));
    Ok(())
}

fn write_headers(src: &mut Source, t: &mut Toml, h: &Entry) -> Result<(), ConfigError> {
    let mut lines: Vec<(String, String, usize)> = Vec::new();
    for e in src.mapping(h, "header_rules")? {
        let key = format!("header_rules.{}", e.key);
        match e.key.as_str() {
            "drop_all" => {
                let on = src.boolean(e, &key)?;
                lines.push((format!("drop_all = {on}"), key, e.line));
            }
            "drop_headers" => {
                let mut items = Vec::new();
                for n in src.list(e, &key)? {
                    let text = n.text().ok_or_else(|| {
                        src.err(n.line, &key, "must list header names or patterns")
                    })?;
                    items.push(quote(text.trim()));
                }
                lines.push((format!("drop = [{}]", items.join(", ")), key, e.line));
            }
            "add_headers" | "force_headers" => {
                let table = if e.key == "add_headers" {
                    "add"
                } else {
                    "force"
                };
                let mut items = Vec::new();
                for kv in src.mapping(e, &key)? {
                    let k = format!("{key}.{}", kv.key);
                    let value = src.string(kv, &k)?;
                    let owned =
                        http::HeaderName::from_bytes(kv.key.trim().to_ascii_lowercase().as_bytes())
                            .ok()
                            .and_then(|n| crate::layers::headers::proxy_owned(&n));
                    if let Some(why) = owned {
                        src.warn(kv.line, &k, format!("not carried over: {why}"));
                        continue;
                    }
                    items.push(format!("{} = {}", quote(kv.key.trim()), quote(&value)));
                }
                if !items.is_empty() {
                    lines.push((format!("{table} = {{ {} }}", items.join(", ")), key, e.line));
                }
            }
            _ => src.unmapped(e, &key, "in llm-router's header rules"),
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    t.blank();
    t.line("[headers]");
    for (text, key, line) in lines {
        t.item(text, &key, src.origin(line, &key));
    }
    Ok(())
}

fn write_transforms(src: &mut Source, t: &mut Toml, list: &Entry) -> Result<(), ConfigError> {
    for (i, item) in src.list(list, "transformations")?.iter().enumerate() {
        let base = format!("transformations[{i}]");
        let Some(entries) = item.entries() else {
            return Err(src.err(
                item.line,
                &base,
                format!("must be a mapping, not {}", item.what()),
            ));
        };
        let kind = item
            .get("type")
            .and_then(|e| e.node.text())
            .unwrap_or_default();
        if !matches!(
            kind.as_str(),
            "regex_replace" | "jsonpath_drop" | "jsonpath_add"
        ) {
            src.warn(
                item.line,
                &format!("{base}.type"),
                format!("transform type `{kind}` has no equivalent (regex_replace, jsonpath_drop and jsonpath_add do); ignored"),
            );
            continue;
        }
        let mut lines = Vec::new();
        for e in entries {
            let key = format!("{base}.{}", e.key);
            match e.key.as_str() {
                "name" | "type" | "pattern" | "replacement" | "flags" | "path" => {
                    lines.push((
                        format!("{} = {}", e.key, quote(&src.string(e, &key)?)),
                        key,
                        e.line,
                    ));
                }
                "enabled" => {
                    lines.push((format!("enabled = {}", src.boolean(e, &key)?), key, e.line))
                }
                "value" => match inline(&e.node) {
                    Some(v) => lines.push((format!("value = {v}"), key, e.line)),
                    None => return Err(src.err(e.line, &key, "must be a value (not empty)")),
                },
                _ => src.unmapped(e, &key, "in llm-router's transforms"),
            }
        }
        t.blank();
        t.item("[[transforms]]", &base, src.origin(item.line, &base));
        for (text, key, line) in lines {
            t.item(text, &key, src.origin(line, &key));
        }
    }
    Ok(())
}

/// A YAML value as a TOML inline value (`None` for an empty one).
fn inline(n: &Node) -> Option<String> {
    Some(match &n.value {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:?}"),
        Value::Float(_) => return None,
        Value::Str(s) => quote(s),
        Value::Seq(items) => format!(
            "[{}]",
            items
                .iter()
                .map(inline)
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
        Value::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|e| Some(format!("{} = {}", quote(&e.key), inline(&e.node)?)))
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(yaml: &str) -> Imported {
        let i = import(yaml, Path::new("config.yaml")).unwrap_or_else(|e| panic!("{e}"));
        i.validate(Path::new("config.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
        i
    }

    #[test]
    fn a_model_becomes_a_backend_and_a_route() {
        let i = imported("models:\n  gpt-4:\n    provider: ollama\n    endpoint: \"http://localhost:11434\"\n    actual_model_name: \"llama3\"\n    ssl_verify: false\n    timeout: 60.0\n    connect_timeout: 2.5\n");
        let c = i.config(Path::new("c.yaml"), &|_| None).unwrap();
        let b = &c.backends[0];
        assert_eq!((b.name.as_str(), b.provider.as_str()), ("gpt-4", "ollama"));
        assert!(!b.tls_verify);
        assert_eq!(b.timeout, std::time::Duration::from_secs(60));
        assert_eq!(b.connect_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(c.models[0].targets[0].model.as_deref(), Some("llama3"));
        assert_eq!(c.server.listen(), "0.0.0.0:8000");
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn the_key_variable_still_wins() {
        let i = imported("models:\n  gpt-4:\n    provider: openai\n    api_key: sk-file\n");
        assert!(
            i.toml
                .contains("api_key = \"${LLM_ROUTER_MODEL_GPT_4_API_KEY:-sk-file}\""),
            "{}",
            i.toml
        );
        let key = |c: crate::config::Config| match &c.backends[0].api_key {
            Some(crate::config::ApiKeySetting::Key(k)) => k.clone(),
            other => panic!("{other:?}"),
        };
        let c = i.config(Path::new("c.yaml"), &|_| None).unwrap();
        assert_eq!(key(c), "sk-file");
        let env = |n: &str| {
            (n == "LLM_ROUTER_MODEL_GPT_4_API_KEY").then(|| "sk-override-123".to_string())
        };
        let c = i.config(Path::new("c.yaml"), &env).unwrap();
        assert_eq!(key(c), "sk-override-123");
    }

    #[test]
    fn sections_map_or_warn() {
        let i = imported(concat!(
            "server:\n  host: 127.0.0.1\n  port: 9000\n  log_requests: true\n  workers: 4\n",
            "header_rules:\n  drop_headers: [\"^x-.*\"]\n  force_headers:\n    content-type: application/json\n    x-api-version: \"2024-01\"\n",
            "transformations:\n  - name: emails\n    type: regex_replace\n    pattern: 'a@b'\n    replacement: x\n    flags: IGNORECASE\n  - name: meta\n    type: jsonpath_add\n    path: $.metadata\n    value:\n      source: llm-router\n  - name: odd\n    type: uppercase\n",
            "models:\n  m:\n    provider: openai\n    retry_config:\n      max_retries: 3\n      retry_status_codes: [429, 503]\n      backoff_factor: 2.0\n      initial_delay: 1.0\n      max_delay: 60.0\n      jitter: true\n",
        ));
        let c = i.config(Path::new("c.yaml"), &|_| None).unwrap();
        assert_eq!(c.server.listen(), "127.0.0.1:9000");
        assert!(c.log.as_ref().is_some_and(|l| l.requests));
        assert_eq!(c.transforms.len(), 2);
        assert!(!c.headers.is_empty());
        let w: Vec<String> = i.warnings.iter().map(|w| w.to_string()).collect();
        let has = |s: &str| w.iter().any(|x| x.contains(s));
        assert!(has("config.yaml:5: server.workers: no equivalent"), "{w:?}");
        assert!(
            has("config.yaml:9: header_rules.force_headers.content-type: not carried over"),
            "{w:?}"
        );
        assert!(
            has("transformations[2].type: transform type `uppercase`"),
            "{w:?}"
        );
        assert!(has("models.m.retry_config.jitter: no equivalent"), "{w:?}");
        assert!(i.toml.contains("retry = { max_retries = 3, retry_on = [429, 503], backoff_factor = 2.0, initial_delay = \"1s\", max_delay = \"60s\" }"), "{}", i.toml);
    }

    #[test]
    fn errors_name_the_line() {
        let e = import(
            "models:\n  a:\n    provider: bedrock\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("models.a.provider"))
        );
        let e = import("models:\n  a:\n    endpoint: x\n", Path::new("c.yaml")).unwrap_err();
        assert_eq!(e.line, Some(2));
        let i = import(
            "models:\n  a:\n    provider: openai\n    endpoint: \"ftp://x\"\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let e = i.config(Path::new("c.yaml"), &|_| None).unwrap_err();
        assert_eq!(
            e.to_string().split(": ").take(2).collect::<Vec<_>>(),
            ["c.yaml:4", "models.a.endpoint"]
        );
    }
}
