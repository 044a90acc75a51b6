//! The YAML config with a `providers:` list (each with the models it serves,
//! tried by priority) and an optional `auth:` block.
//!
//! | source | config.toml |
//! | --- | --- |
//! | `providers[i]` (`name`, `type`, `base_url`) | a `[[backends]]` entry (`name`, `provider`, `base_url`) |
//! | `api_key_env: NAME` | `api_key = "${NAME}"` |
//! | `models: [..]` | a `[[models]]` route per model name, its targets the providers listing it |
//! | `priority` (lower first) | the target's `priority` |
//! | `enabled: false` | left out (a comment says so) |
//! | `auth.api_keys` | `[auth] keys` |
//! | `auth.jwt` (`enabled`, `secret_key`, `algorithm`) | `[auth] jwt = { secret, algorithm }` |
//!
//! The address is `PROXY_API_HOST` / `PROXY_API_PORT` (default `0.0.0.0:8000`),
//! read when the config is loaded, as before.

use std::path::Path;

use super::yaml::{self, Entry, Node};
use super::{clean_name, header, retry_section, Format, Imported, Source};
use crate::config::generated::{quote, Toml};
use crate::config::ConfigError;

struct Provider {
    backend: String,
    priority: u64,
    models: Vec<(String, usize)>,
    line: usize,
    key: String,
}

/// Import the file (see the [module docs](self)).
pub(super) fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let mut src = Source::new(path);
    let doc = yaml::parse(
        text,
        &src.file,
        "the file is empty; add a `providers:` list",
    )?;
    if let Some(line) = doc.extra_document {
        src.warn(line, "---", "only the first YAML document is read");
    }
    let mut body = Toml::default();
    let mut providers: Vec<Provider> = Vec::new();
    let mut auth: Option<&Entry> = None;
    let mut list: Option<&Entry> = None;
    for e in doc.root.entries().unwrap_or_default() {
        match e.key.as_str() {
            "providers" => list = Some(e),
            "auth" => auth = Some(e),
            other => src.unmapped(e, other, "in llm-router (not a section of this format)"),
        }
    }
    let Some(list) = list else {
        return Err(src.err(doc.root.line.max(1), "providers", "no `providers:` list"));
    };
    for (i, item) in src.list(list, "providers")?.iter().enumerate() {
        if let Some(p) = write_provider(&mut src, &mut body, item, i)? {
            if providers.iter().any(|o| o.backend == p.backend) {
                return Err(src.err(
                    item.line,
                    &format!("providers[{i}].name"),
                    format!("a provider named `{}` is listed twice", p.backend),
                ));
            }
            providers.push(p);
        }
    }
    // One route per model name, in the order they first appear; its targets
    // the providers listing it, lower priority first.
    let mut names: Vec<(String, usize, String)> = Vec::new();
    for p in &providers {
        for (m, line) in &p.models {
            if !names.iter().any(|(n, _, _)| n == m) {
                names.push((m.clone(), *line, p.key.clone()));
            }
        }
    }
    if names.is_empty() {
        return Err(src.err(
            list.line,
            "providers",
            "no enabled provider lists a model, so no request could be routed",
        ));
    }
    for (name, line, key) in &names {
        let mut serving: Vec<&Provider> = providers
            .iter()
            .filter(|p| p.models.iter().any(|(m, _)| m == name))
            .collect();
        serving.sort_by_key(|p| p.priority);
        body.blank();
        body.line("[[models]]");
        body.item(
            format!("name = {}", quote(name)),
            &format!("{key}.models"),
            src.origin(*line, &format!("{key}.models")),
        );
        super::write_targets(
            &mut body,
            &src,
            serving
                .iter()
                .map(|p| (p.backend.as_str(), p.priority, p.key.as_str(), p.line)),
        );
    }
    let auth_lines = match auth {
        Some(a) => auth_section(&mut src, a)?,
        None => Vec::new(),
    };
    let warnings = src.sorted_warnings();
    let mut t = Toml::default();
    header(
        &mut t,
        path,
        Format::Providers,
        &warnings,
        "`${NAME}` reads the environment variable NAME (a provider's `api_key_env`).\n",
    );
    t.blank();
    t.line("[server]");
    t.item(
        "listen = \"${PROXY_API_HOST:-0.0.0.0}:${PROXY_API_PORT:-8000}\"",
        "PROXY_API_HOST and PROXY_API_PORT, as before",
        None,
    );
    retry_section(&mut t, Vec::new());
    if !auth_lines.is_empty() {
        t.blank();
        t.line("[auth]");
        for (text, comment, line, key) in auth_lines {
            match line {
                Some(l) => t.item(text, &comment, src.origin(l, &key)),
                None => t.comment(&text),
            }
        }
    }
    t.append(body);
    Ok(Imported::new(
        Format::Providers,
        t,
        warnings,
        path.display().to_string(),
    ))
}

