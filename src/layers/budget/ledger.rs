//! [`Ledger`]: spend and reservations per budget, in this process; the
//! arithmetic of a decision ([`admits`], [`wait_for_room`]) shared with the
//! Redis store's script.
//!
//! Amounts are integers everywhere: tokens, or nano-dollars (10⁻⁹ USD) for a
//! dollar budget. One entry per budget id (a key's, a group's), created by a
//! reservation (so only budgets of configured keys ever get one), at most
//! [`MAX_BUDGETS`]. Each entry has its own lock, held for a few additions
//! and never across an await; the table's lock is taken to read except when
//! a budget is seen for the first time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Value};

use super::period::{rfc3339, Window, ROLLING_BUCKETS};
use crate::keys::{BudgetId, BudgetLimit, BudgetPeriod, BudgetSpec};
use crate::FastMap;

/// The most budgets the ledger tracks. Entries come only from configured
/// keys and groups; beyond it, entries with nothing spent in their period
/// and nothing in flight are dropped, and if none is, a new budget is
/// refused (fail closed).
pub const MAX_BUDGETS: usize = 100_000;

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// What a budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Tokens, input and output together.
    Tokens,
    /// Nano-dollars (10⁻⁹ USD).
    NanoUsd,
}

impl Unit {
    /// `tokens` or `usd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Tokens => "tokens",
            Unit::NanoUsd => "usd",
        }
    }

    /// `1234 tokens`, `$0.001234`.
    pub fn show(self, amount: u64) -> String {
        match self {
            Unit::Tokens => format!("{amount} tokens"),
            Unit::NanoUsd => format!("${}", usd(amount)),
        }
    }

    /// An amount as the admin API shows it: tokens as an integer, dollars
    /// as a number (display only: the ledger keeps nano-dollars).
    fn value(self, amount: u64) -> Value {
        match self {
            Unit::Tokens => amount.into(),
            Unit::NanoUsd => (amount as f64 / NANOS_PER_USD as f64).into(),
        }
    }
}

/// `0.001234`: nano-dollars as dollars, to the nano-dollar, trailing zeros
/// cut (at least two decimals).
pub(crate) fn usd(nanos: u64) -> String {
    let whole = nanos / NANOS_PER_USD;
    let frac = format!("{:09}", nanos % NANOS_PER_USD);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.len() < 2 {
        format!("{frac:0<2}")
    } else {
        frac.to_string()
    };
    format!("{whole}.{frac}")
}

/// A budget's limit per period, as an integer amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What it counts.
    pub unit: Unit,
    /// How much per period.
    pub amount: u64,
}

impl Limit {
    /// The limit of a budget spec: tokens as they are, dollars in
    /// nano-dollars (rounded; saturating at `u64::MAX`).
    ///
    /// ```
    /// use llm_router::layers::auth::BudgetLimit;
    /// use llm_router::layers::budget::{Limit, Unit};
    /// assert_eq!(Limit::of(&BudgetLimit::Usd(1.5)), Limit { unit: Unit::NanoUsd, amount: 1_500_000_000 });
    /// assert_eq!(Limit::of(&BudgetLimit::Tokens(10)).amount, 10);
    /// ```
    pub fn of(limit: &BudgetLimit) -> Limit {
        match *limit {
            BudgetLimit::Tokens(n) => Limit {
                unit: Unit::Tokens,
                amount: n,
            },
            BudgetLimit::Usd(usd) => Limit {
                unit: Unit::NanoUsd,
                // `as` saturates (and a NaN, which the config refuses, is 0).
                amount: (usd * NANOS_PER_USD as f64).round() as u64,
            },
        }
    }
}

/// Whether a reservation of `amount` fits: `spent + reserved + amount <=
/// limit`, without overflow (an overflowing sum does not fit).
///
/// ```
/// use llm_router::layers::budget::admits;
/// assert!(admits(6, 2, 2, 10));
/// assert!(!admits(6, 2, 3, 10));
/// assert!(!admits(u64::MAX, 0, 1, u64::MAX));
/// ```
pub fn admits(spent: u64, reserved: u64, amount: u64, limit: u64) -> bool {
    spent
        .checked_add(reserved)
        .and_then(|s| s.checked_add(amount))
        .is_some_and(|total| total <= limit)
}

