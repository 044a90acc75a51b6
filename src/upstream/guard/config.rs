//! [`GuardConfig`]: the settings of a [`StreamGuard`](super::StreamGuard).

use std::time::Duration;

use crate::request::ClientFormat;

/// Settings of a [`StreamGuard`](super::StreamGuard).
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// The format of the stream (and of the error events it may add).
    pub format: ClientFormat,
    /// Longest gap between upstream frames once the stream has started.
    pub idle_timeout: Duration,
    /// Largest single event accepted.
    pub max_event: usize,
    /// Most preamble bytes held back before the first content event.
    pub max_preamble: usize,
}

impl GuardConfig {
    /// Defaults: 30 s idle timeout, 8 MiB events, 1 MiB of preamble.
    pub fn new(format: ClientFormat) -> Self {
        GuardConfig {
            format,
            idle_timeout: Duration::from_secs(30),
            max_event: crate::upstream::limits::MAX_EVENT_BYTES,
            max_preamble: crate::upstream::limits::MAX_PREAMBLE_BYTES,
        }
    }

    /// Set the idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}
