//! Hot reload: re-read the config and swap it in without a restart.
//!
//! `POST /admin/reload`, SIGHUP and `serve --reload` ([`watch`](crate::watch))
//! call [`App::reload`](crate::App::reload), which reads the config again
//! from its [`ConfigSource`] — the file the server started with (or the
//! environment, for a config built from it), the `.env` read with it (see
//! [`discover`](crate::config::discover)) read again too, with the command
//! line's `--host`/`--port` applied again — builds a new
//! stack around the state carried over from the one in force
//! ([`RouterState::carry_over`](crate::stack::RouterState::carry_over)), and
//! swaps it in at once. New requests use the new config; requests and
//! streams in flight finish on the one they started with.
//!
//! An invalid file changes nothing: the config in force keeps serving, and
//! the error (`file:line: key: message`) is returned and logged.
//!
//! Not changed by a reload: the listen address, the TLS certificate and key,
//! `shutdown_timeout` and the connection limits (`max_connections`,
//! `header_read_timeout`, `idle_timeout`) — the server holds them; a new
//! config that changes them is applied without them, and the
//! [`ConfigReload`] notes say so. Everything else is: backends, models, the
//! stack order and every layer's settings, `body_limit`,
//! `body_read_timeout`, and the auth keys (rebuilt from the new config;
//! per-key counters start over).
//!
//! ```
//! use std::path::Path;
//! use llm_router::{App, config::Config};
//!
//! let text = |model: &str| format!(
//!     "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n[[models]]\nname = \"{model}\"\ntargets = [{{ backend = \"local\" }}]\n");
//! let parse = |t: &str| Config::parse(t, Path::new("config.toml"), &|_| None).unwrap();
//! let app = App::from_config(&parse(&text("old"))).unwrap();
//! let reload = app.reload_with(parse(&text("new"))).unwrap();
//! assert_eq!(reload.models, ["new"]);
//! assert_eq!(reload.reloads, 1);
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::discover::Source;
use crate::config::{Config, ConfigError};

/// Where a reload reads the config from. See the module docs of `reload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSource {
    source: Source,
    host: Option<String>,
    port: Option<u16>,
}

impl ConfigSource {
    /// Read the config file at `path` ([`Config::load`]: a config.toml or
    /// another router's file, a `.env` included).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        ConfigSource::new(Source::File(path.into()))
    }

    /// Build the config from the environment again (`serve` without a
    /// config file; see [`zero`](crate::config::zero)).
    pub fn environment() -> Self {
        ConfigSource::new(Source::Environment { dotenv: None })
    }

    /// Read `source` again (as found at start-up, see
    /// [`discover`](crate::config::discover)): its file, and its `.env`.
    pub fn new(source: Source) -> Self {
        ConfigSource {
            source,
            host: None,
            port: None,
        }
    }

    /// Where `config` was read from: its file, or the environment.
    pub fn of(config: &Config) -> Self {
        if config.path == Path::new(crate::config::zero::PATH) {
            ConfigSource::environment()
        } else {
            ConfigSource::file(&config.path)
        }
    }

    /// Apply `--host` / `--port` to every config read (as at start-up).
    pub fn with_listen_overrides(mut self, host: Option<String>, port: Option<u16>) -> Self {
        self.host = host;
        self.port = port;
        self
    }

    /// The file read (`<environment>` for the environment).
    pub fn path(&self) -> &Path {
        self.source.path()
    }

    /// The files read (the config file, the `.env`): what `serve --reload`
    /// watches.
    pub fn files(&self) -> Vec<&Path> {
        self.source.files()
    }

    /// Read and validate the config.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = self.source.load(&|name| std::env::var(name).ok())?.config;
        config.override_listen(self.host.clone(), self.port);
        Ok(config)
    }
}

/// What a successful reload did (the answer of `POST /admin/reload`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigReload {
    /// Always true (a failed reload is a [`ReloadError`]).
    pub reloaded: bool,
    /// The config file read.
    pub config: String,
    /// Unix time (seconds) the new config came into force.
    pub loaded_at: u64,
    /// Successful reloads since start, this one included.
    pub reloads: u64,
    /// The models now served.
    pub models: Vec<String>,
    /// Models added by this reload.
    pub models_added: Vec<String>,
    /// Models no longer served.
    pub models_removed: Vec<String>,
    /// The backends now defined.
    pub backends: Vec<String>,
    /// The stack, outermost first.
    pub stack: Vec<String>,
    /// Settings the reload could not apply (listen address, TLS files,
    /// shutdown timeout), and the config's own warnings.
    pub notes: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new config is invalid (`file:line: key: message`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The app was built in code, not from a config: there is nothing to
    /// read again.
    #[error("this app was not built from a config file: there is nothing to reload")]
    NoSource,
}

