//! `budget`: spend budgets of virtual keys and budget groups, in tokens or
//! dollars, per day, week, month or rolling window.
//!
//! `auth` resolves the budget a client spends from (its virtual key's
//! `budget`, or its group's: see
//! [`VirtualKey::budget_of`](crate::layers::auth::VirtualKey::budget_of))
//! and puts it in the request's [`ClientKey`](crate::layers::auth::ClientKey);
//! this layer, placed after `auth`, enforces it:
//!
//! - **Admission** reserves the request's [`Estimate`]: its input tokens
//!   (counted with the tokenizer of the token-count endpoints) plus the most
//!   output it asked for (`max_tokens`, `max_completion_tokens`,
//!   `max_output_tokens`, else [`DEFAULT_MAX_TOKENS`]) — as tokens, or priced
//!   in nano-dollars by a [`Pricer`] for a dollar budget. The reservation is
//!   made atomically ([`admits`]: `spent + reserved + estimate <= limit`); a
//!   request whose reservation does not fit gets 429 `budget_exceeded` in
//!   the client's format, with `Retry-After` until it would fit (see
//!   [`wait_for_room`]: the period's reset, or 1 s when only requests in
//!   flight are in the way). A dollar budget asking for a model without a
//!   price gets 400 `model_not_priced`: a cost is never counted as zero.
//! - **Settlement**, when the answer ends (complete, failed, or dropped by
//!   the client), replaces the reservation by what the request cost. The
//!   answer is charged by its [`UsageSlot`](crate::usage::UsageSlot)'s rule
//!   — the one rule, which the log record and the metrics read too — with
//!   this layer's reservation: the upstream's usage (streamed answers
//!   included: the upstream is asked for stream usage, and that chunk is
//!   kept from a client that did not ask for it); for a stream cut short
//!   before its final usage, or an answer that ended without usage, the
//!   input the upstream reported, else the reservation's input, plus the
//!   larger of the output reported and the output delivered (a token per 4
//!   bytes sent, framing included, at most the reservation's output). An
//!   error answer costs what the upstream reported, if anything; no answer
//!   at all (an upstream error, or the client gone before the answer's
//!   head) costs what the attempts that failed reported (below), and the
//!   rest of the reservation is released.
//! - **Failover and retries**: the answer is the target's that answered,
//!   and a dollar cost is priced at that target's model. Each attempt that
//!   did not answer — an error answer failed over or retried (a JSON one is
//!   read, at most 64 KiB, for its `usage`), a stream that broke before its
//!   first content — is charged the usage its upstream reported, priced at
//!   that attempt's model; **an attempt that reported nothing costs
//!   nothing**.
//!
//! So N concurrent requests against a budget with room for k never let more
//! than k through: an answer may still cost more than its estimate (a
//! missing `max_tokens` above the default, an estimate below the upstream's
//! count), which is the only overshoot, of at most one estimate's error per
//! request in flight.
//!
//! Periods are counted in UTC (see [`Window`]): `day`, `week` (from Monday)
//! and `month` are calendar periods; a rolling `"30d"` / `"12h"` is kept in
//! 30 buckets.
//!
//! The spend lives in [`Budgets`]: a [`Ledger`] in this process, saved to a
//! spend file (`[state] spend_file`, by default `llm-router-spend.json` next
//! to the config) every few seconds while it changes and at shutdown, and
//! read back at start — spend survives a restart. With `[state] store =
//! "redis"` budgets are decided in Redis (one script per reservation and
//! per settlement), shared by every replica:
//!
//! - **Reservation expiry.** A reservation in Redis is a lease of
//!   [`HOLD_FOR`] (30 s) that its replica renews every [`RENEW_EVERY`]
//!   (10 s) while the request is in flight: a replica that crashed (or lost
//!   Redis) with requests in flight holds their budget 30 s past its last
//!   renewal at most, however long a stream would have lasted.
//! - **Redis down, then back.** While Redis is unavailable (or slower than
//!   `[state] timeout`), each replica decides in its [`Ledger`], from the
//!   spend Redis last reported plus its own since; replicas may then
//!   together pass a budget by what each admits meanwhile. The spend decided
//!   meanwhile, and settlements that could not reach Redis, are kept (at
//!   most [`MAX_UNWRITTEN`]) and written back when the replica reconnects,
//!   before its requests use Redis again (leftovers: every
//!   [`RENEW_EVERY`]). Redis that came back empty (a new budget epoch) gets
//!   all of the replica's spend that still counts instead. A settlement
//!   whose answer was lost is written again: counted twice at worst, never
//!   lost.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::{Endpoint, LlmRequest, ProxyBody, ProxyError};
//! use llm_router::layers::auth::{BudgetId, BudgetSpec, ClientKey, KeyBudget};
//! use llm_router::layers::budget::{BudgetLayer, Budgets};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let budgets = Arc::new(Budgets::new());
//! let upstream = service_fn(|_req: Request<ProxyBody>| async {
//!     Ok::<_, ProxyError>(Response::new(ProxyBody::full("{}")))
//! });
//! let service = BudgetLayer::new(budgets.clone()).layer(upstream);
//!
//! // A client of `team-a`, whose budget is 100 tokens a day (`auth` puts
//! // this in the request).
//! let budget = KeyBudget {
//!     id: BudgetId::Key("team-a".into()),
//!     spec: BudgetSpec::parse(None, Some(100), Some("day")).unwrap(),
//! };
//! let request = |max_tokens: u64| {
//!     let body = format!(r#"{{"model":"m","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#);
//!     let mut req = Request::new(ProxyBody::empty());
//!     req.extensions_mut().insert(LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes()).unwrap());
//!     req.extensions_mut().insert(ClientKey { budget: Some(budget.clone()), ..Default::default() });
//!     req
//! };
//! // 8 input tokens and up to 50 out: 58 reserved, then settled when the
//! // answer ends. No usage was reported: the input estimate, plus the output
//! // delivered ("{}": 2 bytes, 1 token).
//! let answer = service.clone().oneshot(request(50)).await.unwrap();
//! assert_eq!(answer.status(), 200);
//! answer.into_body().collect().await.unwrap();
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! let spend = budgets.ledger().view(&budget.id, &budget.spec, now);
//! assert_eq!((spend.spent, spend.reserved), (9, 0));
//! // Up to 200 out: more than the budget.
//! let refused = service.oneshot(request(200)).await.unwrap();
//! assert_eq!(refused.status(), 429);
//! assert!(refused.headers().contains_key("retry-after"));
//! # }
//! ```

// Parts of this module are the `access` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "access"), allow(unused_imports, dead_code))]

mod budgets;
mod charge;
mod estimate;
#[cfg(feature = "access")]
mod layer;
mod ledger;
mod period;
mod pricer;
mod shared;
mod snapshot;
mod sync;
#[cfg(test)]
mod tests;

/// Token usage of an answer (what a [`Pricer`] prices).
pub use crate::usage::Usage;
pub(crate) use budgets::unix_now;
pub use budgets::{Budgets, Hold, SAVE_EVERY};
pub use estimate::{input_tokens, max_output_tokens, Estimate};
#[cfg(feature = "access")]
pub use layer::{Budget, BudgetConfig, BudgetLayer, ResponseFuture, DEFAULT_MAX_TOKENS};
pub use ledger::{
    admits, wait_for_room, Ledger, Limit, Refusal, Spend, Unit, MAX_BUDGETS, NANOS_PER_USD,
};
pub use period::{Window, ROLLING_BUCKETS};
pub use pricer::{FixedPrices, NoPrices, Pricer};
pub use shared::{HOLD_FOR, RENEW_EVERY};
pub use snapshot::SPEND_FILE;
pub use sync::{MAX_LEASES, MAX_UNWRITTEN};
