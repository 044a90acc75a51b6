//! `Config::parse` end to end: defaults, error locations, sections and overrides.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("c.toml"), &|_| None)
}

const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

#[test]
fn minimal_defaults() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.server.listen(), "127.0.0.1:8080");
    assert_eq!(c.server.body_limit, 10 * 1024 * 1024);
    assert!(!c.stack_explicit);
    assert_eq!(c.models[0].targets[0].priority, 1);
}

#[test]
fn unknown_key_names_line_and_path() {
    let e = parse(&format!(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisne = 3\n{MIN}"
    ))
    .unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.key.as_deref(), Some("server.lisne"), "{e}");
    assert!(e.message.contains("unknown key `lisne`"), "{e}");
}

#[test]
fn spanned_durations() {
    let text = MIN.replace(
        "provider = \"mock\"",
        "provider = \"mock\"\ntimeout = \"5x\"",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("backends[0].timeout"));
}

#[test]
fn server_limits() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
    let c = parse(&format!(
        "[server]\nmax_connections = 5\nheader_read_timeout = \"200ms\"\nidle_timeout = \"1s\"\nbody_read_timeout = \"2m\"\n{MIN}"
    ))
    .unwrap();
    assert_eq!(c.server.max_connections, 5);
    assert_eq!(c.server.header_read_timeout, Duration::from_millis(200));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(1));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(120));
    for (line, key) in [
        ("max_connections = 0", "server.max_connections"),
        ("max_connections = -3", "server.max_connections"),
        ("header_read_timeout = \"0s\"", "server.header_read_timeout"),
        ("idle_timeout = \"0ms\"", "server.idle_timeout"),
        ("body_read_timeout = \"30\"", "server.body_read_timeout"),
        ("body_read_timout = \"30s\"", "server.body_read_timout"),
    ] {
        let e = parse(&format!("[server]\n{line}\n{MIN}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
        assert_eq!(e.line, Some(2), "{line}: {e}");
    }
}

#[test]
fn retry_defaults_and_a_models_own_retry() {
    let model = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"x\"\ntargets = [{ backend = \"m\" }]\n";
    // No [retry]: fallback before retrying the same target.
    assert!(parse(model).unwrap().retry.other_targets_first);
    // A written [retry] keeps the contract's meaning unless it says so.
    let written = format!("[retry]\nmax_retries = 2\n\n{model}");
    let c = parse(&written).unwrap();
    assert!(!c.retry.other_targets_first);
    assert_eq!(c.models[0].retry, None);
    let own = format!("{written}retry = {{ initial_delay = \"10ms\", max_delay = \"1s\" }}\n");
    let m = parse(&own).unwrap().models[0].retry.clone().unwrap();
    assert_eq!(m.max_retries, 2, "from [retry]");
    assert_eq!(m.initial_delay, Duration::from_millis(10));
    let bad = format!("{written}retry = {{ max_retries = -1 }}\n");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("models[0].retry.max_retries"), "{e}");
    assert_eq!(e.line, Some(11), "{e}");
    let unknown = format!("{written}retry = {{ attempts = 2 }}\n");
    assert!(parse(&unknown).is_err());
}

#[test]
fn clients_restrict_a_route() {
    let text = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"*\"\nclients = [\"anthropic\"]\ntargets = [{ backend = \"m\" }]\n";
    let c = parse(text).unwrap();
    let clients = c.models[0].clients.unwrap();
    assert!(clients.serves(crate::request::ClientFormat::Anthropic));
    assert!(!clients.serves(crate::request::ClientFormat::OpenAi));
    // A route per restriction under one name; the same restriction twice is a duplicate.
    let two = format!("{text}\n[[models]]\nname = \"*\"\nclients = [\"openai\"]\ntargets = [{{ backend = \"m\" }}]\n");
    assert_eq!(parse(&two).unwrap().models.len(), 2);
    let e = parse(&two.replace("[\"openai\"]", "[\"anthropic\"]")).unwrap_err();
    assert!(e.message.contains("duplicate model name `*`"), "{e}");
    let e = parse(&text.replace("anthropic", "grpc")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("models[0].clients"));
    assert_eq!(e.line, Some(7), "{e}");
    assert!(e.message.contains("`grpc`"), "{e}");
}

#[test]
fn prefix_patterns_and_strip_prefix() {
    let model = |block: &str| {
        format!("[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\n{block}targets = [{{ backend = \"m\" }}]\n")
    };
    let c = parse(&model("name = \"cerebras/*\"\nstrip_prefix = true\n")).unwrap();
    assert!(c.models[0].strip_prefix);
    let c = parse(&model("name = \"gpt-*\"\n")).unwrap();
    assert!(!c.models[0].strip_prefix);
    let e = parse(&model("name = \"g*t\"\n")).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(6), Some("models[0].name")),
        "{e}"
    );
    assert!(e.message.contains("prefix pattern"), "{e}");
    let e = parse(&model("name = \"gpt-4o\"\nstrip_prefix = true\n")).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(7), Some("models[0].strip_prefix")),
        "{e}"
    );
    let e = parse(&model("name = \"*\"\nstrip_prefix = true\n")).unwrap_err();
    assert!(e.message.contains("not a prefix pattern"), "{e}");
}

#[test]
fn env_overrides() {
    let env = |n: &str| match n {
        "LLM_ROUTER_SERVER_PORT" => Some("9999".to_string()),
        "LLM_ROUTER_SERVER_HOST" => Some("0.0.0.0".to_string()),
        "LLM_ROUTER_BACKEND_M_API_KEY" => Some("sk-override".to_string()),
        _ => None,
    };
    let c = Config::parse(MIN, Path::new("c.toml"), &env).unwrap();
    assert_eq!(c.server.listen(), "0.0.0.0:9999");
    assert_eq!(
        c.backends[0].api_key,
        Some(ApiKeySetting::Key("sk-override".into()))
    );
}
