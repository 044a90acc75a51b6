//! `GET /v1/models` lists every model a client can name: the configured
//! names, plus — for pattern and `*` routes — the models their backends
//! report (fetched in the background from each backend's own model list,
//! cached), each with `owned_by` = the backend, each once, and only where a
//! route would send that name to that backend. A backend whose list fails
//! changes nothing else; lists are bounded whatever a backend sends; the
//! cache survives a config reload, and a reload's new backends are asked.

mod support;

use support::binary::WorkDir as TempDir;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use llm_router::__private::catalog::{Catalog, MAX_BODY_BYTES, MAX_ID_LEN, MAX_MODELS_PER_BACKEND};
use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
use llm_router::upstream::provider::openai::OpenAi;
use support::{bounded, chat_body, client, openai_backend, MockUpstream, Proxy, Reply};

/// An OpenAI model list of these ids.
fn list_of(ids: &[&str]) -> Reply {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "upstream"}))
        .collect();
    Reply::Json(StatusCode::OK, json!({"object": "list", "data": data}))
}

/// `(id, owned_by)` of each model `/v1/models` lists.
async fn listed(proxy: &Proxy) -> Vec<(String, String)> {
    let response = bounded("/v1/models", client().get(proxy.at("/v1/models")).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            (
                m["id"].as_str().unwrap().to_string(),
                m["owned_by"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Poll `/v1/models` (bounded) until `ready` holds: the background fetch
/// has no other signal.
async fn listed_once(
    proxy: &Proxy,
    what: &str,
    ready: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    bounded(what, async {
        loop {
            let list = listed(proxy).await;
            if ready(&list) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn has(list: &[(String, String)], id: &str) -> bool {
    list.iter().any(|(i, _)| i == id)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_names_plus_the_models_routes_reach() {
    let alpha = MockUpstream::start("alpha", Reply::Chat).await;
    alpha.set_model_list(list_of(&[
        "gpt-4o",
        "gpt-4",                  // the configured name: listed once
        "gpt-3.5-turbo",          // reached through `gpt-*`
        "text-embedding-3-small", // would go to `*` (beta), not to alpha
        &"x".repeat(MAX_ID_LEN + 1),
        "gpt-4o", // twice in alpha's own list
    ]));
    let beta = MockUpstream::start("beta", Reply::Chat).await;
    beta.set_model_list(list_of(&[
        "llama-3.3-70b",
        "gpt-4o",
        "text-embedding-3-small",
    ]));
    let broken = MockUpstream::start("broken", Reply::Chat).await;
    broken.set_model_list(Reply::Json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"message": "down", "type": "server_error"}}),
    ));
    let config = [
        openai_backend(
            "alpha",
            &alpha.base_url(),
            "api_key = \"sk-alpha-0123456789abcdef\"",
        ),
        openai_backend("beta", &beta.base_url(), ""),
        openai_backend("broken", &broken.base_url(), ""),
        "[[models]]\nname = \"gpt-4\"\ntargets = [{ backend = \"alpha\", model = \"gpt-4o\" }]\n\n"
            .into(),
        "[[models]]\nname = \"gpt-*\"\ntargets = [{ backend = \"alpha\" }, { backend = \"broken\", priority = 2 }]\n\n".into(),
        "[[models]]\nname = \"*\"\ntargets = [{ backend = \"beta\" }]\n\n".into(),
    ]
    .concat();
    let proxy = Proxy::start(&config).await;
    broken
        .wait_for("the failing backend to be asked", |s| s.model_lists >= 1)
        .await;
    let list = listed_once(&proxy, "alpha's and beta's models", |l| {
        has(l, "gpt-3.5-turbo") && has(l, "llama-3.3-70b")
    })
    .await;
    assert_eq!(
        list,
        pairs(&[
            ("gpt-4", "alpha"),
            ("gpt-4o", "alpha"),
            ("gpt-3.5-turbo", "alpha"),
            ("llama-3.3-70b", "beta"),
            ("text-embedding-3-small", "beta"),
        ])
    );

    // Each backend asked once, on its own model list, with its own key.
    let asked = alpha.model_list_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, http::Method::GET);
    assert_eq!(asked[0].path, "/v1/models");
    assert_eq!(
        asked[0].header("authorization"),
        Some("Bearer sk-alpha-0123456789abcdef")
    );
    assert_eq!(asked[0].header("connection"), Some("close"));
    assert_eq!(beta.model_list_requests()[0].header("authorization"), None);
    // Nothing else went upstream.
    for up in [&alpha, &beta, &broken] {
        assert!(up.requests().is_empty());
    }

    // /health and /v1/models/{id} agree.
    let health: Value = client()
        .get(proxy.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(health["models"], json!(ids));
    for (id, owner) in [("gpt-3.5-turbo", "alpha"), ("llama-3.3-70b", "beta")] {
        let one: Value = client()
            .get(proxy.at(&format!("/v1/models/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["id"], id);
        assert_eq!(one["owned_by"], owner);
    }

    // A listed model really goes where the list says.
    let answer: Value = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body("gpt-3.5-turbo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "from alpha");
}

/// The catalog itself, refreshed once (what the server's background task
/// does each round): the bounds hold whatever a backend sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_bounded_whatever_a_backend_sends() {
    let many = MockUpstream::start("many", Reply::Chat).await;
    let ids: Vec<String> = (0..MAX_MODELS_PER_BACKEND + 500)
        .map(|i| format!("many-{i:05}"))
        .collect();
    many.set_model_list(list_of(&ids.iter().map(String::as_str).collect::<Vec<_>>()));
    // One valid model in a body over the size bound: nothing is kept.
    let huge = MockUpstream::start("huge", Reply::Chat).await;
    huge.set_model_list(Reply::Json(
        StatusCode::OK,
        json!({"data": [{"id": "huge-model", "description": "x".repeat(MAX_BODY_BYTES)}]}),
    ));
    // Not a model list at all.
    let odd = MockUpstream::start("odd", Reply::Chat).await;
    odd.set_model_list(Reply::Json(StatusCode::OK, json!(["not", "a", "list"])));
    let backend = |name: &str, up: &MockUpstream| {
        Arc::new(
            Backend::builder(name, Arc::new(OpenAi))
                .base_url(up.base_url())
                .build()
                .unwrap(),
        )
    };
    let routes = RouteTable::new(vec![
        ModelRoute::new("many-*", vec![Target::new(backend("many", &many), None)]),
        ModelRoute::new("huge-*", vec![Target::new(backend("huge", &huge), None)]),
        ModelRoute::new("*", vec![Target::new(backend("odd", &odd), None)]),
    ]);
    let catalog = Catalog::new();
    bounded("one refresh", catalog.refresh(&routes)).await;
    let list = catalog.list(&routes);
    assert_eq!(list.len(), MAX_MODELS_PER_BACKEND, "{:?}", &list[..3]);
    assert!(list.iter().all(|m| m.owned_by == "many"));
    assert_eq!(list[0].id, "many-00000");
    assert_eq!(huge.stats().model_lists, 1);
    assert_eq!(odd.stats().model_lists, 1);

    // A later round asks nobody before its time.
    bounded("a second refresh", catalog.refresh(&routes)).await;
    assert_eq!(many.stats().model_lists, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_survives_a_reload_and_new_backends_are_asked() {
    let alpha = MockUpstream::start("alpha", Reply::Chat).await;
    alpha.set_model_list(list_of(&["a-1", "a-2"]));
    let gamma = MockUpstream::start("gamma", Reply::Chat).await;
    gamma.set_model_list(list_of(&["llama", "qwen"]));
    let dir = TempDir::new("models-list");
    let path = dir.path().join("config.toml");
    let first = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n{}[[models]]\nname = \"*\"\ntargets = [{{ backend = \"alpha\" }}]\n",
        openai_backend("alpha", &alpha.base_url(), "")
    );
    std::fs::write(&path, &first).unwrap();
    let proxy = Proxy::start_with(&first, Path::new(&path), |_| None).await;
    listed_once(&proxy, "alpha's models", |l| has(l, "a-2")).await;

    // A new backend behind a prefix route that strips its prefix.
    let second = format!(
        "{first}\n{}[[models]]\nname = \"g/*\"\nstrip_prefix = true\ntargets = [{{ backend = \"gamma\" }}]\n",
        openai_backend("gamma", &gamma.base_url(), "")
    );
    std::fs::write(&path, &second).unwrap();
    let reload = client()
        .post(proxy.at("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200, "{}", reload.text().await.unwrap());
    let list = listed_once(&proxy, "gamma's models after the reload", |l| {
        has(l, "g/qwen")
    })
    .await;
    assert_eq!(
        list,
        pairs(&[
            ("g/llama", "gamma"),
            ("g/qwen", "gamma"),
            ("a-1", "alpha"),
            ("a-2", "alpha"),
        ])
    );
    // Alpha's list came from the cache, not from asking again.
    assert_eq!(alpha.stats().model_lists, 1);
    assert_eq!(gamma.stats().model_lists, 1);
}
