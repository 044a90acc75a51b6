//! [`App::reload`] and [`App::reload_with`]: build a new configuration
//! around the state carried over and swap it in for new requests.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{unix_secs, App, State};
use crate::config::Config;
use crate::reload::{ConfigReload, ReloadError};

impl App {
    /// Read the config again from its source (`POST /admin/reload`, SIGHUP)
    /// and swap it in; see [`ConfigSource`](crate::server::ConfigSource). On an
    /// error nothing changes, and the error is logged.
    ///
    /// It reads a file and builds the backends' clients: from async code,
    /// call it through `tokio::task::spawn_blocking` (as the server does).
    pub fn reload(&self) -> Result<ConfigReload, ReloadError> {
        let source = self.source();
        let result = match source.as_ref() {
            None => Err(ReloadError::NoSource),
            Some(src) => src
                .load()
                .map_err(ReloadError::from)
                .and_then(|config| self.swap(config)),
        };
        drop(source);
        self.reloaded(result)
    }

    /// Swap in `config` (validated already, e.g. by [`Config::parse`]), as
    /// a reload does.
    pub fn reload_with(&self, config: Config) -> Result<ConfigReload, ReloadError> {
        let source = self.source();
        let result = self.swap(config);
        drop(source);
        self.reloaded(result)
    }

    fn reloaded(
        &self,
        result: Result<ConfigReload, ReloadError>,
    ) -> Result<ConfigReload, ReloadError> {
        if let Err(e) = &result {
            self.shared.failed_reloads.fetch_add(1, Ordering::Relaxed);
            *self
                .shared
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            tracing::error!(error = %e, "config reload failed; the config in force is unchanged");
        }
        result
    }

    /// Build `config` around the state carried over from the one in force
    /// and swap it in (the caller holds the source lock).
    fn swap(&self, mut config: Config) -> Result<ConfigReload, ReloadError> {
        let old = self.current();
        let old_config = old.config.as_deref();
        let mut notes = match old_config {
            Some(o) => crate::reload::keep_server_settings(o, &mut config),
            None => Vec::new(),
        };
        notes.extend(config.warnings());
        let router = old.router.carry_over(old_config, &config);
        let built = crate::stack::build_with_state(&config, router)?;
        let config = Arc::new(config);
        let state = Arc::new(State::new(
            built,
            config.server.body_limit,
            Some(config.clone()),
        ));
        // A shutdown waits for this stack's writers, and for the old
        // stack's while its requests finish.
        #[cfg(feature = "observability")]
        self.shared.log_flush.include(&state.log_flush);
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = state.clone();
        state.router.attach_store();
        state.router.prune(old_config, &config);
        self.shared.catalog.config_changed();
        let reloads = self.shared.reloads.fetch_add(1, Ordering::Relaxed) + 1;
        let models: Vec<String> = state.routes.models().map(str::to_string).collect();
        let before: Vec<&str> = old.routes.models().collect();
        let report = ConfigReload {
            reloaded: true,
            config: config.path.display().to_string(),
            loaded_at: unix_secs(state.loaded_at),
            reloads,
            models_added: models
                .iter()
                .filter(|m| !before.contains(&m.as_str()))
                .cloned()
                .collect(),
            models_removed: before
                .iter()
                .filter(|m| !models.iter().any(|n| n == *m))
                .map(|m| m.to_string())
                .collect(),
            models,
            backends: config.backends.iter().map(|b| b.name.clone()).collect(),
            stack: config
                .stack
                .iter()
                .map(|l| l.as_str().to_string())
                .collect(),
            notes,
        };
        tracing::info!(
            config = %report.config,
            reloads,
            models = ?report.models,
            added = ?report.models_added,
            removed = ?report.models_removed,
            "config reloaded"
        );
        for note in &report.notes {
            tracing::warn!("{note}");
        }
        Ok(report)
    }
}
