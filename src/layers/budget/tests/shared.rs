//! Budgets decided in a real `redis-server` (started on a loopback port;
//! without it on PATH these are ignored, see `build.rs`): reservations
//! held on a lease that the replica renews while they are in flight, and
//! the spend counted while Redis is away written back when it returns.

#![cfg_attr(not(redis_server), allow(dead_code, unused_imports))]

#[path = "../../../../tests/support/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_server::RedisServer;

use crate::keys::{BudgetId, BudgetSpec, KeyBudget};
use crate::layers::budget::budgets::unix_now;
use crate::layers::budget::{shared, Budgets, Spend};
use crate::layers::circuit_breaker::Breakers;
use crate::layers::failover::Cooldowns;
use crate::store::{RedisStore, StateConfig, StoreKind, StoreStatus};

fn budget() -> KeyBudget {
    KeyBudget {
        id: BudgetId::Key("team-a".into()),
        spec: BudgetSpec::parse(None, Some(1000), Some("month")).unwrap(),
    }
}

/// A replica: budgets decided in a store at `redis`, connected.
async fn replica(redis: &RedisServer, budgets: Budgets) -> (Arc<Budgets>, Arc<RedisStore>) {
    let store = RedisStore::new(StateConfig {
        store: StoreKind::Redis,
        redis_url: redis.url(),
        prefix: "budget-unit".into(),
        timeout: Duration::from_millis(200),
        spend_file: None,
    });
    let budgets = Arc::new(budgets);
    budgets.attach_store(&store);
    store.start(
        &Arc::new(Breakers::new(Default::default())),
        &Arc::new(Cooldowns::default()),
    );
    let connected = store.clone();
    until("the store to connect", move || {
        let store = connected.clone();
        async move { (store.status() == StoreStatus::Ok).then_some(()) }
    })
    .await;
    (budgets, store)
}

/// Wait (at most 20 s) until `check` gives a value: that value.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let wait = async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The budget's spend as Redis has it, once `want` holds of it.
async fn in_redis(store: &Arc<RedisStore>, what: &str, want: impl Fn(&Spend) -> bool) -> Spend {
    until(what, || async {
        shared::view(store, &budget(), unix_now())
            .await
            .filter(|s| want(s))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_reservation_nobody_renews_is_released_after_its_lease() {
    let redis = RedisServer::start();
    let lease = Duration::from_millis(500);
    let (budgets, store) = replica(&redis, Budgets::new().hold_for(lease)).await;
    // A reservation as a replica that then crashed left it: made, never
    // renewed nor settled.
    let made = Instant::now();
    let id = shared::hold_id(&store);
    let held = shared::reserve(
        &store,
        budgets.ledger(),
        &budget(),
        (&id, 40),
        unix_now(),
        lease,
    )
    .await;
    assert!(matches!(held, Some(Ok(_))), "{held:?}");
    let s = in_redis(&store, "the reservation", |_| true).await;
    assert_eq!((s.reserved, s.in_flight), (40, 1));
    let s = in_redis(&store, "the lease to end", |s| s.in_flight == 0).await;
    // Redis's clock and ours may differ by a few milliseconds.
    assert!(made.elapsed() >= lease - Duration::from_millis(50));
    assert_eq!((s.spent, s.reserved), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn a_reservation_in_flight_outlives_its_lease_until_settled() {
    let redis = RedisServer::start();
    let lease = Duration::from_millis(300);
    let (budgets, store) = replica(&redis, Budgets::new().hold_for(lease)).await;
    let hold = budgets.reserve(&budget(), 40).await.unwrap();
    let made = Instant::now();
    // Renewed every 100 ms: past four rounds, more than a lease went by.
    let rounds = budgets.renewal_rounds();
    until("four rounds of renewals", || async {
        (budgets.renewal_rounds() >= rounds + 4).then_some(())
    })
    .await;
    assert!(made.elapsed() > lease);
    let s = in_redis(&store, "the reservation", |_| true).await;
    assert_eq!((s.reserved, s.in_flight), (40, 1));
    hold.settle(25);
    let s = in_redis(&store, "the settlement", |s| s.in_flight == 0).await;
    assert_eq!((s.spent, s.reserved), (25, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn spend_counted_while_redis_is_away_is_written_back() {
    let redis = RedisServer::start();
    let (budgets, store) = replica(&redis, Budgets::new()).await;
    budgets.reserve(&budget(), 40).await.unwrap().settle(10);
    in_redis(&store, "the first settlement", |s| s.spent == 10).await;
    let in_flight = budgets.reserve(&budget(), 40).await.unwrap();

    // Frozen: the next reservation waits out `timeout`, then is decided
    // here; its settlement and the one in flight cannot reach Redis.
    redis.pause();
    let local = budgets.reserve(&budget(), 30).await.unwrap();
    assert_eq!(store.status(), StoreStatus::Degraded);
    local.settle(20);
    in_flight.settle(15);
    until("both settlements to be kept", || async {
        (budgets.unwritten() == 2).then_some(())
    })
    .await;
    assert_eq!(
        budgets
            .ledger()
            .view(&budget().id, &budget().spec, unix_now())
            .spent,
        45
    );

    // Back: the reconnect writes them, and ends the reservation.
    redis.resume();
    let s = in_redis(&store, "the spend written back", |s| s.spent == 45).await;
    assert_eq!((s.reserved, s.in_flight), (0, 0));
    assert_eq!(budgets.unwritten(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_server),
    ignore = "needs redis-server on PATH (apt-get install redis-server); CI runs it"
)]
async fn redis_restarted_empty_gets_each_replicas_spend_back() {
    let mut redis = RedisServer::start();
    let (a, store_a) = replica(&redis, Budgets::new()).await;
    let (b, store_b) = replica(&redis, Budgets::new()).await;
    a.reserve(&budget(), 40).await.unwrap().settle(10);
    b.reserve(&budget(), 40).await.unwrap().settle(7);
    in_redis(&store_a, "both replicas' spend", |s| s.spent == 17).await;

    redis.kill();
    until("the replica to notice", || async {
        (store_a.status() == StoreStatus::Degraded).then_some(())
    })
    .await;
    // Decided on replica a alone.
    a.reserve(&budget(), 40).await.unwrap().settle(5);
    redis.restart();
    // Each replica wrote all of its spend to the new, empty Redis.
    for store in [&store_a, &store_b] {
        let s = in_redis(store, "every replica's spend", |s| s.spent == 22).await;
        assert_eq!((s.reserved, s.in_flight), (0, 0));
    }
    assert_eq!(a.unwritten(), 0);
}
