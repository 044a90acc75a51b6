//! [`Charge`]: what a request is charged once its answer ends — the
//! answer's usage by its [`UsageSlot`]'s rule, plus what each attempt that
//! failed before it reported — as an amount of the budget.

use std::sync::Arc;

use super::pricer::Pricer;
use crate::classify::{AttemptRecord, Outcome};
use crate::request::RequestContext;
use crate::usage::{Usage, UsageSlot};

/// How usage becomes an amount of a budget: tokens (input and output), or
/// nano-dollars priced by a [`Pricer`] at the model each attempt was sent
/// to (else the model asked for).
pub(super) struct Charge {
    /// A dollar budget's prices and the model asked for; `None`: tokens.
    usd: Option<(Arc<dyn Pricer>, String)>,
    /// The request's attempts (recorded): which target answered, and what
    /// those that did not reported.
    context: RequestContext,
}

impl Charge {
    /// Charge in tokens.
    pub(super) fn tokens(context: RequestContext) -> Charge {
        Charge { usd: None, context }
    }

    /// Charge in nano-dollars, by `pricer`, for a request asking for `model`.
    pub(super) fn usd(pricer: Arc<dyn Pricer>, model: String, context: RequestContext) -> Charge {
        Charge {
            usd: Some((pricer, model)),
            context,
        }
    }

    /// What the request cost: the answer whose slot is `answer`, charged
    /// `usage` (none: nothing), plus what each attempt that did not answer
    /// reported (nothing reported, nothing charged). `reserved`: the dollar
    /// cost of an answer that cannot be priced.
    pub(super) fn amount(
        &self,
        answer: Option<&UsageSlot>,
        usage: Option<Usage>,
        reserved: u64,
    ) -> u64 {
        self.context.with_attempts(|attempts| {
            let failed = attempts
                .iter()
                .filter_map(|a| Some((a, a.failed_usage(answer)?)))
                .fold(0u64, |sum, (a, u)| {
                    sum.saturating_add(self.of(&u, Some(&a.model)).unwrap_or(0))
                });
            let answered = usage.map_or(0, |u| {
                self.of(&u, answering_model(attempts, answer))
                    .unwrap_or(reserved)
            });
            answered.saturating_add(failed)
        })
    }

    /// The amount `usage` costs, priced at `model` else the model asked for
    /// (`None`: unpriced both ways).
    fn of(&self, usage: &Usage, model: Option<&str>) -> Option<u64> {
        let Some((pricer, asked)) = &self.usd else {
            return Some(usage.total());
        };
        model
            .and_then(|m| pricer.cost_nanos(m, usage))
            .or_else(|| pricer.cost_nanos(asked, usage))
    }
}

/// The model of the attempt that answered: the one whose slot is the
/// answer's, else the last that succeeded.
fn answering_model<'a>(
    attempts: &'a [AttemptRecord],
    answer: Option<&UsageSlot>,
) -> Option<&'a str> {
    attempts
        .iter()
        .rev()
        .find(|a| answer.is_some() && a.usage.as_ref() == answer)
        .or_else(|| {
            attempts
                .iter()
                .rev()
                .find(|a| a.outcome == Outcome::Success)
        })
        .map(|a| a.model.as_str())
}
