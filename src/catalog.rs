//! The model catalog: what `GET /v1/models` (and `/health`) list.
//!
//! A client can name every configured model (`[[models]] name`), and — for a
//! pattern route (`"gpt-*"`) or the `"*"` route — any model its backends
//! serve. So the list is the configured names, then the models each such
//! backend reports from its own model-list endpoint ([`Provider::model_list`]:
//! OpenAI-compatible `GET {base_url}/models`, Anthropic `GET /v1/models`,
//! Gemini `GET /v1beta/models`, Ollama `GET /api/tags`, the mock's fixed
//! list), each with `owned_by` = the backend that reported it.
//!
//! A reported model is listed only under the name a client would send for it
//! (`"cerebras/*"` with its prefix stripped upstream lists `cerebras/<model>`)
//! and only when that name would really be routed to a route sending it to
//! that backend unchanged (an exact name or a longer pattern takes it
//! elsewhere: not listed from this backend). Each name is listed once:
//! configured names first, then routes in routing order, targets by
//! priority.
//!
//! Backends are asked in the background, never on a client's request: a
//! task started with the server ([`Catalog::spawn`]) asks every backend that
//! a pattern or `"*"` route sends unchanged names to, then again every
//! [`REFRESH`] (after a failure, [`RETRY`]). A failure is logged once per
//! backend (then again only after it recovered) and leaves that backend's
//! previous list (or none); it never fails `/v1/models`. The cache is keyed by
//! backend name and base URL, so it survives a config reload; a reload
//! wakes the task, which asks the backends it does not know yet at once and
//! forgets the ones no longer configured.
//!
//! Bounds, whatever a backend sends: an answer's body is read up to
//! [`MAX_BODY_BYTES`] (a larger one is a failure), a fetch takes at most
//! [`FETCH_TIMEOUT`] (or the backend's `timeout`, if shorter), ids longer
//! than [`MAX_ID_LEN`] or with control characters are dropped, and at most
//! [`MAX_MODELS_PER_BACKEND`] are kept per backend; at most
//! [`MAX_CONCURRENT_FETCHES`] run at once. The request asks for its
//! connection to be closed after the answer (`connection: close`): nothing
//! stays open between rounds.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::__private::catalog::Catalog;
//! use llm_router::upstream::provider::mock::Mock;
//! use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mock = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
//! let routes = RouteTable::new(vec![
//!     ModelRoute::new("fast", vec![Target::new(mock.clone(), Some("echo"))]),
//!     ModelRoute::new("*", vec![Target::new(mock, None)]),
//! ]);
//! let catalog = Catalog::new();
//! catalog.refresh(&routes).await; // what the background task does
//! let ids: Vec<_> = catalog.list(&routes).into_iter().map(|m| m.id).collect();
//! assert_eq!(ids, ["fast", "echo"]); // the mock reports `echo`
//! # }
//! ```
//!
//! [`Provider::model_list`]: crate::upstream::provider::Provider::model_list

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::request::ClientFormat;
use crate::routing::{pattern_prefix, Backend, ModelRoute, RouteTable};
use crate::upstream::provider::ModelListing;

/// How often a backend's list is asked again.
pub const REFRESH: Duration = Duration::from_secs(600);
/// How soon a backend whose list failed is asked again.
pub const RETRY: Duration = Duration::from_secs(60);
/// The longest a fetch (answer head and body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest model-list body read (OpenRouter's list, with every model's
/// metadata, is a few MB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The most models kept per backend.
pub const MAX_MODELS_PER_BACKEND: usize = 1000;
/// The longest model id kept.
pub const MAX_ID_LEN: usize = 256;
/// The most backends asked at once.
pub const MAX_CONCURRENT_FETCHES: usize = 4;

/// One listed model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The name a client sends.
    pub id: String,
    /// The backend serving it (for a configured name, its first target's).
    pub owned_by: String,
}

/// What a backend's list is cached under: it survives a reload as long as
/// the backend keeps its name and address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    base_url: String,
}

