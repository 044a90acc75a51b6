//! One connection's limits: `[server] header_read_timeout`, `idle_timeout`
//! and `max_connections`.
//!
//! hyper-util's auto builder has no timer while it sniffs the protocol, and
//! hyper's own HTTP/1 `header_read_timeout` also cuts idle keep-alive
//! connections (its timer runs while waiting for the next request), so the
//! server keeps these limits itself, per connection:
//!
//! - [`Watched`] wraps the connection's IO and notes when bytes arrive
//!   while no request is in flight (the start of a request head), and
//!   whether the client opened with the HTTP/2 preface.
//! - [`connection_service`](super::connection_service) counts requests in
//!   flight: from the call until the answer's body is dropped (a streamed
//!   answer is in flight until its last byte), see [`InFlight`] and
//!   [`TrackedBody`].
//! - [`Driver`] polls the hyper connection and one timer, whose deadline
//!   follows the connection's phase:
//!   - before the first request head (TLS handshake, HTTP/2 preface and the
//!     head itself), or from the first byte of a later HTTP/1 head:
//!     `header_read_timeout`, then the connection is closed;
//!   - nothing in flight (an idle keep-alive HTTP/1 connection, an HTTP/2
//!     connection without streams): `idle_timeout`, then an HTTP/1
//!     connection is closed and an HTTP/2 one is sent GOAWAY (and closed if
//!     it does not end within `header_read_timeout`);
//!   - a request in flight: no deadline here (`body_read_timeout` and the
//!     backends' timeouts bound it).
//! - **Writes of a streamed answer are gathered.** An answer's body that
//!   waits for its upstream ([`TrackedBody`] notes it in the [`Activity`])
//!   will have more to send soon: hyper's upstream connection hands the
//!   events of one read over one at a time, each after a task switch. So a
//!   write of an HTTP/1 connection whose answer is waiting is put off for one
//!   turn of the scheduler ([`Watched`] wakes its task and tells hyper to try
//!   again), as long as each turn added bytes, up to [`GATHER_BYTES`] and
//!   [`GATHER_TURNS`]: the events of one upstream read leave in one write,
//!   not one write each, and no timer delays anything.
//! - [`Slot`] holds one of the `max_connections` permits for the
//!   connection's life and registers it for the server's shutdown.
//!
//! ```
//! use std::time::Duration;
//! use llm_router::server::ConnectionLimits;
//!
//! let limits = ConnectionLimits::default();
//! assert_eq!(limits.max_connections, 10_000);
//! assert_eq!(limits.header_read_timeout, Duration::from_secs(30));
//! assert_eq!(limits.idle_timeout, Duration::from_secs(120));
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;
use crate::FastMap;

