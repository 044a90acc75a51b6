//! `GET /openapi.json` from a running proxy: served without a key (auth on or
//! off), the crate version, and every endpoint the proxy lists at `/` and
//! every admin path described. (tests/python/test_openapi.py validates the
//! document as OpenAPI 3.1 and real answers against its schemas.)

mod support;

use std::path::Path;

use serde_json::Value;

use support::{bounded, client, Proxy};

const MOCK: &str = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";

async fn get_json(proxy: &Proxy, path: &str) -> (u16, Option<String>, Value) {
    let r = bounded("the proxy's answer", client().get(proxy.at(path)).send())
        .await
        .expect("request failed");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = bounded("the body", r.bytes()).await.expect("body");
    (status, ct, serde_json::from_slice(&bytes).expect("JSON"))
}

#[tokio::test]
async fn served_without_a_key_and_complete() {
    let text = format!(
        "[stack]\norder = [\"auth\", \"failover\"]\n\n[auth]\nkeys = [\"sk-client-0123456789abcdef\"]\nadmin_keys = [\"sk-admin-0123456789abcdef\"]\n\n{MOCK}"
    );
    let proxy = Proxy::start_with(&text, Path::new("config.toml"), |_| None).await;
    let (status, ct, doc) = get_json(&proxy, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    // A wrong method.
    let r = client()
        .post(proxy.at("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let paths = doc["paths"].as_object().expect("paths");
    let has = |method: &str, path: &str| {
        paths
            .get(path)
            .and_then(|p| p.get(method.to_ascii_lowercase()))
            .is_some()
    };
    // Every endpoint `/` lists.
    let (_, _, root) = get_json(&proxy, "/").await;
    let mut listed = 0;
    for group in root["endpoints"].as_object().expect("endpoints").values() {
        for entry in group.as_array().expect("a list") {
            let (method, path) = entry.as_str().unwrap().split_once(' ').unwrap();
            assert!(
                has(method, path),
                "`{method} {path}` is not in /openapi.json"
            );
            listed += 1;
        }
    }
    assert!(listed >= 15, "{root}");
    // Every admin path.
    for path in llm_router::layers::auth::ADMIN_PATHS {
        assert!(
            paths.contains_key(*path),
            "admin endpoint {path} is not in /openapi.json"
        );
    }
    // The security schemes and both error formats.
    let components = &doc["components"];
    assert_eq!(
        components["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(
        components["securitySchemes"]["apiKeyHeader"]["name"],
        "x-api-key"
    );
    for schema in [
        "OpenAIError",
        "AnthropicError",
        "ChatCompletion",
        "ChatCompletionChunk",
    ] {
        assert!(components["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn served_without_auth_too() {
    let proxy = Proxy::start(MOCK).await;
    let (status, _, doc) = get_json(&proxy, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/messages"]["post"].is_object());
}
