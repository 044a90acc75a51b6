//! The other routers' own example configs (`tests/fixtures/seeds/`, copied
//! literally from their READMEs) read as they are:
//!
//! - each is told by its content, loads (`Config::load` / `import::load`),
//!   builds the expected backends and routes, and reports every key without an
//!   equivalent as a warning naming file, line and key;
//! - each is served by the real proxy with its backends' addresses pointed at
//!   mock upstreams: a request reaches the right backend with the file's key
//!   and the model name it asks for;
//! - the binary: `import FILE` prints a config.toml that `check` accepts,
//!   `check --config` / `serve --config` read the files directly, and a bad
//!   file is an error naming its file and line.

mod support;

use support::binary::{llm_router, stderr, stdout, WorkDir as TempDir};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use llm_router::config::import::{self, Format};
use llm_router::config::{ApiKeySetting, Config};
use support::{chat_body, client, MockUpstream, Proxy, Reply};

const WAIT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seeds")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("read fixture")
}

/// An environment of exactly these variables.
fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn load(name: &str, vars: &[(&str, &str)]) -> Config {
    import::load(&text(name), &fixture(name), &env_of(vars))
        .unwrap_or_else(|e| panic!("{name} does not load: {e}"))
}

/// (backend, model, priority) of each target of the route `name` (the
/// first route of that name).
fn targets(config: &Config, name: &str) -> Vec<(String, Option<String>, u32)> {
    config
        .models
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no model {name}"))
        .targets
        .iter()
        .map(|t| (t.backend.clone(), t.model.clone(), t.priority))
        .collect()
}

fn key_of(config: &Config, backend: &str) -> String {
    let b = config
        .backends
        .iter()
        .find(|b| b.name == backend)
        .unwrap_or_else(|| panic!("no backend {backend}"));
    match &b.api_key {
        Some(ApiKeySetting::Key(k)) => k.clone(),
        other => panic!("backend {backend} has key {other:?}"),
    }
}

fn point_at(config: &mut Config, backend: &str, url: String) {
    let b = config
        .backends
        .iter_mut()
        .find(|b| b.name == backend)
        .unwrap_or_else(|| panic!("no backend {backend}"));
    b.base_url = Some(url);
}

/// `file:line: key` of each warning.
fn warned(config: &Config) -> Vec<String> {
    config
        .warnings()
        .iter()
        .filter_map(|w| {
            let mut parts = w.splitn(3, ": ");
            Some(format!("{}: {}", parts.next()?, parts.next()?))
        })
        .collect()
}

/// An Anthropic Messages answer.
fn anthropic_reply(text: &str) -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 1, "output_tokens": 2}}),
    )
}