/// How long (seconds from `now`) until a refused reservation of `amount`
/// would fit, given the spend per bucket (`(bucket, amount)`, oldest first,
/// those that count in `window`):
///
/// - it would fit but for the reservations in flight: 1 s (they settle
///   soon);
/// - else until enough spend stops counting: the period's reset for a
///   calendar period, the expiry of the bucket that frees enough for a
///   rolling one;
/// - a reservation larger than the whole limit never fits: until the reset
///   of the spend made now.
///
/// Never 0: at least 1 s.
pub fn wait_for_room(
    buckets: &[(u64, u64)],
    window: &Window,
    amount: u64,
    limit: u64,
    now: u64,
) -> u64 {
    let spent = buckets.iter().fold(0u64, |s, (_, a)| s.saturating_add(*a));
    let secs = if admits(spent, 0, amount, limit) {
        1
    } else if amount > limit {
        window.reset().saturating_sub(now)
    } else {
        let mut left = spent;
        let mut until = window.reset();
        for (key, a) in buckets {
            left = left.saturating_sub(*a);
            if admits(left, 0, amount, limit) {
                until = window.expires(*key);
                break;
            }
        }
        until.saturating_sub(now)
    };
    secs.max(1)
}

/// Spend per bucket of one budget: at most [`ROLLING_BUCKETS`] buckets,
/// oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Buckets(Vec<(u64, u64)>);

impl Buckets {
    /// Drop the buckets that no longer count in `window`.
    fn prune(&mut self, window: &Window) {
        self.0.retain(|(key, _)| window.counts(*key));
    }

    fn total(&self) -> u64 {
        self.0.iter().fold(0, |s, (_, a)| s.saturating_add(*a))
    }

    /// Add `amount` to bucket `key` (the current one: the newest).
    fn add(&mut self, key: u64, amount: u64) {
        if amount == 0 {
            return;
        }
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, a)) => *a = a.saturating_add(amount),
            None => {
                self.0.push((key, amount));
                self.0.sort_unstable_by_key(|(k, _)| *k);
                let len = self.0.len();
                let max = ROLLING_BUCKETS as usize;
                if len > max {
                    self.0.drain(..len - max);
                }
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub(crate) fn from_pairs(mut pairs: Vec<(u64, u64)>) -> Buckets {
        pairs.sort_unstable_by_key(|(k, _)| *k);
        pairs.dedup_by(|later, first| {
            if later.0 == first.0 {
                first.1 = first.1.saturating_add(later.1);
                true
            } else {
                false
            }
        });
        let len = pairs.len();
        let max = ROLLING_BUCKETS as usize;
        if len > max {
            pairs.drain(..len - max);
        }
        Buckets(pairs)
    }
}

/// One budget's state.
#[derive(Debug)]
struct Entry {
    unit: Unit,
    period: BudgetPeriod,
    buckets: Buckets,
    /// Reserved by requests in flight.
    reserved: u64,
    /// Reservations in flight.
    holds: u64,
    /// The other replicas' spend the shared store last reported, and the
    /// bucket it was current in (it counts while that bucket is current).
    others: Option<(u64, u64)>,
}

impl Entry {
    fn new(spec: &BudgetSpec) -> Entry {
        Entry {
            unit: Limit::of(&spec.limit).unit,
            period: spec.period,
            buckets: Buckets::default(),
            reserved: 0,
            holds: 0,
            others: None,
        }
    }

    /// Spent in the window: this process's spend, plus the other replicas'
    /// as last reported.
    fn spent(&self, window: &Window) -> u64 {
        let others = match self.others {
            Some((bucket, n)) if bucket == window.current() => n,
            _ => 0,
        };
        self.buckets.total().saturating_add(others)
    }

    /// Bring the entry to `spec` at `window`: spend of another unit or
    /// period does not count (it is dropped); buckets past the window go.
    fn align(&mut self, spec: &BudgetSpec, window: &Window) {
        let unit = Limit::of(&spec.limit).unit;
        if unit != self.unit || spec.period != self.period {
            self.unit = unit;
            self.period = spec.period;
            self.buckets = Buckets::default();
            self.others = None;
        }
        self.buckets.prune(window);
    }

