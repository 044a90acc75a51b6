//! Virtual keys (`[[keys]]` and JSON lines of `keys_file`) end to end: the
//! real server in front of a mock upstream, both on 127.0.0.1:0. A key's
//! `models` (403 `model_not_allowed` in the client's format, nothing sent
//! upstream), its `expires` (401), its own `rate_limit` in place of
//! `[rate_limit]`, a keys file reloaded with a new virtual key, and what
//! `/v1/key/info`, `/admin/keys` and `/v1/models` show (keys masked).

mod support;

use std::path::{Path, PathBuf};

use http::StatusCode;
use serde_json::{json, Value};

use support::config::{BackendToml, ModelToml, TestConfig};
use support::{
    assert_openai_error, bounded, chat_body, client, json_of, MockUpstream, Proxy, Reply,
};

const ADMIN: &str = "sk-admin-key-0123456789";
const PLAIN: &str = "sk-plain-key-0123456789";
const TEAM: &str = "sk-team-key-0123456789";
const TIGHT: &str = "sk-tight-key-0123456789";
const WIDE: &str = "sk-wide-key-0123456789";
const OLD: &str = "sk-old-key-0123456789";

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    bounded("the proxy's answer", request.send())
        .await
        .expect("request failed")
}

async fn chat(proxy: &Proxy, key: &str, model: &str) -> reqwest::Response {
    send(
        client()
            .post(proxy.at("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model)),
    )
    .await
}

async fn messages(proxy: &Proxy, key: &str, model: &str) -> reqwest::Response {
    send(
        client()
            .post(proxy.at("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({
                "model": model,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hello"}],
            })),
    )
    .await
}

async fn get(proxy: &Proxy, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = client().get(proxy.at(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    send(req).await
}

/// `{"type":"error","error":{"type","message"}}`: the error's type and message.
fn anthropic_error(v: &Value) -> (String, String) {
    assert_eq!(v["type"], "error", "{v}");
    (
        v["error"]["type"].as_str().expect("error.type").to_string(),
        v["error"]["message"]
            .as_str()
            .expect("error.message")
            .to_string(),
    )
}

/// The config of most tests: models `allowed`, `other` and the pattern
/// `claude-*`, all to `up`; the keys of this file's constants.
fn config(up: &MockUpstream, extra: &str) -> String {
    TestConfig::new()
        .stack(&["auth", "rate_limit", "failover"])
        .section("rate_limit", &[("requests", "3"), ("window", "\"60s\"")])
        .section(
            "auth",
            &[
                ("keys", &format!("[\"{PLAIN}\"]")),
                ("admin_keys", &format!("[\"{ADMIN}\"]")),
            ],
        )
        .backend(BackendToml::openai("up", &up.base_url()))
        .model(ModelToml::new("allowed").passthrough_target("up"))
        .model(ModelToml::new("other").passthrough_target("up"))
        .model(ModelToml::new("claude-*").passthrough_target("up"))
        .raw(&format!(
            r#"[[keys]]
name = "team-a"
key = "${{TEAM_KEY}}"
models = ["allowed", "claude-*"]
expires = "2099-01-31T00:00:00Z"
budget = {{ usd = 100.0, period = "month" }}
metadata = {{ team = "platform" }}
budget_group = "team"

[[keys]]
name = "old"
key = "{OLD}"
expires = "2020-01-01T00:00:00Z"

[[keys]]
name = "tight"
key = "{TIGHT}"
rate_limit = {{ requests = 2, window = "60s" }}

[[keys]]
name = "wide"
key = "{WIDE}"
rate_limit = {{ requests = 5, window = "60s", concurrency = 4 }}
{extra}"#
        ))
        .toml()
}

async fn start(up: &MockUpstream, extra: &str) -> Proxy {
    Proxy::start_with(&config(up, extra), Path::new("config.toml"), |name| {
        (name == "TEAM_KEY").then(|| TEAM.to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_outside_the_allow_list_are_403_in_the_clients_format() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = start(&up, "").await;

    // Allowed: an exact name, and a name the pattern matches (Anthropic client).
    assert_eq!(chat(&proxy, TEAM, "allowed").await.status(), StatusCode::OK);
    assert_eq!(
        messages(&proxy, TEAM, "claude-test").await.status(),
        StatusCode::OK
    );
    assert_eq!(up.requests().len(), 2);

    // Not allowed: 403 model_not_allowed, OpenAI's shape...
    let answer = chat(&proxy, TEAM, "other").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let body = json_of(answer).await;
    assert_eq!(assert_openai_error(&body), "model_not_allowed");
    assert_eq!(body["error"]["type"], "permission_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`other`") && message.contains("`team-a`"),
        "{message}"
    );
    assert!(!body.to_string().contains(TEAM), "the key leaked: {body}");
    // ... and Anthropic's.
    let answer = messages(&proxy, TEAM, "other").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let (kind, message) = anthropic_error(&json_of(answer).await);
    assert_eq!(kind, "permission_error");
    assert!(message.contains("`other`"), "{message}");
    // Nothing went upstream for them.
    assert_eq!(up.requests().len(), 2);

    // A plain key and an admin key may use any model.
    assert_eq!(chat(&proxy, PLAIN, "other").await.status(), StatusCode::OK);
    assert_eq!(chat(&proxy, ADMIN, "other").await.status(), StatusCode::OK);

    // The model list shows a virtual key only what it may use.
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ids(json_of(get(&proxy, "/v1/models", Some(PLAIN)).await).await);
    assert!(all.contains(&"other".to_string()), "{all:?}");
    let team = ids(json_of(get(&proxy, "/v1/models", Some(TEAM)).await).await);
    assert_eq!(team, ["allowed"]);
    assert_eq!(
        get(&proxy, "/v1/models/allowed", Some(TEAM)).await.status(),
        StatusCode::OK
    );
    let answer = get(&proxy, "/v1/models/other", Some(TEAM)).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        assert_openai_error(&json_of(answer).await),
        "model_not_allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_401_before_its_body_is_read() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = start(&up, "").await;
    let answer = chat(&proxy, OLD, "allowed").await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(answer.headers().contains_key("www-authenticate"));
    let body = json_of(answer).await;
    assert_eq!(assert_openai_error(&body), "key_expired");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`old` expired at 2020-01-01T00:00:00Z"),
        "{message}"
    );
    let answer = messages(&proxy, OLD, "claude-test").await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let (kind, message) = anthropic_error(&json_of(answer).await);
    assert_eq!(kind, "authentication_error");
    assert!(message.contains("expired"), "{message}");
    // Its own info and the model list too.
    assert_eq!(
        get(&proxy, "/v1/key/info", Some(OLD)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&proxy, "/v1/models", Some(OLD)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(up.requests().is_empty());
    // Counted apart in /auth/metrics.
    let metrics = json_of(get(&proxy, "/auth/metrics", Some(ADMIN)).await).await;
    assert_eq!(metrics["rejected"]["expired_key"], 4, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_own_rate_limit_replaces_the_global_one() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = start(&up, "").await;

    // `tight`: 2 a minute, under the global 3.
    for _ in 0..2 {
        let answer = chat(&proxy, TIGHT, "allowed").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["x-ratelimit-limit"], "2");
    }
    let refused = chat(&proxy, TIGHT, "allowed").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        assert_openai_error(&json_of(refused).await),
        "rate_limit_exceeded"
    );

    // Another key still passes: `wide` gets its own 5, over the global 3.
    for i in 0..5 {
        let answer = chat(&proxy, WIDE, "allowed").await;
        assert_eq!(answer.status(), StatusCode::OK, "request {i}");
        assert_eq!(answer.headers()["x-ratelimit-limit"], "5");
    }
    assert_eq!(
        chat(&proxy, WIDE, "allowed").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A key without limits of its own: the global 3, untouched by the others.
    for _ in 0..3 {
        let answer = chat(&proxy, TEAM, "allowed").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["x-ratelimit-limit"], "3");
    }
    assert_eq!(
        chat(&proxy, TEAM, "allowed").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The admin view names the keys' own tables, never a raw key.
    let limits = json_of(get(&proxy, "/router/rate-limits", Some(ADMIN)).await).await;
    assert!(limits["clients"]["keys"]["tight"].is_object(), "{limits}");
    assert!(limits["clients"]["keys"]["wide"].is_object(), "{limits}");
    for raw in [TIGHT, WIDE, TEAM] {
        assert!(!limits.to_string().contains(raw), "{limits}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_info_and_admin_keys_show_masked_keys() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = start(&up, "").await;
    assert_eq!(chat(&proxy, TEAM, "allowed").await.status(), StatusCode::OK);

    let info = json_of(get(&proxy, "/v1/key/info", Some(TEAM)).await).await;
    assert_eq!(info["name"], "team-a");
    assert_eq!(info["virtual"], true);
    assert_eq!(info["source"], "config");
    assert_eq!(info["key"], "sk-t...789");
    assert_eq!(info["models"], json!(["allowed", "claude-*"]));
    assert_eq!(info["expires"], "2099-01-31T00:00:00Z");
    assert_eq!(info["expired"], false);
    assert_eq!(info["budget"], json!({"usd": 100.0, "period": "month"}));
    assert_eq!(info["metadata"], json!({"team": "platform"}));
    assert_eq!(
        info["budget_group"],
        json!({"key": "team", "value": "platform"})
    );
    assert_eq!(info["rate_limit"], Value::Null);
    assert_eq!(info["stats"]["requests"], 2, "the chat and this: {info}");
    assert!(
        info.get("spend").is_none(),
        "`budget` is not in the order: {info}"
    );
    assert!(!info.to_string().contains(TEAM), "{info}");

    let info = json_of(get(&proxy, "/v1/key/info", Some(WIDE)).await).await;
    assert_eq!(
        info["rate_limit"],
        json!({"requests": 5, "tokens": null, "concurrency": 4, "window": "1m"})
    );
    // A plain key: what is known of it.
    let info = json_of(get(&proxy, "/v1/key/info", Some(PLAIN)).await).await;
    assert_eq!(
        (&info["name"], &info["virtual"], &info["role"]),
        (&Value::Null, &json!(false), &json!("client"))
    );
    assert!(!info.to_string().contains(PLAIN), "{info}");
    assert_eq!(
        get(&proxy, "/v1/key/info", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // /admin/keys: admin only, every virtual key, masked.
    assert_eq!(
        get(&proxy, "/admin/keys", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let answer = get(&proxy, "/admin/keys", Some(TEAM)).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        assert_openai_error(&json_of(answer).await),
        "admin_key_required"
    );
    let all = json_of(get(&proxy, "/admin/keys", Some(ADMIN)).await).await;
    assert_eq!(all["count"], 4);
    let names: Vec<&str> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team-a", "old", "tight", "wide"]);
    assert_eq!(all["keys"][1]["expired"], true);
    let text = all.to_string();
    for raw in [TEAM, OLD, TIGHT, WIDE] {
        assert!(!text.contains(raw), "a key leaked: {text}");
    }
    // Listed at `/` with the other endpoints.
    let root = json_of(get(&proxy, "/", None).await).await;
    assert!(root["endpoints"]["client"]
        .as_array()
        .unwrap()
        .contains(&json!("GET /v1/key/info")));
    assert!(root["endpoints"]["admin"]
        .as_array()
        .unwrap()
        .contains(&json!("GET /admin/keys")));
}

/// A fresh directory for a config file and its keys file.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-router-vkeys-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_file_reload_picks_up_a_new_virtual_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let dir = temp_dir("reload");
    let keys = dir.join("keys.txt");
    write_atomically(&keys, &format!("# plain keys and virtual keys\n{PLAIN}\n"));
    let text = TestConfig::new()
        .stack(&["auth", "rate_limit", "failover"])
        .section(
            "auth",
            &[
                ("keys_file", "\"keys.txt\""),
                ("admin_keys", &format!("[\"{ADMIN}\"]")),
            ],
        )
        .backend(BackendToml::openai("up", &up.base_url()))
        .model(ModelToml::new("allowed").passthrough_target("up"))
        .model(ModelToml::new("other").passthrough_target("up"))
        .toml();
    let proxy = Proxy::start_with(&text, &dir.join("config.toml"), |_| None).await;
    let new = "sk-file-key-0123456789";
    assert_eq!(
        chat(&proxy, new, "allowed").await.status(),
        StatusCode::UNAUTHORIZED
    );

    write_atomically(
        &keys,
        &format!(
            "{PLAIN}\n{{\"name\": \"from-file\", \"key\": \"{new}\", \"models\": [\"allowed\"], \"rate_limit\": {{\"requests\": 1}}, \"metadata\": {{\"team\": \"data\"}}}}\n"
        ),
    );
    let reload = send(
        client()
            .post(proxy.at("/auth/reload-keys"))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(reload.status(), StatusCode::OK);
    let report = json_of(reload).await;
    assert_eq!(report["keys"]["from_file"], 2, "{report}");

    // The new key works, within its models and its own limit.
    assert_eq!(chat(&proxy, new, "allowed").await.status(), StatusCode::OK);
    let answer = chat(&proxy, new, "other").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        assert_openai_error(&json_of(answer).await),
        "model_not_allowed"
    );
    assert_eq!(
        chat(&proxy, new, "allowed").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(chat(&proxy, PLAIN, "other").await.status(), StatusCode::OK);
    let all = json_of(get(&proxy, "/admin/keys", Some(ADMIN)).await).await;
    assert_eq!(all["keys"][0]["name"], "from-file");
    assert_eq!(all["keys"][0]["source"], "keys_file");
    assert_eq!(all["keys"][0]["metadata"], json!({"team": "data"}));

    // A bad JSON line: the reload fails naming the line, the keys in force stay.
    write_atomically(
        &keys,
        &format!("{PLAIN}\n{{\"name\": \"x\", \"key\": \"{new}\", \"modles\": []}}\n"),
    );
    let answer = send(
        client()
            .post(proxy.at("/auth/reload-keys"))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = json_of(answer).await;
    assert_eq!(assert_openai_error(&body), "keys_reload_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 2") && message.contains("modles"),
        "{message}"
    );
    assert!(!message.contains(new), "{message}");
    let all = json_of(get(&proxy, "/admin/keys", Some(ADMIN)).await).await;
    assert_eq!(all["count"], 1, "{all}");
    std::fs::remove_dir_all(&dir).unwrap();
}
