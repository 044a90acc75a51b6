//! [`Budgets`]: the state the `budget` layer shares across requests and
//! config reloads — the [`Ledger`], the spend file it is saved to, and the
//! Redis store budgets are decided in when `[state] store = "redis"` — and
//! [`Hold`], one request's reservation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ledger::{Ledger, Refusal, Spend};
use super::shared::{self, HOLD_FOR, SETTLE_TIMEOUT};
use super::snapshot;
use super::sync::{Leases, Unwritten};
use crate::keys::KeyBudget;
use crate::store::{BudgetCall, LocalSpend, RedisStore};

/// How often the spend file is written while spend changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The time now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The budgets' shared state. See the [module docs](crate::layers::budget).
#[derive(Debug)]
pub struct Budgets {
    ledger: Ledger,
    /// Where spend is saved, if anywhere.
    spend_file: Option<PathBuf>,
    save_every: Duration,
    opened: AtomicBool,
    saving: AtomicBool,
    /// With `[state] store = "redis"`: where budgets are decided.
    store: OnceLock<Arc<RedisStore>>,
    /// The lease of a reservation in the store.
    hold_for: Duration,
    /// Spend the store was not told of yet.
    unwritten: Unwritten,
    /// This replica's reservations in flight in the store.
    leases: Leases,
    /// The renewing task started.
    renewing: AtomicBool,
    /// Rounds of renewals made.
    rounds: AtomicU64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::new()
    }
}

impl Budgets {
    /// Budgets kept in memory only (nothing saved).
    pub fn new() -> Self {
        Budgets {
            ledger: Ledger::new(),
            spend_file: None,
            save_every: SAVE_EVERY,
            opened: AtomicBool::new(false),
            saving: AtomicBool::new(false),
            store: OnceLock::new(),
            hold_for: HOLD_FOR,
            unwritten: Unwritten::default(),
            leases: Leases::default(),
            renewing: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
        }
    }

    /// Budgets saved to the spend file `path`, once [`opened`](Self::open):
    /// until then nothing is read or written.
    pub fn with_spend_file(path: impl Into<PathBuf>) -> Self {
        Budgets {
            spend_file: Some(path.into()),
            ..Budgets::new()
        }
    }

    /// Load the spend the spend file holds (once) and start saving it
    /// ([`Budgets::start`]). A file that cannot be read is moved aside
    /// (`<name>.unreadable-<unix time>`, with a warning) and spend starts
    /// from nothing. Nothing without a spend file.
    pub fn open(self: &Arc<Self>) {
        let Some(path) = &self.spend_file else { return };
        if self.opened.swap(true, Ordering::Relaxed) {
            return;
        }
        let now = unix_now();
        match snapshot::read(path) {
            Ok(Some(saved)) => {
                tracing::info!(file = %path.display(), budgets = saved.len(), "budget spend loaded");
                self.ledger.restore(saved, now);
            }
            Ok(None) => {}
            Err(why) => {
                let name = path
                    .file_name()
                    .map_or_else(|| snapshot::SPEND_FILE.into(), |n| n.to_string_lossy());
                let aside = path.with_file_name(format!("{name}.unreadable-{now}"));
                let moved = std::fs::rename(path, &aside).is_ok();
                tracing::warn!(
                    file = %path.display(),
                    error = %why,
                    moved_to = %if moved { aside.display().to_string() } else { "(not moved)".into() },
                    "the budget spend file cannot be read: budgets start from no spend"
                );
            }
        }
        self.start();
    }

    /// Write the spend file every `every` (instead of [`SAVE_EVERY`]) while
    /// spend changes.
    pub fn save_every(mut self, every: Duration) -> Self {
        self.save_every = every.max(Duration::from_millis(10));
        self
    }

    /// The ledger (this process's spend and reservations).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The spend file, if spend is saved.
    pub fn spend_file(&self) -> Option<&Path> {
        self.spend_file.as_deref()
    }

