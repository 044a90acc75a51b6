//! [`LogFlush`]: waits until the records handed to some log writers are on
//! disk. No process-wide registry: a handle covers the writers of the
//! layers it was made from ([`LogLayer::flush_handle`](super::LogLayer::flush_handle)),
//! or added to it ([`LogFlush::include`]) — the stack builder gathers its
//! log layers' handles, and the app those of every stack it built, so a
//! shutdown also waits for a stack a reload replaced.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::panic::Target;
use super::writer::Progress;

/// How often [`LogFlush::wait`] looks at the writers' progress.
const POLL: Duration = Duration::from_millis(2);

/// A handle on the writers of one or more log layers, to wait until every
/// record they were handed is written and flushed. Clones share one set of
/// writers: a writer [`include`](LogFlush::include)d through one clone is
/// waited for through every clone. The set is bounded: it holds no writer
/// that is done (its layer gone and its last records written), and it keeps
/// no layer alive.
///
/// ```
/// use std::time::Duration;
/// use llm_router::layers::log::{LogFlush, LogLayer, LogPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = std::env::temp_dir().join(format!("llm-router-flush-doc-{}", std::process::id()));
/// let layer = LogLayer::new(LogPolicy::new(&dir));
/// let all = LogFlush::default();
/// all.include(&layer.flush_handle());
/// // Nothing handed over yet: nothing to wait for.
/// assert!(all.wait(Duration::from_secs(1)).await);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct LogFlush {
    writers: Arc<Mutex<Vec<Writer>>>,
}

/// One layer's writer: its progress, and its `exceptions.json` (where the
/// panic hook of [`install_panic_hook`](super::install_panic_hook) writes).
#[derive(Clone)]
struct Writer {
    progress: Weak<Progress>,
    exceptions: Weak<Target>,
}

impl Writer {
    fn is_live(&self) -> bool {
        self.progress.strong_count() > 0
    }
}

impl std::fmt::Debug for LogFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFlush")
            .field("writers", &self.live().len())
            .finish()
    }
}

impl LogFlush {
    /// A handle on one writer.
    pub(super) fn of(progress: &Arc<Progress>, exceptions: &Arc<Target>) -> LogFlush {
        let writer = Writer {
            progress: Arc::downgrade(progress),
            exceptions: Arc::downgrade(exceptions),
        };
        LogFlush {
            writers: Arc::new(Mutex::new(vec![writer])),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Writer>> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for `other`'s writers too (those not done yet; `other` is left
    /// as it was). The writers that are done are dropped from the set.
    pub fn include(&self, other: &LogFlush) {
        if Arc::ptr_eq(&self.writers, &other.writers) {
            return;
        }
        let theirs: Vec<Writer> = other
            .lock()
            .iter()
            .filter(|w| w.is_live())
            .cloned()
            .collect();
        let mut writers = self.lock();
        writers.retain(Writer::is_live);
        for writer in theirs {
            if !writers.iter().any(|w| w.progress.ptr_eq(&writer.progress)) {
                writers.push(writer);
            }
        }
    }

    /// The writers still there.
    fn live(&self) -> Vec<Arc<Progress>> {
        self.lock()
            .iter()
            .filter_map(|w| w.progress.upgrade())
            .collect()
    }

    /// The `exceptions.json` targets of the live layers, for the panic hook:
    /// nothing when the set is locked (a panic while this thread holds it
    /// must not deadlock).
    pub(super) fn exception_targets(&self) -> Vec<Arc<Target>> {
        match self.writers.try_lock() {
            Ok(writers) => writers
                .iter()
                .filter_map(|w| w.exceptions.upgrade())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Wait until each writer of the set has written (and flushed) every
    /// record handed to it before this call, or until `timeout`; whether
    /// they all got there. Records still being produced (an answer still
    /// streaming) are not waited for, nor are writers of other handles.
    ///
    /// [`Server::run`](crate::server::Server::run) waits on the app's
    /// handle once the connections are drained, so a shutdown does not
    /// lose the last records.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let targets: Vec<(Arc<Progress>, u64)> = self
            .live()
            .into_iter()
            .map(|p| {
                let sent = p.sent.load(Ordering::Acquire);
                (p, sent)
            })
            .collect();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let behind = targets.iter().any(|(p, sent)| {
                !p.done.load(Ordering::Acquire) && p.written.load(Ordering::Acquire) < *sent
            });
            if !behind {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
