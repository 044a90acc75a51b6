//! Unit tests of `auth`: key checks, admin rules, reload, and the layer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::HeaderName;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::body::ProxyBody;
use crate::secret::{mask_key, Secret};

const CLIENT: &str = "sk-client-0123456789";
const ADMIN: &str = "sk-admin-0123456789";

fn store() -> Arc<KeyStore> {
    Arc::new(KeyStore::new(
        AuthPolicy::new()
            .key(CLIENT)
            .admin_key(ADMIN)
            .header(HeaderName::from_static("x-proxy-key")),
    ))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

async fn body_json(r: Response<ProxyBody>) -> Value {
    serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[test]
fn client_keys_read_operations_only_while_no_admin_key_exists() {
    let client = headers(&[("x-api-key", CLIENT)]);
    let clients_only = KeyStore::new(AuthPolicy::new().key(CLIENT));
    let read = |s: &KeyStore, path, read| s.check_operations(&client, path, read);
    for path in [
        "/router/health",
        "/router/stats",
        "/providers",
        "/auth/metrics",
    ] {
        assert!(read(&clients_only, path, true).is_ok(), "{path}");
        // Once an admin key exists, the admin rule applies.
        let e = read(&store(), path, true).unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Reloads and writes stay admin-only; a wrong key is still 401.
    for (path, is_read) in [
        ("/auth/reload-keys", false),
        ("/admin/reload", false),
        ("/router/health", false),
    ] {
        let e = read(&clients_only, path, is_read).unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let wrong = headers(&[("x-api-key", "sk-wrong-0123456789")]);
    let e = clients_only
        .check_operations(&wrong, "/router/health", true)
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn accepted_from_every_header_form() {
    let s = store();
    for h in [
        headers(&[("authorization", &format!("Bearer {CLIENT}"))]),
        headers(&[("authorization", &format!("bearer  {CLIENT} "))]),
        headers(&[("x-api-key", CLIENT)]),
        headers(&[("x-proxy-key", CLIENT)]),
    ] {
        let who = s.authenticate(&h).unwrap();
        assert_eq!(who.role, Role::Client);
        assert_eq!(who.key.expose(), CLIENT);
    }
    // A wrong key in one header, the right one in another: accepted.
    let h = headers(&[("authorization", "Bearer nope"), ("x-api-key", CLIENT)]);
    assert!(s.authenticate(&h).is_ok());
}

#[test]
fn missing_and_invalid_are_401() {
    let s = store();
    let e = s.authenticate(&HeaderMap::new()).unwrap_err();
    assert_eq!(e.status(), 401);
    assert_eq!(e.code(), "missing_api_key");
    let e = s
        .authenticate(&headers(&[("x-api-key", "sk-client-012345678")]))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_api_key");
    // A prefix or an extension of a key is not the key.
    let e = s
        .authenticate(&headers(&[("x-api-key", "sk-client-0123456789x")]))
        .unwrap_err();
    assert_eq!(e.status(), 401);
    let m = s.metrics();
    assert_eq!(m["rejected"]["missing_key"], 1);
    assert_eq!(m["rejected"]["invalid_key"], 2);
}

#[test]
fn admin_rules() {
    let s = store();
    assert_eq!(s.check_admin(&HeaderMap::new()).unwrap_err().status(), 401);
    assert_eq!(
        s.check_admin(&headers(&[("x-api-key", "wrong")]))
            .unwrap_err()
            .status(),
        401
    );
    let e = s
        .check_admin(&headers(&[("x-api-key", CLIENT)]))
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        s.check_admin(&headers(&[("x-api-key", ADMIN)]))
            .unwrap()
            .role,
        Role::Admin
    );
    // An admin key is a client key too.
    assert!(s.authenticate(&headers(&[("x-api-key", ADMIN)])).is_ok());
}

#[test]
fn constant_time_comparison() {
    assert!(keys_equal("abc", "abc"));
    assert!(!keys_equal("abc", "abd"));
    assert!(!keys_equal("abc", ""));
    // The matching key first, in the middle or last.
    let set = KeySet::new(
        ["k1", "k2", "k3"]
            .into_iter()
            .map(|k| AuthKey::plain(Secret::new(k), KeySource::Config))
            .collect(),
        vec![],
    );
    let which = |k: &str| {
        set.role_of(k)
            .map(|(role, key)| (role, key.map(|k| k.key.expose())))
    };
    assert_eq!(which("k1"), Some((Role::Client, Some("k1"))));
    assert_eq!(which("k2"), Some((Role::Client, Some("k2"))));
    assert_eq!(which("k3"), Some((Role::Client, Some("k3"))));
    assert_eq!(which("k4"), None);
}

#[test]
fn a_key_is_found_by_its_hash_among_many() {
    let client: Vec<AuthKey> = (0..10_000)
        .map(|i| AuthKey::plain(Secret::new(format!("sk-client-{i:05}")), KeySource::Config))
        .collect();
    // A key that is both an admin and a client key is an admin key.
    let set = KeySet::new(
        client,
        vec![Secret::new("sk-admin"), Secret::new("sk-client-00042")],
    );
    let which = |k: &str| {
        set.role_of(k)
            .map(|(role, key)| (role, key.map(|k| k.key.expose().to_string())))
    };
    assert_eq!(
        which("sk-client-09999"),
        Some((Role::Client, Some("sk-client-09999".into())))
    );
    assert_eq!(
        which("sk-client-00000"),
        Some((Role::Client, Some("sk-client-00000".into())))
    );
    assert_eq!(which("sk-admin"), Some((Role::Admin, None)));
    assert_eq!(which("sk-client-00042"), Some((Role::Admin, None)));
    assert_eq!(which("sk-client-10000"), None);
    assert_eq!(which(""), None);
}

/// The app's check before the body stands: a refusal is counted once,
/// an accepted client is let in as if the layer had checked; a check
/// made by another store does not count.
#[tokio::test]
async fn a_check_made_before_the_body_is_taken_once() {
    let inner = service_fn(|req: Request<ProxyBody>| async move {
        assert!(req.headers().get("authorization").is_none());
        assert!(req.extensions().get::<Checked>().is_none());
        assert_eq!(req.extensions().get::<ClientIdentity>().unwrap().0, CLIENT);
        Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
    });
    let s = store();
    let svc = AuthLayer::new(s.clone()).layer(inner);
    let request = |key: Option<&str>| {
        let mut req = Request::post("/v1/chat/completions");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        req.body(ProxyBody::empty()).unwrap()
    };

    let mut req = request(None);
    let checked = Checked::check(&s, req.headers());
    req.extensions_mut().insert(checked);
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 401);
    assert_eq!(s.metrics()["rejected"]["missing_key"], 1);

    let mut req = request(Some(CLIENT));
    let checked = Checked::check(&s, req.headers());
    req.extensions_mut().insert(checked);
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);
    assert_eq!(s.stats_of(CLIENT).requests, 1);

    // Another store's refusal: the layer checks the headers itself.
    let other = store();
    let mut req = request(Some(CLIENT));
    req.extensions_mut()
        .insert(Checked::check(&other, &HeaderMap::new()));
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);
    // Another store's acceptance does not let a keyless request in.
    let mut req = request(None);
    req.extensions_mut().insert(Checked::check(
        &other,
        &headers(&[("authorization", &format!("Bearer {CLIENT}"))]),
    ));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 401);
    assert_eq!(s.metrics()["rejected"]["missing_key"], 2);
}

