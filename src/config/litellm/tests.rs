//! Unit tests of the LiteLLM importer, through [`import`].

use super::*;
use crate::config::import::duration;

fn import_ok(yaml: &str) -> Imported {
    let imported = import(yaml, Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("import failed: {e}\n{yaml}"));
    imported
        .validate(Path::new("config.toml"))
        .unwrap_or_else(|e| panic!("invalid: {e}\n{}", imported.toml));
    imported
}

fn import_err(yaml: &str) -> String {
    import(yaml, Path::new("config.yaml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn durations_from_seconds() {
    assert_eq!(duration(30.0), "30s");
    assert_eq!(duration(0.5), "500ms");
    assert_eq!(duration(1.25), "1250ms");
}

#[test]
fn detection() {
    assert!(is_litellm(Path::new("c.yaml"), ""));
    assert!(is_litellm(Path::new("c.YML"), ""));
    assert!(!is_litellm(Path::new("c.toml"), "model_list:\n"));
    assert!(is_litellm(
        Path::new("litellm.conf"),
        "# x\nmodel_list:\n  - a\n"
    ));
    assert!(!is_litellm(Path::new("config"), "[[models]]\n"));
}

#[test]
fn proxy_server_config_sets_the_address() {
    let imported = import_ok(
        "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  host: 127.0.0.1\n  port: 8090\n  workers: 2\n",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    assert_eq!(c.server.listen(), "127.0.0.1:8090");
    let w: Vec<String> = imported.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        ["config.yaml:4: proxy_server_config: key `workers` has no equivalent in llm-router; ignored"]
    );
    let e = import(
        "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  port: 70000\n",
        Path::new("config.yaml"),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(5));
    // Only the port: LiteLLM's default host.
    let imported = import_ok(
        "model_list:\n  - model_name: a\n    litellm_params: { model: openai/a }\nproxy_server_config:\n  port: 8090\n",
    );
    assert!(
        imported.toml.contains("listen = \"0.0.0.0:8090\""),
        "{}",
        imported.toml
    );
}

#[test]
fn a_minimal_config() {
    let imported = import_ok(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/OPENAI_API_KEY\n",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    assert_eq!(c.backends.len(), 1);
    assert_eq!(c.backends[0].name, "openai");
    assert_eq!(c.backends[0].provider, "openai");
    assert_eq!(c.models[0].targets[0].model.as_deref(), Some("gpt-4o"));
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    assert!(imported.variables.contains("OPENAI_API_KEY"));
    assert!(imported
        .toml
        .starts_with("# llm-router configuration imported from the LiteLLM config `config.yaml`"));
}

#[test]
fn deployments_share_a_backend_unless_they_have_limits() {
    let imported = import_ok(
        "model_list:
  - model_name: a
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/K }
  - model_name: b
    litellm_params: { model: openai/gpt-4o-mini, api_key: os.environ/K }
  - model_name: c
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/K, rpm: 10 }
  - model_name: d
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/OTHER }
",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["openai", "openai-2", "openai-3"]);
    let backend_of = |m: &str| {
        c.models.iter().find(|x| x.name == m).unwrap().targets[0]
            .backend
            .clone()
    };
    assert_eq!(backend_of("a"), "openai");
    assert_eq!(backend_of("b"), "openai");
    assert_eq!(backend_of("c"), "openai-2");
    assert_eq!(backend_of("d"), "openai-3");
    assert_eq!(c.backends[1].rate_limit.unwrap().requests, 10);
}

#[test]
fn errors_name_the_line_and_key() {
    let e = import_err(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: bedrock/claude\n",
    );
    assert!(
        e.starts_with(
            "config.yaml:4: model_list[0].litellm_params.model: unknown provider prefix `bedrock/`"
        ),
        "{e}"
    );
    let e = import_err("model_list:\n  - model_name: x\n    litellm_params:\n      api_key: k\n");
    assert!(
        e.starts_with(
            "config.yaml:3: model_list[0].litellm_params: model `x` has no `litellm_params.model`"
        ),
        "{e}"
    );
    let e = import_err("model_list:\n  - litellm_params:\n      model: openai/x\n");
    assert!(
        e.starts_with("config.yaml:2: model_list[0]: missing `model_name`"),
        "{e}"
    );
    let e = import_err("model_list:\n  - model_name: x\n    litellm_params: [\n");
    assert!(e.starts_with("config.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = import_err("router_settings: {}\n");
    assert!(e.contains("no `model_list`"), "{e}");
    let e = import_err(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: hosted_vllm/llama\n",
    );
    assert!(e.contains("needs `api_base`"), "{e}");
    let e = import_err("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      rpm: lots\n");
    assert!(
        e.starts_with("config.yaml:5: model_list[0].litellm_params.rpm: must be a whole number"),
        "{e}"
    );
}

#[test]
fn unset_variables_are_reported_at_the_yaml_line() {
    let imported = import(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/NOT_SET_ANYWHERE\n",
        Path::new("config.yaml"),
    )
    .unwrap();
    let e = imported
        .config(Path::new("config.yaml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config.yaml:5: model_list[0].litellm_params.api_key: "),
        "{e}"
    );
    assert!(e.contains("NOT_SET_ANYWHERE"), "{e}");
}

#[test]
fn unknown_keys_are_warnings_naming_them() {
    let imported = import_ok(
        "model_list:
  - model_name: x
    litellm_params:
      model: openai/x
      temperature: 0.2
      tpm: 1000
    model_info:
      id: dep-1
      mode: chat
litellm_settings:
  drop_params: true
  success_callback: [langfuse]
general_settings:
  database_url: postgres://x
server_settings: {}
",
    );
    let w = imported
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "config.yaml:3: model_list[0].litellm_params: key `temperature` has no equivalent",
        "config.yaml:6: model_list[0].litellm_params.tpm: no per-backend token limit",
        "config.yaml:7: model_list[0].model_info: key `mode` has no equivalent",
        "config.yaml:11: litellm_settings.drop_params: no equivalent",
        "litellm_settings: key `success_callback` has no equivalent",
        "general_settings: key `database_url` has no equivalent",
        "config.yaml:15: server_settings: section has no equivalent",
    ] {
        assert!(w.contains(needle), "missing {needle:?} in\n{w}");
    }
    // The deployment's id names its backend, and the warnings head the file.
    assert!(
        imported.toml.contains("name = \"dep-1\""),
        "{}",
        imported.toml
    );
    assert!(
        imported
            .toml
            .contains("#   config.yaml:6: model_list[0].litellm_params.tpm"),
        "{}",
        imported.toml
    );
}

#[test]
fn wildcards_become_prefix_patterns() {
    let imported = import_ok(
        "model_list:
  - model_name: \"anthropic/*\"
    litellm_params: { model: \"anthropic/*\" }
  - model_name: \"gpt-*\"
    litellm_params: { model: \"openai/gpt-*\" }
  - model_name: \"*\"
    litellm_params: { model: \"*\" }
",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    let m = |n: &str| c.models.iter().find(|m| m.name == n).unwrap();
    assert!(m("anthropic/*").strip_prefix);
    assert_eq!(m("anthropic/*").targets[0].model, None);
    assert!(!m("gpt-*").strip_prefix);
    assert_eq!(m("gpt-*").targets[0].model, None);
    assert_eq!(m("*").targets[0].model, None);
    let e = import_err(
        "model_list:\n  - model_name: \"a*b\"\n    litellm_params: { model: openai/x }\n",
    );
    assert!(
        e.starts_with("config.yaml:2: model_list[0].model_name: `a*b`"),
        "{e}"
    );
}

#[test]
fn merge_keys_and_anchors() {
    let imported = import_ok(
        "x-defaults: &defaults
  api_key: os.environ/OPENAI_API_KEY
  rpm: 30
model_list:
  - model_name: a
    litellm_params:
      <<: *defaults
      model: openai/a
",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    assert_eq!(c.backends[0].rate_limit.unwrap().requests, 30);
    assert!(imported.warnings[0]
        .to_string()
        .contains("x-defaults: section has no equivalent"));
}

#[test]
fn environment_variables_become_defaults() {
    let imported = import_ok(
        "environment_variables:\n  OPENAI_API_KEY: sk-from-yaml\nmodel_list:\n  - model_name: a\n    litellm_params: { model: openai/a, api_key: os.environ/OPENAI_API_KEY }\n",
    );
    assert!(
        imported
            .toml
            .contains("api_key = \"${OPENAI_API_KEY:-sk-from-yaml}\""),
        "{}",
        imported.toml
    );
}

#[test]
fn router_settings_map_to_sections() {
    let imported = import_ok(
        "model_list:
  - model_name: a
    litellm_params: { model: openai/a }
  - model_name: b
    litellm_params: { model: openai/b, api_base: \"http://127.0.0.1:1/v1\" }
router_settings:
  stream_timeout: 20
  timeout: 45
  default_fallbacks: [\"b\"]
  allowed_fails: 0
litellm_settings:
  request_timeout: 10
",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    for b in &c.backends {
        assert_eq!(b.timeout, std::time::Duration::from_secs(45));
        assert_eq!(b.first_byte_timeout, std::time::Duration::from_secs(20));
    }
    let a: Vec<(&str, u32)> = c.models[0]
        .targets
        .iter()
        .map(|t| (t.backend.as_str(), t.priority))
        .collect();
    assert_eq!(a, [("openai", 1), ("openai-2", 2)]);
    assert_eq!(c.models[1].targets.len(), 1);
    assert_eq!(c.circuit_breaker.failure_threshold, 1);
    assert!(
        imported.warnings.iter().any(|w| w
            .to_string()
            .contains("litellm_settings.request_timeout: router_settings.timeout is used instead")),
        "{:?}",
        imported.warnings
    );
}

#[test]
fn simple_form() {
    let imported = import_ok(
        "model_list:
  - id: primary
    group_name: smart
    model_name: gpt-4o
    provider: openai
    api_key: ${OPENAI_API_KEY}
    priority: 1
  - id: backup
    group_name: smart
    model_name: llama-3.3-70b
    provider: cerebras
    api_key: ${CEREBRAS_API_KEY}
    priority: 2
",
    );
    let c = imported.validate(Path::new("config.toml")).unwrap();
    assert_eq!(c.models.len(), 1);
    let t = &c.models[0].targets;
    assert_eq!((t[0].backend.as_str(), t[0].priority), ("primary", 1));
    assert_eq!(
        (t[1].backend.as_str(), t[1].model.as_deref()),
        ("backup", Some("llama-3.3-70b"))
    );
    assert_eq!(
        c.backends[1].base_url.as_deref(),
        Some("https://api.cerebras.ai/v1")
    );
    assert!(imported.variables.contains("CEREBRAS_API_KEY"));
}
