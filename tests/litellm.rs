//! Coming from LiteLLM, and no config at all.
//!
//! - The LiteLLM configs under `tests/fixtures/litellm/` are written the way
//!   LiteLLM's documentation shows them. Each is imported (assertions on the
//!   generated config.toml and on the config it builds) and the ones with
//!   `api_base` from the environment are served in front of mock upstreams:
//!   routing, fallbacks, context-window fallbacks, aliases, wildcards and rpm
//!   limits behave as LiteLLM describes them.
//! - Without a config file, the config is built from OPENAI_API_KEY,
//!   ANTHROPIC_API_KEY, GEMINI_API_KEY, CEREBRAS_API_KEY, DEEPINFRA_TOKEN and
//!   OLLAMA_BASE_URL (each provider's address overridable with
//!   `<NAME>_BASE_URL`); with none of them, the mock answers.
//! - The binary: `import-litellm`, `check`/`serve --config config.yaml`, and
//!   `serve`/`check` with no config file.

mod support;

use support::binary::{llm_router, stderr, stdout, Running, WorkDir as TempDir};

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use llm_router::config::litellm::{import, Imported};
use llm_router::config::{ApiKeySetting, Config};
use llm_router::stack::LayerName;
use support::{chat_body, client, MockUpstream, Proxy, Reply};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/litellm")
        .join(name)
}

fn import_fixture(name: &str) -> Imported {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).expect("read fixture");
    import(&text, &path).unwrap_or_else(|e| panic!("{name} does not import: {e}"))
}

/// The imported config, validated with placeholders for its variables.
fn validated(imported: &Imported) -> Config {
    imported
        .validate(Path::new("config.toml"))
        .unwrap_or_else(|e| panic!("the import is invalid: {e}\n{}", imported.toml))
}

/// An environment of exactly these variables.
fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn model<'a>(config: &'a Config, name: &str) -> &'a llm_router::config::ModelConfig {
    config
        .models
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no model {name}"))
}

fn backend<'a>(config: &'a Config, name: &str) -> &'a llm_router::config::BackendConfig {
    config
        .backends
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no backend {name}"))
}

/// (backend, model, priority, weight) of each target.
fn targets(config: &Config, name: &str) -> Vec<(String, Option<String>, u32, u32)> {
    model(config, name)
        .targets
        .iter()
        .map(|t| (t.backend.clone(), t.model.clone(), t.priority, t.weight))
        .collect()
}

fn t(
    backend: &str,
    model: Option<&str>,
    priority: u32,
    weight: u32,
) -> (String, Option<String>, u32, u32) {
    (backend.into(), model.map(Into::into), priority, weight)
}

fn assert_warned(imported: &Imported, file: &str, needles: &[&str]) {
    let warnings: Vec<String> = imported.warnings.iter().map(|w| w.to_string()).collect();
    let all = warnings.join("\n");
    for needle in needles {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(needle) && w.contains(file)),
            "no warning with {needle:?}:\n{all}"
        );
        // Each is also in the file's header comment.
        assert!(
            imported
                .toml
                .lines()
                .any(|l| l.starts_with("#   ") && l.contains(needle)),
            "{needle:?} is not in the header of\n{}",
            imported.toml
        );
    }
}

// ---------------------------------------------------------------------------
// Imports

