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
    let models: Value = bounded("models", client().get(router.at("/v1/models")).send())
        .await
        .expect("models")
        .json()
        .await
        .expect("JSON");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&"creative") && ids.contains(&"analytical"),
        "{models}"
    );
}
