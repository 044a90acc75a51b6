//! `serve --reload`: the config's files (the config file, and the `.env`
//! read with it) are watched, and a change reloads the config the way
//! `POST /admin/reload` and SIGHUP do ([`App::reload`]): an invalid new
//! config is logged and the one in force keeps serving.
//!
//! The files are polled: every [`POLL_INTERVAL`] their size, modification
//! time (and inode, on Unix) are compared with the last ones seen. For one
//! or two small files this costs a `stat` each per interval, needs no
//! platform watcher (inotify, kqueue, FSEvents — whose watches are lost when
//! an editor replaces a file by renaming a new one over it, and which miss
//! changes on network and container bind-mounted filesystems), and no
//! dependency. A change is acted on once the files have stayed the same for
//! one more interval (debounced: an editor writing in several steps, or
//! renaming through a missing file, causes one reload, of the finished
//! file), so a reload follows an edit within about two intervals.
//!
//! ```
//! use llm_router::__private::watch::Debounce;
//!
//! let mut d = Debounce::new(vec![Some((10, 1))]);
//! assert!(!d.observe(vec![Some((10, 1))]));   // unchanged
//! assert!(!d.observe(vec![Some((12, 2))]));   // changed: wait one interval
//! assert!(d.observe(vec![Some((12, 2))]));    // still the same: reload
//! assert!(!d.observe(vec![Some((12, 2))]));   // once
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::App;

/// How often the files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What is compared of a file; `None` when it is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// The change detector, apart from the clock and the file system: fed one
/// observation per interval, it says when to reload.
#[derive(Debug)]
pub struct Debounce<S> {
    seen: Vec<Option<S>>,
    pending: Option<Vec<Option<S>>>,
}

impl<S: PartialEq> Debounce<S> {
    /// Start from the files as they are.
    pub fn new(seen: Vec<Option<S>>) -> Self {
        Debounce {
            seen,
            pending: None,
        }
    }

    /// One observation; true when the files changed and have stayed the
    /// same since the last one (reload now).
    pub fn observe(&mut self, now: Vec<Option<S>>) -> bool {
        if now == self.seen {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return false;
        }
        self.pending = None;
        self.seen = now;
        true
    }
}

async fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

async fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(stamp(f).await);
    }
    out
}

/// Watch `files` and reload `app` when they change (see the module
/// docs of `watch`); runs until the task is dropped. The files are first
/// looked at when this is first polled: to be sure an edit made right after
/// spawning it is seen, use [`watching`].
pub async fn watch(app: App, files: Vec<PathBuf>, interval: Duration) {
    watching(app, files, interval).await.await
}

/// [`watch`], with the files looked at before this returns: every edit made
/// after it returned reloads `app`, however late the watch that it returns
/// is first polled.
pub async fn watching(
    app: App,
    files: Vec<PathBuf>,
    interval: Duration,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let debounce = Debounce::new(stamps(&files).await);
    watch_from(app, files, interval, debounce)
}

async fn watch_from(
    app: App,
    files: Vec<PathBuf>,
    interval: Duration,
    mut debounce: Debounce<Stamp>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !debounce.observe(stamps(&files).await) {
            continue;
        }
        let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        tracing::info!("{} changed: reloading the config", shown.join(", "));
        let reloader = app.clone();
        // Reading and building the config is blocking work. A failure is
        // logged by `App::reload`, and the config in force keeps serving.
        match tokio::task::spawn_blocking(move || reloader.reload()).await {
            Ok(Ok(reload)) => tracing::info!(
                models = ?reload.models,
                reloads = reload.reloads,
                "config reloaded"
            ),
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "the config reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reloads_once_it_settles() {
        let mut d = Debounce::new(vec![Some(1), None]);
        assert!(!d.observe(vec![Some(1), None]));
        // Written in steps: each new state waits another interval.
        assert!(!d.observe(vec![Some(2), None]));
        assert!(!d.observe(vec![Some(3), None]));
        assert!(d.observe(vec![Some(3), None]));
        assert!(!d.observe(vec![Some(3), None]));
        // Replaced through a missing file.
        assert!(!d.observe(vec![None, None]));
        assert!(!d.observe(vec![Some(4), None]));
        assert!(d.observe(vec![Some(4), None]));
        // Changed and changed back before it settled: nothing to do.
        assert!(!d.observe(vec![Some(5), None]));
        assert!(!d.observe(vec![Some(4), None]));
        assert!(!d.observe(vec![Some(4), None]));
    }

    #[tokio::test]
    async fn stamps_see_size_and_absence() {
        let dir = std::env::temp_dir().join(format!("llm-router-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "a").unwrap();
        let before = stamps(std::slice::from_ref(&file)).await;
        assert!(before[0].is_some());
        std::fs::write(&file, "ab").unwrap();
        assert_ne!(stamps(std::slice::from_ref(&file)).await, before);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(stamps(std::slice::from_ref(&file)).await, [None]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
