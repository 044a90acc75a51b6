//! The real `llm-router` binary, started as a user would: in a working
//! directory of their files, with only the environment they set (plus PATH),
//! listening on a port the OS chose. Its log lines arrive on a channel, so a
//! test waits for "listening on" (or any line) instead of sleeping.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::BOUND;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_llm-router");

/// A fresh directory under the system's temp dir, removed on drop.
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A new empty directory named after `test`.
    pub fn new(test: &str) -> WorkDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "llm-router-{test}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        WorkDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write `text` to `name` here; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with an empty environment but PATH, run in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running `llm-router`: killed on drop.
pub struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every log line seen so far (stdout and stderr).
    pub seen: Vec<String>,
    /// The port from its "listening on" line.
    pub port: u16,
}

impl Running {
    /// Spawn `cmd` and wait (bounded) for its "listening on" line.
    pub async fn start(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn llm-router");
        let (tx, lines) = mpsc::unbounded_channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        for pipe in [
            Box::new(out) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut running = Running {
            child,
            lines,
            seen: Vec::new(),
            port: 0,
        };
        let line = running.wait_line("listening on").await;
        running.port =
            port_of(&line).unwrap_or_else(|| panic!("no port in the listening line: {line}"));
        running
    }

    /// [`Running::start`] for a blocking [`std::process::Command`] (its
    /// output piped here, killed on drop).
    pub async fn spawn(cmd: std::process::Command) -> Running {
        let mut cmd = Command::from(cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Running::start(cmd).await
    }

    /// Every line logged so far.
    pub fn log(&self) -> String {
        self.seen.join("\n")
    }

    /// Wait (bounded) for a log line containing `needle`; returns it.
    pub async fn wait_line(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            match tokio::time::timeout(BOUND, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => {
                    let status = self.child.wait().await;
                    panic!(
                        "llm-router exited ({status:?}) before logging {needle:?}; output:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {BOUND:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The port of `...listening on http://HOST:PORT ...`.
fn port_of(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr = rest.split_whitespace().next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// The binary as a blocking command, with an empty environment but PATH
/// (nothing from the developer's shell — RUST_LOG, LLM_ROUTER_*, API keys —
/// leaks in) and no stdin.
pub fn llm_router() -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A finished command's stdout as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