/// One provider: its backend (or a comment when disabled).
fn write_provider(
    src: &mut Source,
    t: &mut Toml,
    item: &Node,
    i: usize,
) -> Result<Option<Provider>, ConfigError> {
    let base = format!("providers[{i}]");
    let Some(entries) = item.entries() else {
        return Err(src.err(
            item.line,
            &base,
            format!("must be a mapping, not {}", item.what()),
        ));
    };
    let mut name = None;
    let mut kind = None;
    let mut enabled = true;
    let mut priority = 1;
    let mut models = Vec::new();
    let mut lines = Vec::new();
    for e in entries {
        let key = format!("{base}.{}", e.key);
        match e.key.as_str() {
            "name" => name = Some(src.string(e, &key)?),
            "type" => kind = Some((src.string(e, &key)?.to_ascii_lowercase(), e.line, key)),
            "api_key_env" => {
                let var = src.string(e, &key)?;
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(src.err(
                        e.line,
                        &key,
                        format!("`{var}` is not an environment variable name"),
                    ));
                }
                lines.push((format!("api_key = \"${{{var}}}\""), key, e.line));
            }
            "base_url" => lines.push((
                format!("base_url = {}", quote(&src.string(e, &key)?)),
                key,
                e.line,
            )),
            "models" => {
                for m in src.list(e, &key)? {
                    let text = m
                        .text()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty());
                    let Some(text) = text else {
                        return Err(src.err(m.line, &key, "must list model names"));
                    };
                    models.push((text, m.line));
                }
            }
            "enabled" => enabled = src.boolean(e, &key)?,
            "priority" => priority = src.whole(e, &key, 0)?,
            _ => src.unmapped(e, &key, "in llm-router"),
        }
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(src.err(item.line, &base, "has no `name`"));
    };
    let backend = clean_name(&name);
    if !enabled {
        t.blank();
        t.comment(&format!(
            "Provider `{name}` ({base}) is disabled (enabled: false): not imported."
        ));
        return Ok(None);
    }
    let Some((kind, kind_line, kind_key)) = kind else {
        return Err(src.err(
            item.line,
            &base,
            "has no `type` (openai, anthropic, gemini or ollama)",
        ));
    };
    if crate::upstream::provider::by_name(&kind).is_none() || kind == "mock" {
        return Err(src.err(
            kind_line,
            &kind_key,
            format!("unknown provider type `{kind}`; expected openai, anthropic, gemini or ollama (any OpenAI-compatible API is openai with its base_url)"),
        ));
    }
    t.blank();
    t.line("[[backends]]");
    t.item(
        format!("name = {}", quote(&backend)),
        &base,
        src.origin(item.line, &base),
    );
    t.item(
        format!("provider = {}", quote(&kind)),
        &kind_key,
        src.origin(kind_line, &kind_key),
    );
    for (text, key, line) in lines {
        t.item(text, &key, src.origin(line, &key));
    }
    Ok(Some(Provider {
        backend,
        priority,
        models,
        line: item.line,
        key: base,
    }))
}

/// `auth:` as `[auth]` lines: (text, comment, line, key); a line of `None`
/// is a comment.
type AuthLine = (String, String, Option<usize>, String);

