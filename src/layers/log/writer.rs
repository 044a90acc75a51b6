//! The writer: one dedicated thread per log layer, fed by a bounded channel.
//!
//! Requests never wait for it. A record is handed over with `try_send`; when
//! the channel is full the record is dropped and counted. The thread is
//! started by the first record (so `llm-router check`, which builds the
//! stack, creates no file and no thread), creates `dir` if needed (mode
//! 0700 on unix), and writes each record as one line of the session file —
//! and, when it is an error, the same line without its bodies to the errors
//! file — flushing after every batch it finds waiting. Files are created
//! readable by their owner only (0600). A file that would grow past
//! `max_file_bytes` is rotated first: renamed `<name>.1` (an older `.1`
//! becomes `.2`, and so on; [`LogPolicy::ROTATED_FILES_KEPT`] are kept, an
//! older one is deleted) and a new one started.
//! While busy it drains the channel every 10 ms rather than being woken for
//! each record (a wake-up is a system call on the request's thread, and an
//! interrupt in a VM); idle, it blocks, and the next record wakes it. It
//! ends, after a last flush, when every sender is gone (the stack was
//! dropped: shutdown, or a reload that replaced it).
//!
//! A [`LogFlush`](super::LogFlush) lets the server's graceful shutdown wait
//! until every record handed over so far is on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::record::{Record, Rendered};
use super::redact::Redactor;
use super::LogPolicy;
use crate::layers::metrics::Metrics;

/// How long a busy writer sleeps between two drains of the channel.
const BUSY_POLL: Duration = Duration::from_millis(10);

/// How far a writer got: records handed over and records done with.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(super) sent: AtomicU64,
    pub(super) written: AtomicU64,
    pub(super) done: AtomicBool,
}

impl Progress {
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
    }
}

/// What the thread needs; taken by the first record.
pub(crate) struct Starter {
    pub(crate) rx: mpsc::Receiver<Box<Record>>,
    pub(crate) dir: PathBuf,
    pub(crate) max_file_bytes: u64,
    pub(crate) redactor: Redactor,
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Where written records go back, to be freed by the request side.
    pub(crate) garbage: std::sync::mpsc::Sender<Box<Record>>,
}

/// Start the writer thread.
pub(crate) fn start(starter: Starter, progress: Arc<Progress>) {
    let spawned = std::thread::Builder::new()
        .name("llm-router-log".into())
        .spawn(move || run(starter, &progress));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the log writer thread; request records are dropped");
    }
}

/// One log file, opened on first use, rotated past its size.
struct LogFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    /// Bytes in the file (what was there when opened, and written since).
    len: u64,
}

impl LogFile {
    fn new(path: PathBuf) -> LogFile {
        LogFile {
            path,
            file: None,
            len: 0,
        }
    }

    /// Append `line` and a newline, rotating the file first when they
    /// would take it past `max` (a line longer than `max` goes alone into
    /// its own file).
    fn write(&mut self, dir: &Path, line: &[u8], max: u64) -> io::Result<()> {
        let add = line.len() as u64 + 1;
        if self.len > 0 && self.len.saturating_add(add) > max {
            if let Some(mut file) = self.file.take() {
                file.flush()?;
            }
            rotate(&self.path, LogPolicy::ROTATED_FILES_KEPT)?;
            self.len = 0;
        }
        let file = match &mut self.file {
            Some(file) => file,
            slot => {
                let file = open_private(dir, &self.path)?;
                self.len = file.metadata().map_or(0, |m| m.len());
                slot.insert(BufWriter::with_capacity(64 * 1024, file))
            }
        };
        file.write_all(line)?;
        file.write_all(b"\n")?;
        self.len = self.len.saturating_add(add);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Create `dir` (0700 on unix) if needed and open `path` in it for
/// appending, created 0600 on unix (an existing file more open than that is
/// made 0600).
pub(crate) fn open_private(dir: &Path, path: &Path) -> io::Result<File> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        builder.mode(0o700);
        options.mode(0o600);
        builder.create(dir)?;
        let file = options.open(path)?;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        builder.create(dir)?;
        options.open(path)
    }
}