#[test]
fn every_fixture_imports_to_a_valid_commented_config() {
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let imported = import_fixture(&name);
        let config = validated(&imported);
        assert!(
            imported.toml.starts_with(&format!(
                "# llm-router configuration imported from the LiteLLM config `{name}`"
            )),
            "{}",
            imported.toml
        );
        assert!(!config.models.is_empty());
        // Every model and target line says where it came from.
        for line in imported.toml.lines() {
            if line.starts_with("name = ") || line.starts_with("  { backend") {
                assert!(line.contains("# "), "{name}: uncommented line {line:?}");
            }
        }
        // The text is a config.toml that `check` reads as it is.
        let dir =
            std::env::temp_dir().join(format!("llm-router-litellm-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("config.toml");
        std::fs::write(&toml_path, &imported.toml).unwrap();
        let placeholders: Vec<(String, String)> = imported
            .variables
            .iter()
            .map(|v| (v.clone(), "https://placeholder.invalid".to_string()))
            .collect();
        let out = llm_router()
            .arg("check")
            .arg("--config")
            .arg(&toml_path)
            .envs(placeholders)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn multi_provider_fixture() {
    let imported = import_fixture("multi_provider.yaml");
    let c = validated(&imported);
    let providers: Vec<(&str, &str, Option<&str>)> = c
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.provider.as_str(), b.base_url.as_deref()))
        .collect();
    assert_eq!(
        providers,
        [
            ("openai", "openai", Some("https://api.openai.com/v1")),
            (
                "azure",
                "openai",
                Some("https://placeholder.invalid/openai/v1")
            ),
            ("anthropic", "anthropic", Some("https://api.anthropic.com")),
            (
                "gemini",
                "gemini",
                Some("https://generativelanguage.googleapis.com")
            ),
            ("ollama", "ollama", Some("http://localhost:11434")),
            ("cerebras", "openai", Some("https://api.cerebras.ai/v1")),
            (
                "deepinfra",
                "openai",
                Some("https://api.deepinfra.com/v1/openai")
            ),
            ("openrouter", "openai", Some("https://openrouter.ai/api/v1")),
            (
                "hosted-vllm",
                "openai",
                Some("https://hosted-vllm-api.co/v1")
            ),
            ("openai-2", "openai", Some("https://api.openai.com/v1")),
        ]
    );
    // Keys from the environment, never inlined.
    for line in [
        "api_key = \"${OPENAI_API_KEY}\"",
        "api_key = \"${ANTHROPIC_API_KEY}\"",
        "api_key = \"${DEEPINFRA_API_KEY}\"",
        "base_url = \"${AZURE_API_BASE}/openai/v1\"",
        "keys = [\"${LITELLM_MASTER_KEY}\"]",
        "order = [\"auth\", \"failover\", \"circuit_breaker\", \"retry\"]",
        "rate_limit = { requests = 480, window = \"60s\" }",
        "timeout = \"300s\"",
        "first_byte_timeout = \"60s\"",
        "max_retries = 3",
    ] {
        assert!(
            imported.toml.contains(line),
            "no {line:?} in\n{}",
            imported.toml
        );
    }
    let openai = backend(&c, "openai");
    assert_eq!(openai.timeout, Duration::from_secs(300));
    assert_eq!(openai.first_byte_timeout, Duration::from_secs(60));
    assert_eq!(openai.rate_limit.unwrap().requests, 480);
    assert_eq!(openai.rate_limit.unwrap().window, Duration::from_secs(60));
    // litellm_settings.request_timeout: every other backend.
    assert_eq!(backend(&c, "gemini").timeout, Duration::from_secs(600));
    assert_eq!(backend(&c, "azure").rate_limit.unwrap().requests, 6);
    assert!(backend(&c, "ollama").api_key.is_none());
    assert_eq!(c.retry.max_retries, 3);
    assert!(c.stack.contains(&LayerName::Auth));
    assert!(!c.auth.is_empty());
    // One group, two deployments, load shared equally.
    assert_eq!(
        targets(&c, "gpt-4o"),
        [
            t("openai", Some("gpt-4o"), 1, 1),
            t("azure", Some("gpt-4o-eu"), 1, 1)
        ]
    );
    assert_eq!(
        targets(&c, "deepseek-r1"),
        [t("deepinfra", Some("deepseek-ai/DeepSeek-R1"), 1, 1)]
    );
    assert_eq!(targets(&c, "llama3"), [t("ollama", Some("llama3"), 1, 1)]);
    assert_eq!(
        targets(&c, "gpt-3.5-turbo"),
        [t("openai-2", Some("gpt-3.5-turbo"), 1, 1)]
    );
    assert_warned(
        &imported,
        "multi_provider.yaml:",
        &[
            "model_list[0].litellm_params.tpm: no per-backend token limit",
            "model_list[1].litellm_params.api_version",
            "model_list[8].model_info: key `mode` has no equivalent",
            "keys `temperature`, `max_tokens` have no equivalent",
            "litellm_settings.drop_params: no equivalent",
            "litellm_settings: key `set_verbose`",
            "general_settings: key `database_url`",
        ],
    );
}

#[test]
fn fallbacks_fixture() {
    let imported = import_fixture("fallbacks.yaml");
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let c = validated(&imported);
    assert_eq!(
        targets(&c, "gpt-4o"),
        [
            t("openai", Some("gpt-4o"), 1, 1),
            t("openai-2", Some("gpt-4o-mini"), 2, 1),
            t("anthropic", Some("claude-3-5-sonnet-20241022"), 3, 1),
        ]
    );
    assert_eq!(
        targets(&c, "limited"),
        [
            t("openai-3", Some("gpt-4o"), 1, 1),
            t("openai-2", Some("gpt-4o-mini"), 2, 1),
        ]
    );
    // The fallback groups keep only their own targets.
    assert_eq!(
        targets(&c, "gpt-4o-mini"),
        [t("openai-2", Some("gpt-4o-mini"), 1, 1)]
    );
    assert_eq!(
        model(&c, "gpt-4o").context_fallback.as_deref(),
        Some("gpt-4o-long")
    );
    // model_group_alias: the same targets under another name.
    assert_eq!(targets(&c, "gpt-4"), targets(&c, "gpt-4o"));
    assert_eq!(c.retry.max_retries, 1);
    assert_eq!(c.retry.initial_delay, Duration::from_millis(50));
    assert_eq!(c.circuit_breaker.failure_threshold, 4);
    assert_eq!(c.circuit_breaker.open_for, Duration::from_secs(30));
    assert_eq!(c.failover.cooldown, Duration::from_secs(30));
    assert_eq!(backend(&c, "openai-3").rate_limit.unwrap().requests, 2);
    assert_eq!(backend(&c, "anthropic").timeout, Duration::from_secs(30));
    for line in [
        "failure_threshold = 4                   # router_settings.allowed_fails = 3",
        "context_fallback = \"gpt-4o-long\"        # router_settings.context_window_fallbacks[0].gpt-4o",
        "# fallback `claude-sonnet` (router_settings.fallbacks[0].gpt-4o), model_list[2]",
        "keys = [\"sk-1234\"]",
    ] {
        assert!(imported.toml.contains(line), "no {line:?} in\n{}", imported.toml);
    }
}

#[test]
fn load_balancing_fixture() {
    let imported = import_fixture("load_balancing.yaml");
    let c = validated(&imported);
    // order -> priority, weight -> weight, model_info.id -> the backend's name.
    assert_eq!(
        targets(&c, "gpt-3.5-turbo"),
        [
            t("azure", Some("chatgpt-v-2"), 1, 1),
            t("openai-main", Some("gpt-3.5-turbo"), 2, 9),
            t("openai", Some("gpt-3.5-turbo"), 2, 1),
        ]
    );
    assert_eq!(targets(&c, "*"), [t("openai-2", None, 1, 1)]);
    // No key given: LiteLLM's default variable, optional.
    assert!(imported.toml.contains("api_key = \"${OPENAI_API_KEY:-}\""));
    // router_settings.num_retries wins over the deployments' max_retries.
    assert_eq!(c.retry.max_retries, 2);
    assert!(!c.stack.contains(&LayerName::Auth));
    assert_warned(
        &imported,
        "load_balancing.yaml:",
        &[
            "routing_strategy: `usage-based-routing-v2` has no equivalent",
            "router_settings.redis_host",
            "router_settings.redis_password",
            "router_settings: key `enable_pre_call_checks`",
            "model_list[2].tpm",
            "model_list[1].litellm_params.max_retries: [retry] max_retries is global",
        ],
    );
}

#[test]
fn wildcards_fixture() {
    let imported = import_fixture("wildcards.yaml");
    let c = validated(&imported);
    for name in ["anthropic/*", "groq/*", "openai/*"] {
        assert!(model(&c, name).strip_prefix, "{name}");
        assert_eq!(model(&c, name).targets[0].model, None);
    }
    assert!(!model(&c, "gpt-*").strip_prefix);
    assert_eq!(
        backend(&c, "groq").base_url.as_deref(),
        Some("https://api.groq.com/openai/v1")
    );
    // openai/* and gpt-* share one backend; the catch-all has its own address.
    assert_eq!(targets(&c, "gpt-*"), [t("openai", None, 1, 1)]);
    assert_eq!(targets(&c, "*"), [t("openai-2", None, 1, 1)]);
}

#[test]
fn simple_form_fixture() {
    let imported = import_fixture("simple_form.yaml");
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let c = validated(&imported);
    assert_eq!(
        targets(&c, "smart"),
        [
            t("openai-primary", Some("gpt-4o"), 1, 1),
            t("cerebras-backup", Some("llama-3.3-70b"), 2, 1),
        ]
    );
    assert_eq!(targets(&c, "fast"), [t("local", Some("llama3"), 1, 1)]);
    assert_eq!(backend(&c, "local").provider, "ollama");
    // ${VAR:-default} kept as written.
    assert_eq!(
        backend(&c, "cerebras-backup").base_url.as_deref(),
        Some("https://api.cerebras.ai/v1")
    );
}

#[test]
fn import_errors_name_the_file_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "model_list:\n  - model_name: claude\n    litellm_params:\n      model: bedrock/anthropic.claude-v2\n",
            4,
            "model_list[0].litellm_params.model",
            "unknown provider prefix `bedrock/`",
        ),
        (
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      api_key: os.environ/OPENAI_API_KEY\n",
            3,
            "model_list[0].litellm_params",
            "has no `litellm_params.model`",
        ),
        (
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n  - model_name: x\n   litellm_params: {}\n",
            6,
            "",
            "invalid YAML",
        ),
        (
            "model_list:\n  - model_name: local\n    litellm_params:\n      model: hosted_vllm/llama\n",
            3,
            "model_list[0].litellm_params",
            "needs `api_base`",
        ),
    ];
    for (yaml, line, key, words) in cases {
        let e = import(yaml, Path::new("config.yaml")).unwrap_err();
        let prefix = if key.is_empty() {
            format!("config.yaml:{line}: ")
        } else {
            format!("config.yaml:{line}: {key}: ")
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&prefix),
            "expected {prefix:?}, got {text:?}"
        );
        assert!(text.contains(words), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Serving an imported config

async fn serve_fixture(name: &str, vars: &[(&str, String)]) -> Proxy {
    let imported = import_fixture(name);
    let config = imported
        .config(&fixture(name), &env_of(vars))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Proxy::start_config(config).await
}

async fn chat(
    proxy: &Proxy,
    key: Option<&str>,
    model: &str,
) -> (StatusCode, Value, http::HeaderMap) {
    let mut request = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body(model));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

/// The mocks of `fallbacks.yaml`, with `primary` answering as told.
struct FallbackSetup {
    proxy: Proxy,
    primary: MockUpstream,
    fallback: MockUpstream,
    limited: MockUpstream,
}

async fn fallback_setup(primary: Reply) -> FallbackSetup {
    let primary = MockUpstream::start("primary", primary).await;
    let fallback = MockUpstream::start("fallback", Reply::Chat).await;
    let limited = MockUpstream::start("limited", Reply::Chat).await;
    let proxy = serve_fixture(
        "fallbacks.yaml",
        &[
            ("PRIMARY_API_BASE", primary.base_url()),
            ("FALLBACK_API_BASE", fallback.base_url()),
            ("LIMITED_API_BASE", limited.base_url()),
            ("OPENAI_API_KEY", "sk-upstream".into()),
            ("ANTHROPIC_API_KEY", "sk-ant-upstream".into()),
        ],
    )
    .await;
    FallbackSetup {
        proxy,
        primary,
        fallback,
        limited,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_config_routes_by_model_name_behind_the_master_key() {
    let s = fallback_setup(Reply::Chat).await;
    // general_settings.master_key: no key, no answer.
    let (status, _, _) = chat(&s.proxy, None, "gpt-4o").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "gpt-4o").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from primary");
    let request = s.primary.only_request();
    assert_eq!(request.model(), "gpt-4o");
    assert_eq!(request.path, "/v1/chat/completions");
    // The backend's key goes upstream, never the client's.
    assert_eq!(request.header("authorization"), Some("Bearer sk-upstream"));
    // model_group_alias: gpt-4 is served by gpt-4o's deployments.
    let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "gpt-4").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(s.primary.requests().len(), 2);
    assert_eq!(s.primary.requests()[1].model(), "gpt-4o");
    // A name no model_name has.
    let (status, _, _) = chat(&s.proxy, Some("sk-1234"), "gpt-5").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(s.fallback.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_group_falls_back_to_the_next_group() {
    let s = fallback_setup(Reply::Json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"message": "boom", "type": "server_error", "code": "internal"}}),
    ))
    .await;
    let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "gpt-4o").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from fallback");
    // Imported with `other_targets_first`: the fallback group answers at
    // once; num_retries (1) is spent only on the last target left.
    assert_eq!(s.primary.requests().len(), 1);
    let request = s.fallback.only_request();
    assert_eq!(request.model(), "gpt-4o-mini");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_window_errors_go_to_the_context_window_fallback() {
    let s = fallback_setup(Reply::Json(
        StatusCode::BAD_REQUEST,
        json!({"error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded"
        }}),
    ))
    .await;
    let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "gpt-4o").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from fallback");
    // Not retried, and not the ordinary fallbacks: gpt-4o-long's deployment.
    assert_eq!(s.primary.requests().len(), 1);
    assert_eq!(s.fallback.only_request().model(), "gpt-4o-128k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_over_its_rpm_is_skipped_for_the_fallback() {
    let s = fallback_setup(Reply::Chat).await;
    for _ in 0..2 {
        let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "limited").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(content(&answer), "from limited");
    }
    // rpm: 2 -> the third request in the minute goes to the fallback group.
    let (status, answer, _) = chat(&s.proxy, Some("sk-1234"), "limited").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from fallback");
    assert_eq!(s.limited.requests().len(), 2);
    assert_eq!(s.fallback.only_request().model(), "gpt-4o-mini");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_deployment_over_its_rpm_the_client_waits() {
    let upstream = MockUpstream::start("only", Reply::Chat).await;
    let yaml = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: os.environ/API_BASE\n      api_key: sk-literal\n      rpm: 1\n";
    let imported = import(yaml, Path::new("config.yaml")).unwrap();
    let config = imported
        .config(
            Path::new("config.yaml"),
            &env_of(&[("API_BASE", upstream.base_url())]),
        )
        .unwrap();
    let proxy = Proxy::start_config(config).await;
    let (status, _, _) = chat(&proxy, None, "gpt-4o").await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer, headers) = chat(&proxy, None, "gpt-4o").await;
    // Every target skipped for a rate limit: 429, as LiteLLM answers.
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_groups_route_by_prefix() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let rest = MockUpstream::start("catch-all", Reply::Chat).await;
    let proxy = serve_fixture(
        "wildcards.yaml",
        &[
            ("OPENAI_API_BASE", openai.base_url()),
            ("CATCH_ALL_API_BASE", rest.base_url()),
            ("OPENAI_API_KEY", "sk-o".into()),
            ("ANTHROPIC_API_KEY", "sk-a".into()),
            ("GROQ_API_KEY", "gsk".into()),
        ],
    )
    .await;
    for (asked, upstream, sent) in [
        ("openai/gpt-4o-mini", &openai, "gpt-4o-mini"),
        ("gpt-4.1", &openai, "gpt-4.1"),
        ("llama-3.1-8b", &rest, "llama-3.1-8b"),
    ] {
        let before = upstream.requests().len();
        let (status, answer, _) = chat(&proxy, None, asked).await;
        assert_eq!(status, StatusCode::OK, "{asked}: {answer}");
        let requests = upstream.requests();
        assert_eq!(requests.len(), before + 1, "{asked}");
        assert_eq!(requests[before].model(), sent, "{asked}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simple_form_serves_its_groups_in_priority_order() {
    let primary = MockUpstream::start("primary", Reply::Chat).await;
    let backup = MockUpstream::start("backup", Reply::Chat).await;
    let proxy = serve_fixture(
        "simple_form.yaml",
        &[
            ("PRIMARY_API_BASE", primary.base_url()),
            ("BACKUP_API_BASE", backup.base_url()),
            ("OPENAI_API_KEY", "sk-o".into()),
            ("CEREBRAS_API_KEY", "csk".into()),
        ],
    )
    .await;
    let (status, answer, _) = chat(&proxy, None, "smart").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from primary");
    assert_eq!(primary.only_request().model(), "gpt-4o");
    assert!(backup.requests().is_empty());
}

// ---------------------------------------------------------------------------
// No config file: the environment

async fn serve_environment(vars: &[(&str, String)]) -> Proxy {
    let zero = llm_router::config::zero::from_environment(&env_of(vars)).unwrap();
    Proxy::start_config(zero.config).await
}

/// Ask the environment's proxy for `model`; returns the one upstream request.
async fn via_environment(
    vars: &[(&str, String)],
    upstream: &MockUpstream,
    model: &str,
) -> support::Recorded {
    let proxy = serve_environment(vars).await;
    let (status, answer, _) = chat(&proxy, None, model).await;
    assert_eq!(status, StatusCode::OK, "{model}: {answer}");
    upstream.only_request()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_api_key_serves_gpt_models_and_the_openai_prefix() {
    let upstream = MockUpstream::start("openai", Reply::Chat).await;
    let vars = [
        ("OPENAI_API_KEY", "sk-env".to_string()),
        ("OPENAI_BASE_URL", upstream.base_url()),
    ];
    let proxy = serve_environment(&vars).await;
    for (asked, sent) in [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("o3-mini", "o3-mini"),
        ("openai/gpt-4.1", "gpt-4.1"),
    ] {
        let (status, answer, _) = chat(&proxy, None, asked).await;
        assert_eq!(status, StatusCode::OK, "{asked}: {answer}");
        let last = upstream.requests().pop().unwrap();
        assert_eq!(last.model(), sent);
        assert_eq!(last.header("authorization"), Some("Bearer sk-env"));
    }
    // Another provider's model is not OpenAI's to answer.
    let (status, _, _) = chat(&proxy, None, "claude-sonnet-4-0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_api_key_serves_claude_models() {
    let upstream = MockUpstream::start(
        "anthropic",
        Reply::Json(
            StatusCode::OK,
            json!({
                "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-0",
                "content": [{"type": "text", "text": "from anthropic"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 3, "output_tokens": 2}
            }),
        ),
    )
    .await;
    let vars = [
        ("ANTHROPIC_API_KEY", "sk-ant-env".to_string()),
        ("ANTHROPIC_BASE_URL", format!("http://{}", upstream.addr())),
    ];
    let request = via_environment(&vars, &upstream, "claude-sonnet-4-0").await;
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.model(), "claude-sonnet-4-0");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_api_key_serves_gemini_models() {
    let upstream = MockUpstream::start(
        "gemini",
        Reply::Json(
            StatusCode::OK,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": "from gemini"}]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
            }),
        ),
    )
    .await;
    let vars = [
        ("GEMINI_API_KEY", "gem-env".to_string()),
        ("GEMINI_BASE_URL", format!("http://{}", upstream.addr())),
    ];
    let request = via_environment(&vars, &upstream, "gemini-2.0-flash").await;
    assert!(
        request
            .path
            .contains("/models/gemini-2.0-flash:generateContent"),
        "{}",
        request.path
    );
    let keyed =
        request.header("x-goog-api-key") == Some("gem-env") || request.path.contains("key=gem-env");
    assert!(keyed, "the Gemini key was not sent: {request:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cerebras_api_key_serves_the_cerebras_prefix() {
    let upstream = MockUpstream::start("cerebras", Reply::Chat).await;
    let vars = [
        ("CEREBRAS_API_KEY", "csk-env".to_string()),
        ("CEREBRAS_BASE_URL", upstream.base_url()),
    ];
    let request = via_environment(&vars, &upstream, "cerebras/llama-3.3-70b").await;
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.model(), "llama-3.3-70b");
    assert_eq!(request.header("authorization"), Some("Bearer csk-env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepinfra_token_serves_the_deepinfra_prefix() {
    let upstream = MockUpstream::start("deepinfra", Reply::Chat).await;
    let vars = [
        ("DEEPINFRA_TOKEN", "di-env".to_string()),
        ("DEEPINFRA_BASE_URL", upstream.base_url()),
    ];
    let request = via_environment(
        &vars,
        &upstream,
        "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct",
    )
    .await;
    assert_eq!(request.model(), "meta-llama/Meta-Llama-3.1-8B-Instruct");
    assert_eq!(request.header("authorization"), Some("Bearer di-env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_base_url_serves_the_ollama_prefix() {
    let upstream = MockUpstream::start(
        "ollama",
        Reply::Json(
            StatusCode::OK,
            json!({
                "model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
                "message": {"role": "assistant", "content": "from ollama"},
                "done_reason": "stop", "done": true, "prompt_eval_count": 3, "eval_count": 2
            }),
        ),
    )
    .await;
    let vars = [("OLLAMA_BASE_URL", format!("http://{}", upstream.addr()))];
    let request = via_environment(&vars, &upstream, "ollama/llama3.2").await;
    assert_eq!(request.path, "/api/chat");
    assert_eq!(request.model(), "llama3.2");
}

// ---------------------------------------------------------------------------
// The binary

#[test]
fn import_litellm_prints_the_config_and_warns_on_stderr() {
    let path = fixture("multi_provider.yaml");
    let out = llm_router()
        .arg("import-litellm")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let imported = import_fixture("multi_provider.yaml");
    assert_eq!(stdout(&out), imported.toml);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), imported.warnings.len(), "{err}");
    for (line, warning) in lines.iter().zip(&imported.warnings) {
        assert_eq!(*line, format!("warning: {warning}"));
    }
    assert!(err.contains(&format!(
        "warning: {}:9: model_list[0].litellm_params.tpm: ",
        path.display()
    )));
}

#[test]
fn import_litellm_on_a_bad_file_exits_1_naming_the_line() {
    let dir = TempDir::new("import-bad");
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: vertex_ai/claude-3-sonnet\n",
    )
    .unwrap();
    let out = llm_router()
        .arg("import-litellm")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: {}:4: model_list[0].litellm_params.model: unknown provider prefix `vertex_ai/`",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn check_reads_a_litellm_config_directly() {
    let path = fixture("load_balancing.yaml");
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .envs([
            (
                "AZURE_API_BASE",
                "https://example-resource.openai.azure.com",
            ),
            ("AZURE_API_KEY", "az-key-0123456789"),
            ("OPENAI_API_KEY", "sk-0123456789abcdef"),
            ("OPENAI_API_KEY_2", "sk-abcdef0123456789"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "backend azure: provider openai at https://example-resource.openai.azure.com/openai/v1"
        ),
        "{text}"
    );
    assert!(text.contains("model gpt-3.5-turbo -> azure/chatgpt-v-2 (priority 1, weight 1), openai-main/gpt-3.5-turbo (priority 2, weight 9)"), "{text}");
    assert!(
        text.contains("warning: ") && text.contains("usage-based-routing-v2"),
        "{text}"
    );
    // Without its variables, the error names the YAML's line and key.
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: {}:8: model_list[0].litellm_params.api_base: environment variable AZURE_API_BASE is not set",
            path.display()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_a_litellm_config_directly() {
    let primary = MockUpstream::start("primary", Reply::Chat).await;
    let mut cmd = llm_router();
    cmd.arg("serve")
        .arg("--config")
        .arg(fixture("fallbacks.yaml"))
        .env("LLM_ROUTER_SERVER_PORT", "0")
        .env("PRIMARY_API_BASE", primary.base_url())
        .env("FALLBACK_API_BASE", "http://127.0.0.1:9/v1")
        .env("LIMITED_API_BASE", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "sk-upstream")
        .env("ANTHROPIC_API_KEY", "sk-ant");
    let served = Running::spawn(cmd).await;
    let response = client()
        .post(served.at("/v1/chat/completions"))
        .bearer_auth("sk-1234")
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", served.log());
    assert_eq!(primary.only_request().model(), "gpt-4o");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_config_or_variables_serves_the_mock() {
    let dir = TempDir::new("zero-mock");
    let mut cmd = llm_router();
    // Port 0: tests run in parallel, the default 8080 may be taken.
    cmd.current_dir(dir.path())
        .arg("serve")
        .env("LLM_ROUTER_SERVER_PORT", "0");
    let served = Running::spawn(cmd).await;
    let log = served.log();
    assert!(log.contains("built from the environment"), "{log}");
    assert!(
        log.contains("mock backend answers the models `echo` and `*`"),
        "{log}"
    );
    for model in ["echo", "whatever-model"] {
        let response = client()
            .post(served.at("/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "Hello, proxy!"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(content(&answer), "Hello, proxy!", "{answer}");
    }
    let health: Value = client()
        .get(served.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["models"], json!(["echo"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_config_uses_the_openai_key() {
    let upstream = MockUpstream::start("openai", Reply::Chat).await;
    let dir = TempDir::new("zero-openai");
    let mut cmd = llm_router();
    cmd.current_dir(dir.path())
        .arg("serve")
        .env("LLM_ROUTER_SERVER_PORT", "0")
        .env("OPENAI_API_KEY", "sk-from-env")
        .env("OPENAI_BASE_URL", upstream.base_url());
    let served = Running::spawn(cmd).await;
    assert!(
        served.log().contains("OPENAI_API_KEY -> backend openai"),
        "{}",
        served.log()
    );
    let response = client()
        .post(served.at("/v1/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request = upstream.only_request();
    assert_eq!(request.model(), "gpt-4o-mini");
    assert_eq!(request.header("authorization"), Some("Bearer sk-from-env"));
}

#[test]
fn check_without_a_config_prints_what_the_environment_builds() {
    let dir = TempDir::new("zero-check");
    let out = llm_router()
        .current_dir(dir.path())
        .arg("check")
        .env("CEREBRAS_API_KEY", "csk-0123456789abcdef")
        .env("DEEPINFRA_TOKEN", "di-0123456789abcdef")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "no config.toml: the config is built from the environment",
        "environment: CEREBRAS_API_KEY -> backend cerebras (openai): cerebras/*",
        "environment: DEEPINFRA_TOKEN -> backend deepinfra (openai): deepinfra/*",
        "backend cerebras: provider openai at https://api.cerebras.ai/v1 (key csk...def)",
        "backend deepinfra: provider openai at https://api.deepinfra.com/v1/openai",
        "model cerebras/* (prefix removed upstream) -> cerebras/* (priority 1, weight 1)",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    // With nothing set: the mock.
    let out = llm_router()
        .current_dir(dir.path())
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("backend mock: provider mock (local)"),
        "{text}"
    );
    assert!(text.contains("model echo -> mock/*"), "{text}");
    // A bad variable is named.
    let out = llm_router()
        .current_dir(dir.path())
        .arg("check")
        .env("OLLAMA_BASE_URL", "ftp://nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: environment: OLLAMA_BASE_URL: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn api_key_setting_of_an_imported_literal_key() {
    // A key written into the YAML stays the backend's key.
    let yaml = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n      api_key: sk-literal-key\n";
    let imported = import(yaml, Path::new("config.yaml")).unwrap();
    let config = imported
        .config(Path::new("config.yaml"), &|_| None)
        .unwrap();
    assert_eq!(
        config.backends[0].api_key,
        Some(ApiKeySetting::Key("sk-literal-key".into()))
    );
}

#[test]
fn the_readme_before_and_after_is_what_the_import_prints() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Coming from LiteLLM")
        .nth(1)
        .expect("README has a Coming from LiteLLM section");
    let block = |lang: &str| -> String {
        let start = section
            .find(&format!("```{lang}\n"))
            .unwrap_or_else(|| panic!("no {lang} block"))
            + lang.len()
            + 4;
        let end = section[start..].find("```").unwrap() + start;
        section[start..end].to_string()
    };
    let imported = import(&block("yaml"), Path::new("config.yaml")).unwrap();
    assert_eq!(block("toml"), imported.toml);
    validated(&imported);
}
