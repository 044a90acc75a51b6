//! The operational endpoints as the small routers' users call them: with
//! client keys and no admin key configured at all, every valid client key may
//! read `/router/*`, `/providers`, `/backend/info`, `/auth/status` and
//! `/auth/metrics` (those routers had no admin role); reloads stay admin-only;
//! once an admin key exists, the contract's admin rule (401/403) applies.

mod support;

use http::StatusCode;

use support::{assert_openai_error, bounded, client, Proxy};

const CLIENT: &str = "sk-client-0123456789";
const ADMIN: &str = "sk-admin-0123456789";

const READS: &[&str] = &[
    "/router/health",
    "/router/stats",
    "/router/rate-limits",
    "/providers",
    "/backend/info",
    "/auth/status",
    "/auth/metrics",
];

fn config(admin: bool) -> String {
    let admin = if admin {
        format!("admin_keys = [\"{ADMIN}\"]\n")
    } else {
        String::new()
    };
    format!(
        "[auth]\nkeys = [\"{CLIENT}\"]\n{admin}\n\
         [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
         [[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n"
    )
}

async fn call(proxy: &Proxy, method: http::Method, path: &str, key: Option<&str>) -> StatusCode {
    let mut request = client().request(method, proxy.at(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = bounded(path, request.send()).await.expect("request");
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = bounded("the error", response.json()).await.expect("JSON");
        assert_openai_error(&body);
    }
    status
}

#[tokio::test]
async fn client_keys_read_operations_while_no_admin_key_exists() {
    let proxy = Proxy::start(&config(false)).await;
    for path in READS {
        assert_eq!(
            call(&proxy, http::Method::GET, path, Some(CLIENT)).await,
            StatusCode::OK,
            "GET {path} with a client key"
        );
        assert_eq!(
            call(&proxy, http::Method::GET, path, None).await,
            StatusCode::UNAUTHORIZED,
            "GET {path} without a key"
        );
        assert_eq!(
            call(&proxy, http::Method::GET, path, Some("sk-wrong-0123456789")).await,
            StatusCode::UNAUTHORIZED,
            "GET {path} with a wrong key"
        );
    }
    for path in ["/auth/reload-keys", "/admin/reload"] {
        assert_eq!(
            call(&proxy, http::Method::POST, path, Some(CLIENT)).await,
            StatusCode::FORBIDDEN,
            "POST {path} stays admin-only"
        );
    }
}

#[tokio::test]
async fn once_an_admin_key_exists_the_admin_rule_applies() {
    let proxy = Proxy::start(&config(true)).await;
    for path in READS {
        assert_eq!(
            call(&proxy, http::Method::GET, path, Some(CLIENT)).await,
            StatusCode::FORBIDDEN,
            "GET {path} with a client key"
        );
        assert_eq!(
            call(&proxy, http::Method::GET, path, Some(ADMIN)).await,
            StatusCode::OK,
            "GET {path} with the admin key"
        );
    }
}
