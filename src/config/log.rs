//! `[log]`: the typed [`LogPolicy`] the `log` layer takes, the raw serde
//! struct and its conversion into the policy.
//!
//! ```toml
//! [log]
//! dir = "logs"              # relative to the config file's directory
//! requests = true           # log each request's body
//! responses = true          # log each answer's body (a stream's text reassembled)
//! mask_api_keys = true      # sk-1234567890abcdef -> sk-...def, message text included
//! max_body_bytes = 65536    # cap of each logged body; a larger one is cut, with *_truncated
//! queue = 4096              # records waiting for the writer; beyond, dropped and counted
//! queue_bytes = 67108864    # bytes of records waiting for the writer; beyond, dropped and counted
//! max_file_bytes = 104857600  # a file past this size is renamed <name>.1 (5 kept) and a new one started
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Config, ConfigError, LayerName, Loader};

/// `[log]`, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// Where the files go (`dir`, resolved against the config's directory).
    pub dir: PathBuf,
    /// Log each request's body (`requests`).
    pub requests: bool,
    /// Log each answer's body, a stream's text reassembled (`responses`).
    pub responses: bool,
    /// Mask API keys wherever they appear (`mask_api_keys`).
    pub mask_api_keys: bool,
    /// The cap of each logged body, in bytes (`max_body_bytes`).
    pub max_body_bytes: usize,
    /// Records waiting for the writer; beyond, records are dropped (`queue`).
    pub queue: usize,
    /// Bytes of records waiting for the writer (or for being freed once
    /// written); beyond, records are dropped and counted (`queue_bytes`).
    pub queue_bytes: usize,
    /// A log file past this size is rotated (`max_file_bytes`).
    pub max_file_bytes: u64,
}

impl LogPolicy {
    /// Default `dir`, relative to the config's directory.
    pub const DEFAULT_DIR: &'static str = "logs";
    /// Default `max_body_bytes`: 64 KiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
    /// Default `queue`.
    pub const DEFAULT_QUEUE: usize = 4096;
    /// Default `queue_bytes`: 64 MiB.
    pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;
    /// Default `max_file_bytes`: 100 MiB.
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
    /// How many rotated files are kept of each log file (`.1` the newest
    /// … `.5` the oldest); an older one is deleted.
    pub const ROTATED_FILES_KEPT: u32 = 5;

    /// The defaults, writing into `dir`: bodies on, keys masked.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        LogPolicy {
            dir: dir.as_ref().to_path_buf(),
            requests: true,
            responses: true,
            mask_api_keys: true,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            queue: Self::DEFAULT_QUEUE,
            queue_bytes: Self::DEFAULT_QUEUE_BYTES,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    dir: Option<Spanned<String>>,
    requests: Option<bool>,
    responses: Option<bool>,
    mask_api_keys: Option<bool>,
    max_body_bytes: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
    queue_bytes: Option<Spanned<i64>>,
    max_file_bytes: Option<Spanned<i64>>,
}

impl Loader<'_> {
    /// `[log]` (`None` when absent). Without `[stack]`, `log` runs only when
    /// the section is written: files appearing next to a config that never
    /// asked for them would surprise.
    pub(super) fn log(
        &self,
        raw: Option<&RawLog>,
        dir: &Path,
        stack: &mut Vec<LayerName>,
        stack_explicit: bool,
    ) -> Result<Option<LogPolicy>, ConfigError> {
        let Some(raw) = raw else {
            if !stack_explicit {
                stack.retain(|l| *l != LayerName::Log);
            }
            return Ok(None);
        };
        let mut policy = LogPolicy::new(dir.join(LogPolicy::DEFAULT_DIR));
        if let Some(d) = &raw.dir {
            let text = d.get_ref().trim();
            if text.is_empty() {
                return Err(self.err(
                    Some(d.span()),
                    "log.dir",
                    "must not be empty; leave `dir` out for \"logs\" next to the config file",
                ));
            }
            policy.dir = dir.join(text);
        }
        policy.requests = raw.requests.unwrap_or(policy.requests);
        policy.responses = raw.responses.unwrap_or(policy.responses);
        policy.mask_api_keys = raw.mask_api_keys.unwrap_or(policy.mask_api_keys);
        for (value, key, min, target) in [
            (
                &raw.max_body_bytes,
                "log.max_body_bytes",
                256,
                &mut policy.max_body_bytes,
            ),
            (&raw.queue, "log.queue", 1, &mut policy.queue),
        ] {
            if let Some(v) = value {
                let n = *v.get_ref();
                if n < min || n > i64::from(u32::MAX) {
                    return Err(self.err(
                        Some(v.span()),
                        key,
                        format!("must be a whole number from {min} to {}", u32::MAX),
                    ));
                }
                *target = n as usize;
            }
        }
        // Byte sizes: from a few KiB to whatever the machine can address.
        let size = |value: &Option<Spanned<i64>>, key: &str| -> Result<Option<u64>, ConfigError> {
            let Some(v) = value else { return Ok(None) };
            let n = *v.get_ref();
            match u64::try_from(n) {
                Ok(n) if n >= 1024 && usize::try_from(n).is_ok() => Ok(Some(n)),
                _ => Err(self.err(
                    Some(v.span()),
                    key,
                    format!("must be a whole number of bytes from 1024 to {}", i64::MAX),
                )),
            }
        };
        if let Some(n) = size(&raw.queue_bytes, "log.queue_bytes")? {
            policy.queue_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = size(&raw.max_file_bytes, "log.max_file_bytes")? {
            policy.max_file_bytes = n;
        }
        Ok(Some(policy))
    }
}

