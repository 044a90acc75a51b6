//! `<dir>/exceptions.json`: panics and unhandled errors, one JSON object a
//! line.
//!
//! Building a log layer touches no process-wide state: its directory is a
//! [`Target`] the layer holds, reachable from its [`LogFlush`] handle.
//! [`install_panic_hook`] (called by a program, never by a layer; the binary
//! calls it with its app's handle) installs a panic hook that appends a
//! record for every panic to the `exceptions.json` of each live log layer of
//! the handles it was given, then runs the hook that was in place before
//! (the default one prints the panic to stderr). A panic is
//! exceptional, so the hook writes at once, from the panicking thread. The
//! writer thread appends unhandled request errors (a 500 `internal_error`
//! from the proxy itself) the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::flush::LogFlush;
use super::redact::Redactor;

/// A live log layer's directory and how to redact what goes there.
#[derive(Debug)]
pub(crate) struct Target {
    dir: PathBuf,
    redactor: Mutex<Redactor>,
    max_file_bytes: u64,
}

/// The handle of the installed hook: the layers whose directories get
/// panics. Set by the first [`install_panic_hook`]; later calls add theirs.
static HOOKED: OnceLock<LogFlush> = OnceLock::new();

impl Target {
    /// The `exceptions.json` of `dir`, with its redaction and file cap.
    pub(crate) fn new(dir: &Path, redactor: Redactor, max_file_bytes: u64) -> Arc<Target> {
        Arc::new(Target {
            dir: dir.to_path_buf(),
            redactor: Mutex::new(redactor),
            max_file_bytes,
        })
    }
}

/// Send panics to the `exceptions.json` of each live
/// [`LogLayer`](super::LogLayer) of `logs` (and of the layers later
/// included in it: an [`App`](crate::App)'s handle gathers those of the
/// stacks its reloads build), then on to the hook that was in place before.
/// The hook is installed once per process; a later call adds its handle's
/// layers. Building a layer never installs it: a program that wants its
/// panics in the request logs calls this, as `llm-router` does.
pub fn install_panic_hook(logs: &LogFlush) {
    let mut installed = false;
    let hooked = HOOKED.get_or_init(|| {
        installed = true;
        logs.clone()
    });
    if installed {
        install_hook();
    } else {
        hooked.include(logs);
    }
}

fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        record_panic(info);
        previous(info);
    }));
}

fn record_panic(info: &std::panic::PanicHookInfo<'_>) {
    let Some(hooked) = HOOKED.get() else {
        return;
    };
    if hooked.exception_targets().is_empty() {
        // No live log layer (or a panic while this thread holds the set).
        return;
    }
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic with a non-string payload)".into());
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    // Captured only when RUST_BACKTRACE / RUST_LIB_BACKTRACE ask for it.
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| backtrace.to_string());
    // The live layers, taken last (the backtrace takes a while): a layer
    // dropped meanwhile gets nothing.
    let targets = hooked.exception_targets();
    let mut seen: Vec<&Path> = Vec::new();
    for target in &targets {
        if seen.contains(&target.dir.as_path()) {
            continue;
        }
        seen.push(&target.dir);
        let mut record = json!({
            "time": super::writer::rfc3339(SystemTime::now()),
            "kind": "panic",
            "message": message,
            "location": location,
            "thread": thread.name().unwrap_or("unnamed"),
            "backtrace": backtrace,
        });
        if let Ok(mut redactor) = target.redactor.try_lock() {
            redactor.redact_value(&mut record);
        } else {
            continue;
        }
        append(&target.dir, &record, target.max_file_bytes);
    }
}

/// Append one record to `<dir>/exceptions.json` (creating both if needed,
/// 0600), rotating the file first when the record would take it past
/// `max_file_bytes` (as the session files are).
pub(crate) fn append(dir: &Path, record: &Value, max_file_bytes: u64) {
    let write = || -> std::io::Result<()> {
        let path = dir.join("exceptions.json");
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let mut file = super::writer::open_private(dir, &path)?;
        let len = file.metadata()?.len();
        if len > 0 && len.saturating_add(line.len() as u64) > max_file_bytes {
            drop(file);
            super::writer::rotate(&path, super::LogPolicy::ROTATED_FILES_KEPT)?;
            file = super::writer::open_private(dir, &path)?;
        }
        file.write_all(&line)
    };
    if let Err(e) = write() {
        // Not tracing: this may run inside the panic hook. Nor `eprintln!`,
        // which panics when stderr cannot be written: inside the hook, a
        // second panic aborts the process.
        let _ = writeln!(
            std::io::stderr(),
            "llm-router: cannot write {}: {e}",
            dir.join("exceptions.json").display()
        );
    }
}
