//! [`BudgetLayer`] and its [`Budget`] service: the reservation at
//! admission, the 429 and the 400 in the client's format, and the answer
//! body that settles the reservation when the answer ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::budgets::{Budgets, Hold};
use super::charge::Charge;
use super::estimate::Estimate;
use super::ledger::{Limit, Refusal, Unit, MAX_BUDGETS};
use super::period::rfc3339;
use super::pricer::{NoPrices, Pricer};
use crate::body::{End, Observe, Observer, ProxyBody};
use crate::classify::RejectedBy;
use crate::error::ProxyError;
use crate::keys::{ClientKey, KeyBudget};
use crate::request::{ClientFormat, LlmRequest, RequestContext};
use crate::usage::UsageSlot;

/// Output tokens reserved for a request that names no `max_tokens`
/// (`max_completion_tokens`, `max_output_tokens`).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// How the `budget` layer estimates and prices requests: its config, apart
/// from the shared [`Budgets`].
#[derive(Clone)]
pub struct BudgetConfig {
    /// Output tokens reserved for a request that names no maximum
    /// ([`DEFAULT_MAX_TOKENS`]).
    pub default_max_tokens: u64,
    /// Prices for dollar budgets ([`NoPrices`]: every model unpriced).
    pub pricer: Arc<dyn Pricer>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            default_max_tokens: DEFAULT_MAX_TOKENS,
            pricer: Arc::new(NoPrices),
        }
    }
}

impl fmt::Debug for BudgetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetConfig")
            .field("default_max_tokens", &self.default_max_tokens)
            .field("pricer", &self.pricer)
            .finish()
    }
}

/// Applies [`Budget`]. See the [module docs](crate::layers::budget).
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    budgets: Arc<Budgets>,
    config: Arc<BudgetConfig>,
}

impl BudgetLayer {
    /// Enforce budgets kept in `budgets`, with the default config.
    pub fn new(budgets: Arc<Budgets>) -> Self {
        BudgetLayer {
            budgets,
            config: Arc::new(BudgetConfig::default()),
        }
    }

    /// Reserve `n` output tokens for a request that names no maximum.
    pub fn default_max_tokens(mut self, n: u64) -> Self {
        Arc::make_mut(&mut self.config).default_max_tokens = n;
        self
    }

