//! The JSON of the admin endpoints `GET /providers`, `GET /backend/info`
//! and `GET /router/stats` (served by [`App`](crate::App)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::{ApiKeySetting, BackendTools, Config};
use crate::routing::{Backend, Credential, RouteTable};
use crate::stack::RouterState;
use crate::upstream::translate::xml_tools::ToolMode;

/// `60s`, `1.5s`, `250ms`: how the config writes durations.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

fn credential(credential: &Credential) -> Value {
    match credential {
        Credential::None => json!({"kind": "none"}),
        Credential::Passthrough => json!({"kind": "passthrough"}),
        Credential::Key(key) => json!({"kind": "key", "key": key.masked()}),
    }
}

/// Every backend the routes use, by name.
fn route_backends(routes: &RouteTable) -> HashMap<&str, &Arc<Backend>> {
    routes
        .routes()
        .flat_map(|r| r.targets().iter())
        .map(|t| (t.backend().name(), t.backend()))
        .collect()
}

/// The models that send requests to `backend`.
fn served_by(routes: &RouteTable, backend: &str) -> Vec<Value> {
    routes
        .routes()
        .flat_map(|route| {
            route
                .targets()
                .iter()
                .filter(|t| t.backend().name() == backend)
                .map(|t| {
                    json!({
                        "model": route.name(),
                        "upstream_model": t.model().unwrap_or("*"),
                        "priority": t.get_priority(),
                        "weight": t.get_weight(),
                    })
                })
        })
        .collect()
}

/// One entry of `GET /providers`: what a backend is and how it is reached.
/// From the config when the app has one (every backend, used or not), else
/// from the route table (an app composed in code).
fn describe(name: &str, config: Option<&Config>, routes: &RouteTable) -> Value {
    let backends = route_backends(routes);
    let built = backends.get(name);
    let from_config = config.and_then(|c| c.backends.iter().find(|b| b.name == name));
    let provider = from_config
        .map(|b| b.provider.clone())
        .or_else(|| built.map(|b| b.provider().name().to_string()))
        .unwrap_or_default();
    let base_url = built
        .map(|b| b.base_url().to_string())
        .or_else(|| from_config.and_then(|b| b.base_url.clone()))
        .or_else(|| {
            crate::upstream::provider::by_name(&provider)
                .and_then(|p| p.default_base_url())
                .map(str::to_string)
        })
        .filter(|u| !u.is_empty());
    let mut out = json!({
        "name": name,
        "provider": provider,
        "base_url": base_url,
    });
    match (from_config, built) {
        (Some(b), _) => {
            out["credential"] = match &b.api_key {
                None => json!({"kind": "none"}),
                Some(ApiKeySetting::Passthrough) => json!({"kind": "passthrough"}),
                Some(ApiKeySetting::Key(k)) => {
                    json!({"kind": "key", "key": crate::secret::mask_key(k)})
                }
            };
            out["timeouts"] = json!({
                "timeout": duration(b.timeout),
                "connect_timeout": duration(b.connect_timeout),
                "first_byte_timeout": duration(b.first_byte_timeout),
                "idle_timeout": duration(b.idle_timeout),
            });
            out["tls_verify"] = json!(b.tls_verify);
            out["tools"] = json!(match b.tools {
                BackendTools::Xml => "xml",
                _ => "native",
            });
            out["rate_limit"] = match b.rate_limit {
                Some(l) => json!({"requests": l.requests, "window": duration(l.window)}),
                None => Value::Null,
            };
        }
        (None, Some(b)) => {
            out["credential"] = credential(b.credential());
            out["timeouts"] = json!({
                "timeout": duration(b.timeout()),
                "first_byte_timeout": duration(b.first_byte_timeout()),
                "idle_timeout": duration(b.idle_timeout()),
            });
            out["tools"] = json!(match b.tool_mode() {
                ToolMode::Xml { .. } => "xml",
                _ => "native",
            });
        }
        (None, None) => {}
    }
    out["models"] = Value::Array(served_by(routes, name));
    out
}

/// The backend names, in config order (else sorted).
fn backend_names(config: Option<&Config>, routes: &RouteTable) -> Vec<String> {
    match config {
        Some(c) => c.backends.iter().map(|b| b.name.clone()).collect(),
        None => {
            let mut names: Vec<String> = route_backends(routes)
                .keys()
                .map(|n| n.to_string())
                .collect();
            names.sort();
            names
        }
    }
}

