//! The JSON config (`llm_router_config.json`) of two lists of keys, tried by
//! priority: `openai` for requests to `/openai/...`, `anthropic` for
//! requests to `/anthropic/...`.
//!
//! | source | config.toml |
//! | --- | --- |
//! | `openai[i]`, `anthropic[i]` | a `[[backends]]` entry `openai-<i+1>` / `anthropic-<i+1>` |
//! | `api_key`, `base_url`, `timeout` (seconds) | `api_key`, `base_url`, `timeout` |
//! | `priority` (lower first) | the target's `priority` |
//! | `max_retries` | `[retry] max_retries` (one value for all) |
//! | the `openai` list | a `"*"` route with `clients = ["openai"]` (Chat Completions, Responses, ...) |
//! | the `anthropic` list | a `"*"` route with `clients = ["anthropic"]` (Messages) |
//!
//! llm-router serves `/openai/chat/completions` (and `/openai/v1/...`) as
//! the OpenAI API and `/anthropic/chat/completions` (and
//! `/anthropic/v1/messages`) as the Anthropic one, so clients keep their URLs.

use std::path::Path;

use super::yaml::{self, Node};
use super::{header, retry_section, Format, Imported, Source};
use crate::config::generated::{quote, Toml};
use crate::config::ConfigError;

/// The lists, their provider and the client API they serve.
const LISTS: &[(&str, &str, &str)] = &[
    ("openai", "openai", "openai"),
    ("anthropic", "anthropic", "anthropic"),
];

struct Target {
    backend: String,
    priority: u64,
    line: usize,
    key: String,
}

/// Import the file (see the [module docs](self)).
pub(super) fn import(text: &str, path: &Path) -> Result<Imported, ConfigError> {
    let mut src = Source::new(path);
    // serde_json first: it names a JSON syntax error's line and column as
    // JSON tells it; the YAML parser (JSON is YAML) then gives every key's line.
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        return Err(ConfigError {
            file: src.file.clone(),
            line: Some(e.line().max(1)),
            key: None,
            message: format!("invalid JSON: {e}"),
        });
    }
    let doc = yaml::parse(text, &src.file, "the file is empty")?;
    let mut body = Toml::default();
    let mut routes: Vec<(&str, &str, Vec<Target>, usize)> = Vec::new();
    let mut retries: Option<(u64, usize, String)> = None;
    for e in doc.root.entries().unwrap_or_default() {
        let Some(&(list, provider, clients)) = LISTS.iter().find(|(l, _, _)| *l == e.key) else {
            src.unmapped(
                e,
                &e.key,
                "in llm-router (only the `openai` and `anthropic` lists are read)",
            );
            continue;
        };
        let mut targets = Vec::new();
        for (i, item) in src.list(e, list)?.iter().enumerate() {
            let key = format!("{list}[{i}]");
            let backend = format!("{list}-{}", i + 1);
            let priority = write_backend(
                &mut src,
                &mut body,
                item,
                &key,
                &backend,
                provider,
                &mut retries,
            )?;
            targets.push(Target {
                backend,
                priority,
                line: item.line,
                key,
            });
        }
        // Lower priority first; the file's order among equals.
        targets.sort_by_key(|t| t.priority);
        if targets.is_empty() {
            src.warn(e.line, list, "is empty: no route for its requests");
        } else {
            routes.push((list, clients, targets, e.line));
        }
    }
    if routes.is_empty() {
        return Err(src.err(
            doc.root.line.max(1),
            "openai",
            "neither an `openai` nor an `anthropic` list has an entry, so no request could be routed",
        ));
    }
    for (list, clients, targets, line) in &routes {
        body.blank();
        body.item(
            "[[models]]",
            &format!("requests to /{list}/..."),
            src.origin(*line, list),
        );
        body.line("name = \"*\"");
        body.item(
            format!("clients = [{}]", quote(clients)),
            &format!("only {list}-format requests use this route"),
            None,
        );
        super::write_targets(
            &mut body,
            &src,
            targets
                .iter()
                .map(|t| (t.backend.as_str(), t.priority, t.key.as_str(), t.line)),
        );
    }
    let warnings = src.sorted_warnings();
    let mut t = Toml::default();
    header(
        &mut t,
        path,
        Format::KeyLists,
        &warnings,
        "Requests to /openai/... use the openai list and requests to /anthropic/... the anthropic\nlist, each by priority, as before.\n",
    );
    t.blank();
    t.line("[server]");
    t.item(
        "listen = \"0.0.0.0:8000\"",
        "the router's default address, so clients keep their URL",
        None,
    );
    let retry_lines = retries
        .map(|(n, line, key)| {
            let comment = format!("{key} (one value for every backend here)");
            vec![(
                format!("max_retries = {n}"),
                comment,
                src.origin(line, &key),
            )]
        })
        .unwrap_or_default();
    retry_section(&mut t, retry_lines);
    t.append(body);
    Ok(Imported::new(
        Format::KeyLists,
        t,
        warnings,
        path.display().to_string(),
    ))
}