    /// Decide budgets in `store` (`[state] store = "redis"`), falling back to
    /// the ledger while it is unavailable (and writing the spend counted
    /// meanwhile back to it when it is back); budgets already tied to a
    /// store keep it.
    pub fn attach_store(self: &Arc<Self>, store: &Arc<RedisStore>) {
        let _ = self.store.set(store.clone());
        if let Some(store) = self.store() {
            store.tie_spend(self);
        }
    }

    /// Reservations in the store get a lease of `hold_for` (instead of
    /// [`HOLD_FOR`]), renewed every third of it.
    #[cfg(test)]
    pub(crate) fn hold_for(mut self, hold_for: Duration) -> Self {
        self.hold_for = hold_for;
        self
    }

    /// Rounds of lease renewals made so far.
    #[cfg(test)]
    pub(crate) fn renewal_rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Settlements waiting to be written to the store.
    #[cfg(test)]
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten.len()
    }

    /// Start renewing, in the background, the leases of this replica's
    /// reservations in the store (once; outside a tokio runtime, nothing):
    /// every third of the lease, while it has reservations there; and retry
    /// writing the spend the store was not told of.
    fn start_renewing(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.renewing.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Budgets> = Arc::downgrade(self);
        let every = (self.hold_for / 3).max(Duration::from_millis(10));
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(budgets) = weak.upgrade() else {
                    return;
                };
                budgets.renew().await;
            }
        });
    }

    /// One round: renew every lease, then write the spend kept back.
    async fn renew(&self) {
        let Some(store) = self.store() else { return };
        let now = unix_now();
        for (budget, ids) in self.leases.due() {
            let call = shared::renewal(&budget, ids, now, self.hold_for);
            if store.budget(&call, SETTLE_TIMEOUT).await.is_none() {
                break;
            }
        }
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let mut calls = self.unwritten.take().into_iter();
        while let Some(call) = calls.next() {
            if store.budget(&call, SETTLE_TIMEOUT).await.is_none() {
                self.unwritten.add(call);
                calls.for_each(|c| self.unwritten.add(c));
                return;
            }
        }
    }

    /// Write `call` (a settlement) to the store in the background; kept to
    /// write later if it cannot be now.
    fn write_to(self: &Arc<Self>, store: &Arc<RedisStore>, call: BudgetCall) {
        self.start_renewing();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.unwritten.add(call);
            return;
        };
        let (budgets, store) = (self.clone(), store.clone());
        runtime.spawn(async move {
            if store.budget(&call, SETTLE_TIMEOUT).await.is_none() {
                budgets.unwritten.add(call);
            }
        });
    }

    /// The store budgets are decided in, if any.
    pub(crate) fn store(&self) -> Option<&Arc<RedisStore>> {
        self.store.get()
    }

    /// Start saving the spend file in the background (once; nothing without
    /// a spend file, or outside a tokio runtime): every
    /// [`save_every`](Self::save_every) when spend changed, on tokio's
    /// blocking threads, never on a request's path. [`Budgets::save`] writes
    /// it at once (at shutdown).
    pub fn start(self: &Arc<Self>) {
        if self.spend_file.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.saving.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Budgets> = Arc::downgrade(self);
        let every = self.save_every;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(budgets) = weak.upgrade() else { return };
                if !budgets.ledger.take_dirty() {
                    continue;
                }
                let done = tokio::task::spawn_blocking(move || budgets.write()).await;
                if let Ok(Err((budgets, e))) = done {
                    budgets.ledger.mark_dirty();
                    tracing::warn!(error = %e, "the budget spend file could not be written; trying again later");
                }
            }
        });
    }

    /// Write the spend file now (blocking file I/O), if there is one.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.spend_file else {
            return Ok(());
        };
        let now = unix_now();
        let bytes = snapshot::encode(&self.ledger.saved(now), now);
        snapshot::write(path, &bytes)
    }

    fn write(self: Arc<Self>) -> Result<(), (Arc<Self>, std::io::Error)> {
        match self.save() {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }

    /// Reserve `amount` of `budget` (in the shared store when there is one
    /// and it answers, else in the ledger).
    pub(crate) async fn reserve(
        self: &Arc<Self>,
        budget: &KeyBudget,
        amount: u64,
    ) -> Result<Hold, Refusal> {
        let now = unix_now();
        let Some(store) = self.store() else {
            return self
                .ledger
                .reserve(&budget.id, &budget.spec, amount, now)
                .map(|_| Hold::new(self.clone(), budget.clone(), amount, None));
        };
        let id = shared::hold_id(store);
        let verdict = match shared::reserve(
            store,
            &self.ledger,
            budget,
            (&id, amount),
            now,
            self.hold_for,
        )
        .await
        {
            Some(verdict) => verdict,
            // Decided here. Redis may have made the reservation all the
            // same (a call that timed out): its settlement ends it.
            None => self
                .ledger
                .reserve(&budget.id, &budget.spec, amount, now)
                .map(|_| ()),
        };
        verdict.map(|()| {
            if self.leases.add(&shared::store_id(budget), budget, &id) {
                self.start_renewing();
            }
            Hold::new(self.clone(), budget.clone(), amount, Some(id))
        })
    }

    /// The spend of `budget` now: from the shared store when there is one
    /// and it answers, else from the ledger.
    pub async fn spend(&self, budget: &KeyBudget) -> Spend {
        let now = unix_now();
        if let Some(store) = self.store() {
            if let Some(spend) = shared::view(store, budget, now).await {
                return spend;
            }
        }
        self.ledger.view(&budget.id, &budget.spec, now)
    }
}