impl Config {
    /// The log policy in force: `[log]`, or the defaults (`logs` next to
    /// the config file) when `log` is in the order without a section.
    pub fn log_policy(&self) -> LogPolicy {
        self.log.clone().unwrap_or_else(|| {
            let dir = self.path.parent().unwrap_or(Path::new(""));
            LogPolicy::new(dir.join(LogPolicy::DEFAULT_DIR))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::stack::LayerName;

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/srv/router/config.toml"), &|_| None)
    }

    #[test]
    fn section_and_defaults() {
        // No section, no [stack]: off.
        let c = parse(MIN).unwrap();
        assert!(c.log.is_none() && !c.stack.contains(&LayerName::Log));
        // An empty section: on, with the defaults.
        let c = parse(&format!("{MIN}\n[log]\n")).unwrap();
        assert_eq!(c.stack.first(), Some(&LayerName::Log));
        let p = c.log.clone().unwrap();
        assert_eq!(p.dir, Path::new("/srv/router/logs"));
        assert!(p.requests && p.responses && p.mask_api_keys);
        assert_eq!(p.max_body_bytes, 64 * 1024);
        assert_eq!((p.queue_bytes, p.max_file_bytes), (67_108_864, 104_857_600));
        assert_eq!(c.log_policy(), p);
        let c = parse(&format!(
            "{MIN}\n[log]\ndir = \"/var/log/router\"\nrequests = false\nresponses = false\nmask_api_keys = false\nmax_body_bytes = 1024\nqueue = 8\nqueue_bytes = 4096\nmax_file_bytes = 10000000000\n"
        ))
        .unwrap();
        let p = c.log.unwrap();
        assert_eq!(p.dir, Path::new("/var/log/router"));
        assert!(!p.requests && !p.responses && !p.mask_api_keys);
        assert_eq!((p.max_body_bytes, p.queue), (1024, 8));
        assert_eq!((p.queue_bytes, p.max_file_bytes), (4096, 10_000_000_000));
        // In an explicit order without a section: the defaults.
        let c = parse(&format!("[stack]\norder = [\"log\"]\n\n{MIN}")).unwrap();
        assert!(c.log.is_none());
        assert_eq!(c.log_policy().dir, Path::new("/srv/router/logs"));
    }

    #[test]
    fn errors_name_line_and_key() {
        for (body, key, words) in [
            ("dir = \"\"", "log.dir", "must not be empty"),
            ("queue = 0", "log.queue", "from 1"),
            ("max_body_bytes = 10", "log.max_body_bytes", "from 256"),
            ("queue_bytes = 100", "log.queue_bytes", "from 1024"),
            ("max_file_bytes = -1", "log.max_file_bytes", "from 1024"),
            ("requests = \"yes\"", "log.requests", "bool"),
        ] {
            let e = parse(&format!("{MIN}\n[log]\n{body}\n")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
            assert!(e.message.contains(words), "{body}: {e}");
            assert_eq!(e.line, Some(10), "{body}: {e}");
        }
        let e = parse(&format!("{MIN}\n[log]\nmask_api_key = true\n")).unwrap_err();
        assert!(e.message.contains("did you mean `mask_api_keys`"), "{e}");
    }
}
