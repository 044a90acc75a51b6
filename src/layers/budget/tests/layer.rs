//! The layer around a scripted inner service: what is reserved, refused,
//! settled and released.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

use crate::body::ProxyBody;
use crate::classify::{AttemptRecord, Outcome};
use crate::error::ProxyError;
use crate::keys::{BudgetId, BudgetSpec, ClientKey, KeyBudget};
use crate::layers::budget::{BudgetLayer, Budgets, FixedPrices, Spend};
use crate::request::{Endpoint, LlmRequest, RequestContext};
use crate::usage::{Usage, UsageRequestedByProxy, UsageSlot, UsageWanted};

fn budget(spec: BudgetSpec) -> KeyBudget {
    KeyBudget {
        id: BudgetId::Key("team-a".into()),
        spec,
    }
}

fn tokens(n: u64) -> KeyBudget {
    budget(BudgetSpec::parse(None, Some(n), Some("day")).unwrap())
}

fn usd(n: f64) -> KeyBudget {
    budget(BudgetSpec::parse(Some(n), None, Some("month")).unwrap())
}

fn request(endpoint: Endpoint, body: Value, budget: Option<&KeyBudget>) -> Request<ProxyBody> {
    let mut req = Request::new(ProxyBody::empty());
    let llm = LlmRequest::parse(endpoint, body.to_string().as_bytes()).unwrap();
    req.extensions_mut().insert(llm);
    if let Some(b) = budget {
        req.extensions_mut().insert(ClientKey {
            budget: Some(b.clone()),
            ..Default::default()
        });
    }
    req
}

/// A chat request of 8 input tokens asking for at most `max` out.
fn chat(max: u64, budget: Option<&KeyBudget>) -> Request<ProxyBody> {
    request(
        Endpoint::ChatCompletions,
        json!({"model": "m", "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]}),
        budget,
    )
}

/// What the inner service saw, and what it answers.
#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<Request<ProxyBody>>>>,
}

impl Upstream {
    /// Answers `status` with `body`, reporting `usage` when given.
    fn service(
        &self,
        status: StatusCode,
        body: &'static str,
        usage: Option<Usage>,
    ) -> impl tower::Service<
        Request<ProxyBody>,
        Response = Response<ProxyBody>,
        Error = ProxyError,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        let seen = self.seen.clone();
        service_fn(move |req: Request<ProxyBody>| {
            let slot = UsageSlot::default();
            if let Some(u) = usage {
                slot.set(u);
            }
            if let Some(context) = req.extensions().get::<RequestContext>() {
                context.push_attempt(|| AttemptRecord {
                    backend: "b".into(),
                    model: "upstream-model".into(),
                    outcome: Outcome::Success,
                    status: Some(200),
                    error_kind: "none",
                    elapsed: Default::default(),
                    usage: None,
                });
            }
            seen.lock().unwrap().push(req);
            async move {
                let mut r = Response::new(ProxyBody::full(body));
                *r.status_mut() = status;
                r.extensions_mut().insert(slot);
                Ok::<_, ProxyError>(r)
            }
        })
    }
}

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

fn spend(budgets: &Budgets, b: &KeyBudget) -> Spend {
    let now = crate::layers::budget::budgets::unix_now();
    budgets.ledger().view(&b.id, &b.spec, now)
}

