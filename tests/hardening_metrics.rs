//! `/metrics` stays bounded by the config whatever clients send: label
//! values are route, backend and circuit names from the config, never a
//! client's `model` string (issue 15, "Safe to expose").

mod support;

use http::StatusCode;
use serde_json::json;
use support::{client, model, openai_backend, MockUpstream, Proxy, Reply};

const CLIENT: &str = "sk-hm-client-0000000000000";
const ADMIN: &str = "sk-hm-admin-00000000000000";

async fn scrape(proxy: &Proxy) -> String {
    let r = client().get(proxy.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// A model name only this request uses: long, with a line break and quotes.
fn unique(prefix: &str, n: usize) -> String {
    format!("{prefix}uniq-{n}-\n\"{}", "z".repeat(1000))
}

/// One request of each kind: keyless with a name no route serves, keyless
/// with one a pattern serves, and the same two with a key (a 404 and an
/// answer through the pattern's target, which keeps a circuit per name).
async fn round(proxy: &Proxy, n: usize) {
    for (key, prefix, status) in [
        (None, "", StatusCode::UNAUTHORIZED),
        (None, "gpt-", StatusCode::UNAUTHORIZED),
        (Some(CLIENT), "", StatusCode::NOT_FOUND),
        (Some(CLIENT), "gpt-", StatusCode::OK),
    ] {
        let body =
            json!({"model": unique(prefix, n), "messages": [{"role": "user", "content": "hi"}]});
        let mut req = client().post(proxy.at("/v1/chat/completions")).json(&body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{prefix} {key:?}");
        r.bytes().await.unwrap();
    }
}

#[tokio::test]
async fn client_model_names_never_become_label_values() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[stack]\norder = [\"metrics\", \"auth\", \"failover\", \"circuit_breaker\"]\n\n\
         [auth]\nkeys = [\"{CLIENT}\"]\nadmin_keys = [\"{ADMIN}\"]\n\n\
         [circuit_breaker]\nfailure_threshold = 3\nopen_for = \"60s\"\n\n{}{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("chat", "up", Some("m-fixed")),
        model("gpt-*", "up", None),
    );
    let proxy = Proxy::start(&config).await;
    // A request to the exact route, so its fixed target has a circuit.
    let r = client()
        .post(proxy.at("/v1/chat/completions"))
        .bearer_auth(CLIENT)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();

    round(&proxy, 0).await;
    let first = scrape(&proxy).await;
    // 200 requests, each with its own model name.
    for n in 1..50 {
        round(&proxy, n).await;
    }
    let text = scrape(&proxy).await;

    assert!(
        !text.contains("uniq"),
        "a client's model name in /metrics:\n{text}"
    );
    // Bounded: the same series as after the first four requests.
    let series = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(series(&text), series(&first), "{text}");
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    // Counted under the configured names.
    for line in [
        // Keyless requests are refused before their body (and so their
        // model) is read: every one is `(unknown)`.
        "llm_router_requests_total{model=\"(unknown)\",backend=\"none\",status=\"401\"} 100",
        "llm_router_requests_total{model=\"(unknown)\",backend=\"none\",status=\"404\"} 50",
        "llm_router_requests_total{model=\"gpt-*\",backend=\"up\",status=\"200\"} 50",
        "llm_router_requests_total{model=\"chat\",backend=\"up\",status=\"200\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    let circuits = text
        .lines()
        .filter(|l| l.starts_with("llm_router_circuit_state{"))
        .count();
    // Closed circuits without failures are not kept at all; whatever is
    // kept is shown under the configured target (`up/m-fixed`, `up/*`).
    assert!(circuits <= 2, "{text}");
}