impl Key {
    fn of(backend: &Backend) -> Key {
        Key {
            name: backend.name().to_string(),
            base_url: backend.base_url().to_string(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    models: Arc<[String]>,
    /// When to ask again.
    due: Instant,
    /// The last fetch failed (and that was logged).
    failing: bool,
    /// A list was cut to [`MAX_MODELS_PER_BACKEND`] (and that was logged).
    truncated: bool,
}

impl Entry {
    /// Nothing known yet.
    fn new() -> Entry {
        Entry {
            models: Arc::from(Vec::new()),
            due: Instant::now(),
            failing: false,
            truncated: false,
        }
    }
}

/// Why a backend's list could not be had.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("building the request: {0}")]
    Request(crate::error::ProxyError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection: {0}")]
    Connection(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("reading the answer (at most {MAX_BODY_BYTES} bytes): {0}")]
    Body(String),
    #[error("not a model list: {0}")]
    Parse(serde_json::Error),
}

/// The backends' reported models. See the module docs of `catalog`.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Woken by [`Catalog::config_changed`].
    wake: Notify,
}

/// The background refresh task: aborted when dropped.
#[derive(Debug)]
pub struct CatalogTask(tokio::task::JoinHandle<()>);

impl Drop for CatalogTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Catalog {
    /// An empty catalog: only configured names are listed until it is
    /// refreshed.
    pub fn new() -> Self {
        Catalog::default()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config changed: the task looks at the backends again now.
    pub fn config_changed(&self) {
        self.wake.notify_one();
    }

    /// Start the background task on the current Tokio runtime. It asks
    /// `routes` for the route table in force at each round and ends when
    /// that returns `None` (the app is gone) or the task is dropped.
    pub fn spawn(
        self: &Arc<Self>,
        routes: impl Fn() -> Option<Arc<RouteTable>> + Send + 'static,
    ) -> CatalogTask {
        let catalog = self.clone();
        CatalogTask(tokio::spawn(async move {
            loop {
                let Some(table) = routes() else { return };
                catalog.refresh(&table).await;
                let next = catalog.next_due(&table);
                drop(table);
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = catalog.wake.notified() => {}
                }
            }
        }))
    }

    /// One round: forget backends no longer routed to, ask those that are
    /// due (never asked, or their [`REFRESH`]/[`RETRY`] is over).
    pub async fn refresh(&self, routes: &RouteTable) {
        let backends = listed_backends(routes);
        let now = Instant::now();
        let due: Vec<Arc<Backend>> = {
            let mut entries = self.entries();
            let keep: HashSet<Key> = backends.iter().map(|b| Key::of(b)).collect();
            entries.retain(|k, _| keep.contains(k));
            let due: Vec<Arc<Backend>> = backends
                .into_iter()
                .filter(|b| entries.get(&Key::of(b)).is_none_or(|e| e.due <= now))
                .collect();
            // Not due again before [`RETRY`], even if its fetch never
            // reports (so a round can never spin).
            for b in &due {
                entries.entry(Key::of(b)).or_insert_with(Entry::new).due = now + RETRY;
            }
            due
        };
        if due.is_empty() {
            return;
        }
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_FETCHES));
        let mut fetches = tokio::task::JoinSet::new();
        for backend in due {
            let permits = permits.clone();
            fetches.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = fetch(&backend).await;
                (backend, result)
            });
        }
        while let Some(done) = fetches.join_next().await {
            if let Ok((backend, result)) = done {
                self.store(&backend, result);
            }
        }
    }

    /// Keep one fetch's outcome, logging a failure once per episode.
    fn store(&self, backend: &Backend, result: Result<Option<Vec<String>>, FetchError>) {
        let key = Key::of(backend);
        let mut entries = self.entries();
        let entry = entries.entry(key).or_insert_with(Entry::new);
        match result {
            Ok(Some(ids)) => {
                let (models, cut) = clean(ids);
                if cut && !entry.truncated {
                    tracing::warn!(
                        backend = backend.name(),
                        kept = MAX_MODELS_PER_BACKEND,
                        "the backend reports more models than are listed; /v1/models shows the first {MAX_MODELS_PER_BACKEND}"
                    );
                }
                if entry.failing {
                    tracing::info!(
                        backend = backend.name(),
                        "the backend's model list is available again"
                    );
                }
                tracing::debug!(
                    backend = backend.name(),
                    models = models.len(),
                    "model list fetched"
                );
                entry.models = Arc::from(models);
                entry.truncated = cut;
                entry.failing = false;
                entry.due = Instant::now() + REFRESH;
            }
            // Nothing to ask: not asked again until the config changes it.
            Ok(None) => {
                tracing::debug!(
                    backend = backend.name(),
                    "the backend sends each client's key: its models are not listed"
                );
                entry.due = Instant::now() + REFRESH;
            }
            Err(e) => {
                if !entry.failing {
                    tracing::warn!(
                        backend = backend.name(),
                        error = %e,
                        "listing the backend's models failed; /v1/models lists what it knew (retried every {}s, logged again only after it recovers)",
                        RETRY.as_secs()
                    );
                }
                entry.failing = true;
                entry.due = Instant::now() + RETRY;
            }
        }
    }

    /// When the next backend of `routes` is due (at most [`REFRESH`] away).
    fn next_due(&self, routes: &RouteTable) -> Instant {
        let entries = self.entries();
        let latest = Instant::now() + REFRESH;
        listed_backends(routes)
            .iter()
            .map(|b| entries.get(&Key::of(b)).map_or(Instant::now(), |e| e.due))
            .min()
            .map_or(latest, |due| due.min(latest))
    }

    /// The models a client can name with `routes`: the configured names,
    /// then the backends' models routes would send to them (see the
    /// [module docs](crate::catalog)). Each id once.
    pub fn list(&self, routes: &RouteTable) -> Vec<Listed> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for name in routes.models() {
            let owned_by = routes
                .resolve(name)
                .and_then(|r| r.targets().first())
                .map_or("llm-router", |t| t.backend().name());
            if seen.insert(name.to_string()) {
                out.push(Listed {
                    id: name.to_string(),
                    owned_by: owned_by.to_string(),
                });
            }
        }
        let entries = self.entries();
        for route in routes.routes().filter(|r| is_pattern(r)) {
            for target in route.targets().iter().filter(|t| t.model().is_none()) {
                let backend = target.backend();
                let Some(entry) = entries.get(&Key::of(backend)) else {
                    continue;
                };
                for model in entry.models.iter() {
                    let Some(id) = client_name(routes, route, target, model) else {
                        continue;
                    };
                    if !seen.contains(&id) {
                        seen.insert(id.clone());
                        out.push(Listed {
                            id,
                            owned_by: backend.name().to_string(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// A pattern (`"gpt-*"`) or the catch-all `"*"`.
fn is_pattern(route: &ModelRoute) -> bool {
    route.name() == "*" || pattern_prefix(route.name()).is_some()
}

/// The backends worth asking: those that a pattern or `"*"` route sends the
/// client's model name to (targets without a fixed model), each once.
fn listed_backends(routes: &RouteTable) -> Vec<Arc<Backend>> {
    let mut seen = HashSet::new();
    routes
        .routes()
        .filter(|r| is_pattern(r))
        .flat_map(|r| r.targets().iter())
        .filter(|t| t.model().is_none())
        .map(|t| t.backend())
        .filter(|b| seen.insert(Key::of(b)))
        .cloned()
        .collect()
}

/// The name under which a client reaches `model` of `target`'s backend
/// through `route`: the model itself, or with the route's prefix when the
/// route strips it; `None` when that name would be routed elsewhere (an
/// exact name, a longer pattern) or not be sent as `model`.
fn client_name(
    routes: &RouteTable,
    route: &Arc<ModelRoute>,
    target: &crate::routing::Target,
    model: &str,
) -> Option<String> {
    let plain = Some(model.to_string());
    let prefixed = pattern_prefix(route.name()).map(|p| format!("{p}{model}"));
    [plain, prefixed].into_iter().flatten().find(|name| {
        target.upstream_model(name) == model
            && [
                ClientFormat::OpenAi,
                ClientFormat::Responses,
                ClientFormat::Anthropic,
            ]
            .into_iter()
            .any(|f| {
                routes
                    .resolve_for(name, f)
                    .is_some_and(|r| Arc::ptr_eq(r, route))
            })
    })
}

/// The ids kept of a backend's answer, and whether some were cut for
/// [`MAX_MODELS_PER_BACKEND`]: without empty, overlong or control-character
/// ids and duplicates, in the backend's order.
fn clean(ids: Vec<String>) -> (Vec<String>, bool) {
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut cut = false;
    for id in ids {
        if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
            continue;
        }
        if kept.len() == MAX_MODELS_PER_BACKEND {
            cut = true;
            break;
        }
        if seen.insert(id.clone()) {
            kept.push(id);
        }
    }
    (kept, cut)
}

/// Ask one backend for its models: `Ok(None)` when it cannot be asked.
async fn fetch(backend: &Backend) -> Result<Option<Vec<String>>, FetchError> {
    let provider = backend.provider();
    let request = match provider.model_list(backend).map_err(FetchError::Request)? {
        ModelListing::Fixed(ids) => return Ok(Some(ids.iter().map(|s| s.to_string()).collect())),
        ModelListing::Unavailable => return Ok(None),
        ModelListing::Fetch(request) => request,
    };
    // Asked once in minutes: the connection is not kept (HTTP/1; HTTP/2
    // has no such header and hyper leaves it out).
    let mut request = *request;
    request.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    let bound = FETCH_TIMEOUT.min(backend.timeout());
    let body = tokio::time::timeout(bound, async {
        let response = backend
            .client()
            .request(request)
            .await
            .map_err(|e| FetchError::Connection(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| FetchError::Body(e.to_string()))
    })
    .await
    .map_err(|_| FetchError::Timeout(bound))??;
    parse(provider.as_ref(), &body).map(Some)
}

fn parse(
    provider: &dyn crate::upstream::provider::Provider,
    body: &Bytes,
) -> Result<Vec<String>, FetchError> {
    provider.parse_model_list(body).map_err(FetchError::Parse)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::routing::Target;
    use crate::upstream::provider::mock::Mock;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    fn ids(list: &[Listed]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|l| (l.id.as_str(), l.owned_by.as_str()))
            .collect()
    }

    /// A catalog where `backend` reported `models`.
    fn with(catalog: &Catalog, backend: &Backend, models: &[&str]) {
        catalog.store(
            backend,
            Ok(Some(models.iter().map(|m| m.to_string()).collect())),
        );
    }

    #[test]
    fn only_names_that_reach_the_reporting_backend() {
        let (a, b, c) = (backend("a"), backend("b"), backend("c"));
        let routes = RouteTable::new(vec![
            ModelRoute::new("gpt-4", vec![Target::new(a.clone(), Some("gpt-4o"))]),
            ModelRoute::new(
                "gpt-*",
                vec![
                    Target::new(a.clone(), None),
                    Target::new(c.clone(), None).priority(2),
                ],
            ),
            ModelRoute::new("cere/*", vec![Target::new(b.clone(), None)]).with_strip_prefix(),
            ModelRoute::new("*", vec![Target::new(b.clone(), None)]),
        ]);
        let catalog = Catalog::new();
        with(
            &catalog,
            &a,
            &["gpt-4o", "gpt-4", "text-embedding-3", "gpt-4o"],
        );
        with(&catalog, &b, &["llama", "gpt-4o", "text-embedding-3"]);
        with(&catalog, &c, &["gpt-4o", "gpt-5"]);
        assert_eq!(
            ids(&catalog.list(&routes)),
            [
                ("gpt-4", "a"),
                // Longest pattern first. `cere/*` strips its prefix: its
                // models are reached as `cere/<model>`.
                ("cere/llama", "b"),
                ("cere/gpt-4o", "b"),
                ("cere/text-embedding-3", "b"),
                // `gpt-4` is the exact route's; `text-embedding-3` goes to `*`.
                ("gpt-4o", "a"),
                ("gpt-5", "c"),
                // `gpt-4o` goes to `gpt-*`, not to b.
                ("llama", "b"),
                ("text-embedding-3", "b"),
            ]
        );
        // Backends with only fixed-model targets are never asked.
        assert_eq!(listed_backends(&routes).len(), 3);
        let fixed = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(a, Some("gpt-4o"))],
        )]);
        assert!(listed_backends(&fixed).is_empty());
    }

    #[test]
    fn ids_are_bounded_and_cleaned() {
        let mut ids: Vec<String> = vec![
            String::new(),
            "x".repeat(MAX_ID_LEN + 1),
            "bad\nid".into(),
            "ok".into(),
            "ok".into(),
        ];
        ids.extend((0..MAX_MODELS_PER_BACKEND + 5).map(|i| format!("m{i}")));
        let (kept, cut) = clean(ids);
        assert!(cut);
        assert_eq!(kept.len(), MAX_MODELS_PER_BACKEND);
        assert_eq!(kept[0], "ok");
        assert_eq!(kept[1], "m0");
        let (kept, cut) = clean(vec!["a".into(), "x".repeat(MAX_ID_LEN)]);
        assert!(!cut);
        assert_eq!(kept.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_keep_the_last_list_and_retry_sooner() {
        let a = backend("a");
        let routes = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(a.clone(), None)],
        )]);
        let catalog = Catalog::new();
        with(&catalog, &a, &["m1"]);
        let fresh = catalog.next_due(&routes);
        assert!(fresh >= Instant::now() + REFRESH - Duration::from_secs(1));
        catalog.store(&a, Err(FetchError::Status(500)));
        assert_eq!(ids(&catalog.list(&routes)), [("m1", "a")]);
        assert!(catalog.entries()[&Key::of(&a)].failing);
        assert!(catalog.next_due(&routes) <= Instant::now() + RETRY);
        // The mock answers from its fixed list.
        catalog.entries().clear();
        catalog.refresh(&routes).await;
        assert_eq!(ids(&catalog.list(&routes)), [("echo", "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_forgets_backends_no_longer_routed_to() {
        let (a, b) = (backend("a"), backend("b"));
        let catalog = Catalog::new();
        let first = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(a.clone(), None)],
        )]);
        catalog.refresh(&first).await;
        assert!(catalog.entries().contains_key(&Key::of(&a)));
        let second = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(b.clone(), None)],
        )]);
        catalog.refresh(&second).await;
        let entries = catalog.entries();
        assert!(!entries.contains_key(&Key::of(&a)));
        assert!(entries.contains_key(&Key::of(&b)));
    }
}