/// The settings of the server itself, which a reload keeps: a note for each
/// one `new` would change, and `new` brought back to the values in force.
pub(crate) fn keep_server_settings(old: &Config, new: &mut Config) -> Vec<String> {
    let mut notes = Vec::new();
    if old.server.listen() != new.server.listen() {
        notes.push(format!(
            "server.listen: `{}` is not applied by a reload; still listening on `{}` (restart to change it)",
            new.server.listen(),
            old.server.listen()
        ));
    }
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string())
    };
    for (key, was, now) in [
        ("tls_cert", &old.server.tls_cert, &new.server.tls_cert),
        ("tls_key", &old.server.tls_key, &new.server.tls_key),
    ] {
        if was != now {
            notes.push(format!(
                "server.{key}: `{}` is not applied by a reload; still `{}` (restart to change it)",
                shown(now),
                shown(was)
            ));
        }
    }
    if old.server.shutdown_timeout != new.server.shutdown_timeout {
        notes.push(format!(
            "server.shutdown_timeout: {:?} is not applied by a reload; still {:?} (restart to change it)",
            new.server.shutdown_timeout, old.server.shutdown_timeout
        ));
    }
    new.server.host = old.server.host.clone();
    new.server.port = old.server.port;
    new.server.tls_cert = old.server.tls_cert.clone();
    new.server.tls_key = old.server.tls_key.clone();
    new.server.shutdown_timeout = old.server.shutdown_timeout;
    if old.server.max_connections != new.server.max_connections {
        notes.push(format!(
            "server.max_connections: {} is not applied by a reload; still {} (restart to change it)",
            new.server.max_connections, old.server.max_connections
        ));
    }
    for (key, was, now) in [
        (
            "header_read_timeout",
            old.server.header_read_timeout,
            new.server.header_read_timeout,
        ),
        (
            "idle_timeout",
            old.server.idle_timeout,
            new.server.idle_timeout,
        ),
    ] {
        if was != now {
            notes.push(format!(
                "server.{key}: {now:?} is not applied by a reload; still {was:?} (restart to change it)"
            ));
        }
    }
    new.server.max_connections = old.server.max_connections;
    new.server.header_read_timeout = old.server.header_read_timeout;
    new.server.idle_timeout = old.server.idle_timeout;
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(server: &str) -> Config {
        let text = format!(
            "{server}\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n[[models]]\nname = \"m\"\ntargets = [{{ backend = \"local\" }}]\n"
        );
        Config::parse(&text, Path::new("config.toml"), &|_| None).unwrap()
    }

    #[test]
    fn server_settings_are_kept_with_a_note() {
        let old = parse("[server]\nlisten = \"127.0.0.1:8080\"");
        let mut new = parse("[server]\nlisten = \"127.0.0.1:9090\"\nbody_limit = 5");
        let notes = keep_server_settings(&old, &mut new);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("127.0.0.1:9090"), "{notes:?}");
        assert_eq!(new.server.listen(), "127.0.0.1:8080");
        assert_eq!(new.server.body_limit, 5);
        let mut same = parse("[server]\nlisten = \"127.0.0.1:8080\"");
        assert!(keep_server_settings(&old, &mut same).is_empty());
        // The connection limits belong to the server too; body_read_timeout
        // is the app's, and is reloaded.
        let mut new = parse(
            "[server]\nlisten = \"127.0.0.1:8080\"\nmax_connections = 3\nidle_timeout = \"1s\"\nbody_read_timeout = \"1s\"",
        );
        let notes = keep_server_settings(&old, &mut new);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("server.max_connections"), "{notes:?}");
        assert!(notes[1].starts_with("server.idle_timeout"), "{notes:?}");
        assert_eq!(new.server.max_connections, 10_000);
        assert_eq!(new.server.idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(
            new.server.body_read_timeout,
            std::time::Duration::from_secs(1)
        );
    }

    #[test]
    fn the_source_applies_the_overrides() {
        let dir = std::env::temp_dir().join(format!("llm-router-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:8080\"\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n[[models]]\nname = \"m\"\ntargets = [{ backend = \"local\" }]\n",
        )
        .unwrap();
        let source = ConfigSource::file(&path).with_listen_overrides(None, Some(9000));
        assert_eq!(source.load().unwrap().server.listen(), "127.0.0.1:9000");
        let missing = ConfigSource::file(dir.join("missing.toml"))
            .load()
            .unwrap_err();
        assert!(missing.to_string().contains("missing.toml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
