//! Open files: a connection limit the process can actually keep.
//!
//! Every client connection is a file descriptor, and so is the upstream
//! connection that serves it. With `max_connections` above what the process
//! may open, a flood of idle connections uses up the descriptors: `accept`
//! fails, and the requests already accepted cannot reach their upstream.
//! So at start-up the soft `RLIMIT_NOFILE` is raised to the hard one (as the
//! Go runtime and nginx's `worker_rlimit_nofile` do), and `max_connections`
//! is lowered, with a warning, to what fits: half of the files left after
//! [`RESERVED_FILES`] (one for the client, one for its upstream).
//!
//! ```
//! use llm_router::server::connections_within;
//!
//! assert_eq!(connections_within(10_000, 256), 96);
//! assert_eq!(connections_within(100, 1_048_576), 100);
//! ```

/// Descriptors kept aside for the listener, log files, Redis, DNS and the
/// like.
pub const RESERVED_FILES: u64 = 64;

/// The connection limit that fits in `open_files` descriptors: at most
/// `max_connections`, and at most half of what is left after
/// [`RESERVED_FILES`] (at least 1).
pub fn connections_within(max_connections: u32, open_files: u64) -> u32 {
    let fit = open_files.saturating_sub(RESERVED_FILES) / 2;
    let fit = u32::try_from(fit).unwrap_or(u32::MAX).max(1);
    max_connections.min(fit)
}

/// Raise the soft open-files limit to the hard one and return it (`None`
/// where it cannot be read: then nothing is clamped).
fn open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::debug!(error = %e, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `max_connections` lowered to what the process may keep open (see the
/// module docs), with a warning when it is.
pub(crate) fn fitting_connections(max_connections: u32) -> u32 {
    let Some(files) = open_files() else {
        return max_connections;
    };
    let fit = connections_within(max_connections, files);
    if fit < max_connections {
        tracing::warn!(
            max_connections,
            open_files = files,
            lowered_to = fit,
            "[server] max_connections is more than the process may keep open (a client and an upstream connection each): lowered; raise `ulimit -n` to keep it"
        );
    }
    fit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_fits_the_files() {
        assert_eq!(connections_within(10_000, 256), 96);
        assert_eq!(connections_within(10_000, 65_536), 10_000);
        // Fewer files than the reserve: still one connection.
        assert_eq!(connections_within(10_000, 10), 1);
        assert_eq!(connections_within(10_000, u64::MAX), 10_000);
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        if let (Ok((before, _)), Some(after)) =
            (rlimit::getrlimit(rlimit::Resource::NOFILE), open_files())
        {
            assert!(after >= before);
        }
    }
}