/// The connection limits of a [`Server`](super::Server) (`[server]`
/// `max_connections`, `header_read_timeout`, `idle_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; beyond it new ones wait unaccepted.
    pub max_connections: u32,
    /// Time allowed for a request head: from the connection's start (TLS
    /// handshake and HTTP/2 preface included), or from the first byte of a
    /// later HTTP/1 request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::from(&ServerConfig::default())
    }
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(server: &ServerConfig) -> Self {
        ConnectionLimits {
            max_connections: server.max_connections,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// "No head is being read" in [`Activity::head_since`].
const NONE: u64 = u64::MAX;

/// What a connection's IO, its requests and its driver share.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the connection was accepted; the times below count from it (ms).
    born: Instant,
    /// Requests whose answer is not over.
    in_flight: AtomicU32,
    /// When the last request in flight ended (or the HTTP/2 preface came).
    idle_since: AtomicU64,
    /// When the head being read began (`NONE` when none is): the
    /// connection's start until the first request, for HTTP/1 the first
    /// byte of each later one.
    head_since: AtomicU64,
    /// The client opened with the HTTP/2 preface.
    h2: AtomicBool,
    /// The server is shutting down (set once, with a wake).
    stop: AtomicBool,
    waker: AtomicWaker,
    /// An answer's body waited for its upstream since the last write.
    body_waiting: AtomicBool,
}

impl Activity {
    pub(crate) fn new(born: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            born,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            body_waiting: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        let ms = Instant::now()
            .saturating_duration_since(self.born)
            .as_millis();
        u64::try_from(ms).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64, plus: Duration) -> Instant {
        self.born
            .checked_add(Duration::from_millis(ms))
            .and_then(|t| t.checked_add(plus))
            // Centuries away: never.
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
    }

    /// Bytes arrived (`h2`: the connection speaks HTTP/2).
    fn on_bytes(&self) {
        if !self.h2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The whole HTTP/2 preface arrived: the connection is idle until its
    /// first stream.
    fn on_preface(&self) {
        self.h2.store(true, Ordering::Relaxed);
        self.idle_since.fetch_max(self.now_ms(), Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
    }

    /// Resolves once the server is shutting down (for the TLS handshake,
    /// before the connection has a [`Driver`]).
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.stop.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Tell the driver the server is shutting down.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The deadline of the phase the connection is in; `None` while a
    /// request is in flight.
    fn deadline(&self, limits: &ConnectionLimits, closing: bool) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = self.idle_since.load(Ordering::Relaxed);
        if closing {
            return Some(self.at(idle_since, limits.header_read_timeout));
        }
        match self.head_since.load(Ordering::Relaxed) {
            NONE => Some(self.at(idle_since, limits.idle_timeout)),
            head => Some(self.at(head, limits.header_read_timeout)),
        }
    }
}

/// One request in flight on a connection, until dropped (with the answer's
/// body, see [`TrackedBody`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(crate) fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(NONE, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The idle clock first: a driver that sees nothing in flight sees it.
        self.0
            .idle_since
            .fetch_max(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// An answer's body that keeps its request [`InFlight`] until it is over.
    #[derive(Debug)]
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, guard: InFlight) -> Self {
        TrackedBody {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            // Over: the connection may count as idle from now.
            Poll::Ready(None) => drop(this.guard.take()),
            // More is coming: the write of what came so far may wait a turn.
            Poll::Pending => {
                if let Some(InFlight(activity)) = this.guard {
                    activity.body_waiting.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(_)) => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

mod watched;
pub(crate) use watched::Watched;
pub(crate) use watched::PREFACE;

/// The live connections, so a shutdown reaches every one.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    live: Mutex<Live>,
}

#[derive(Debug, Default)]
struct Live {
    next: u64,
    connections: FastMap<u64, Weak<Activity>>,
}

impl Registry {
    /// Tell every live connection that the server is shutting down.
    pub(crate) fn stop_all(&self) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for activity in live.connections.values().filter_map(Weak::upgrade) {
            activity.stop();
        }
    }
}

/// A connection's place: one of the `max_connections` permits and its entry
/// in the [`Registry`], both given back when the connection ends.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    registry: Arc<Registry>,
    id: u64,
}

impl Slot {
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        registry: &Arc<Registry>,
        activity: &Arc<Activity>,
    ) -> Slot {
        let mut live = registry.live.lock().unwrap_or_else(|e| e.into_inner());
        let id = live.next;
        live.next = live.next.wrapping_add(1);
        live.connections.insert(id, Arc::downgrade(activity));
        drop(live);
        Slot {
            _permit: permit,
            registry: registry.clone(),
            id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|e| e.into_inner());
        live.connections.remove(&self.id);
    }
}

pin_project! {
    /// Serves one connection within its [`ConnectionLimits`] (see the
    /// [module docs](self)); `shutdown` starts the hyper connection's
    /// graceful shutdown.
    pub(crate) struct Driver<C, G> {
        #[pin]
        conn: C,
        #[pin]
        timer: Sleep,
        shutdown: G,
        activity: Arc<Activity>,
        limits: ConnectionLimits,
        closing: bool,
        peer: SocketAddr,
        _slot: Slot,
    }
}

impl<C, G> Driver<C, G> {
    pub(crate) fn new(
        conn: C,
        shutdown: G,
        activity: Arc<Activity>,
        limits: ConnectionLimits,
        peer: SocketAddr,
        slot: Slot,
    ) -> Self {
        let first = activity.at(0, limits.header_read_timeout);
        Driver {
            conn,
            timer: tokio::time::sleep_until(first),
            shutdown,
            activity,
            limits,
            closing: false,
            peer,
            _slot: slot,
        }
    }
}

impl<C, G, E> Future for Driver<C, G>
where
    C: Future<Output = Result<(), E>>,
    G: FnMut(Pin<&mut C>),
    E: std::fmt::Display,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let activity = &**this.activity;
        activity.waker.register(cx.waker());
        loop {
            if let Poll::Ready(ended) = this.conn.as_mut().poll(cx) {
                if let Err(e) = ended {
                    tracing::debug!(peer = %this.peer, error = %e, "connection ended with an error");
                }
                return Poll::Ready(());
            }
            let h2 = activity.h2.load(Ordering::Relaxed);
            if !*this.closing && activity.stop.load(Ordering::Acquire) {
                // Shutting down: a connection with nothing in flight (idle,
                // or in the middle of a head) ends now; HTTP/2 is told with
                // a GOAWAY; requests in flight finish.
                if !h2 && activity.in_flight.load(Ordering::Acquire) == 0 {
                    return Poll::Ready(());
                }
                (this.shutdown)(this.conn.as_mut());
                *this.closing = true;
                activity
                    .idle_since
                    .fetch_max(activity.now_ms(), Ordering::Relaxed);
                continue;
            }
            let deadline = activity.deadline(this.limits, *this.closing);
            match deadline {
                Some(at) if at != this.timer.deadline() => this.timer.as_mut().reset(at),
                Some(_) => {}
                // In flight: look again an idle_timeout from now.
                None if this.timer.is_elapsed() => this
                    .timer
                    .as_mut()
                    .reset(Instant::now() + this.limits.idle_timeout),
                None => {}
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if deadline.is_none() {
                continue;
            }
            // The deadline passed with nothing in flight.
            if *this.closing {
                tracing::debug!(peer = %this.peer, "connection closed: it did not end after GOAWAY");
                return Poll::Ready(());
            }
            if activity.head_since.load(Ordering::Relaxed) != NONE {
                tracing::debug!(peer = %this.peer, "connection closed: no request head within header_read_timeout");
                return Poll::Ready(());
            }
            if !h2 {
                tracing::trace!(peer = %this.peer, "idle connection closed (idle_timeout)");
                return Poll::Ready(());
            }
            tracing::trace!(peer = %this.peer, "idle HTTP/2 connection: GOAWAY (idle_timeout)");
            (this.shutdown)(this.conn.as_mut());
            *this.closing = true;
            activity
                .idle_since
                .fetch_max(activity.now_ms(), Ordering::Relaxed);
        }
    }
}

