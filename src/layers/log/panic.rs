//! `<dir>/exceptions.json`: panics and unhandled errors, one JSON object a
//! line.
//!
//! Building a log layer registers its directory here. [`install_panic_hook`]
//! (once per process; the binary calls it at start, a layer never does)
//! installs a panic hook that appends a record for every panic to the
//! `exceptions.json` of each live log layer, then runs the hook that was in
//! place before (the default one prints the panic to stderr). A panic is
//! exceptional, so the hook writes at once, from the panicking thread. The
//! writer thread appends unhandled request errors (a 500 `internal_error`
//! from the proxy itself) the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::redact::Redactor;

/// A live log layer's directory and how to redact what goes there.
#[derive(Debug)]
pub(crate) struct Target {
    dir: PathBuf,
    redactor: Mutex<Redactor>,
    max_file_bytes: u64,
}

static TARGETS: Mutex<Vec<Weak<Target>>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Register `dir`; panics go there while the returned handle lives.
pub(crate) fn register(dir: &Path, redactor: Redactor, max_file_bytes: u64) -> Arc<Target> {
    let target = Arc::new(Target {
        dir: dir.to_path_buf(),
        redactor: Mutex::new(redactor),
        max_file_bytes,
    });
    let mut targets = TARGETS.lock().unwrap_or_else(|e| e.into_inner());
    targets.retain(|t| t.strong_count() > 0);
    targets.push(Arc::downgrade(&target));
    target
}

/// Install (once per process; later calls do nothing) the panic hook that
/// appends every panic to the `exceptions.json` of each live
/// [`LogLayer`](super::LogLayer), then runs the hook that was in place
/// before. Building a layer does not install it: a program that wants its
/// panics in the request logs calls this at start, as `llm-router` does.
pub fn install_panic_hook() {
    HOOK.call_once(install_hook);
}

fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        record_panic(info);
        previous(info);
    }));
}

fn record_panic(info: &std::panic::PanicHookInfo<'_>) {
    if TARGETS
        .try_lock()
        .map_or(true, |t| t.iter().all(|w| w.strong_count() == 0))
    {
        // No log layer (or a panic while this thread holds the registry).
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
    let targets: Vec<Arc<Target>> = match TARGETS.try_lock() {
        Ok(targets) => targets.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return,
    };
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
