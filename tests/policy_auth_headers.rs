//! End-to-end tests of the policy layers `auth`, `headers` and `cors`: the
//! real server in-process on 127.0.0.1:0 in front of a recording mock
//! upstream; what the client got and what the upstream received.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use support::{
    assert_openai_error, bounded, chat_body, client, json_of, model, openai_backend, MockUpstream,
    Proxy, Reply,
};

const CLIENT: &str = "sk-client-0123456789abcdef";
const OTHER: &str = "sk-other-0123456789abcdef";
const ADMIN: &str = "sk-admin-0123456789abcdef";

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    bounded("the proxy's answer", request.send())
        .await
        .expect("request failed")
}

/// A chat request to `proxy` with `key` as `Authorization: Bearer`.
async fn chat(proxy: &Proxy, key: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body("m"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    send(req).await
}

/// Every header value the upstream received, as text.
fn all_header_text(headers: &http::HeaderMap) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

/// A fresh directory for config and key files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-router-policy-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replace `path` the way an operator should (write aside, then rename):
/// a reload — here also one by the SIGHUP test, which signals this whole
/// test process — never sees a half-written file.
fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn auth_config(upstream: &MockUpstream, order: &str, backend_extra: &str, extra: &str) -> String {
    format!(
        "[stack]\norder = {order}\n\n[auth]\nkeys = [\"{CLIENT}\", \"{OTHER}\"]\nadmin_keys = [\"{ADMIN}\"]\nheader = \"x-proxy-key\"\n\n{extra}\n{}{}",
        openai_backend("up", &upstream.base_url(), backend_extra),
        model("m", "up", None),
    )
}

// 1. Client keys ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_key_is_401_in_openai_format_and_nothing_goes_upstream() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(&up, "[\"auth\"]", "", "")).await;

    let answer = chat(&proxy, None).await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(answer.headers().contains_key("www-authenticate"));
    assert!(answer.headers().contains_key("x-request-id"));
    let body = json_of(answer).await;
    assert_eq!(assert_openai_error(&body), "missing_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");

    for bad in [
        "sk-client-0123456789abcde",
        "sk-client-0123456789abcdeff",
        "Basic x",
    ] {
        let answer = send(
            client()
                .post(proxy.at("/v1/chat/completions"))
                .header("authorization", bad)
                .json(&chat_body("m")),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{bad}");
        let body = json_of(answer).await;
        assert_eq!(assert_openai_error(&body), "invalid_api_key");
        assert!(!body.to_string().contains(bad), "the key is echoed: {body}");
    }
    assert!(up.requests().is_empty(), "a refused request went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_an_anthropic_path_is_in_anthropic_format() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(&up, "[\"auth\"]", "", "")).await;
    let body = serde_json::json!({
        "model": "m", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hello"}],
    });
    for path in ["/v1/messages", "/anthropic/chat/completions"] {
        let answer = send(client().post(proxy.at(path)).json(&body)).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
        let v = json_of(answer).await;
        assert_eq!(v["type"], "error", "{path}: {v}");
        assert_eq!(v["error"]["type"], "authentication_error", "{path}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let answer = send(
            client()
                .post(proxy.at(path))
                .header("x-api-key", "sk-bad")
                .json(&body),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(json_of(answer).await["type"], "error", "{path}");
    }
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_key_never_reaches_the_upstream() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(
        &up,
        "[\"auth\"]",
        "api_key = \"sk-backend-key-0000\"",
        "",
    ))
    .await;
    let http = client();
    let url = proxy.at("/v1/chat/completions");
    let forms = [
        http.post(&url).bearer_auth(CLIENT),
        http.post(&url).header("x-api-key", CLIENT),
        http.post(&url).header("x-proxy-key", CLIENT),
        // An admin key is a client key too.
        http.post(&url).header("x-api-key", ADMIN),
    ];
    for (i, form) in forms.into_iter().enumerate() {
        let answer = send(form.header("x-team", "t").json(&chat_body("m"))).await;
        assert_eq!(answer.status(), StatusCode::OK, "form {i}");
        let body = json_of(answer).await;
        assert_eq!(body["choices"][0]["message"]["content"], "from up");
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 4);
    for r in seen {
        let text = all_header_text(&r.headers);
        assert!(!text.contains(CLIENT) && !text.contains(ADMIN), "{text}");
        assert!(r.headers.get("x-api-key").is_none(), "{text}");
        assert!(r.headers.get("x-proxy-key").is_none(), "{text}");
        // The backend's own key, and the client's other headers, do go.
        assert_eq!(
            r.header("authorization"),
            Some("Bearer sk-backend-key-0000")
        );
        assert_eq!(r.header("x-team"), Some("t"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_still_forwards_the_clients_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(
        &up,
        "[\"auth\"]",
        "api_key = \"passthrough\"",
        "",
    ))
    .await;
    let answer = send(
        client()
            .post(proxy.at("/v1/chat/completions"))
            .header("x-api-key", CLIENT)
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let r = up.only_request();
    assert_eq!(
        r.header("authorization").unwrap(),
        format!("Bearer {CLIENT}")
    );
    assert!(r.headers.get("x-api-key").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_key_on_the_verified_identity() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(
        &up,
        "[\"auth\", \"rate_limit\"]",
        "",
        "[rate_limit]\nrequests = 1\nwindow = \"60s\"\n",
    ))
    .await;
    assert_eq!(chat(&proxy, Some(CLIENT)).await.status(), StatusCode::OK);
    // The same key in another header is the same client.
    let again = send(
        client()
            .post(proxy.at("/v1/chat/completions"))
            .header("x-proxy-key", CLIENT)
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(chat(&proxy, Some(OTHER)).await.status(), StatusCode::OK);
    let limits = json_of(
        send(
            client()
                .get(proxy.at("/router/rate-limits"))
                .bearer_auth(ADMIN),
        )
        .await,
    )
    .await
    .to_string();
    assert!(!limits.contains(CLIENT), "{limits}");
    assert!(limits.contains("sk-c...cdef"), "{limits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_environment_variables() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[stack]\norder = [\"auth\"]\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None)
    );
    let env = |name: &str| match name {
        "AUTH_KEY" => Some("sk-env-plain".to_string()),
        "AUTH_KEY_07" => Some("sk-env-seven".to_string()),
        _ => None,
    };
    let proxy = Proxy::start_with(&config, Path::new("env-test.toml"), env).await;
    assert_eq!(
        chat(&proxy, Some("sk-env-plain")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        chat(&proxy, Some("sk-env-seven")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        chat(&proxy, Some("sk-env-eight")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// 2. Admin endpoints and the model list ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_an_admin_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(&up, "[\"auth\"]", "", "")).await;
    let http = client();
    let admin_gets = [
        "/router/health",
        "/router/rate-limits",
        "/auth/status",
        "/auth/metrics",
    ];
    for path in admin_gets {
        let none = send(http.get(proxy.at(path))).await;
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_openai_error(&json_of(none).await);
        let bad = send(http.get(proxy.at(path)).bearer_auth("sk-nope")).await;
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED, "{path}");
        let as_client = send(http.get(proxy.at(path)).bearer_auth(CLIENT)).await;
        assert_eq!(as_client.status(), StatusCode::FORBIDDEN, "{path}");
        let body = json_of(as_client).await;
        assert_eq!(assert_openai_error(&body), "admin_key_required");
        assert_eq!(body["error"]["type"], "permission_error");
        let as_admin = send(http.get(proxy.at(path)).header("x-api-key", ADMIN)).await;
        assert_eq!(as_admin.status(), StatusCode::OK, "{path}");
    }
    let reload = proxy.at("/auth/reload-keys");
    assert_eq!(
        send(http.post(&reload)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(http.post(&reload).bearer_auth(CLIENT)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(http.post(&reload).bearer_auth(ADMIN)).await.status(),
        StatusCode::OK
    );

    // The model list is client API: any valid key.
    for path in ["/v1/models", "/v1/models/m"] {
        assert_eq!(
            send(http.get(proxy.at(path))).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            send(http.get(proxy.at(path)).bearer_auth(CLIENT))
                .await
                .status(),
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            send(http.get(proxy.at(path)).bearer_auth(ADMIN))
                .await
                .status(),
            StatusCode::OK,
            "{path}"
        );
    }
    // Operations never need a key.
    for path in ["/health", "/", "/metrics", "/openapi.json"] {
        let answer = send(http.get(proxy.at(path))).await;
        assert_ne!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_ne!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_status_and_metrics_show_masked_keys_and_counts() {
    let up = MockUpstream::with_handler("up", |r| {
        if r.header("x-fail").is_some() {
            Reply::Json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": {"message": "no"}}),
            )
        } else {
            Reply::Chat
        }
    })
    .await;
    let proxy = Proxy::start(&auth_config(&up, "[\"auth\"]", "", "")).await;
    let http = client();
    for _ in 0..2 {
        assert_eq!(chat(&proxy, Some(CLIENT)).await.status(), StatusCode::OK);
    }
    let failed = send(
        http.post(proxy.at("/v1/chat/completions"))
            .bearer_auth(CLIENT)
            .header("x-fail", "1")
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(chat(&proxy, None).await.status(), StatusCode::UNAUTHORIZED);

    let metrics = json_of(send(http.get(proxy.at("/auth/metrics")).bearer_auth(ADMIN)).await).await;
    let text = metrics.to_string();
    assert!(!text.contains(CLIENT) && !text.contains(ADMIN), "{text}");
    let entry = metrics["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "sk-c...cdef")
        .unwrap_or_else(|| panic!("no entry for the client key: {text}"));
    assert_eq!(entry["requests"], 3, "{text}");
    assert_eq!(entry["successes"], 2, "{text}");
    assert_eq!(entry["failures"], 1, "{text}");
    assert!(
        entry["last_seen"].as_u64().unwrap() > 1_600_000_000,
        "{text}"
    );
    assert_eq!(metrics["rejected"]["missing_key"], 1, "{text}");

    let status = json_of(send(http.get(proxy.at("/auth/status")).bearer_auth(ADMIN)).await).await;
    let text = status.to_string();
    assert!(
        !text.contains(CLIENT) && !text.contains(ADMIN) && !text.contains(OTHER),
        "{text}"
    );
    assert_eq!(status["enabled"], true);
    assert_eq!(status["client_keys"], 2);
    assert_eq!(status["admin_keys"], 1);
    assert_eq!(status["header"], "x-proxy-key");
    assert_eq!(status["keys"].as_array().unwrap().len(), 3, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_the_admin_endpoints_stay_open() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[stack]\norder = [\"failover\"]\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None)
    );
    let proxy = Proxy::start(&config).await;
    let http = client();
    for path in ["/router/health", "/auth/status", "/v1/models"] {
        assert_eq!(
            send(http.get(proxy.at(path))).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let status = json_of(send(http.get(proxy.at("/auth/status"))).await).await;
    assert_eq!(status["enabled"], false);
    assert_eq!(chat(&proxy, None).await.status(), StatusCode::OK);
}

// 3. Reloading keys -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_file_reloads_while_requests_keep_flowing() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let dir = temp_dir("reload");
    let keys = dir.join("keys.txt");
    std::fs::write(
        &keys,
        format!("# team keys\n{CLIENT}\nsk-old-key-00000000   # leaving\n\n"),
    )
    .unwrap();
    let config = format!(
        "[stack]\norder = [\"auth\", \"failover\"]\n\n[auth]\nkeys_file = \"keys.txt\"\nadmin_keys = [\"{ADMIN}\"]\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None)
    );
    // The config "lives" in `dir`: keys_file is relative to it.
    let proxy = Arc::new(Proxy::start_with(&config, &dir.join("config.toml"), |_| None).await);
    assert_eq!(
        chat(&proxy, Some("sk-old-key-00000000")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        chat(&proxy, Some("sk-new-key-00000000")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A client keeps sending with a key that stays, through the reloads.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flow = {
        let (proxy, stop, sent) = (proxy.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) || statuses.len() < 20 {
                statuses.push(chat(&proxy, Some(CLIENT)).await.status());
                sent.fetch_add(1, Ordering::SeqCst);
            }
            statuses
        })
    };
    let http = client();
    let reload = proxy.at("/auth/reload-keys");
    for round in 0..5 {
        let new = format!("sk-new-key-0000000{round}");
        write_atomically(&keys, &format!("{CLIENT}\n{new}\n"));
        let answer = send(http.post(&reload).bearer_auth(ADMIN)).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body = json_of(answer).await;
        assert_eq!(body["reloaded"], true);
        assert_eq!(body["keys"]["from_file"], 2, "{body}");
        assert_eq!(
            chat(&proxy, Some(&new)).await.status(),
            StatusCode::OK,
            "round {round}"
        );
        assert_eq!(
            chat(&proxy, Some("sk-old-key-00000000")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    stop.store(true, Ordering::SeqCst);
    let statuses = bounded("the request flow", flow).await.unwrap();
    assert!(statuses.len() >= 20);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "a request was dropped or refused during a reload: {statuses:?}"
    );

    // A broken file: the reload fails, the keys in force stay.
    write_atomically(&keys, "a key with spaces\n");
    let answer = send(http.post(&reload).bearer_auth(ADMIN)).await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = json_of(answer).await;
    assert_eq!(assert_openai_error(&body), "keys_reload_failed");
    assert!(!body.to_string().contains("a key with spaces"), "{body}");
    assert_eq!(chat(&proxy, Some(CLIENT)).await.status(), StatusCode::OK);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_keys_file() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let dir = temp_dir("sighup");
    let keys = dir.join("keys.txt");
    write_atomically(&keys, &format!("{CLIENT}\n"));
    let config = format!(
        "[stack]\norder = [\"auth\"]\n\n[auth]\nkeys_file = \"keys.txt\"\nadmin_keys = [\"{ADMIN}\"]\n\n{}{}",
        openai_backend("up", &up.base_url(), ""),
        model("m", "up", None)
    );
    let proxy = Proxy::start_with(&config, &dir.join("config.toml"), |_| None).await;
    assert_eq!(
        chat(&proxy, Some("sk-hup-key-00000000")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    write_atomically(&keys, &format!("{CLIENT}\nsk-hup-key-00000000\n"));

    // The handler is installed when the server is built; SIGHUP goes to this
    // test process (every proxy in it reloads its keys, harmlessly).
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // The server gives no signal of its own for the reload: poll its status.
    bounded("the SIGHUP reload", async {
        loop {
            let status =
                json_of(send(client().get(proxy.at("/auth/status")).bearer_auth(ADMIN)).await)
                    .await;
            if status["reloads"].as_u64() >= Some(1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        chat(&proxy, Some("sk-hup-key-00000000")).await.status(),
        StatusCode::OK
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// 4. Header rules ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_global_then_backend() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[stack]\norder = [\"headers\"]\n\n[headers]\ndrop = [\"x-forwarded-for\", \"^X-Debug-.*\", \".*-token$\"]\nadd = {{ \"user-agent\" = \"llm-router\", \"x-hop\" = \"rule\" }}\nforce = {{ \"x-api-version\" = \"global\", \"x-global\" = \"1\" }}\n\n{}{}",
        openai_backend(
            "up",
            &up.base_url(),
            "api_key = \"sk-backend-key-0000\"\nheaders = { force = { \"x-api-version\" = \"backend\", \"x-team\" = \"a\" }, drop = [\"x-global\"], add = { \"x-only-if-absent\" = \"backend\" } }"
        ),
        model("m", "up", None)
    );
    let proxy = Proxy::start(&config).await;
    let http = client();

    let answer = send(
        http.post(proxy.at("/v1/chat/completions"))
            .header("x-forwarded-for", "10.1.2.3")
            .header("x-debug-trace", "1")
            .header("x-session-token", "secret")
            .header("x-keep", "kept")
            .header("x-api-version", "client")
            .header("x-only-if-absent", "client")
            .header("connection", "x-hop")
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let r = up.only_request();
    let text = all_header_text(&r.headers);
    for gone in ["x-forwarded-for", "x-debug-trace", "x-session-token"] {
        assert!(
            r.headers.get(gone).is_none(),
            "{gone} went upstream:\n{text}"
        );
    }
    assert_eq!(r.header("x-keep"), Some("kept"), "{text}");
    assert_eq!(r.header("user-agent"), Some("llm-router"), "{text}");
    // The backend's rules run after the global ones.
    assert_eq!(r.header("x-api-version"), Some("backend"), "{text}");
    assert!(r.headers.get("x-global").is_none(), "{text}");
    assert_eq!(r.header("x-team"), Some("a"), "{text}");
    assert_eq!(r.header("x-only-if-absent"), Some("client"), "{text}");
    // Hop-by-hop headers never go upstream, whatever the rules say.
    assert!(r.headers.get("x-hop").is_none(), "{text}");
    // The backend's credential is set after the rules.
    assert_eq!(
        r.header("authorization"),
        Some("Bearer sk-backend-key-0000")
    );

    // A client's own user-agent is kept (`add` only when absent).
    let answer = send(
        http.post(proxy.at("/v1/chat/completions"))
            .header("user-agent", "my-sdk/1.0")
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let r = up.requests().pop().unwrap();
    assert_eq!(r.header("user-agent"), Some("my-sdk/1.0"));
    assert_eq!(r.header("x-only-if-absent"), Some("backend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_cannot_remove_the_backends_credential() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let config = format!(
        "[stack]\norder = [\"headers\"]\n\n[headers]\ndrop = [\".*\", \"authorization\"]\n\n{}{}",
        openai_backend(
            "up",
            &up.base_url(),
            "api_key = \"sk-backend-key-0000\"\nheaders = { drop_all = true, drop = [\"^auth.*\"], force = { \"x-after\" = \"1\" } }"
        ),
        model("m", "up", None)
    );
    let proxy = Proxy::start(&config).await;
    let answer = send(
        client()
            .post(proxy.at("/v1/chat/completions"))
            .header("x-team", "t")
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let r = up.only_request();
    let text = all_header_text(&r.headers);
    assert_eq!(
        r.header("authorization"),
        Some("Bearer sk-backend-key-0000"),
        "{text}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{text}");
    assert!(r.headers.get("x-team").is_none(), "{text}");
    assert_eq!(r.header("x-after"), Some("1"), "{text}");
}

// 5. CORS ------------------------------------------------------------------------

fn cors_config(up: &MockUpstream) -> String {
    auth_config(
        up,
        "[\"cors\", \"auth\"]",
        "",
        "[cors]\nallow_origins = [\"https://app.example\"]\nmax_age = \"1h\"\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_without_a_key() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&cors_config(&up)).await;
    let preflight = send(
        client()
            .request(http::Method::OPTIONS, proxy.at("/v1/chat/completions"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            ),
    )
    .await;
    assert_eq!(preflight.status(), StatusCode::OK);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization, content-type"
    );
    assert_eq!(h["access-control-max-age"], "3600");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("x-request-id"));
    assert!(up.requests().is_empty());

    // A preflight from an origin not listed gets no allow-origin.
    let other = send(
        client()
            .request(http::Method::OPTIONS, proxy.at("/v1/chat/completions"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_security_headers_on_every_answer() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&cors_config(&up)).await;
    let http = client();
    let ok = send(
        http.post(proxy.at("/v1/chat/completions"))
            .header("origin", "https://app.example")
            .bearer_auth(CLIENT)
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    let expose = h["access-control-expose-headers"].to_str().unwrap();
    assert!(expose.contains("x-request-id"), "{expose}");
    for (name, value) in llm_router::layers::cors::SECURITY_HEADERS {
        assert_eq!(h[name], value, "{name}");
    }
    // A refusal carries them too, so a browser can read it.
    let refused = send(
        http.post(proxy.at("/v1/chat/completions"))
            .header("origin", "https://app.example")
            .json(&chat_body("m")),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    let health = send(
        http.get(proxy.at("/health"))
            .header("origin", "https://app.example"),
    )
    .await;
    assert_eq!(
        health.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_options_is_not_a_preflight() {
    let up = MockUpstream::start("up", Reply::Chat).await;
    let proxy = Proxy::start(&auth_config(&up, "[\"auth\"]", "", "")).await;
    let answer = send(
        client()
            .request(http::Method::OPTIONS, proxy.at("/v1/chat/completions"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
