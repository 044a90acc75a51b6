//! The five small routers llm-router replaces (their READMEs are the project's
//! `seeds`): each one's user starts the real binary with their own files and
//! environment, exactly as their README shows, and runs their README's curl
//! examples against it. Upstreams are mock servers on 127.0.0.1: the only
//! change made to a user's file is pointing its provider addresses at them
//! (the literal file is checked as it is, by `check`).
//!
//! Fixtures: `tests/fixtures/seeds/`, copied literally from each README.

mod support;

use serde_json::{json, Value};

use support::binary::{command, Running, WorkDir};
use support::{bounded, client, MockUpstream, Reply};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seeds")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client().post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = bounded(url, request.send()).await.expect("request");
    let status = response.status().as_u16();
    let body = bounded("the body", response.json())
        .await
        .expect("JSON body");
    (status, body)
}

async fn check(dir: &WorkDir, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = command(dir.path());
    cmd.arg("check").args(args).envs(env.iter().copied());
    let out = bounded("check", cmd.output()).await.expect("run check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

// ---------------------------------------------------------------------------
// 000: a LiteLLM-style `model_list` with group names

#[tokio::test]
async fn seed_000_litellm_style_groups() {
    let literal = fixture("000_config.yaml");
    let dir = WorkDir::new("seed000");
    dir.write("config.yaml", &literal);
    let env = [("GEMINI_API_KEY", "g-key"), ("OPENROUTER_KEY", "or-key")];
    let text = check(&dir, &["--config", "config.yaml"], &env).await;
    assert!(
        text.contains("model creative -> gemini-1/gemini-2.5-pro"),
        "{text}"
    );
    assert!(text.contains("model analytical -> gpt-4o/"), "{text}");

    // Served with the OpenRouter address pointed at a mock.
    let upstream = MockUpstream::start("openrouter", Reply::Chat).await;
    dir.write(
        "config.yaml",
        &literal.replace("https://openrouter.ai/api/v1", &upstream.base_url()),
    );
    let mut cmd = command(dir.path());
    cmd.args([
        "serve",
        "--config",
        "config.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ])
    .envs(env);
    let router = Running::start(cmd).await;

    // The README's request format: the group name as the model.
    let (status, answer) = post(
        &router.at("/v1/chat/completions"),
        None,
        &json!({"model": "analytical", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.only_request();
    assert_eq!(sent.header("authorization"), Some("Bearer or-key"));
    assert_eq!(
        sent.json()["model"],
        "openai/gpt-4o",
        "the provider prefix is LiteLLM's, not OpenRouter's"
    );

    // `GET /v1/models` lists the groups.
    let ids = model_ids(&json_at(&router.at("/v1/models"), None).await);
    assert!(
        ids.contains(&"creative".to_string()) && ids.contains(&"analytical".to_string()),
        "{ids:?}"
    );
}

async fn get(url: &str, key: Option<&str>, accept: Option<&str>) -> reqwest::Response {
    let mut request = client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    bounded(url, request.send()).await.expect("request")
}

async fn json_at(url: &str, key: Option<&str>) -> Value {
    let response = get(url, key, Some("application/json")).await;
    assert_eq!(response.status(), 200, "GET {url}");
    bounded("the body", response.json()).await.expect("JSON")
}

fn model_ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// An Anthropic Messages answer, as its API sends it.
fn anthropic_message(model: &str) -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "from anthropic"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 3, "output_tokens": 2}
    })
}

fn server_error() -> Reply {
    Reply::Json(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    )
}

// ---------------------------------------------------------------------------
// 001: the YAML `models:` map, run as `llm-router --config config.yaml`

#[tokio::test]
async fn seed_001_models_map_with_its_cli_and_environment() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let anthropic = MockUpstream::with_handler("anthropic", |r| {
        Reply::Json(http::StatusCode::OK, anthropic_message(&r.model()))
    })
    .await;
    let dir = WorkDir::new("seed001");
    let anthropic_root = anthropic.base_url().trim_end_matches("/v1").to_string();
    dir.write(
        "config.yaml",
        &fixture("001_config.yaml")
            .replace("https://api.openai.com/v1", &openai.base_url())
            .replace("https://api.anthropic.com", &anthropic_root),
    );
    // Its README: `llm-router --config config.yaml`, the key of a model and
    // the address from the environment.
    let mut cmd = command(dir.path());
    cmd.args(["--config", "config.yaml"]).envs([
        ("LLM_ROUTER_MODEL_GPT_4_API_KEY", "sk-new-key"),
        ("LLM_ROUTER_SERVER_HOST", "127.0.0.1"),
        ("LLM_ROUTER_SERVER_PORT", "0"),
    ]);
    let router = Running::start(cmd).await;

    let (status, answer) = post(
        &router.at("/v1/chat/completions"),
        None,
        &json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let sent = openai.only_request();
    assert_eq!(sent.header("authorization"), Some("Bearer sk-new-key"));
    assert_eq!(sent.json()["model"], "gpt-4");

    let (status, answer) = post(
        &router.at("/v1/messages"),
        None,
        &json!({"model": "claude-3-opus", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 100}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["content"][0]["text"], "from anthropic");
    let sent = anthropic.only_request();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-your-key-here"));

    // Health check, with the model names.
    let health = json_at(&router.at("/health"), None).await;
    assert_eq!(health["status"], "healthy");
    let models = health["models"].to_string();
    assert!(
        models.contains("gpt-4") && models.contains("claude-3-opus"),
        "{health}"
    );
}

// ---------------------------------------------------------------------------
// 002: `llm_router_config.json` found in the working directory

#[tokio::test]
async fn seed_002_priority_lists_per_api_with_fast_fallback() {
    // Both OpenAI entries share an address; the primary key fails.
    let openai = MockUpstream::with_handler("openai", |r| {
        if r.header("authorization") == Some("Bearer sk-your-primary-openai-api-key-here") {
            server_error()
        } else {
            Reply::Chat
        }
    })
    .await;
    let anthropic = MockUpstream::with_handler("anthropic", |r| {
        Reply::Json(http::StatusCode::OK, anthropic_message(&r.model()))
    })
    .await;
    let dir = WorkDir::new("seed002");
    let anthropic_root = anthropic.base_url().trim_end_matches("/v1").to_string();
    let literal = fixture("002_llm_router_config.json");
    dir.write("llm_router_config.json", &literal);
    let text = check(&dir, &[], &[]).await;
    assert!(text.contains("llm_router_config.json is valid"), "{text}");

    dir.write(
        "llm_router_config.json",
        &literal
            .replace("https://api.openai.com/v1", &openai.base_url())
            .replace("https://api.anthropic.com", &anthropic_root),
    );
    // Its README: `serve` in the directory of its config file.
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"]);
    let mut router = Running::start(cmd).await;
    router.wait_line("llm_router_config.json").await;

    let started = std::time::Instant::now();
    let (status, answer) = post(
        &router.at("/openai/chat/completions"),
        None,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    let keys: Vec<Option<String>> = openai
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(
        keys,
        [
            Some("Bearer sk-your-primary-openai-api-key-here".to_string()),
            Some("Bearer sk-your-backup-openai-api-key-here".to_string())
        ],
        "priority 1 once, then priority 2 at once"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    let (status, answer) = post(
        &router.at("/anthropic/chat/completions"),
        None,
        &json!({"model": "claude-3-5-sonnet-latest", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let sent = anthropic.only_request();
    assert_eq!(
        sent.header("x-api-key"),
        Some("sk-ant-your-primary-anthropic-api-key-here")
    );
    assert!(openai.requests().len() == 2, "the Anthropic list only");

    // `GET /` and `GET /health`, as its README lists them.
    assert_eq!(
        json_at(&router.at("/health"), None).await["status"],
        "healthy"
    );
    assert_eq!(json_at(&router.at("/"), None).await["name"], "llm-router");
}

// ---------------------------------------------------------------------------
// 003: a `.env` and nothing else, run as `llm-router`

#[tokio::test]
async fn seed_003_router_services_and_auth_keys_from_a_dotenv() {
    let cerebras = MockUpstream::start("cerebras", Reply::Chat).await;
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let dir = WorkDir::new("seed003");
    dir.write(
        ".env",
        &fixture("003_advanced.env")
            .replace("https://api.cerebras.ai/v1", &cerebras.base_url())
            .replace("https://api.openai.com/v1", &openai.base_url()),
    );
    // `python main.py` becomes `llm-router`; PORT/HOST are its variables.
    let mut cmd = command(dir.path());
    cmd.envs([("HOST", "127.0.0.1"), ("PORT", "0")]);
    let router = Running::start(cmd).await;
    const KEY: &str = "sk-user1-key";

    let body = json!({"model": "llama3.1-8b", "messages": [{"role": "user", "content": "Hello, how are you?"}],
                      "temperature": 0.7, "max_tokens": 150});
    let (status, _) = post(&router.at("/v1/chat/completions"), None, &body).await;
    assert_eq!(status, 401, "AUTH_KEY* make a key necessary");
    let (status, answer) = post(&router.at("/v1/chat/completions"), Some(KEY), &body).await;
    assert_eq!(status, 200, "{answer}");
    let sent = cerebras.only_request();
    assert_eq!(sent.json()["model"], "llama3.1-8b");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer your_cerebras_key")
    );
    assert!(openai.requests().is_empty(), "priority 0 first");

    // Its router and auth endpoints, with a client key (no admin key exists).
    for path in [
        "/router/stats",
        "/router/health",
        "/router/rate-limits",
        "/auth/status",
        "/auth/metrics",
    ] {
        let response = get(&router.at(path), Some(KEY), None).await;
        assert_eq!(response.status(), 200, "GET {path}");
    }
    let rates = json_at(&router.at("/router/rate-limits"), Some(KEY))
        .await
        .to_string();
    assert!(rates.contains("primary-cerebras"), "{rates}");
    let models = json_at(&router.at("/v1/models"), Some(KEY)).await;
    assert!(models["data"].is_array(), "{models}");
    // The API docs, without a key.
    let docs = get(&router.at("/docs"), None, None).await;
    assert_eq!(docs.status(), 200);
    let redoc = get(&router.at("/redoc"), None, None).await;
    assert_eq!(redoc.status(), 200);
}

#[tokio::test]
async fn seed_003_simple_dotenv_routes_its_example_model() {
    let cerebras = MockUpstream::start("cerebras", Reply::Chat).await;
    let dir = WorkDir::new("seed003-simple");
    dir.write(".env", &fixture("003.env"));
    // The hosted address moved to a mock (llm-router's CEREBRAS_BASE_URL).
    let mut cmd = command(dir.path());
    cmd.envs([
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("CEREBRAS_BASE_URL", cerebras.base_url().as_str()),
    ]);
    let router = Running::start(cmd).await;
    let (status, answer) = post(
        &router.at("/v1/chat/completions"),
        None,
        &json!({"model": "llama3.1-8b", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(cerebras.only_request().json()["model"], "llama3.1-8b");
}

// ---------------------------------------------------------------------------
// 004: a `providers:` config.yaml with its `.env`

#[tokio::test]
async fn seed_004_providers_yaml_with_its_dotenv_and_metrics() {
    let openai = MockUpstream::start("openai", Reply::Chat).await;
    let dir = WorkDir::new("seed004");
    dir.write(
        "config.yaml",
        &fixture("004_config.yaml").replace("https://api.openai.com/v1", &openai.base_url()),
    );
    dir.write(".env", &fixture("004.env"));
    // `python main.py` becomes `llm-router serve`; the port from its own
    // variable (the process environment wins over the .env).
    let mut cmd = command(dir.path());
    cmd.arg("serve")
        .envs([("PROXY_API_HOST", "127.0.0.1"), ("PROXY_API_PORT", "0")]);
    let mut router = Running::start(cmd).await;
    router.wait_line("config.yaml").await;

    let response = bounded(
        "chat",
        client()
            .post(router.at("/v1/chat/completions"))
            .header("x-api-key", "YOUR_API_KEY")
            .json(&json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hello!"}]}))
            .send(),
    )
    .await
    .expect("chat");
    assert_eq!(response.status(), 200);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(response.headers()[name], value, "security header {name}");
    }
    let sent = openai.only_request();
    assert_eq!(sent.header("authorization"), Some("Bearer your_openai_key"));
    assert_eq!(sent.json()["model"], "gpt-3.5-turbo");

    // Its monitoring shape: per backend at the top level.
    let metrics = json_at(&router.at("/metrics"), None).await;
    assert_eq!(metrics["openai"]["total_requests"], 1, "{metrics}");
    assert_eq!(metrics["openai"]["success_rate"], 1.0, "{metrics}");
    assert!(metrics["openai"]["error_counts"].is_object(), "{metrics}");
    let ids = model_ids(&json_at(&router.at("/v1/models"), None).await);
    assert!(
        ids.contains(&"gpt-4".to_string()) && ids.contains(&"gpt-3.5-turbo".to_string()),
        "{ids:?}"
    );
    let providers = json_at(&router.at("/providers"), None).await.to_string();
    assert!(providers.contains("openai"), "{providers}");
    // PROXY_API_RATE_LIMIT_REQUESTS/_WINDOW from the .env.
    let limits = json_at(&router.at("/router/rate-limits"), None)
        .await
        .to_string();
    assert!(limits.contains("100"), "{limits}");
}
