mod budgets;
#[cfg(feature = "access")]
mod layer;
mod ledger;
#[cfg(feature = "redis")]
mod shared;