/// `<path>.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rename `path` to `<path>.1`, after moving `.1` to `.2` and so on;
/// `.<kept>` is deleted first. Rotated files that are missing are skipped.
pub(crate) fn rotate(path: &Path, kept: u32) -> io::Result<()> {
    let ignore_missing = |r: io::Result<()>| match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if kept == 0 {
        return ignore_missing(std::fs::remove_file(path));
    }
    ignore_missing(std::fs::remove_file(numbered(path, kept)))?;
    for n in (1..kept).rev() {
        ignore_missing(std::fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    ignore_missing(std::fs::rename(path, numbered(path, 1)))
}

/// The two files of one session, opened on first use.
struct Session {
    dir: PathBuf,
    stem: String,
    main: LogFile,
    errors: LogFile,
    max_file_bytes: u64,
    failures: u64,
}

impl Session {
    fn new(dir: PathBuf, max_file_bytes: u64) -> Session {
        let now = SystemTime::now();
        let id = session_id();
        let stem = format!("router_{}_{id:08x}", file_stamp(now));
        Session {
            main: LogFile::new(dir.join(format!("{stem}.jsonl"))),
            errors: LogFile::new(dir.join(format!("{stem}_errors.jsonl"))),
            dir,
            stem,
            max_file_bytes,
            failures: 0,
        }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}.jsonl", self.stem))
    }

    fn write(&mut self, errors: bool, line: &[u8]) -> io::Result<()> {
        let file = if errors {
            &mut self.errors
        } else {
            &mut self.main
        };
        file.write(&self.dir, line, self.max_file_bytes)
    }

    /// Flush both files; a failure (a full disk) is counted and reported
    /// like a failed write, not once per flush.
    fn flush(&mut self) {
        for result in [self.main.flush(), self.errors.flush()] {
            if let Err(e) = result {
                self.failed(&e);
            }
        }
    }

    fn failed(&mut self, e: &io::Error) {
        // Warn at the first failure and then at every 1000th, not per record.
        if self.failures.is_multiple_of(1000) {
            tracing::error!(
                error = %e,
                file = %self.path("").display(),
                "cannot write the request log; records are dropped"
            );
        }
        self.failures = self.failures.wrapping_add(1);
    }
}

fn run(starter: Starter, progress: &Progress) {
    let Starter {
        mut rx,
        dir,
        max_file_bytes,
        mut redactor,
        metrics,
        garbage,
    } = starter;
    let mut session = Session::new(dir, max_file_bytes);
    let mut write = |record: Box<Record>, session: &mut Session| {
        let Rendered {
            mut line,
            error,
            head,
            exception,
        } = record.render(&mut redactor);
        let mut result = session.write(false, &line);
        if error && result.is_ok() {
            // The errors file: the line without its bodies, which are
            // written once, in the session file.
            line.truncate(head);
            line.push(b'}');
            result = session.write(true, &line);
        }
        if let Err(e) = result {
            session.failed(&e);
            if let Some(m) = &metrics {
                m.log_records_dropped(1);
            }
        }
        if let Some(exception) = exception {
            super::panic::append(&session.dir, &exception, session.max_file_bytes);
        }
        // Freed where it was allocated: with glibc's malloc, a thread that
        // keeps freeing another thread's memory contends for that thread's
        // arena lock, and the requests slow down.
        let _ = garbage.send(record);
    };
    // Busy, the writer drains what is waiting, then sleeps a little and
    // drains again: senders never have to wake it (a wake-up costs the
    // request a system call, and in a VM an interrupt). Once a drain finds
    // nothing, it blocks until the next record, which wakes it once.
    let mut next = rx.blocking_recv();
    while let Some(first) = next.take() {
        let mut batch = 1u64;
        write(first, &mut session);
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(record) => {
                    write(record, &mut session);
                    batch += 1;
                    if batch.is_multiple_of(1024) {
                        session.flush();
                        progress.written.fetch_add(1024, Ordering::AcqRel);
                        batch = 0;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        session.flush();
        progress.written.fetch_add(batch, Ordering::AcqRel);
        if closed {
            break;
        }
        std::thread::sleep(BUSY_POLL);
        next = match rx.try_recv() {
            Ok(record) => Some(record),
            Err(mpsc::error::TryRecvError::Empty) => rx.blocking_recv(),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
        };
    }
    session.flush();
    progress.done.store(true, Ordering::Release);
}

/// A random 32-bit session id (from the standard library's random hasher seed).
fn session_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// `(year, month, day, hour, minute, second, millisecond)` of a time, in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// RFC 3339 in UTC with milliseconds: `2026-11-21T13:39:07.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339`], appended to `out` (digits written by hand: no formatter).
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    let Ok(year @ 0..=9999) = u32::try_from(y) else {
        let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
        return;
    };
    let digits = |out: &mut Vec<u8>, n: u32, width: u32| {
        for k in (0..width).rev() {
            out.push(b'0' + (n / 10u32.pow(k) % 10) as u8);
        }
    };
    digits(out, year, 4);
    for (sep, n) in [(b'-', mo), (b'-', d), (b'T', h), (b':', mi), (b':', s)] {
        out.push(sep);
        digits(out, n, 2);
    }
    out.push(b'.');
    digits(out, ms, 3);
    out.push(b'Z');
}

/// `YYYYMMDD_HHMMSS` in UTC, for file names.
fn file_stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_keep_five_and_are_private() {
        let dir = std::env::temp_dir().join(format!("llm-router-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("router_x.jsonl");
        let mut file = LogFile::new(path.clone());
        // 40 lines of 99 bytes (and a newline) into files of at most 250:
        // two lines a file.
        for n in 0..40u32 {
            let line = format!("{n:099}");
            file.write(&dir, line.as_bytes(), 250).unwrap();
        }
        file.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), format!("{:099}\n{:099}\n", 38, 39));
        for k in 1..=LogPolicy::ROTATED_FILES_KEPT {
            let first = 38 - 2 * k;
            assert_eq!(
                read(&numbered(&path, k)),
                format!("{first:099}\n{:099}\n", first + 1),
                ".{k}"
            );
        }
        assert!(!numbered(&path, LogPolicy::ROTATED_FILES_KEPT + 1).exists());
        // A line longer than the size goes alone into its own file.
        file.write(&dir, &[b'a'; 300], 250).unwrap();
        file.flush().unwrap();
        assert_eq!(read(&path).len(), 301);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for entry in std::fs::read_dir(&dir).unwrap() {
                let meta = entry.unwrap().metadata().unwrap();
                assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            }
            assert_eq!(
                std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
            // An existing file more open than 0600 is closed down.
            let loose = dir.join("exceptions.json");
            std::fs::write(&loose, "").unwrap();
            std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
            drop(open_private(&dir, &loose).unwrap());
            let mode = std::fs::metadata(&loose).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dates() {
        let at = |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789
        assert_eq!(rfc3339(at(951_827_696, 789)), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(at(1_798_761_599, 0)), "2026-12-31T23:59:59.000Z");
        assert_eq!(rfc3339(at(4_107_542_400, 5)), "2100-03-01T00:00:00.005Z");
        assert_eq!(file_stamp(at(951_827_696, 789)), "20000229_123456");
        // Past year 9999, the formatter writes it.
        assert_eq!(rfc3339(at(253_402_300_800, 1)), "10000-01-01T00:00:00.001Z");
        // Against httpdate for a spread of times.
        for secs in (0..4_000_000_000u64).step_by(86_399 * 37 + 11) {
            let t = at(secs, 0);
            let http = httpdate::fmt_http_date(t);
            let (y, mo, d, h, mi, s, _) = civil(t);
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let expected = format!(
                "{d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT",
                months[mo as usize - 1]
            );
            assert!(http.ends_with(&expected), "{http} vs {expected}");
        }
    }
}