async fn post(proxy: &Proxy, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client()
        .post(proxy.at(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Each fixture: detection, config, warnings

#[test]
fn each_fixture_is_told_by_its_content() {
    for (name, format) in [
        ("000_config.yaml", Format::LiteLlm),
        ("001_config.yaml", Format::ModelsMap),
        ("001_full.yaml", Format::ModelsMap),
        ("002_llm_router_config.json", Format::KeyLists),
        ("003.env", Format::Dotenv),
        ("004.env", Format::Dotenv),
        ("004_config.yaml", Format::Providers),
    ] {
        assert_eq!(
            import::detect(&fixture(name), &text(name)).unwrap(),
            format,
            "{name}"
        );
        // The name plays no part.
        assert_eq!(
            import::detect(Path::new("renamed"), &text(name)).unwrap(),
            format,
            "{name}"
        );
    }
}

#[test]
fn seed_000_litellm_simple_form() {
    let c = load(
        "000_config.yaml",
        &[("GEMINI_API_KEY", "g-key"), ("OPENROUTER_KEY", "or-key")],
    );
    assert_eq!(
        targets(&c, "creative"),
        [("gemini-1".into(), Some("gemini-2.5-pro".into()), 1)]
    );
    assert_eq!(
        targets(&c, "analytical"),
        [("gpt-4o".into(), Some("openai/gpt-4o".into()), 1)]
    );
    assert_eq!(key_of(&c, "gpt-4o"), "or-key");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn seed_001_quick_start() {
    let c = load("001_config.yaml", &[]);
    assert_eq!(targets(&c, "gpt-4"), [("gpt-4".into(), None, 1)]);
    assert_eq!(
        targets(&c, "claude-3-opus"),
        [("claude-3-opus".into(), None, 1)]
    );
    assert_eq!(c.backends[1].provider, "anthropic");
    assert_eq!(key_of(&c, "gpt-4"), "sk-your-key-here");
    assert_eq!(c.server.listen(), "0.0.0.0:8000");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // The router's per-model key variable still wins.
    let c = load(
        "001_config.yaml",
        &[("LLM_ROUTER_MODEL_CLAUDE_3_OPUS_API_KEY", "sk-ant-env")],
    );
    assert_eq!(key_of(&c, "claude-3-opus"), "sk-ant-env");
    // So do the server variables.
    let c = load("001_config.yaml", &[("LLM_ROUTER_SERVER_PORT", "9000")]);
    assert_eq!(c.server.port, 9000);
}

#[test]
fn seed_001_every_section() {
    let c = load("001_full.yaml", &[]);
    assert_eq!(
        targets(&c, "gpt-4"),
        [("gpt-4".into(), Some("llama3".into()), 1)]
    );
    assert_eq!(
        targets(&c, "gpt-4-cheap"),
        [("gpt-4-cheap".into(), Some("gpt-3.5-turbo".into()), 1)]
    );
    let ollama = &c.backends[0];
    assert_eq!(
        (ollama.provider.as_str(), ollama.tls_verify),
        ("ollama", false)
    );
    assert_eq!(c.transforms.len(), 3);
    assert!(!c.headers.is_empty());
    let log = c.log.as_ref().expect("[log] from server.log_requests");
    assert!(log.requests && log.responses);
    let file = fixture("001_full.yaml").display().to_string();
    assert_eq!(
        warned(&c),
        [format!(
            "{file}:32: header_rules.force_headers.content-type"
        )]
    );
}

#[test]
fn seed_001_reference_block_is_refused_naming_its_placeholder() {
    let e = Config::load(&fixture("001_model_reference.yaml")).unwrap_err();
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("models.model-name.provider"));
    assert!(e.message.contains("openai|anthropic|ollama"), "{e}");
}

#[test]
fn seed_002_two_lists_by_priority() {
    let c = load("002_llm_router_config.json", &[]);
    let routes: Vec<(&str, Vec<String>)> = c
        .models
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.targets.iter().map(|t| t.backend.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("*", vec!["openai-1".to_string(), "openai-2".to_string()]),
            (
                "*",
                vec!["anthropic-1".to_string(), "anthropic-2".to_string()]
            ),
        ]
    );
    assert_eq!(key_of(&c, "openai-2"), "sk-your-backup-openai-api-key-here");
    assert_eq!(c.backends[0].timeout, Duration::from_secs(30));
    assert_eq!(c.retry.max_retries, 3);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn seed_003_env_file() {
    let c = load("003.env", &[]);
    let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["openai", "cerebras", "ollama"]);
    assert_eq!(key_of(&c, "cerebras"), "your_cerebras_api_key_here");
    assert_eq!(c.path, fixture("003.env"));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Variables already set win over the file's.
    let c = load("003.env", &[("OPENAI_API_KEY", "sk-from-process")]);
    assert_eq!(key_of(&c, "openai"), "sk-from-process");
}

#[test]
fn seed_004_env_file_warns_on_what_it_does_not_read() {
    let c = load("004.env", &[]);
    let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["openai", "anthropic"]);
    let file = fixture("004.env").display().to_string();
    assert_eq!(warned(&c), [format!("{file}:8: PROXY_API_DEBUG")]);
}

#[test]
fn seed_004_providers() {
    let c = load("004_config.yaml", &[("OPENAI_API_KEY", "sk-004")]);
    assert_eq!(targets(&c, "gpt-4"), [("openai".into(), None, 1)]);
    assert_eq!(targets(&c, "gpt-3.5-turbo"), [("openai".into(), None, 1)]);
    assert_eq!(key_of(&c, "openai"), "sk-004");
    assert_eq!(c.server.listen(), "0.0.0.0:8000");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Without the key's variable: the error names the YAML line of api_key_env.
    let e = import::load(
        &text("004_config.yaml"),
        &fixture("004_config.yaml"),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.key.as_deref(), Some("providers[0].api_key_env"));
}

#[test]
fn imports_validate_and_name_their_source() {
    for name in [
        "000_config.yaml",
        "001_config.yaml",
        "001_full.yaml",
        "002_llm_router_config.json",
        "003.env",
        "004.env",
        "004_config.yaml",
    ] {
        let imported = import::import(&text(name), &fixture(name)).unwrap();
        imported
            .validate(&fixture("config.toml"))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", imported.toml));
        assert!(imported.toml.contains(name), "{name}:\n{}", imported.toml);
        // The warnings head the file too.
        for w in &imported.warnings {
            assert!(imported.toml.contains(&w.without_file()), "{name}: {w}");
        }
    }
}

// ---------------------------------------------------------------------------
// Served: the real proxy in front of mock upstreams

#[tokio::test]
async fn seed_000_routes_a_group_to_its_deployment() {
    let up = MockUpstream::start("openrouter", Reply::Chat).await;
    let mut c = load(
        "000_config.yaml",
        &[("GEMINI_API_KEY", "g"), ("OPENROUTER_KEY", "or-key")],
    );
    point_at(&mut c, "gpt-4o", up.base_url());
    let proxy = Proxy::start_config(c).await;
    let (status, answer) = post(&proxy, "/v1/chat/completions", chat_body("analytical")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from openrouter");
    let r = up.only_request();
    assert_eq!(r.header("authorization"), Some("Bearer or-key"));
    assert_eq!(
        r.model(),
        "openai/gpt-4o",
        "OpenRouter's id, without LiteLLM's openrouter/ prefix"
    );
}

#[tokio::test]
async fn seed_001_routes_each_model_with_its_key_and_actual_name() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let anthropic = MockUpstream::start("anthropic", anthropic_reply("from anthropic")).await;
    let mut c = load("001_config.yaml", &[]);
    point_at(&mut c, "gpt-4", openai.base_url());
    point_at(
        &mut c,
        "claude-3-opus",
        format!("http://{}", anthropic.addr()),
    );
    let proxy = Proxy::start_config(c).await;
    let (status, answer) = post(&proxy, "/v1/chat/completions", chat_body("gpt-4")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let r = openai.only_request();
    assert_eq!(r.header("authorization"), Some("Bearer sk-your-key-here"));
    assert_eq!(r.model(), "gpt-4");
    // Its Anthropic endpoint, as the router served it.
    let body = json!({"model": "claude-3-opus", "max_tokens": 100,
                      "messages": [{"role": "user", "content": "Hello!"}]});
    let (status, answer) = post(&proxy, "/v1/messages", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["content"][0]["text"], "from anthropic");
    let r = anthropic.only_request();
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("sk-ant-your-key-here"));
    assert_eq!(r.model(), "claude-3-opus");
}

#[tokio::test]
async fn seed_001_full_sends_the_actual_model_and_applies_its_rules() {
    // A copy in a temporary directory: its [log] writes next to the file.
    let dir = std::env::temp_dir().join(format!("llm-router-import-001-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, text("001_full.yaml")).unwrap();
    let up = MockUpstream::start("cheap", Reply::Chat).await;
    let mut c = import::load(&text("001_full.yaml"), &path, &|_| None).unwrap();
    point_at(&mut c, "gpt-4-cheap", up.base_url());
    let proxy = Proxy::start_config(c).await;
    let body = json!({"model": "gpt-4-cheap",
                      "messages": [{"role": "user", "content": "write to JOHN@EXAMPLE.COM"}]});
    let response = client()
        .post(proxy.at("/v1/chat/completions"))
        .header("x-team", "a")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let r = up.only_request();
    assert_eq!(r.model(), "gpt-3.5-turbo");
    assert_eq!(r.header("authorization"), Some("Bearer sk-your-key"));
    assert_eq!(r.json()["messages"][0]["content"], "write to [EMAIL]");
    assert_eq!(r.json()["metadata"]["source"], "llm-router");
    assert_eq!(r.header("x-team"), None, "dropped by ^x-.*");
    assert_eq!(r.header("user-agent"), Some("LLM-Router/1.0"));
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn seed_002_openai_and_anthropic_paths_use_their_lists() {
    let primary = MockUpstream::start("openai-primary", Reply::Chat).await;
    let backup = MockUpstream::start("openai-backup", Reply::Chat).await;
    let claude = MockUpstream::start("anthropic-primary", anthropic_reply("from claude")).await;
    let claude_backup = MockUpstream::start("anthropic-backup", anthropic_reply("no")).await;
    let mut c = load("002_llm_router_config.json", &[]);
    point_at(&mut c, "openai-1", primary.base_url());
    point_at(&mut c, "openai-2", backup.base_url());
    point_at(&mut c, "anthropic-1", format!("http://{}", claude.addr()));
    point_at(
        &mut c,
        "anthropic-2",
        format!("http://{}", claude_backup.addr()),
    );
    let proxy = Proxy::start_config(c).await;
    let (status, answer) = post(&proxy, "/openai/chat/completions", chat_body("gpt-4o-mini")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(content(&answer), "from openai-primary");
    let r = primary.only_request();
    assert_eq!(
        r.header("authorization"),
        Some("Bearer sk-your-primary-openai-api-key-here")
    );
    assert_eq!(r.model(), "gpt-4o-mini");
    let body = json!({"model": "claude-3-5-sonnet-latest", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "Hello!"}]});
    let (status, answer) = post(&proxy, "/anthropic/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["content"][0]["text"], "from claude");
    let r = claude.only_request();
    assert_eq!(
        r.header("x-api-key"),
        Some("sk-ant-your-primary-anthropic-api-key-here")
    );
    assert_eq!(r.model(), "claude-3-5-sonnet-latest");
    assert!(backup.requests().is_empty() && claude_backup.requests().is_empty());
}

#[tokio::test]
async fn seed_003_env_routes_by_model_name() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let cerebras = MockUpstream::start("cerebras", Reply::Chat).await;
    let (o, cb) = (openai.base_url(), cerebras.base_url());
    let c = load(
        "003.env",
        &[("OPENAI_BASE_URL", &o), ("CEREBRAS_BASE_URL", &cb)],
    );
    let proxy = Proxy::start_config(c).await;
    let (status, answer) = post(&proxy, "/v1/chat/completions", chat_body("gpt-4o")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        openai.only_request().header("authorization"),
        Some("Bearer sk-your_openai_api_key_here")
    );
    let (status, answer) = post(
        &proxy,
        "/v1/chat/completions",
        chat_body("cerebras/llama3.1-8b"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let r = cerebras.only_request();
    assert_eq!(r.model(), "llama3.1-8b");
    assert_eq!(
        r.header("authorization"),
        Some("Bearer your_cerebras_api_key_here")
    );
}

#[tokio::test]
async fn seed_004_routes_its_models_with_the_variable_key() {
    let up = MockUpstream::start("openai", Reply::Chat).await;
    let mut c = load("004_config.yaml", &[("OPENAI_API_KEY", "sk-004")]);
    point_at(&mut c, "openai", up.base_url());
    let proxy = Proxy::start_config(c).await;
    let (status, answer) = post(&proxy, "/v1/chat/completions", chat_body("gpt-3.5-turbo")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let r = up.only_request();
    assert_eq!(r.header("authorization"), Some("Bearer sk-004"));
    assert_eq!(r.model(), "gpt-3.5-turbo");
    // A model no provider lists is not routed.
    let (status, _) = post(&proxy, "/v1/chat/completions", chat_body("claude-3")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------
// The binary

#[test]
fn import_prints_a_config_that_check_accepts() {
    let vars = [
        ("OPENAI_API_KEY", "sk-a"),
        ("GEMINI_API_KEY", "g"),
        ("OPENROUTER_KEY", "o"),
        ("CEREBRAS_API_KEY", "c"),
        ("OLLAMA_BASE_URL", "http://localhost:11434"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
    ];
    for name in [
        "000_config.yaml",
        "001_config.yaml",
        "001_full.yaml",
        "002_llm_router_config.json",
        "003.env",
        "004.env",
        "004_config.yaml",
    ] {
        let out = llm_router()
            .arg("import")
            .arg(fixture(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dir = TempDir::new("check");
        let toml = dir.path().join("config.toml");
        std::fs::write(&toml, stdout(&out)).unwrap();
        let check = llm_router()
            .arg("check")
            .arg("--config")
            .arg(&toml)
            .envs(vars)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: {}\n{}",
            stderr(&check),
            stdout(&out)
        );
        assert!(stdout(&check).contains("is valid"), "{name}");
    }
    // Warnings go to stderr, naming file, line and key.
    let out = llm_router()
        .arg("import")
        .arg(fixture("001_full.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        stderr(&out).lines().next().unwrap_or_default(),
        format!(
            "warning: {}:32: header_rules.force_headers.content-type: not carried over: the proxy sets it for each upstream request",
            fixture("001_full.yaml").display()
        )
    );
}

#[test]
fn check_reads_the_models_map_yaml_directly() {
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(fixture("001_config.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("backend claude-3-opus: provider anthropic at https://api.anthropic.com"),
        "{text}"
    );
    assert!(
        text.contains("model gpt-4 -> gpt-4/* (priority 1, weight 1)"),
        "{text}"
    );
}

#[test]
fn a_bad_file_is_an_error_naming_file_and_line() {
    let dir = TempDir::new("bad");
    let cases = [
        (
            "config.yaml",
            "models:\n  gpt-4:\n    provider: openai\n   endpoint: x\n",
            4,
            "invalid YAML",
        ),
        (
            "llm_router_config.json",
            "{\n  \"openai\": [\n    {\"api_key\": \"k\",}\n  ]\n}\n",
            3,
            "invalid JSON",
        ),
        (
            "providers.yaml",
            "providers:\n  - name: a\n    type: bedrock\n    models: [x]\n",
            3,
            "providers[0].type: unknown provider type `bedrock`",
        ),
        (
            ".env",
            "OPENAI_API_KEY=sk\nthis is not a variable\n",
            2,
            "not a NAME=value line",
        ),
    ];
    for (name, body, line, words) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        for cmd in ["check", "import"] {
            let mut c = llm_router();
            if cmd == "check" {
                c.arg("check").arg("--config");
            } else {
                c.arg("import");
            }
            let out = c.arg(&path).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{cmd} {name}");
            let err = stderr(&out);
            assert!(
                err.starts_with(&format!("error: {}:{line}: ", path.display()))
                    && err.contains(words),
                "{cmd} {name}: {err}"
            );
        }
    }
}

#[test]
fn serve_reads_the_json_config_directly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = llm_router()
        .arg("serve")
        .arg("--config")
        .arg(fixture("002_llm_router_config.json"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let started = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line.contains("listening on");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "serve did not start; stderr:\n{}", seen.join("\n"));
    let log = seen.join("\n");
    assert!(log.contains("002_llm_router_config.json"), "{log}");
}