    fn spend(&self, limit: Limit, window: &Window) -> Spend {
        Spend {
            unit: limit.unit,
            limit: limit.amount,
            spent: self.spent(window),
            reserved: self.reserved,
            in_flight: self.holds,
            resets_at: window.reset(),
        }
    }
}

/// A budget's spend at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spend {
    /// What it counts.
    pub unit: Unit,
    /// The limit per period.
    pub limit: u64,
    /// Spent in the period.
    pub spent: u64,
    /// Reserved by requests in flight.
    pub reserved: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// When spend made now stops counting (Unix seconds): the period's end,
    /// or for a rolling window, a window's length from now.
    pub resets_at: u64,
}

impl Spend {
    /// What is left: the limit less what is spent and reserved.
    pub fn remaining(&self) -> u64 {
        self.limit
            .saturating_sub(self.spent.saturating_add(self.reserved))
    }

    /// The `spend` object of `/v1/key/info` and `/admin/keys`.
    pub fn describe(&self, id: &BudgetId, spec: &BudgetSpec, now: u64) -> Value {
        json!({
            "budget": id.to_string(),
            "unit": self.unit.as_str(),
            "period": spec.period.to_string(),
            "limit": self.unit.value(self.limit),
            "spent": self.unit.value(self.spent),
            "reserved": self.unit.value(self.reserved),
            "remaining": self.unit.value(self.remaining()),
            "in_flight": self.in_flight,
            "resets_at": rfc3339(self.resets_at),
            "resets_in_secs": self.resets_at.saturating_sub(now),
        })
    }
}

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It does not fit: the spend as it was, and the seconds until it would.
    Over {
        /// The budget's spend.
        spend: Spend,
        /// Seconds until it would fit (see [`wait_for_room`]).
        wait: u64,
    },
    /// The ledger holds [`MAX_BUDGETS`] budgets, all in use.
    Full,
}

/// A budget as saved: its id, unit, period and spend per bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) id: BudgetId,
    pub(crate) unit: Unit,
    pub(crate) period: BudgetPeriod,
    pub(crate) buckets: Buckets,
}