#[tokio::test]
async fn layer_strips_credentials_and_sets_identity() {
    let inner = service_fn(|req: Request<ProxyBody>| async move {
        for h in ["authorization", "x-api-key", "x-proxy-key", "api-key"] {
            assert!(req.headers().get(h).is_none(), "{h} left in the request");
        }
        assert_eq!(req.headers()["x-team"], "a");
        let id = req.extensions().get::<ClientIdentity>().unwrap();
        assert_eq!(id.0, CLIENT);
        let cred = req.extensions().get::<ClientCredential>().unwrap();
        assert_eq!(cred.0.expose(), CLIENT);
        let status = if req.uri().path() == "/fail" {
            502
        } else {
            200
        };
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(r)
    });
    let s = store();
    let svc = AuthLayer::new(s.clone()).layer(inner);
    for path in ["/ok", "/ok", "/fail"] {
        let req = Request::post(path)
            .header("x-proxy-key", CLIENT)
            .header("authorization", "Bearer something-else")
            .header("api-key", "x")
            .header("x-team", "a")
            .body(ProxyBody::empty())
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    let stats = s.stats_of(CLIENT);
    assert_eq!((stats.requests, stats.successes, stats.failures), (3, 2, 1));
    assert!(stats.last_seen.is_some());
    // Keys only leave the store masked.
    let text = format!("{}{}{:?}", s.status(), s.metrics(), s);
    assert!(!text.contains(CLIENT), "{text}");
    assert!(!text.contains(ADMIN), "{text}");
    assert!(text.contains(&mask_key(CLIENT)), "{text}");
}

#[tokio::test]
async fn refusal_is_in_the_clients_format() {
    let inner = service_fn(|_req: Request<ProxyBody>| async move {
        Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
    });
    let svc = AuthLayer::new(store()).layer(inner);
    let req = Request::post("/v1/chat/completions")
        .body(ProxyBody::empty())
        .unwrap();
    let r = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(body_json(r).await["error"]["code"] == "missing_api_key");
    let req = Request::post("/v1/messages")
        .header("x-api-key", "bad")
        .body(ProxyBody::empty())
        .unwrap();
    let r = svc.oneshot(req).await.unwrap();
    assert_eq!(r.status(), 401);
    let v = body_json(r).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[test]
fn reload_swaps_file_keys_and_keeps_others() {
    let dir = std::env::temp_dir().join(format!(
        "llm-router-auth-unit-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.txt");
    std::fs::write(&path, "# keys\nsk-file-one\n\n").unwrap();
    let s = KeyStore::new(AuthPolicy::new().key("sk-config").keys_file(&path).unwrap());
    let has = |k: &str| s.authenticate(&headers(&[("x-api-key", k)])).is_ok();
    assert!(has("sk-file-one") && has("sk-config"));
    std::fs::write(&path, "sk-file-two # new\n").unwrap();
    let report = s.reload().unwrap();
    assert_eq!((report.client_keys, report.from_file), (2, 1));
    assert!(!has("sk-file-one") && has("sk-file-two") && has("sk-config"));
    // A broken file keeps the keys in force.
    std::fs::write(&path, "bad key with spaces\n").unwrap();
    let e = s.reload().unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(!e.to_string().contains("spaces"), "the key leaked: {e}");
    assert!(has("sk-file-two"));
    std::fs::remove_file(&path).unwrap();
    assert!(s.reload().is_err());
    assert!(has("sk-file-two"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_emptied_file_with_no_other_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("llm-router-auth-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.txt");
    std::fs::write(&path, "sk-only\n").unwrap();
    let s = KeyStore::new(AuthPolicy::new().keys_file(&path).unwrap());
    std::fs::write(&path, "# nobody\n").unwrap();
    assert!(s.reload().is_err());
    assert!(s
        .authenticate(&headers(&[("x-api-key", "sk-only")]))
        .is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

// Virtual keys -----------------------------------------------------------------

const TEAM: &str = "sk-team-0123456789";
const DONE: &str = "sk-done-0123456789";

fn virtual_store() -> Arc<KeyStore> {
    let team = VirtualKey::new("team", TEAM)
        .unwrap()
        .with_models(ModelAllowList::new(["gpt-*"]).unwrap())
        .with_metadata([("team".to_string(), "data".to_string())].into())
        .unwrap()
        .with_budget_group("team")
        .unwrap();
    let done = VirtualKey::new("done", DONE)
        .unwrap()
        .with_expiry(Expiry::at_time(
            SystemTime::now() - std::time::Duration::from_secs(1),
        ));
    Arc::new(KeyStore::new(
        AuthPolicy::new()
            .key(CLIENT)
            .virtual_key(team)
            .virtual_key(done),
    ))
}

fn chat_request(key: &str, model: Option<&str>) -> Request<ProxyBody> {
    let mut req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(ProxyBody::empty())
        .unwrap();
    if let Some(model) = model {
        let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
        let llm = crate::request::LlmRequest::parse(
            crate::request::Endpoint::ChatCompletions,
            body.as_bytes(),
        )
        .unwrap();
        req.extensions_mut().insert(llm);
    }
    req.extensions_mut()
        .insert(crate::request::RequestContext::default());
    req
}

#[test]
fn a_virtual_key_is_found_and_an_expired_one_refused() {
    let s = virtual_store();
    let c = s.authenticate(&headers(&[("x-api-key", TEAM)])).unwrap();
    assert_eq!(c.role, Role::Client);
    assert_eq!(c.virtual_key.as_ref().unwrap().name(), "team");
    assert_eq!(c.budget_group.as_ref().unwrap().value, "data");
    assert!(c.allows("gpt-4o") && !c.allows("claude-3"));
    assert_eq!(c.client_key().unwrap().name(), Some("team"));
    // A plain key carries nothing more.
    let plain = s.authenticate(&headers(&[("x-api-key", CLIENT)])).unwrap();
    assert!(plain.virtual_key.is_none() && plain.client_key().is_none());
    assert!(plain.allows("anything"));
    let e = s
        .authenticate(&headers(&[("x-api-key", DONE)]))
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(e.code(), "key_expired");
    assert!(e.to_string().contains("`done` expired"), "{e}");
    assert!(!e.to_string().contains(DONE));
    assert_eq!(s.metrics()["rejected"]["expired_key"], 1);
    // `/auth/status` names the virtual keys.
    let status = s.status();
    assert!(status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["name"] == "team"));
    assert!(!status.to_string().contains(TEAM));
}

#[tokio::test]
async fn the_layer_checks_the_model_and_passes_the_client_key_on() {
    let inner = service_fn(|req: Request<ProxyBody>| async move {
        let key = req
            .extensions()
            .get::<ClientKey>()
            .expect("a ClientKey")
            .clone();
        assert_eq!(key.name(), Some("team"));
        let context = req
            .extensions()
            .get::<crate::request::RequestContext>()
            .unwrap();
        assert_eq!(context.client_key(), Some(&key));
        Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
    });
    let svc = AuthLayer::new(virtual_store()).layer(inner);
    let ok = svc
        .clone()
        .oneshot(chat_request(TEAM, Some("gpt-4o")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let refused = svc
        .clone()
        .oneshot(chat_request(TEAM, Some("claude-3")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let v = body_json(refused).await;
    assert_eq!(v["error"]["code"], "model_not_allowed");
    // No parsed request to tell the model: refused, not let through.
    let unknown = svc.clone().oneshot(chat_request(TEAM, None)).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN);

    // A plain key: no ClientKey, any model.
    let plain = service_fn(|req: Request<ProxyBody>| async move {
        assert!(req.extensions().get::<ClientKey>().is_none());
        let context = req
            .extensions()
            .get::<crate::request::RequestContext>()
            .unwrap();
        assert!(context.client_key().is_none());
        Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
    });
    let svc = AuthLayer::new(virtual_store()).layer(plain);
    let ok = svc
        .oneshot(chat_request(CLIENT, Some("claude-3")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[test]
fn a_reloaded_file_may_not_reuse_a_name_or_a_key() {
    let dir = std::env::temp_dir().join(format!("llm-router-auth-vkeys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.txt");
    std::fs::write(&path, "sk-file-0123456789\n").unwrap();
    let s = KeyStore::new(
        AuthPolicy::new()
            .virtual_key(VirtualKey::new("team", TEAM).unwrap())
            .keys_file(&path)
            .unwrap(),
    );
    let line = |name: &str, key: &str| format!("{{\"name\": \"{name}\", \"key\": \"{key}\"}}\n");
    std::fs::write(&path, line("team", "sk-other-0123456789")).unwrap();
    let e = s.reload().unwrap_err().to_string();
    assert!(e.contains("name `team`"), "{e}");
    std::fs::write(&path, line("other", TEAM)).unwrap();
    let e = s.reload().unwrap_err().to_string();
    assert!(e.contains("same key") && !e.contains(TEAM), "{e}");
    std::fs::write(
        &path,
        format!(
            "{}{}",
            line("a", "sk-a-0123456789"),
            line("a", "sk-b-0123456789")
        ),
    )
    .unwrap();
    let e = s.reload().unwrap_err().to_string();
    assert!(
        e.contains("line 2") && e.contains("already used on line 1"),
        "{e}"
    );
    // The keys in force stayed.
    assert!(s
        .authenticate(&headers(&[("x-api-key", "sk-file-0123456789")]))
        .is_ok());
    std::fs::write(&path, line("other", "sk-other-0123456789")).unwrap();
    assert_eq!(s.reload().unwrap().from_file, 1);
    let c = s
        .authenticate(&headers(&[("x-api-key", "sk-other-0123456789")]))
        .unwrap();
    assert_eq!(c.virtual_key.unwrap().name(), "other");
    assert_eq!(s.virtual_keys_info()["count"], 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_budget_a_client_spends_from_is_its_keys_or_its_groups() {
    use crate::layers::jwt::JwtPolicy;
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "0123456789abcdef0123456789abcdef";
    let spec = |n| BudgetSpec::parse(None, Some(n), Some("day")).unwrap();
    let grouped = |name: &str, key: &str| {
        VirtualKey::new(name, key)
            .unwrap()
            .with_metadata([("team".to_string(), "data".to_string())].into())
            .unwrap()
            .with_budget_group("team")
            .unwrap()
    };
    let store = KeyStore::new(
        AuthPolicy::new()
            .key(CLIENT)
            .virtual_key(grouped("a", TEAM).with_budget(spec(100)))
            .virtual_key(grouped("b", DONE))
            .virtual_key(
                VirtualKey::new("solo", "sk-solo-0123456789")
                    .unwrap()
                    .with_budget(spec(7)),
            )
            .jwt(
                JwtPolicy::hmac(secret, None)
                    .unwrap()
                    .budget_group_claim("team"),
            ),
    );
    let budget_of = |key: &str| {
        store
            .authenticate(&headers(&[("x-api-key", key)]))
            .unwrap()
            .client_key()
            .and_then(|c| c.budget)
    };
    let group = BudgetId::Group(BudgetGroup {
        key: "team".into(),
        value: "data".into(),
    });
    // Both keys of the group spend from the group's budget (b has none of its own).
    for key in [TEAM, DONE] {
        let b = budget_of(key).unwrap();
        assert_eq!((b.id, b.spec), (group.clone(), spec(100)));
    }
    assert_eq!(
        budget_of("sk-solo-0123456789").unwrap().id,
        BudgetId::Key("solo".into())
    );
    assert_eq!(budget_of(CLIENT), None);
    // A JWT naming the group spends from it; naming another, from none.
    let token = |team: &str| {
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        let claims = serde_json::json!({"sub": "alice", "exp": exp, "team": team});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let jwt = |team: &str| {
        store
            .authenticate(&headers(&[(
                "authorization",
                &format!("Bearer {}", token(team)),
            )]))
            .unwrap()
    };
    assert_eq!(jwt("data").budget.unwrap().id, group);
    let other = jwt("other");
    assert!(other.budget.is_none() && other.budget_group.is_some());
}
