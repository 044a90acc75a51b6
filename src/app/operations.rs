//! The endpoints that are not the client API: `/`, `/health`, the model
//! list, `/metrics`, the docs and the admin endpoints (stats, health,
//! rate limits, auth, `POST /admin/reload`), and the unknown paths.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use serde_json::json;

use super::handler::{method_not_allowed, path_and_format, Handler};
use super::unix_secs;
use crate::body::{BoxError, ProxyBody};
use crate::error::{json_response, ProxyError};
use crate::keys::KeyBudget;
use crate::layers::auth::{is_admin_path, Authenticated, KeyStore};
use crate::reload::ReloadError;
use crate::request::ClientFormat;
use crate::stack::LayerName;

impl Handler {
    /// Every model a client can name (see [`crate::catalog`]).
    fn models(&self) -> Vec<crate::catalog::Listed> {
        self.app.shared.catalog.list(&self.state.routes)
    }

    /// `GET /v1/models`: for a virtual key with `models`, only the ones it
    /// may ask for.
    fn models_list(&self, client: Option<&Authenticated>) -> serde_json::Value {
        let data: Vec<_> = self
            .models()
            .into_iter()
            .filter(|m| client.is_none_or(|c| c.allows(&m.id)))
            .map(|m| self.model_object(&m.id, &m.owned_by))
            .collect();
        json!({"object": "list", "data": data})
    }

    /// `GET /v1/models/{id}`: a listed model with its owner; another name
    /// some route serves, with its route's first backend.
    fn model_by_id(&self, id: &str) -> Option<serde_json::Value> {
        if let Some(m) = self.models().into_iter().find(|m| m.id == id) {
            return Some(self.model_object(id, &m.owned_by));
        }
        let route = self.state.routes.resolve(id)?;
        let owner = route
            .targets()
            .first()
            .map_or("llm-router", |t| t.backend().name());
        Some(self.model_object(id, owner))
    }

    fn model_object(&self, id: &str, owner: &str) -> serde_json::Value {
        json!({"id": id, "object": "model", "created": self.app.shared.created, "owned_by": owner})
    }

    /// Each configured target with its circuit and cooldown, plus every
    /// circuit and cooldown seen (targets with model `*` have one per model).
    fn router_health(&self) -> serde_json::Value {
        let router = &self.state.router;
        let circuits = router.breakers.snapshot();
        let cooldowns = router.cooldowns.snapshot();
        let targets: Vec<_> = self
            .state
            .routes
            .routes()
            .flat_map(|route| {
                route.targets().iter().map(|t| {
                    let key = crate::layers::failover::target_key(t, route.name()).to_string();
                    let circuit = circuits.iter().find(|c| c.target == key);
                    let cooldown = cooldowns.iter().find(|c| c.target == key);
                    json!({
                        "model": route.name(),
                        "target": key,
                        "backend": t.backend().name(),
                        "priority": t.get_priority(),
                        "weight": t.get_weight(),
                        "circuit": circuit.map_or("closed", |c| c.state),
                        "consecutive_failures": circuit.map_or(0, |c| c.consecutive_failures),
                        "cooldown_remaining_secs": cooldown.map(|c| c.remaining_secs),
                    })
                })
            })
            .collect();
        json!({
            "targets": targets,
            "circuits": circuits,
            "cooldowns": cooldowns,
            "circuit_breaker": {
                "failure_threshold": router.breakers.policy().failure_threshold,
                "open_for_secs": router.breakers.policy().open_for.as_secs_f64(),
                "half_open_requests": router.breakers.policy().half_open_requests,
            },
        })
    }

    /// The `spend` object of a budget (`None` without one, or without the
    /// `budget` layer in the order).
    async fn spend_of(&self, budget: Option<&KeyBudget>) -> Option<serde_json::Value> {
        let budget = budget.filter(|_| self.state.stack.contains(&LayerName::Budget))?;
        let spend = self.state.router.budgets.spend(budget).await;
        Some(spend.describe(&budget.id, &budget.spec, crate::layers::budget::unix_now()))
    }

    /// `GET /admin/keys`: every virtual key, each with the spend of the
    /// budget it spends from (keys of a group show the group's).
    async fn with_spend(&self, keys: &KeyStore) -> serde_json::Value {
        let mut info = keys.virtual_keys_info();
        let set = keys.keys();
        if let Some(listed) = info.get_mut("keys").and_then(|k| k.as_array_mut()) {
            for entry in listed {
                let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or("");
                let budget = set
                    .virtual_keys()
                    .filter_map(|k| k.virtual_key.as_deref())
                    .find(|k| k.name() == name)
                    .and_then(|k| set.budget_of(k));
                if let Some(spend) = self.spend_of(budget.as_ref()).await {
                    entry["spend"] = spend;
                }
            }
        }
        info
    }

    /// `GET /metrics`: Prometheus text, or the per-backend JSON summary.
    fn metrics(&self, json: bool) -> Response<ProxyBody> {
        let metrics = &self.state.router.metrics;
        if json {
            return json_response(StatusCode::OK, &metrics.json());
        }
        let mut response = Response::new(ProxyBody::full(
            metrics.encode(Some(&self.state.router.breakers)),
        ));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }

    /// Everything but the client API: admin and operations endpoints.
    pub(super) async fn operations<B>(self, req: Request<B>) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (path, format) = path_and_format(req.uri());
        let path = &*path;
        let method = req.method().clone();
        let wrong_method = |path: &str| method_not_allowed(&method, path, format);
        // With `auth` on, the admin endpoints need an admin key and the model
        // list a client key (the client API is checked by the layer itself).
        let mut authed = None;
        let mut client = None;
        if let Some(keys) = &self.state.router.auth {
            let check = if is_admin_path(path) {
                let read = method == Method::GET || method == Method::HEAD;
                Some(keys.check_operations(req.headers(), path, read))
            } else if path == "/v1/models"
                || path.starts_with("/v1/models/")
                || path == "/v1/key/info"
            {
                Some(keys.authenticate(req.headers()))
            } else {
                None
            };
            match check {
                Some(Err(e)) => return e.to_response(format),
                Some(Ok(c)) => {
                    let key = c.stats_key();
                    keys.begin(&key);
                    authed = Some(key);
                    client = Some(c);
                }
                None => {}
            }
        }
        let get = method == Method::GET || method == Method::HEAD;
        let wants_json = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let response = match path {
            "/" if get => json_response(
                StatusCode::OK,
                &json!({
                    "name": "llm-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "endpoints": {
                        "client": ["POST /v1/chat/completions", "POST /v1/completions", "POST /v1/embeddings",
                                   "POST /v1/responses", "POST /v1/responses/input_tokens",
                                   "POST /v1/messages", "POST /v1/messages/count_tokens",
                                   "POST /anthropic/chat/completions", "POST /anthropic/v1/messages",
                                   "POST /anthropic/v1/messages/count_tokens",
                                   "POST /openai/chat/completions", "GET /v1/models", "GET /v1/models/{id}",
                                   "GET /v1/key/info"],
                        "operations": ["GET /health", "GET /", "GET /metrics", "GET /openapi.json",
                                       "GET /docs", "GET /redoc"],
                        "admin": ["GET /providers", "GET /backend/info", "GET /router/stats",
                                  "GET /router/health", "GET /router/rate-limits", "GET /auth/status",
                                  "GET /auth/metrics", "POST /auth/reload-keys", "POST /admin/reload",
                                  "GET /admin/keys"],
                    },
                }),
            ),
            "/metrics" if get => self.metrics(wants_json),
            "/openapi.json" if get => crate::openapi::response(),
            p if crate::docs::serves(p) => match crate::docs::response(p, req.headers()) {
                Some(page) if get => page,
                _ => wrong_method(path),
            },
            "/health" if get => {
                let mut health = json!({
                    "status": "healthy",
                    "service": "llm-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "models": self.models().into_iter().map(|m| m.id).collect::<Vec<_>>(),
                });
                // Only with `[state] store = "redis"`: "ok" | "degraded".
                if let Some(store) = self.state.router.state_store_status() {
                    health["state_store"] = store.into();
                }
                json_response(StatusCode::OK, &health)
            }
            "/v1/models" if get => {
                json_response(StatusCode::OK, &self.models_list(client.as_ref()))
            }
            "/v1/key/info" if get => match (&self.state.router.auth, &client) {
                // With the `budget` layer, the spend of the key's budget.
                (Some(keys), Some(client)) => {
                    let mut info = keys.key_info(client);
                    if let Some(spend) = self.spend_of(client.budget.as_ref()).await {
                        info["spend"] = spend;
                    }
                    json_response(StatusCode::OK, &info)
                }
                _ => ProxyError::bad_request(
                    "auth_not_enabled",
                    "`auth` is not in [stack] order: requests carry no key to describe",
                )
                .to_response(format),
            },
            // With the `budget` layer, each key's spend (spent, remaining,
            // reservations in flight, reset time).
            "/admin/keys" if get => {
                let info = match &self.state.router.auth {
                    Some(keys) => self.with_spend(keys).await,
                    None => json!({"enabled": false, "count": 0, "keys": []}),
                };
                json_response(StatusCode::OK, &info)
            }
            "/router/health" if get => json_response(StatusCode::OK, &self.router_health()),
            "/providers" if get => json_response(
                StatusCode::OK,
                &crate::admin::providers(self.state.config.as_deref(), &self.state.routes),
            ),
            "/backend/info" if get => json_response(
                StatusCode::OK,
                &crate::admin::backend_info(
                    self.state.config.as_deref(),
                    &self.state.routes,
                    &self.state.router,
                ),
            ),
            "/router/stats" if get => json_response(StatusCode::OK, &self.router_stats()),
            "/admin/reload" if method == Method::POST => {
                let app = self.app.clone();
                match tokio::task::spawn_blocking(move || app.reload()).await {
                    Ok(Ok(report)) => json_response(
                        StatusCode::OK,
                        &serde_json::to_value(&report).unwrap_or_default(),
                    ),
                    Ok(Err(e @ ReloadError::Config(_))) => crate::error::error_response(
                        StatusCode::BAD_REQUEST,
                        format,
                        "invalid_config",
                        &e.to_string(),
                    ),
                    Ok(Err(e)) => crate::error::error_response(
                        StatusCode::BAD_REQUEST,
                        format,
                        "reload_unavailable",
                        &e.to_string(),
                    ),
                    Err(e) => crate::error::error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format,
                        "reload_failed",
                        &format!(
                            "the reload did not finish: {e}; the config in force is unchanged"
                        ),
                    ),
                }
            }
            "/router/rate-limits" if get => json_response(
                StatusCode::OK,
                &json!({
                    "clients": self.state.router.client_limits.snapshot(),
                    "backends": self.state.router.backend_limits.snapshot(),
                }),
            ),
            p if get && p.starts_with("/v1/models/") => {
                let id = &p["/v1/models/".len()..];
                match client.as_ref().and_then(|c| c.virtual_key.as_ref()) {
                    Some(key) if !key.allows(id) => {
                        return self.finish(
                            ProxyError::ModelNotAllowed {
                                model: id.chars().take(200).collect(),
                                key: key.name().to_string(),
                            }
                            .to_response(format),
                            authed.as_ref(),
                        )
                    }
                    _ => {}
                }
                match self.model_by_id(id) {
                    Some(model) => json_response(StatusCode::OK, &model),
                    None => ProxyError::ModelNotFound(id.to_string()).to_response(format),
                }
            }
            "/auth/status" if get => json_response(StatusCode::OK, &self.auth_status()),
            "/auth/metrics" if get => json_response(
                StatusCode::OK,
                &self
                    .state
                    .router
                    .auth
                    .as_ref()
                    .map_or_else(|| json!({"enabled": false, "keys": []}), |k| k.metrics()),
            ),
            "/auth/reload-keys" if method == Method::POST => match self.app.reload_keys() {
                None => ProxyError::bad_request(
                    "auth_not_enabled",
                    "`auth` is not in [stack] order: there are no keys to reload",
                )
                .to_response(format),
                Some(Ok(report)) => {
                    json_response(StatusCode::OK, &json!({"reloaded": true, "keys": report}))
                }
                Some(Err(e)) => crate::error::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format,
                    "keys_reload_failed",
                    &format!("{e}; the keys in force are unchanged"),
                ),
            },
            "/"
            | "/health"
            | "/openapi.json"
            | "/v1/models"
            | "/router/health"
            | "/router/rate-limits"
            | "/providers"
            | "/backend/info"
            | "/router/stats"
            | "/admin/reload"
            | "/auth/status"
            | "/auth/metrics"
            | "/auth/reload-keys"
            | "/v1/key/info"
            | "/admin/keys" => wrong_method(path),
            p if p.starts_with("/v1/models/") => wrong_method(path),
            _ => return self.unknown_path(req, format).await,
        };
        self.finish(response, authed.as_ref())
    }

    /// Count the answer for the key that asked, if one did.
    fn finish(
        &self,
        response: Response<ProxyBody>,
        key: Option<&crate::secret::Secret>,
    ) -> Response<ProxyBody> {
        if let (Some(keys), Some(key)) = (&self.state.router.auth, key) {
            keys.finish(key, response.status());
        }
        response
    }

    /// A path that is no endpoint: through the stack without a body (so
    /// `log` records it and `metrics` counts it under `(unknown)`), to be
    /// answered 404 in the format of its prefix where a target would be
    /// chosen. Its body is never read.
    async fn unknown_path<B>(self, req: Request<B>, format: ClientFormat) -> Response<ProxyBody> {
        let (mut parts, _body) = req.into_parts();
        let unknown = crate::request::UnknownPath {
            method: parts.method.clone(),
            path: parts.uri.path().into(),
        };
        tracing::debug!(method = %unknown.method, path = %crate::escape::Escaped(&unknown.path), "unknown path");
        parts.extensions.insert(unknown);
        let req = Request::from_parts(parts, ProxyBody::empty());
        match self.state.service.call_ref(req).await {
            Ok(response) => response,
            Err(e) => e.to_response(format),
        }
    }

    /// `GET /router/stats`.
    fn router_stats(&self) -> serde_json::Value {
        let shared = &self.app.shared;
        let state = &self.state;
        crate::admin::router_stats(crate::admin::StatsContext {
            uptime: shared.started.elapsed(),
            started_at: unix_secs(shared.started_at),
            config_path: state.config.as_ref().map(|c| c.path.display().to_string()),
            loaded_at: unix_secs(state.loaded_at),
            reloads: shared.reloads.load(Ordering::Relaxed),
            failed_reloads: shared.failed_reloads.load(Ordering::Relaxed),
            last_reload_error: shared
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            stack: state.stack.iter().map(|l| l.as_str()).collect(),
            metrics_on: state.config.is_none() || state.stack.contains(&LayerName::Metrics),
            routes: &state.routes,
            router: &state.router,
        })
    }

    /// `GET /auth/status`.
    fn auth_status(&self) -> serde_json::Value {
        match &self.state.router.auth {
            Some(keys) => keys.status(),
            None => json!({"enabled": false}),
        }
    }
}