    /// Price dollar budgets with `pricer`.
    pub fn pricer(mut self, pricer: Arc<dyn Pricer>) -> Self {
        Arc::make_mut(&mut self.config).pricer = pricer;
        self
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Budget<S> {
        Budget {
            inner,
            budgets: self.budgets.clone(),
            config: self.config.clone(),
        }
    }
}

/// The budget service. See the [module docs](crate::layers::budget).
#[derive(Clone, Debug)]
pub struct Budget<S> {
    inner: S,
    budgets: Arc<Budgets>,
    config: Arc<BudgetConfig>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

pin_project! {
    /// The future of [`Budget`]: the inner call as it is for a request
    /// without a budget, else the reservation and the call.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Through { #[pin] future: F },
        Budgeted { future: BoxFuture },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            KindProj::Through { future } => future.poll(cx),
            KindProj::Budgeted { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S> Service<Request<ProxyBody>> for Budget<S>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let budget = req
            .extensions()
            .get::<ClientKey>()
            .and_then(|c| c.budget.clone());
        // A request with a budget and a body that costs something.
        let llm = req
            .extensions()
            .get::<LlmRequest>()
            .filter(|l| l.is_body_read() && !l.endpoint().counts_tokens())
            .cloned();
        let (Some(budget), Some(llm)) = (budget, llm) else {
            return ResponseFuture {
                kind: Kind::Through {
                    future: self.inner.call(req),
                },
            };
        };
        // Decided before the inner service is called: take the service that
        // was polled ready, leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let future = admit(
            inner,
            self.budgets.clone(),
            self.config.clone(),
            budget,
            llm,
            req,
        );
        ResponseFuture {
            kind: Kind::Budgeted {
                future: Box::pin(future),
            },
        }
    }
}

/// Reserve the request's estimate, call the inner service, and settle when
/// the answer ends.
async fn admit<S>(
    mut inner: S,
    budgets: Arc<Budgets>,
    config: Arc<BudgetConfig>,
    budget: KeyBudget,
    llm: LlmRequest,
    mut req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ProxyError>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    let format = llm.format();
    let estimate = Estimate::of(&llm, config.default_max_tokens).await;
    let limit = Limit::of(&budget.spec.limit);
    let amount = match limit.unit {
        Unit::Tokens => estimate.total(),
        Unit::NanoUsd => {
            match config
                .pricer
                .estimate_nanos(llm.model(), estimate.input, estimate.output)
            {
                Some(nanos) => nanos,
                None => {
                    let error = ProxyError::ModelNotPriced {
                        model: llm.model().to_string(),
                        budget: budget.id.to_string(),
                    };
                    return Ok(error.to_response(format));
                }
            }
        }
    };
    let hold = match budgets.reserve(&budget, amount).await {
        Ok(hold) => hold,
        Err(refusal) => return Ok(refuse(&budget, refusal, amount, format)),
    };
    crate::request::want_usage(req.extensions_mut());
    // The attempts say which target answered (the model priced) and what
    // those that failed before it reported.
    let context = RequestContext::of(req.extensions_mut()).clone();
    context.record_attempts();
    let charge = match limit.unit {
        Unit::Tokens => Charge::tokens(context),
        Unit::NanoUsd => Charge::usd(config.pricer.clone(), llm.model().to_string(), context),
    };
    // Until the answer's head: the inner service failing (no answer), or
    // the client going away, settles at what failed attempts reported.
    let mut awaiting = Awaiting(Some((hold, charge)));
    let response = inner.call(req).await?;
    let failed = !response.status().is_success();
    // What the answer is charged is its usage slot's rule (a slot of its
    // own for an answer that brings none): with the reservation, unless it
    // is an error answer, which costs what its upstream reported.
    let slot = response
        .extensions()
        .get::<UsageSlot>()
        .cloned()
        .unwrap_or_default();
    if !failed {
        slot.reserve(estimate.input, estimate.output);
    }
    let pending = awaiting.0.take();
    Ok(response.map(|body| ProxyBody::new(Observe::new(body, Settle { pending, slot }))))
}

/// The 429 of a reservation that does not fit, in the client's format.
fn refuse(
    budget: &KeyBudget,
    refusal: Refusal,
    amount: u64,
    format: ClientFormat,
) -> Response<ProxyBody> {
    let (message, wait) = match refusal {
        Refusal::Over { spend, wait } => {
            let unit = spend.unit;
            let why = if amount > spend.limit {
                format!(
                    "this request may cost up to {} (its estimate), more than the whole budget",
                    unit.show(amount)
                )
            } else {
                format!(
                    "{} spent and {} reserved by requests in flight; this request may cost up to {} (its estimate)",
                    unit.show(spend.spent),
                    unit.show(spend.reserved),
                    unit.show(amount)
                )
            };
            (
                format!(
                    "Budget exceeded for {}: {} per {}; {why}. The budget resets at {}",
                    budget.id,
                    unit.show(spend.limit),
                    budget.spec.period,
                    rfc3339(spend.resets_at)
                ),
                wait,
            )
        }
        Refusal::Full => (
            format!(
                "Budget of {} not tracked: llm-router tracks at most {MAX_BUDGETS} budgets and every one is in use",
                budget.id
            ),
            60,
        ),
    };
    let mut response = ProxyError::BudgetExceeded {
        message,
        retry_after: Duration::from_secs(wait),
    }
    .to_response(format);
    response.extensions_mut().insert(RejectedBy("budget"));
    response
}

/// The reservation and its charge while the answer's head has not come.
/// Dropped with them still in (the inner service failed, or the request's
/// future was dropped: the client went away), it settles at what the
/// attempts that failed reported, and releases the rest.
struct Awaiting(Option<(Hold, Charge)>);

impl Drop for Awaiting {
    fn drop(&mut self) {
        if let Some((hold, charge)) = self.0.take() {
            hold.settle(charge.amount(None, None, 0));
        }
    }
}

/// Counts what the answer sends and settles the reservation when it ends
/// (complete, failed, or dropped).
struct Settle {
    pending: Option<(Hold, Charge)>,
    slot: UsageSlot,
}

impl Observer for Settle {
    fn on_data(&mut self, data: &Bytes) {
        self.slot
            .sent(u64::try_from(data.len()).unwrap_or(u64::MAX));
    }

    fn on_end(mut self, _end: End<'_>) {
        let Some((hold, charge)) = self.pending.take() else {
            return;
        };
        let actual = charge.amount(Some(&self.slot), self.slot.get(), hold.amount());
        hold.settle(actual);
    }
}