async fn read(r: Response<ProxyBody>) -> (StatusCode, http::HeaderMap, Value) {
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_token_budget_is_settled_from_usage_then_refuses() {
    let budgets = Arc::new(Budgets::new());
    let up = Upstream::default();
    let b = tokens(100);
    let svc = BudgetLayer::new(budgets.clone()).layer(up.service(
        StatusCode::OK,
        "{}",
        Some(usage(8, 30)),
    ));
    let answer = svc.clone().oneshot(chat(50, Some(&b))).await.unwrap();
    // In flight: the estimate is reserved.
    assert_eq!(spend(&budgets, &b).reserved, 58);
    assert_eq!(read(answer).await.0, StatusCode::OK);
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved, s.in_flight), (38, 0, 0));
    // The inner service was asked for usage.
    assert!(up.seen.lock().unwrap()[0]
        .extensions()
        .get::<UsageWanted>()
        .is_some());
    // 62 left: 8 + 55 does not fit, in either client format.
    let (status, headers, v) = read(svc.clone().oneshot(chat(55, Some(&b))).await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(http::header::RETRY_AFTER));
    assert_eq!(v["error"]["code"], "budget_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("key:team-a"), "{message}");
    assert!(message.contains("38 tokens spent"), "{message}");
    let messages = request(
        Endpoint::Messages,
        json!({"model": "m", "max_tokens": 55, "messages": [{"role": "user", "content": "hi"}]}),
        Some(&b),
    );
    let (status, headers, v) = read(svc.clone().oneshot(messages).await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(http::header::RETRY_AFTER));
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // Refusals reserve nothing, and nothing reached the upstream.
    assert_eq!(spend(&budgets, &b).reserved, 0);
    assert_eq!(up.seen.lock().unwrap().len(), 1);
    // 8 + 54 fits exactly.
    assert_eq!(
        read(svc.oneshot(chat(54, Some(&b))).await.unwrap()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_a_budget_pass_untouched() {
    let budgets = Arc::new(Budgets::new());
    let up = Upstream::default();
    let svc = BudgetLayer::new(budgets.clone()).layer(up.service(StatusCode::OK, "{}", None));
    let mut req = request(
        Endpoint::ChatCompletions,
        json!({"model": "m", "stream": true, "messages": []}),
        None,
    );
    req.extensions_mut().insert(ClientKey::default());
    svc.oneshot(req).await.unwrap();
    let seen = up.seen.lock().unwrap();
    assert!(seen[0].extensions().get::<UsageWanted>().is_none());
    assert!(seen[0]
        .extensions()
        .get::<LlmRequest>()
        .unwrap()
        .is_unedited());
    assert!(budgets.ledger().is_empty());
}

#[tokio::test]
async fn streams_ask_the_upstream_for_usage() {
    let budgets = Arc::new(Budgets::new());
    let up = Upstream::default();
    let b = tokens(10_000);
    let svc = BudgetLayer::new(budgets).layer(up.service(StatusCode::OK, "{}", None));
    let req = request(
        Endpoint::ChatCompletions,
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        Some(&b),
    );
    svc.oneshot(req).await.unwrap();
    let seen = up.seen.lock().unwrap();
    let ext = seen[0].extensions();
    assert!(ext.get::<UsageRequestedByProxy>().is_some());
    assert_eq!(
        ext.get::<LlmRequest>().unwrap().body()["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn errors_release_and_error_answers_cost_what_was_reported() {
    let budgets = Arc::new(Budgets::new());
    let b = tokens(1_000);
    // No answer at all: released.
    let failing = service_fn(|_req: Request<ProxyBody>| async {
        Err::<Response<ProxyBody>, _>(ProxyError::Internal("boom".into()))
    });
    let svc = BudgetLayer::new(budgets.clone()).layer(failing);
    assert!(svc.oneshot(chat(100, Some(&b))).await.is_err());
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved, s.in_flight), (0, 0, 0));
    // An error answer without usage: nothing spent.
    let up = Upstream::default();
    let svc = BudgetLayer::new(budgets.clone()).layer(up.service(
        StatusCode::BAD_GATEWAY,
        r#"{"error":{}}"#,
        None,
    ));
    read(svc.oneshot(chat(100, Some(&b))).await.unwrap()).await;
    assert_eq!(spend(&budgets, &b).spent, 0);
    // With usage: that.
    let svc = BudgetLayer::new(budgets.clone()).layer(up.service(
        StatusCode::BAD_REQUEST,
        r#"{"error":{}}"#,
        Some(usage(5, 0)),
    ));
    read(svc.oneshot(chat(100, Some(&b))).await.unwrap()).await;
    assert_eq!(spend(&budgets, &b).spent, 5);
}

#[tokio::test]
async fn a_dropped_answer_is_charged_its_input_and_what_was_delivered() {
    let budgets = Arc::new(Budgets::new());
    let up = Upstream::default();
    let b = tokens(1_000);
    let svc =
        BudgetLayer::new(budgets.clone()).layer(up.service(StatusCode::OK, "0123456789", None));
    let answer = svc.clone().oneshot(chat(100, Some(&b))).await.unwrap();
    // Dropped before a byte went out: the input estimate.
    drop(answer);
    assert_eq!(spend(&budgets, &b).spent, 8);
    // Read whole without usage: input + 10 bytes (3 tokens).
    read(svc.oneshot(chat(100, Some(&b))).await.unwrap()).await;
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved), (8 + 8 + 3, 0));
}

#[tokio::test]
async fn dollar_budgets_price_the_model_that_answered() {
    let budgets = Arc::new(Budgets::new());
    let up = Upstream::default();
    let b = usd(1.0);
    // Unpriced: 400 model_not_priced, nothing sent or reserved.
    let svc = BudgetLayer::new(budgets.clone()).layer(up.service(
        StatusCode::OK,
        "{}",
        Some(usage(8, 10)),
    ));
    let (status, _, v) = read(svc.oneshot(chat(50, Some(&b))).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "model_not_priced");
    assert!(up.seen.lock().unwrap().is_empty());
    // Priced: the estimate at the asked model's price, the cost at the
    // answering target's ($1/M in, $2/M out there).
    let prices = FixedPrices::new()
        .price("m", 1000.0, 1000.0)
        .price("upstream-model", 1.0, 2.0);
    let svc = BudgetLayer::new(budgets.clone())
        .pricer(Arc::new(prices))
        .layer(up.service(StatusCode::OK, "{}", Some(usage(8, 10))));
    let answer = svc.clone().oneshot(chat(50, Some(&b))).await.unwrap();
    // 58 tokens at $1000/M: $0.058.
    assert_eq!(spend(&budgets, &b).reserved, 58_000_000);
    read(answer).await;
    assert_eq!(spend(&budgets, &b).spent, 8 * 1_000 + 10 * 2_000);
    // $1 holds 17 such reservations at most; the 18th is refused.
    let mut held = Vec::new();
    for _ in 0..17 {
        let r = svc.clone().oneshot(chat(50, Some(&b))).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let (status, _, v) = read(svc.oneshot(chat(50, Some(&b))).await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(v["error"]["message"].as_str().unwrap().contains("$"), "{v}");
}

/// An inner service that records an attempt which failed after its
/// upstream reported `failed` (at the model `first`), then answers with
/// `answer` reporting (8, 10) from the model `second` — or, without
/// `answer`, fails with no answer.
fn failing_over(
    failed: Option<Usage>,
    answer: Option<StatusCode>,
) -> impl tower::Service<
    Request<ProxyBody>,
    Response = Response<ProxyBody>,
    Error = ProxyError,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<ProxyBody>| {
        let context = req.extensions().get::<RequestContext>().cloned().unwrap();
        let attempt = |model: &str, outcome, status, slot: &UsageSlot| AttemptRecord {
            backend: "b".into(),
            model: model.into(),
            outcome,
            status,
            error_kind: "none",
            elapsed: Default::default(),
            usage: Some(slot.clone()),
        };
        let first = UsageSlot::default();
        if let Some(u) = failed {
            first.set(u);
        }
        context.push_attempt(|| attempt("first", Outcome::ServerError, Some(500), &first));
        let second = UsageSlot::default();
        second.set(usage(8, 10));
        let status = answer.map(|s| s.as_u16());
        let outcome = answer.map_or(Outcome::Timeout, Outcome::of_status);
        context.push_attempt(|| attempt("second", outcome, status, &second));
        async move {
            let Some(status) = answer else {
                return Err(ProxyError::Internal("no answer".into()));
            };
            let mut r = Response::new(ProxyBody::full("{}"));
            *r.status_mut() = status;
            r.extensions_mut().insert(second);
            Ok(r)
        }
    })
}

#[tokio::test]
async fn attempts_that_failed_are_charged_what_they_reported() {
    let budgets = Arc::new(Budgets::new());
    // Tokens: the answer's 18 and the failed attempt's 30.
    let b = tokens(1_000);
    let svc = BudgetLayer::new(budgets.clone())
        .layer(failing_over(Some(usage(25, 5)), Some(StatusCode::OK)));
    read(svc.oneshot(chat(50, Some(&b))).await.unwrap()).await;
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved), (18 + 30, 0));
    // A failed attempt that reported nothing costs nothing.
    let b = budget(BudgetSpec::parse(None, Some(1_000), Some("week")).unwrap());
    let svc = BudgetLayer::new(budgets.clone()).layer(failing_over(None, Some(StatusCode::OK)));
    read(svc.oneshot(chat(50, Some(&b))).await.unwrap()).await;
    assert_eq!(spend(&budgets, &b).spent, 18);
    // No answer at all: only what the failed attempts reported (the last
    // one, which timed out, reported (8, 10) too).
    let b = budget(BudgetSpec::parse(None, Some(1_000), Some("month")).unwrap());
    let svc = BudgetLayer::new(budgets.clone()).layer(failing_over(Some(usage(25, 5)), None));
    assert!(svc.oneshot(chat(50, Some(&b))).await.is_err());
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved, s.in_flight), (30 + 18, 0, 0));

    // Dollars: each attempt at its own model's price.
    let b = usd(1.0);
    let prices = FixedPrices::new()
        .price("m", 1000.0, 1000.0)
        .price("first", 1.0, 1.0)
        .price("second", 2.0, 2.0);
    let svc = BudgetLayer::new(budgets.clone())
        .pricer(Arc::new(prices))
        .layer(failing_over(Some(usage(25, 5)), Some(StatusCode::OK)));
    read(svc.oneshot(chat(50, Some(&b))).await.unwrap()).await;
    assert_eq!(spend(&budgets, &b).spent, 30 * 1_000 + 18 * 2_000);
}