/// One entry as a backend; returns its priority.
fn write_backend(
    src: &mut Source,
    t: &mut Toml,
    item: &Node,
    base: &str,
    backend: &str,
    provider: &str,
    retries: &mut Option<(u64, usize, String)>,
) -> Result<u64, ConfigError> {
    let Some(entries) = item.entries() else {
        return Err(src.err(
            item.line,
            base,
            format!("must be an object, not {}", item.what()),
        ));
    };
    let mut priority = None;
    let mut lines = Vec::new();
    for e in entries {
        let key = format!("{base}.{}", e.key);
        match e.key.as_str() {
            "api_key" => lines.push((
                format!("api_key = {}", quote(&src.string(e, &key)?)),
                key,
                e.line,
            )),
            "base_url" => lines.push((
                format!("base_url = {}", quote(&src.string(e, &key)?)),
                key,
                e.line,
            )),
            "timeout" => {
                if let Some(d) = src.seconds(e, &key)? {
                    lines.push((format!("timeout = {}", quote(&d)), key, e.line));
                }
            }
            "priority" => priority = Some(src.whole(e, &key, 0)?),
            "max_retries" => {
                let n = src.whole(e, &key, 0)?;
                match retries {
                    None => *retries = Some((n, e.line, key)),
                    Some((first, line, _)) if *first != n => src.warn(
                        e.line,
                        &key,
                        format!("[retry] max_retries is one value for every backend; {first} (line {line}) is used"),
                    ),
                    Some(_) => {}
                }
            }
            _ => src.unmapped(e, &key, "in llm-router"),
        }
    }
    t.blank();
    t.line("[[backends]]");
    t.item(
        format!("name = {}", quote(backend)),
        base,
        src.origin(item.line, base),
    );
    t.line(format!("provider = {}", quote(provider)));
    for (text, key, line) in lines {
        t.item(text, &key, src.origin(line, &key));
    }
    // Without a priority, after every numbered one (in the file's order).
    Ok(priority.unwrap_or(u64::from(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ClientFormat;

    const JSON: &str = r#"{
  "openai": [
    {"api_key": "sk-b", "priority": 2, "base_url": "https://b.example/v1", "timeout": 30, "max_retries": 3},
    {"api_key": "sk-a", "priority": 1, "base_url": "https://a.example/v1", "timeout": 30, "max_retries": 2}
  ],
  "anthropic": [
    {"api_key": "sk-ant", "priority": 1, "base_url": "https://api.anthropic.com", "organization": "x"}
  ],
  "logging": {"dir": "logs"}
}"#;

    #[test]
    fn two_routes_by_client_api_and_priority() {
        let i = import(JSON, Path::new("llm_router_config.json")).unwrap();
        let c = i
            .validate(Path::new("config.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
        let table = crate::stack::route_table(&c).unwrap();
        let first = |f| {
            let r = table.resolve_for("gpt-4o", f).unwrap();
            r.targets()
                .iter()
                .map(|t| t.backend().name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(first(ClientFormat::OpenAi), ["openai-2", "openai-1"]);
        assert_eq!(first(ClientFormat::Responses), ["openai-2", "openai-1"]);
        assert_eq!(first(ClientFormat::Anthropic), ["anthropic-1"]);
        assert_eq!(c.retry.max_retries, 3);
        let w: Vec<String> = i.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("llm_router_config.json:4: openai[1].max_retries: "),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("llm_router_config.json:7: anthropic[0].organization: no equivalent"),
            "{w:?}"
        );
        assert!(
            w[2].starts_with("llm_router_config.json:9: logging: no equivalent"),
            "{w:?}"
        );
    }

    #[test]
    fn json_errors_name_the_line() {
        let e = import(
            "{\n  \"openai\": [\n    {\"api_key\": 1,}\n  ]\n}\n",
            Path::new("c.json"),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.starts_with("invalid JSON"), "{e}");
        let e = import("{\"openai\": [{\"priority\": -1}]}", Path::new("c.json")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("openai[0].priority"));
        let e = import("{\"openai\": []}", Path::new("c.json")).unwrap_err();
        assert!(e.message.contains("no request could be routed"), "{e}");
    }
}