/// One request's reservation: settled with the real cost when its answer
/// ends ([`Hold::settle`]), released if dropped before (no answer).
#[derive(Debug)]
pub struct Hold {
    budgets: Arc<Budgets>,
    budget: KeyBudget,
    amount: u64,
    /// The reservation's id in the shared store, when there is one (made
    /// there, or decided here while the store did not answer).
    shared: Option<String>,
    done: bool,
}

impl Hold {
    fn new(budgets: Arc<Budgets>, budget: KeyBudget, amount: u64, shared: Option<String>) -> Self {
        Hold {
            budgets,
            budget,
            amount,
            shared,
            done: false,
        }
    }

    /// How much it reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Which budget it reserved from.
    pub fn budget(&self) -> &KeyBudget {
        &self.budget
    }

    /// Replace the reservation by `actual`: release it and count `actual`
    /// as spent.
    pub fn settle(mut self, actual: u64) {
        self.finish(actual);
    }

    fn finish(&mut self, actual: u64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let now = unix_now();
        let b = &self.budget;
        self.budgets
            .ledger
            .settle(&b.id, &b.spec, self.amount, actual, now);
        // With a store, the settlement is written there too, whether the
        // store or this replica decided (the store counts every replica's
        // spend).
        let (Some(store), Some(id)) = (self.budgets.store(), self.shared.take()) else {
            return;
        };
        self.budgets.leases.remove(&shared::store_id(b), &id);
        let call = shared::settlement(b, id, actual, now, self.budgets.hold_for);
        self.budgets.write_to(store, call);
    }
}

impl LocalSpend for Budgets {
    fn take_unwritten(&self, all: bool) -> Vec<BudgetCall> {
        if !all {
            return self.unwritten.take();
        }
        // Redis lost its data: this replica's spend, all of it, replaces
        // what was kept to write (it is part of it).
        self.unwritten.clear();
        let now = unix_now();
        shared::spend_calls(self.ledger.saved(now), now, self.hold_for)
    }

    fn put_back(&self, calls: Vec<BudgetCall>) {
        for call in calls {
            self.unwritten.add(call);
        }
    }
}

impl Drop for Hold {
    /// Not settled: released, nothing spent.
    fn drop(&mut self) {
        self.finish(0);
    }
}
