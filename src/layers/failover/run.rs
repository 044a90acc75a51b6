//! The attempts of one request: targets in order, skipping those cooling
//! down or over their backend's limit, each result handed to [`decide`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use super::decide::{decide, Attempted, Tally, Then};
use super::FailoverLayer;
use crate::body::ProxyBody;
use crate::classify::{is_context_exceeded, Attempt, Replay};
use crate::error::ProxyError;
use crate::request::LlmRequest;
use crate::routing::{resolve_route, state_key, CredentialTag, ModelRoute, PerTarget, Target};

/// Read a (small) error answer's body, keeping the answer intact.
async fn read_error_body(response: Response<ProxyBody>) -> (Response<ProxyBody>, Bytes) {
    let (parts, body) = response.into_parts();
    let bytes = match Limited::new(body, 256 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    (
        Response::from_parts(parts, ProxyBody::full(bytes.clone())),
        bytes,
    )
}

/// Make the replayed request ask for `model` (the context fallback's name).
fn ask_for_model(replay: &mut Replay, model: &str) {
    if let Some(llm) = replay.extensions_mut().get_mut::<LlmRequest>() {
        llm.body_mut().insert("model".into(), model.into());
    }
}

/// The attempts of one request. An `async` block rather than an `async fn`:
/// the arguments are then kept once in the future, not twice (the future
/// lives as long as a slow stream takes to its first token).
#[allow(clippy::manual_async_fn)]
pub(super) fn run<S>(
    services: PerTarget<S>,
    layer: FailoverLayer,
    mut replay: Replay,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + Sync,
    S::Future: Send,
{
    async move {
        let Some(llm) = replay.extensions().get::<LlmRequest>().cloned() else {
            return Err(crate::routing::without_request(
                replay.extensions(),
                "failover",
            ));
        };
        // The model asked for: the client's, or the context fallback's.
        let mut requested: std::borrow::Cow<'_, str> = std::borrow::Cow::Borrowed(llm.model());
        let mut route: Arc<ModelRoute> = resolve_route(&layer.0.table, &llm)?;
        let mut fallback_used = false;
        let tag = replay.extensions().get::<CredentialTag>().copied();
        let tag = tag.as_ref();
        let mut last: Option<Result<Response<ProxyBody>, ProxyError>> = None;
        // What skipped targets said about coming back.
        let mut tally = Tally::default();

        'routes: loop {
            let current = route.clone();
            // One target (the usual case) needs no ordering, nor a `Vec`.
            let (one, many);
            let targets: &[&Target] = match current.targets() {
                [only] => {
                    one = [only];
                    &one
                }
                _ => {
                    many = current.ordered();
                    &many
                }
            };
            for (i, &target) in targets.iter().enumerate() {
                let key = state_key(target, &requested, tag);
                if let Some(left) = layer.0.cooldowns.remaining(&key) {
                    tracing::debug!(target_key = %crate::escape::Escaped(&key), "skipping: cooling down");
                    tally.back_in(left);
                    continue;
                }
                if let Some(limits) = &layer.0.limits {
                    // Shared through Redis: one round trip (bounded by
                    // `[state] timeout`); in memory: a look-up, no await.
                    let verdict = match limits.store() {
                        None => limits.check(target.backend().name()),
                        // Boxed: its state would otherwise enlarge every
                        // request's future, Redis or not.
                        Some(store) => {
                            Box::pin(limits.check_shared(store, target.backend().name())).await
                        }
                    };
                    if let Err(wait) = verdict {
                        tracing::debug!(target_key = %crate::escape::Escaped(&key), "skipping: backend rate limit exhausted");
                        tally.back_in(wait);
                        continue;
                    }
                }
                let extensions = replay.extensions_mut();
                // A target that will be skipped is not "left": with none, a
                // timeout is retried here rather than ending the request.
                let others_left = targets[i + 1..].iter().any(|t| {
                    layer
                        .0
                        .cooldowns
                        .remaining(&state_key(t, &requested, tag))
                        .is_none()
                        && layer
                            .0
                            .limits
                            .as_ref()
                            .is_none_or(|l| l.has_room(t.backend().name()))
                });
                // Absent means none left (one entry fewer to copy per attempt).
                if others_left {
                    extensions.insert(Attempt { others_left });
                } else {
                    extensions.remove::<Attempt>();
                }
                // The last target (with no context fallback to come) gets the
                // kept request itself: no copy.
                let last_chance =
                    i + 1 == targets.len() && (fallback_used || route.context_fallback().is_none());
                let mut service = match services.for_call(target) {
                    Ok(service) => service,
                    Err(e) => return Err(e),
                };
                let result = match service.ready().await {
                    Ok(svc) => {
                        let request = if last_chance {
                            std::mem::take(&mut replay).into_request()
                        } else {
                            replay.build()
                        };
                        svc.call(request).await
                    }
                    Err(e) => Err(e),
                };
                let attempted = Attempted::of(&result);
                let decision = decide(&attempted, &layer.0.policy, &mut tally);
                if let Some(wait) = decision.cooldown {
                    layer.0.cooldowns.start(&key, wait);
                }
                match decision.then {
                    Then::Answer => return result,
                    Then::CheckContext => {
                        let Ok(response) = result else { return result };
                        // Boxed: a rare path that would otherwise enlarge every request's future.
                        let (response, body) = Box::pin(read_error_body(response)).await;
                        if !is_context_exceeded(&body) {
                            return Ok(response);
                        }
                        match route.context_fallback() {
                            Some(name) if !fallback_used => {
                                match layer.0.table.resolve_for(name, llm.format()) {
                                    Some(next) => {
                                        tracing::info!(
                                            from = route.name(),
                                            to = name,
                                            "context length exceeded: trying the context fallback"
                                        );
                                        // The fallback is asked for under its own name
                                        // (what its targets without a model send).
                                        requested = std::borrow::Cow::Owned(name.to_string());
                                        ask_for_model(&mut replay, &requested);
                                        route = next.clone();
                                        fallback_used = true;
                                        continue 'routes;
                                    }
                                    None => return Ok(response),
                                }
                            }
                            _ => return Ok(response),
                        }
                    }
                    Then::Next { keep: false } => {}
                    Then::Next { keep: true } => {
                        match &result {
                            Err(e) => {
                                tracing::info!(target_key = %crate::escape::Escaped(&key), error = %crate::escape::Escaped(e), "failing over");
                            }
                            Ok(r) => {
                                tracing::info!(target_key = %crate::escape::Escaped(&key), status = r.status().as_u16(), "failing over");
                            }
                        }
                        last = Some(result);
                    }
                }
            }
            break;
        }
        match last {
            Some(result) => result,
            None => Err(tally.give_up(requested.into_owned())),
        }
    }
}
