//! `GET /docs` (Swagger UI) and `GET /redoc` (ReDoc) rendered by a real
//! headless Chromium against the real proxy: the pages must build the
//! operations of `/openapi.json` from assets the proxy serves itself (the
//! browser runs without network access beyond loopback and without a key,
//! with `auth` on).
//!
//! Chromium must be on PATH (`.ci/run` installs Debian's package): without
//! it these tests are compiled as ignored (see `build.rs`);
//! `LLM_ROUTER_REQUIRE_CHROMIUM=1` makes its absence a build error.

mod support;

use support::binary::WorkDir as TempDir;

use std::time::Duration;

use support::{client, Proxy};

const CONFIG: &str = "[stack]\norder = [\"auth\", \"failover\"]\n\n[auth]\nkeys = [\"sk-client-0123456789abcdef\"]\n\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";

/// How long one Chromium run may take at most (start-up on a loaded
/// machine included); a safety bound, not a wait.
const BROWSER_BOUND: Duration = Duration::from_secs(120);

/// The DOM of `url` after its scripts ran (`--dump-dom`), as Chromium
/// rendered it headless.
async fn rendered_dom(url: &str) -> String {
    let chromium = option_env!("LLM_ROUTER_CHROMIUM").unwrap_or("chromium");
    let profile = TempDir::new("chromium");
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--virtual-time-budget=10000")
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(BROWSER_BOUND, run)
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_BOUND:?}"))
        .unwrap_or_else(|e| panic!("cannot run {chromium}: {e}"));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[cfg_attr(
    not(chromium),
    ignore = "needs chromium on PATH (apt-get install -y chromium); LLM_ROUTER_REQUIRE_CHROMIUM=1 makes it mandatory"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_the_operations() {
    let proxy = Proxy::start(CONFIG).await;
    // The page itself needs no key even with `auth` on.
    let page = client().get(proxy.at("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    let dom = rendered_dom(&proxy.at("/docs")).await;
    assert!(
        dom.contains("class=\"swagger-ui"),
        "Swagger UI did not start:\n{dom}"
    );
    let operations = dom.matches("opblock-summary-path").count();
    assert!(
        operations >= 20,
        "{operations} operation blocks rendered:\n{dom}"
    );
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/models",
        "/health",
    ] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "no operation block for {path}"
        );
    }
    assert!(dom.contains("opblock-post") && dom.contains("opblock-get"));
    assert!(!dom.contains("Failed to load API definition"), "{dom}");
}

#[cfg_attr(
    not(chromium),
    ignore = "needs chromium on PATH (apt-get install -y chromium); LLM_ROUTER_REQUIRE_CHROMIUM=1 makes it mandatory"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redoc_renders_the_operations() {
    let proxy = Proxy::start(CONFIG).await;
    let dom = rendered_dom(&proxy.at("/redoc")).await;
    // The operations' summaries as ReDoc shows them (menu and headings),
    // and the paths of the request samples.
    let doc: serde_json::Value =
        serde_json::from_slice(&llm_router::__private::openapi::document()).unwrap();
    let summary = |path: &str, method: &str| {
        doc["paths"][path][method]["summary"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (path, method) in [
        ("/v1/chat/completions", "post"),
        ("/v1/messages", "post"),
        ("/v1/models", "get"),
        ("/health", "get"),
    ] {
        let summary = summary(path, method);
        assert!(
            dom.contains(&summary),
            "ReDoc shows no operation `{summary}` ({method} {path}):\n{dom}"
        );
        assert!(dom.contains(path), "ReDoc shows no {path}");
    }
    assert!(
        !dom.contains("Something went wrong"),
        "ReDoc failed:\n{dom}"
    );
}
