//! The real `llm-router` binary run the way the other routers' users run
//! theirs: from a working directory holding a `.env` or a `config.yaml`, from
//! environment variables alone (`ROUTER_SERVICES`, `HOST`/`PORT`), without a
//! subcommand, and with `--reload`. Each test starts the binary with an
//! empty environment (PATH only) in its own temporary directory, on port 0,
//! and reads the port from its "listening on" log line.

mod support;

use support::binary::WorkDir as TempDir;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};
use support::binary::Running;
use support::{chat_body, client, MockUpstream, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_llm-router");
/// The longest any wait in these tests may take.
const WAIT: Duration = Duration::from_secs(15);

/// The binary with an empty environment (PATH only), run in `dir`.
fn llm_router(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Start `cmd` and wait (bounded) for its "listening on" line.
async fn start(cmd: Command) -> Running {
    Running::spawn(cmd).await
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

async fn health_models(served: &Running) -> Value {
    let health: Value = client()
        .get(served.at("/health"))
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("health JSON");
    health["models"].clone()
}

const MOCK_CONFIG: &str =
    "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"first\"\ntargets = [{ backend = \"local\" }]\n";

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotenv_is_loaded_and_the_process_environment_wins() {
    let upstream = MockUpstream::start("openai", Reply::Chat).await;
    let dir = TempDir::new("dotenv");
    dir.write(
        ".env",
        &format!(
            "# keys\nOPENAI_API_KEY=sk-from-dotenv\nOPENAI_BASE_URL={}\nLLM_ROUTER_SERVER_PORT=1\n",
            upstream.base_url()
        ),
    );
    let mut cmd = llm_router(dir.path());
    cmd.env("OPENAI_API_KEY", "sk-from-process")
        .env("LLM_ROUTER_SERVER_PORT", "0");
    let served = start(cmd).await;
    let log = served.log();
    assert!(log.contains(".env (3 variables"), "{log}");
    assert!(log.contains("OPENAI_API_KEY -> backend openai"), "{log}");
    assert!(!log.contains("mock"), "{log}");
    let response = client()
        .post(served.at("/v1/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{log}");
    assert!(response.headers().get("x-llm-router-mock").is_none());
    let request = upstream.only_request();
    // The base URL came from the file, the key from the process.
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-from-process")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_yaml_in_the_working_directory_is_used_and_named() {
    let upstream = MockUpstream::start("primary", Reply::Chat).await;
    let dir = TempDir::new("yaml");
    dir.write(".env", "PRIMARY_KEY=sk-yaml-key\n");
    dir.write(
        "config.yaml",
        &format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o-2024\n      api_base: {}\n      api_key: os.environ/PRIMARY_KEY\n",
            upstream.base_url()
        ),
    );
    let mut cmd = llm_router(dir.path());
    cmd.args(["--port", "0"]);
    let served = start(cmd).await;
    let log = served.log();
    assert!(
        log.contains("no config.toml: using config.yaml found in the working directory"),
        "{log}"
    );
    assert!(log.contains("(config config.yaml"), "{log}");
    let response = client()
        .post(served.at("/v1/chat/completions"))
        .json(&chat_body("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{log}");
    let request = upstream.only_request();
    assert_eq!(request.model(), "gpt-4o-2024");
    assert_eq!(request.header("authorization"), Some("Bearer sk-yaml-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_only_is_warned_and_every_mock_answer_is_marked() {
    let dir = TempDir::new("mock");
    // No subcommand, no option: serve.
    let mut cmd = llm_router(dir.path());
    cmd.env("LLM_ROUTER_SERVER_PORT", "0");
    let served = start(cmd).await;
    let log = served.log();
    let warning = log
        .lines()
        .find(|l| l.contains("only the mock backend is configured"))
        .unwrap_or_else(|| panic!("no mock warning:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    let hello = json!([{"role": "user", "content": "Hello, proxy!"}]);
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "echo", "messages": hello}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "llama3.1-8b", "stream": true, "messages": hello}),
        ),
        (
            "/v1/messages",
            json!({"model": "echo", "max_tokens": 20, "messages": hello}),
        ),
        (
            "/v1/messages",
            json!({"model": "echo", "max_tokens": 20, "stream": true, "messages": hello}),
        ),
        (
            "/v1/responses",
            json!({"model": "echo", "input": "Hello, proxy!"}),
        ),
        (
            "/v1/responses",
            json!({"model": "echo", "stream": true, "input": "Hello, proxy!"}),
        ),
        (
            "/v1/completions",
            json!({"model": "echo", "prompt": "Hello"}),
        ),
        ("/v1/embeddings", json!({"model": "echo", "input": "Hello"})),
    ] {
        let response = client()
            .post(served.at(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path} {body}");
        assert_eq!(
            response
                .headers()
                .get("x-llm-router-mock")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..]),
            "{path} {body}: {:?}",
            response.headers()
        );
        let text = response.text().await.unwrap();
        if path != "/v1/embeddings" {
            assert!(text.contains("Hello"), "{path}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_option_without_a_subcommand_and_host_port_variables() {
    let dir = TempDir::new("no-subcommand");
    let config = dir.write("custom.toml", MOCK_CONFIG);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = llm_router(dir.path());
    cmd.arg("--config")
        .arg(&config)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string());
    let served = start(cmd).await;
    assert_eq!(served.port, port, "{}", served.log());
    assert_eq!(health_models(&served).await, json!(["first"]));
    // PROXY_API_PORT wins over PORT, LLM_ROUTER_SERVER_PORT over both.
    let mut cmd = llm_router(dir.path());
    cmd.arg("--config")
        .arg(&config)
        .env("PORT", "1")
        .env("PROXY_API_PORT", "2")
        .env("LLM_ROUTER_SERVER_PORT", "0");
    let served = start(cmd).await;
    assert_ne!(served.port, 1);
    assert_ne!(served.port, 2);
    assert_eq!(health_models(&served).await, json!(["first"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_an_edited_file_and_keeps_serving_through_a_bad_one() {
    let dir = TempDir::new("reload");
    let config = dir.write("config.toml", MOCK_CONFIG);
    let mut cmd = llm_router(dir.path());
    cmd.args(["serve", "--reload", "--port", "0"]);
    let served = start(cmd).await;
    let mut served = served;
    served.wait_line("--reload: watching").await;
    assert_eq!(health_models(&served).await, json!(["first"]));

    std::fs::write(
        &config,
        MOCK_CONFIG.replace("\"first\"", "\"second-model\""),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if health_models(&served).await == json!(["second-model"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edit was not picked up within {WAIT:?}:\n{}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken edit is logged; the config in force keeps serving.
    std::fs::write(
        &config,
        "[[backends]]\nname = \"local\"\nprovder = \"mock\"\n",
    )
    .unwrap();
    let line = served.wait_line("config reload failed").await;
    assert!(line.contains("provder"), "{line}");
    assert_eq!(health_models(&served).await, json!(["second-model"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_services_fail_over_by_priority_for_a_bare_model_name() {
    let failing = MockUpstream::start(
        "primary",
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "down", "type": "server_error"}}),
        ),
    )
    .await;
    let healthy = MockUpstream::start("fallback", Reply::Chat).await;
    let dir = TempDir::new("services");
    // Seed 003's .env, with the two services pointing at the mocks (listed
    // fallback first: the order is the priority's).
    let services = format!(
        r#"[
  {{"name": "fallback-openai", "backend_type": "openai", "base_url": "{}",
    "api_key": "sk-fallback", "priority": 1, "rate_limit_requests": 50, "rate_limit_window": 60}},
  {{"name": "primary-cerebras", "backend_type": "cerebras", "base_url": "{}",
    "api_key": "csk-primary", "priority": 0, "rate_limit_requests": 100, "rate_limit_window": 60}}
]"#,
        healthy.base_url(),
        failing.base_url()
    );
    dir.write(
        ".env",
        &format!("ROUTER_SERVICES='{services}'\nAUTH_KEY=sk-your-secret-api-key\nENABLE_AUTH=false\nREQUEST_TIMEOUT=30\n"),
    );
    let mut cmd = llm_router(dir.path());
    cmd.env("PORT", "0");
    let served = start(cmd).await;
    let log = served.log();
    assert!(
        log.contains("ROUTER_SERVICES -> every model (*) by priority: primary-cerebras (cerebras, priority 0), fallback-openai (openai, priority 1)"),
        "{log}"
    );
    let response = client()
        .post(served.at("/v1/chat/completions"))
        .json(&chat_body("llama3.1-8b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{log}");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(content(&answer), "from fallback", "{answer}");
    let first = failing.requests();
    assert!(!first.is_empty());
    assert_eq!(first[0].model(), "llama3.1-8b");
    assert_eq!(first[0].header("authorization"), Some("Bearer csk-primary"));
    let second = healthy.only_request();
    assert_eq!(second.model(), "llama3.1-8b");
    assert_eq!(second.header("authorization"), Some("Bearer sk-fallback"));
}