/// Logs a condition once when it starts and once when it ends, whatever
/// happens in between (`max_connections` reached, `accept` failing).
#[derive(Debug, Default)]
pub(crate) struct Episode {
    /// Occurrences in the current episode (0: none running).
    count: u64,
}

impl Episode {
    /// One more occurrence; true for the first of an episode (log it).
    pub(crate) fn hit(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        self.count == 1
    }

    /// The condition is over: the occurrences of the episode that ends, if
    /// one was running (log it).
    pub(crate) fn end(&mut self) -> Option<u64> {
        let count = std::mem::take(&mut self.count);
        (count > 0).then_some(count)
    }
}

/// The pause after the `failures`-th failed accept in a row: 10 ms, doubling,
/// at most 1 s.
pub(crate) fn accept_backoff(failures: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(7) as u32;
    Duration::from_millis(10u64.saturating_mul(1 << exp)).min(Duration::from_secs(1))
}

/// An accept error about one connection (the next accept may well work),
/// not about the listener or the process (out of file descriptors, ...).
pub(crate) fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_is_logged_once() {
        let mut e = Episode::default();
        assert_eq!(e.end(), None);
        assert!(e.hit());
        for _ in 0..1000 {
            assert!(!e.hit());
        }
        assert_eq!(e.end(), Some(1001));
        assert_eq!(e.end(), None);
        assert!(e.hit());
    }

    #[test]
    fn accept_backoff_doubles_up_to_a_second() {
        let pauses: Vec<u64> = (1..=9)
            .map(|n| accept_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(accept_backoff(u64::MAX), Duration::from_secs(1));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn phases_and_their_deadlines() {
        let limits = ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        };
        let born = Instant::now();
        let a = Activity::new(born);
        // Nothing yet: the first head is due header_read_timeout after the start.
        assert_eq!(
            a.deadline(&limits, false),
            Some(born + Duration::from_secs(5))
        );
        let request = InFlight::start(&a);
        assert_eq!(a.deadline(&limits, false), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(request);
        // Idle from the end of the request.
        assert_eq!(
            a.deadline(&limits, false),
            Some(born + Duration::from_secs(160))
        );
        // A byte of the next head: header_read_timeout from it.
        tokio::time::advance(Duration::from_secs(10)).await;
        a.on_bytes();
        assert_eq!(
            a.deadline(&limits, false),
            Some(born + Duration::from_secs(115))
        );
        // Closing: header_read_timeout from the idle clock.
        assert_eq!(
            a.deadline(&limits, true),
            Some(born + Duration::from_secs(105))
        );
    }
}
