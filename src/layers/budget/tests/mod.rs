mod budgets;
#[cfg(feature = "access")]
mod layer;
mod ledger;