#[tokio::test]
async fn a_client_gone_before_the_answer_leaves_the_failed_attempts_charged() {
    let budgets = Arc::new(Budgets::new());
    let b = tokens(1_000);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    // One attempt failed after reporting (25, 5); the next never answers.
    let hanging = service_fn(move |req: Request<ProxyBody>| {
        let context = req.extensions().get::<RequestContext>().cloned().unwrap();
        let slot = UsageSlot::default();
        slot.set(usage(25, 5));
        context.push_attempt(|| AttemptRecord {
            backend: "b".into(),
            model: "first".into(),
            outcome: Outcome::RateLimited,
            status: Some(429),
            error_kind: "status_429",
            elapsed: Default::default(),
            usage: Some(slot),
        });
        let tx = tx.lock().unwrap().take();
        async move {
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
            std::future::pending::<Result<Response<ProxyBody>, ProxyError>>().await
        }
    });
    let svc = BudgetLayer::new(budgets.clone()).layer(hanging);
    let mut call = Box::pin(svc.oneshot(chat(50, Some(&b))));
    tokio::select! {
        _ = &mut call => panic!("no answer was to come"),
        _ = rx => {}
    }
    assert_eq!(spend(&budgets, &b).reserved, 58);
    // The client goes away.
    drop(call);
    let s = spend(&budgets, &b);
    assert_eq!((s.spent, s.reserved, s.in_flight), (30, 0, 0));
}