fn auth_section(src: &mut Source, a: &Entry) -> Result<Vec<AuthLine>, ConfigError> {
    let mut out = Vec::new();
    for e in src.mapping(a, "auth")? {
        let key = format!("auth.{}", e.key);
        match e.key.as_str() {
            "api_keys" => {
                let mut keys = Vec::new();
                for k in src.list(e, &key)? {
                    let text = k
                        .text()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty());
                    let Some(text) = text else {
                        return Err(src.err(k.line, &key, "must list keys"));
                    };
                    keys.push(quote(&text));
                }
                if !keys.is_empty() {
                    out.push((
                        format!("keys = [{}]", keys.join(", ")),
                        key.clone(),
                        Some(e.line),
                        key,
                    ));
                }
            }
            "jwt" => {
                let mut enabled = true;
                let mut fields = Vec::new();
                for j in src.mapping(e, &key)? {
                    let k = format!("{key}.{}", j.key);
                    match j.key.as_str() {
                        "enabled" => enabled = src.boolean(j, &k)?,
                        "secret_key" => {
                            fields.push(format!("secret = {}", quote(&src.string(j, &k)?)))
                        }
                        "algorithm" => {
                            fields.push(format!("algorithm = {}", quote(&src.string(j, &k)?)))
                        }
                        _ => src.unmapped(j, &k, "in llm-router's jwt"),
                    }
                }
                let line = format!("jwt = {{ {} }}", fields.join(", "));
                if enabled {
                    out.push((line, key.clone(), Some(e.line), key));
                } else {
                    out.push((
                        format!("{line}   (auth.jwt.enabled is false)"),
                        String::new(),
                        None,
                        key,
                    ));
                }
            }
            _ => src.unmapped(e, &key, "in llm-router's auth"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "providers:\n  - name: \"openai\"\n    type: \"openai\"\n    api_key_env: \"OPENAI_API_KEY\"\n    base_url: \"https://api.openai.com/v1\"\n    models:\n      - \"gpt-4\"\n      - \"gpt-3.5-turbo\"\n    enabled: true\n    priority: 2\n  - name: backup\n    type: openai\n    api_key_env: BACKUP_KEY\n    base_url: \"https://backup.example/v1\"\n    models: [gpt-4]\n    priority: 1\n    timeout: 30\n  - name: off\n    type: anthropic\n    models: [claude]\n    enabled: false\nauth:\n  api_keys: [\"k-1\", \"k-2\"]\n  jwt:\n    enabled: true\n    secret_key: \"a-long-enough-secret-for-hmac-256-tokens!\"\n    algorithm: HS256\n";

    #[test]
    fn providers_auth_and_priorities() {
        let i = import(YAML, Path::new("config.yaml")).unwrap();
        let env = |n: &str| match n {
            "OPENAI_API_KEY" => Some("sk-o".to_string()),
            "BACKUP_KEY" => Some("sk-b".to_string()),
            _ => None,
        };
        let c = i
            .config(Path::new("config.yaml"), &env)
            .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
        let names: Vec<&str> = c.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["gpt-4", "gpt-3.5-turbo"]);
        let gpt4: Vec<&str> = c.models[0]
            .targets
            .iter()
            .map(|t| t.backend.as_str())
            .collect();
        assert_eq!(gpt4, ["backup", "openai"]);
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.auth.keys.len(), 2);
        assert!(c.auth.jwt.is_some());
        assert_eq!(c.server.listen(), "0.0.0.0:8000");
        assert!(
            i.toml
                .contains("# Provider `off` (providers[2]) is disabled"),
            "{}",
            i.toml
        );
        let w: Vec<String> = i.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            ["config.yaml:17: providers[1].timeout: no equivalent in llm-router; ignored"]
        );
        let env2 = |n: &str| {
            if n == "PROXY_API_PORT" {
                Some("9100".to_string())
            } else {
                env(n)
            }
        };
        let c = i.config(Path::new("config.yaml"), &env2).unwrap();
        assert_eq!(c.server.port, 9100);
    }

    #[test]
    fn errors_name_the_line() {
        let e = import(
            "providers:\n  - name: a\n    type: bedrock\n    models: [x]\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("providers[0].type"))
        );
        let i = import("providers:\n  - name: a\n    type: openai\n    api_key_env: NOPE_UNSET\n    models: [x]\n", Path::new("c.yaml")).unwrap();
        let e = i.config(Path::new("c.yaml"), &|_| None).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("c.yaml", Some(4)), "{e}");
    }
}
