//! SIGHUP reloads the config file. Alone in its own test binary: the signal
//! goes to the whole test process, and every proxy in it would reload.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use support::{bounded, chat_body, client, model, openai_backend, MockUpstream, Proxy, Reply};

fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

async fn stats(proxy: &Proxy) -> Value {
    client()
        .get(proxy.at("/router/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Poll `/router/stats` until `pred` holds: the server gives no other sign
/// of a SIGHUP reload.
async fn wait_for_stats(proxy: &Proxy, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    bounded(what, async {
        loop {
            let s = stats(proxy).await;
            if pred(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn status_of(proxy: &Proxy, model: &str) -> StatusCode {
    client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body(model))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_keeps_it_when_invalid() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let dir = std::env::temp_dir().join(format!("llm-router-sighup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    let config = |name: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n{}{}",
            openai_backend("up", &up.base_url(), ""),
            model(name, "up", None)
        )
    };
    write_atomically(&path, &config("before"));
    let proxy = Proxy::start_with(&config("before"), &path, |_| None).await;
    assert_eq!(status_of(&proxy, "before").await, StatusCode::OK);

    write_atomically(&path, &config("after"));
    hangup();
    wait_for_stats(&proxy, "the SIGHUP reload", |s| s["config"]["reloads"] == 1).await;
    assert_eq!(status_of(&proxy, "after").await, StatusCode::OK);
    assert_eq!(status_of(&proxy, "before").await, StatusCode::NOT_FOUND);

    // An invalid file: logged, and the config in force keeps serving.
    write_atomically(&path, "[[models]\nname = \"broken\"\n");
    let expected = llm_router::config::Config::load(&path)
        .unwrap_err()
        .to_string();
    hangup();
    let s = wait_for_stats(&proxy, "the failed SIGHUP reload", |s| {
        s["config"]["failed_reloads"] == 1
    })
    .await;
    assert_eq!(s["config"]["last_reload_error"], expected.as_str());
    assert_eq!(s["config"]["reloads"], 1);
    assert_eq!(status_of(&proxy, "after").await, StatusCode::OK);

    std::fs::remove_dir_all(&dir).unwrap();
}