/// Spend and reservations per budget, in this process. See the module docs.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: RwLock<FastMap<BudgetId, Arc<Mutex<Entry>>>>,
    /// Spend changed since the last [`Ledger::take_dirty`].
    dirty: AtomicBool,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// How many budgets it tracks.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it tracks none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, id: &BudgetId) -> Option<Arc<Mutex<Entry>>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The entry of `id`, created for `spec` if new; `None` when the table
    /// is full of budgets in use.
    fn entry(&self, id: &BudgetId, spec: &BudgetSpec, now: u64) -> Option<Arc<Mutex<Entry>>> {
        if let Some(found) = self.get(id) {
            return Some(found);
        }
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(id) {
            return Some(found.clone());
        }
        if map.len() >= MAX_BUDGETS {
            map.retain(|_, e| {
                let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
                let window = Window::of(e.period, now);
                e.buckets.prune(&window);
                e.holds > 0 || e.buckets.total() > 0
            });
            if map.len() >= MAX_BUDGETS {
                return None;
            }
        }
        let entry = Arc::new(Mutex::new(Entry::new(spec)));
        map.insert(id.clone(), entry.clone());
        Some(entry)
    }

    /// Reserve `amount` of budget `id` (per `spec`) at `now` (Unix
    /// seconds) if it fits (see [`admits`]); the spend with the reservation.
    ///
    /// ```
    /// use llm_router::layers::auth::{BudgetId, BudgetSpec};
    /// use llm_router::layers::budget::{Ledger, Refusal};
    ///
    /// let ledger = Ledger::new();
    /// let id = BudgetId::Key("team-a".into());
    /// let spec = BudgetSpec::parse(None, Some(100), Some("day")).unwrap();
    /// let now = 1_796_828_400;
    /// let spend = ledger.reserve(&id, &spec, 60, now).unwrap();
    /// assert_eq!((spend.spent, spend.reserved, spend.remaining()), (0, 60, 40));
    /// assert!(matches!(ledger.reserve(&id, &spec, 50, now), Err(Refusal::Over { .. })));
    /// // The answer used 30: the other 30 are released.
    /// ledger.settle(&id, &spec, 60, 30, now);
    /// assert_eq!(ledger.view(&id, &spec, now).remaining(), 70);
    /// ```
    pub fn reserve(
        &self,
        id: &BudgetId,
        spec: &BudgetSpec,
        amount: u64,
        now: u64,
    ) -> Result<Spend, Refusal> {
        let entry = self.entry(id, spec, now).ok_or(Refusal::Full)?;
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        let window = Window::of(spec.period, now);
        e.align(spec, &window);
        let limit = Limit::of(&spec.limit);
        let spent = e.spent(&window);
        if !admits(spent, e.reserved, amount, limit.amount) {
            let wait = wait_for_room(e.buckets.as_slice(), &window, amount, limit.amount, now);
            return Err(Refusal::Over {
                spend: e.spend(limit, &window),
                wait,
            });
        }
        e.reserved = e.reserved.saturating_add(amount);
        e.holds = e.holds.saturating_add(1);
        Ok(e.spend(limit, &window))
    }

    /// Hold `amount` of budget `id` whatever its spend (a reservation the
    /// shared store admitted, mirrored here); `false` when the table is full.
    pub fn hold(&self, id: &BudgetId, spec: &BudgetSpec, amount: u64, now: u64) -> bool {
        let Some(entry) = self.entry(id, spec, now) else {
            return false;
        };
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        e.align(spec, &Window::of(spec.period, now));
        e.reserved = e.reserved.saturating_add(amount);
        e.holds = e.holds.saturating_add(1);
        true
    }

    /// Note the spend the shared store reported for budget `id` (every
    /// replica's): should the store become unavailable, this process
    /// decides from it plus its own spend since, not from its own alone.
    pub fn observe(&self, id: &BudgetId, spec: &BudgetSpec, shared_spent: u64, now: u64) {
        let Some(entry) = self.entry(id, spec, now) else {
            return;
        };
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        let window = Window::of(spec.period, now);
        e.align(spec, &window);
        let others = shared_spent.saturating_sub(e.buckets.total());
        e.others = Some((window.current(), others));
    }

    /// End a reservation of `reserved`: release it and count `actual` as
    /// spent now.
    pub fn settle(&self, id: &BudgetId, spec: &BudgetSpec, reserved: u64, actual: u64, now: u64) {
        let Some(entry) = self.get(id) else { return };
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        let window = Window::of(spec.period, now);
        e.align(spec, &window);
        e.reserved = e.reserved.saturating_sub(reserved);
        e.holds = e.holds.saturating_sub(1);
        e.buckets.add(window.current(), actual);
        if actual > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The spend of budget `id` at `now` (nothing spent if it has no entry:
    /// looking creates none).
    pub fn view(&self, id: &BudgetId, spec: &BudgetSpec, now: u64) -> Spend {
        let window = Window::of(spec.period, now);
        let limit = Limit::of(&spec.limit);
        match self.get(id) {
            Some(entry) => {
                let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
                e.align(spec, &window);
                e.spend(limit, &window)
            }
            None => Entry::new(spec).spend(limit, &window),
        }
    }

    /// Whether spend changed since the last call (and clear the mark).
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// Mark spend as changed (a save failed: try again later).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Every budget with spend that still counts at `now`, to save.
    pub(crate) fn saved(&self, now: u64) -> Vec<Saved> {
        let entries: Vec<(BudgetId, Arc<Mutex<Entry>>)> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, entry) in entries {
            let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
            let window = Window::of(e.period, now);
            e.buckets.prune(&window);
            if e.buckets.total() > 0 {
                out.push(Saved {
                    id,
                    unit: e.unit,
                    period: e.period,
                    buckets: e.buckets.clone(),
                });
            }
        }
        out
    }

    /// Put saved spend back (at start): entries that exist keep theirs.
    pub(crate) fn restore(&self, saved: Vec<Saved>, now: u64) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for s in saved {
            if map.len() >= MAX_BUDGETS {
                break;
            }
            let mut buckets = s.buckets;
            buckets.prune(&Window::of(s.period, now));
            if buckets.total() == 0 || map.contains_key(&s.id) {
                continue;
            }
            map.insert(
                s.id,
                Arc::new(Mutex::new(Entry {
                    unit: s.unit,
                    period: s.period,
                    buckets,
                    reserved: 0,
                    holds: 0,
                    others: None,
                })),
            );
        }
    }
}