/// `GET /providers`.
pub(crate) fn providers(config: Option<&Config>, routes: &RouteTable) -> Value {
    let backends: Vec<Value> = backend_names(config, routes)
        .iter()
        .map(|name| describe(name, config, routes))
        .collect();
    json!({ "backends": backends })
}

/// `GET /backend/info`: each backend's config, its live counters (from the
/// metrics), and the circuits, cooldowns and limit of its targets.
pub(crate) fn backend_info(
    config: Option<&Config>,
    routes: &RouteTable,
    router: &RouterState,
) -> Value {
    let stats = router.metrics.json();
    let circuits = router.breakers.snapshot();
    let cooldowns = router.cooldowns.snapshot();
    let limits = router.backend_limits.snapshot();
    let backends: Vec<Value> = backend_names(config, routes)
        .iter()
        .map(|name| {
            let mut out = describe(name, config, routes);
            let prefix = format!("{name}/");
            let stat = stats["backends"].get(name).cloned().unwrap_or_else(|| {
                json!({
                    "total_requests": 0,
                    "success_rate": 1.0,
                    "avg_response_time": 0.0,
                    "error_counts": {},
                    "retries": 0,
                    "tokens_in": 0,
                    "tokens_out": 0,
                })
            });
            let own_circuits: Vec<_> = circuits
                .iter()
                .filter(|c| c.target.starts_with(&prefix))
                .collect();
            let open = own_circuits.iter().filter(|c| c.state == "open").count();
            let half_open = own_circuits
                .iter()
                .filter(|c| c.state == "half_open")
                .count();
            out["stats"] = stat;
            out["state"] = json!({
                "available": open == 0 || open + half_open < own_circuits.len(),
                "circuits": own_circuits,
                "cooldowns": cooldowns.iter().filter(|c| c.target.starts_with(&prefix)).collect::<Vec<_>>(),
                "rate_limit": limits.iter().find(|l| &l.key == name),
            });
            out
        })
        .collect();
    json!({ "backends": backends })
}

/// What `GET /router/stats` knows about the app beyond its state.
pub(crate) struct StatsContext<'a> {
    pub(crate) uptime: Duration,
    pub(crate) started_at: u64,
    pub(crate) config_path: Option<String>,
    pub(crate) loaded_at: u64,
    pub(crate) reloads: u64,
    pub(crate) failed_reloads: u64,
    pub(crate) last_reload_error: Option<String>,
    pub(crate) stack: Vec<&'static str>,
    pub(crate) metrics_on: bool,
    pub(crate) routes: &'a RouteTable,
    pub(crate) router: &'a RouterState,
}

/// `GET /router/stats`.
pub(crate) fn router_stats(cx: StatsContext<'_>) -> Value {
    let totals = cx.router.metrics.summary();
    let circuits = cx.router.breakers.snapshot();
    let count = |state: &str| circuits.iter().filter(|c| c.state == state).count();
    let mut out = Map::new();
    out.insert("service".into(), json!("llm-router"));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    out.insert("uptime_secs".into(), json!(cx.uptime.as_secs()));
    out.insert("started_at".into(), json!(cx.started_at));
    out.insert(
        "config".into(),
        json!({
            "path": cx.config_path,
            "loaded_at": cx.loaded_at,
            "reloads": cx.reloads,
            "failed_reloads": cx.failed_reloads,
            "last_reload_error": cx.last_reload_error,
        }),
    );
    out.insert("stack".into(), json!(cx.stack));
    out.insert("metrics_enabled".into(), json!(cx.metrics_on));
    out.insert(
        "models_configured".into(),
        json!(cx.routes.models().collect::<Vec<_>>()),
    );
    for key in [
        "requests",
        "errors",
        "retries",
        "failovers",
        "rate_limit_rejections",
        "tokens",
        "models",
        "backends",
    ] {
        out.insert(key.into(), totals[key].clone());
    }
    out.insert(
        "circuits".into(),
        json!({
            "open": count("open"),
            "half_open": count("half_open"),
            "closed": count("closed"),
        }),
    );
    out.insert(
        "cooldowns".into(),
        json!(cx.router.cooldowns.snapshot().len()),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_config() {
        assert_eq!(duration(Duration::from_secs(60)), "60s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
    }
}
