//! The top-level sections and the pass over them: `environment_variables`,
//! `model_list`, `router_settings` / `litellm_settings` / `general_settings`
//! mapped to the global sections, `proxy_server_config`, then the backends,
//! models, fallbacks and aliases handed to the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::models::TargetOut;
use super::{Importer, Setting, Val};
use crate::config::import::yaml::{Entry, Value};
use crate::config::import::{Format, Imported};
use crate::config::ConfigError;

/// The global sections of the generated config.
#[derive(Debug)]
pub(super) struct Sections {
    pub(super) master_key: Option<Val>,
    pub(super) retries: Option<Val>,
    pub(super) retry_after: Option<Val>,
    pub(super) failure_threshold: Option<Val>,
    pub(super) cooldown: Option<Val>,
    /// `proxy_server_config` `host` / `port`, as `host:port`.
    pub(super) listen: Option<Val>,
}

impl Importer {
    pub(super) fn run(
        mut self,
        top: &[Entry],
        path: &Path,
        root_line: usize,
    ) -> Result<Imported, ConfigError> {
        const SECTIONS: &[&str] = &[
            "model_list",
            "router_settings",
            "litellm_settings",
            "general_settings",
            "environment_variables",
            "proxy_server_config",
        ];
        for e in top {
            if !SECTIONS.contains(&e.key.as_str()) {
                let key = e.key.clone();
                self.warn(
                    e.line,
                    &key,
                    "section has no equivalent in llm-router; ignored",
                );
            }
        }
        let section = |name: &str| top.iter().find(|e| e.key == name);

        // environment_variables first: they are the defaults of `${NAME:-...}`.
        if let Some(env) = section("environment_variables") {
            match env.node.entries() {
                Some(entries) => {
                    for e in entries {
                        match e.node.text() {
                            Some(v) if !v.contains(['}', '"', '\\']) => {
                                self.env_defaults.insert(e.key.clone(), v);
                            }
                            _ => {
                                let key = format!("environment_variables.{}", e.key);
                                self.warn(e.line, &key, "cannot be a `${NAME:-default}` default (not a plain value without `}`, `\"` or `\\`); ignored");
                            }
                        }
                    }
                }
                None if matches!(env.node.value, Value::Null) => {}
                None => {
                    return Err(self.err(
                        env.line,
                        "environment_variables",
                        format!("must be a mapping, not {}", env.node.what()),
                    ))
                }
            }
        }

        let Some(list) = section("model_list") else {
            return Err(self.err(
                root_line,
                "model_list",
                "no `model_list`: a LiteLLM config lists its models there, and without any no request could be routed",
            ));
        };
        let items = match &list.node.value {
            Value::Seq(items) if !items.is_empty() => items.clone(),
            Value::Seq(_) | Value::Null => {
                return Err(self.err(list.line, "model_list", "is empty; add at least one model"))
            }
            _ => {
                return Err(self.err(
                    list.line,
                    "model_list",
                    format!("must be a list of models, not {}", list.node.what()),
                ))
            }
        };

        let mut retries = Setting::default();
        let mut deployments = Vec::new();
        for (i, item) in items.iter().enumerate() {
            deployments.push(self.deployment(i, item, &mut retries)?);
        }

        // Settings: router_settings wins over litellm_settings for keys both take.
        let router = section("router_settings");
        let litellm = section("litellm_settings");
        let general = section("general_settings");
        for (name, s) in [
            ("router_settings", router),
            ("litellm_settings", litellm),
            ("general_settings", general),
        ] {
            if let Some(s) = s {
                if s.node.entries().is_none() && !matches!(s.node.value, Value::Null) {
                    return Err(self.err(
                        s.line,
                        name,
                        format!("must be a mapping, not {}", s.node.what()),
                    ));
                }
            }
        }
        let settings: Vec<(&str, &Entry)> =
            [("router_settings", router), ("litellm_settings", litellm)]
                .into_iter()
                .filter_map(|(n, s)| s.map(|s| (n, s)))
                .flat_map(|(n, s)| {
                    s.node
                        .entries()
                        .unwrap_or_default()
                        .iter()
                        .map(move |e| (n, e))
                })
                .collect();
        let mut global_timeout: Option<Val> = None;
        let mut global_stream_timeout: Option<Val> = None;
        let mut retry_after: Option<Val> = None;
        let mut allowed_fails: Option<(u64, Val)> = None;
        let mut cooldown: Option<Val> = None;
        let mut fallbacks: Option<&Entry> = None;
        let mut fallbacks_key = String::new();
        let mut default_fallbacks: Option<(&Entry, String)> = None;
        let mut context_fallbacks: Option<(&Entry, String)> = None;
        let mut aliases: Option<(&Entry, String)> = None;
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        let mut unmapped: BTreeMap<&str, (usize, Vec<&str>)> = BTreeMap::new();
        for (section_name, e) in settings {
            let key = format!("{section_name}.{}", e.key);
            let name = e.key.as_str();
            let takes = matches!(
                name,
                "num_retries"
                    | "timeout"
                    | "request_timeout"
                    | "stream_timeout"
                    | "retry_after"
                    | "allowed_fails"
                    | "cooldown_time"
                    | "fallbacks"
                    | "default_fallbacks"
                    | "context_window_fallbacks"
            );
            // `timeout` and `request_timeout` are the same setting.
            let setting = if name == "request_timeout" {
                "timeout"
            } else {
                name
            };
            if takes {
                if let Some(first) = seen.get(setting) {
                    let first = first.clone();
                    self.warn(e.line, &key, format!("{first} is used instead"));
                    continue;
                }
                seen.insert(setting, key.clone());
            }
            match name {
                "num_retries" => {
                    let n = self.whole(e, &key, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{key} (per target here; LiteLLM retries the group)"),
                        line: e.line,
                        key: key.clone(),
                    };
                    self.retries(&mut retries, val, true);
                }
                "timeout" | "request_timeout" => global_timeout = self.seconds(e, &key)?,
                "stream_timeout" => global_stream_timeout = self.seconds(e, &key)?,
                "retry_after" => retry_after = self.seconds(e, &key)?,
                "allowed_fails" => {
                    let n = self.whole(e, &key, 0)?;
                    allowed_fails = Some((
                        n,
                        Val {
                            text: (n + 1).to_string(),
                            comment: format!(
                                "{key} = {n}: a deployment cools down after more than {n} failures"
                            ),
                            line: e.line,
                            key: key.clone(),
                        },
                    ));
                }
                "cooldown_time" => cooldown = self.seconds(e, &key)?,
                "fallbacks" => {
                    fallbacks = Some(e);
                    fallbacks_key = key.clone();
                }
                "default_fallbacks" => default_fallbacks = Some((e, key.clone())),
                "context_window_fallbacks" => context_fallbacks = Some((e, key.clone())),
                "model_group_alias" if section_name == "router_settings" => {
                    aliases = Some((e, key.clone()))
                }
                "routing_strategy" => {
                    let strategy = e.node.text().unwrap_or_default();
                    if strategy != "simple-shuffle" {
                        self.warn(e.line, &key, format!(
                            "`{strategy}` has no equivalent: targets of equal priority share the load by weight (simple-shuffle)"
                        ));
                    }
                }
                "drop_params" => self.warn(
                    e.line,
                    &key,
                    "no equivalent: llm-router forwards a request's parameters as the client sent them (translated between provider formats where needed), so a provider may refuse one it does not support",
                ),
                "redis_host" | "redis_port" | "redis_password" | "redis_url" => self.warn(
                    e.line,
                    &key,
                    "no equivalent yet: cooldowns, circuits and limits are kept in memory, per llm-router process",
                ),
                _ => unmapped
                    .entry(section_name)
                    .or_insert((e.line, Vec::new()))
                    .1
                    .push(name),
            }
        }
        for (section_name, (line, names)) in unmapped {
            let line = section(section_name).map_or(line, |s| s.line);
            self.unmapped(line, section_name, &names, "in llm-router");
        }

        // general_settings: master_key.
        let mut master_key: Option<Val> = None;
        if let Some(g) = general {
            let mut names = Vec::new();
            for e in g.node.entries().unwrap_or_default() {
                if e.key == "master_key" {
                    let key = "general_settings.master_key";
                    master_key = Some(self.string(e, key)?);
                } else {
                    names.push(e.key.as_str());
                }
            }
            self.unmapped(g.line, "general_settings", &names, "in llm-router");
        }

        // proxy_server_config: host and port.
        let listen = match section("proxy_server_config") {
            Some(p) => self.proxy_server_config(p)?,
            None => None,
        };

        // Backends and targets.
        let (backends, backend_of) = self.backends(
            &deployments,
            global_timeout.as_ref(),
            global_stream_timeout.as_ref(),
        );
        let mut groups = self.groups(&deployments, &backends, &backend_of)?;
        let originals: Vec<(String, Vec<TargetOut>, bool)> = groups
            .iter()
            .map(|g| (g.name.clone(), g.targets.clone(), g.strip_prefix))
            .collect();
        let mut with_fallbacks: BTreeSet<String> = BTreeSet::new();
        if let Some(f) = fallbacks {
            for (group, list, line, key) in self.fallback_rules(f, &fallbacks_key)? {
                with_fallbacks.insert(group.clone());
                self.append_fallbacks(&mut groups, &originals, &group, &list, line, &key);
            }
        }
        if let Some((f, key)) = default_fallbacks {
            let list = self.name_list(&f.node, &key)?;
            for g in groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>() {
                if !with_fallbacks.contains(&g) {
                    let own: Vec<String> = list.iter().filter(|n| **n != g).cloned().collect();
                    self.append_fallbacks(&mut groups, &originals, &g, &own, f.line, &key);
                }
            }
        }
        if let Some((f, key)) = context_fallbacks {
            for (group, list, line, key) in self.fallback_rules(f, &key)? {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                if !names.contains(&group.as_str()) {
                    self.warn(
                        line,
                        &key,
                        format!("`{group}` is no model_name in model_list; ignored"),
                    );
                    continue;
                }
                let Some(first) = list.first() else { continue };
                if !names.contains(&first.as_str()) {
                    self.warn(
                        line,
                        &key,
                        format!("`{first}` is no model_name in model_list; ignored"),
                    );
                    continue;
                }
                if list.len() > 1 {
                    self.warn(line, &key, format!(
                        "only the first context-window fallback of `{group}` is used (`{first}`); llm-router tries one"
                    ));
                }
                if let Some(g) = groups.iter_mut().find(|g| g.name == group) {
                    g.context_fallback = Some(Val {
                        text: first.clone(),
                        comment: key.clone(),
                        line,
                        key: key.clone(),
                    });
                }
            }
        }
        if let Some((a, key)) = aliases {
            self.aliases(&mut groups, a, &key)?;
        }

        // In the file's order.
        self.warnings.sort_by_key(|w| w.line);

        let sections = Sections {
            master_key,
            retries: retries.value,
            retry_after,
            failure_threshold: allowed_fails.map(|(_, v)| v),
            cooldown,
            listen,
        };
        let t = self.write(path, &sections, &backends, &groups);
        Ok(Imported::new(Format::LiteLlm, t, self.warnings, self.file))
    }

    /// `proxy_server_config`: `host` and `port` become `[server] listen`
    /// (a missing one keeps LiteLLM's default, `0.0.0.0` and `4000`).
    fn proxy_server_config(&mut self, p: &Entry) -> Result<Option<Val>, ConfigError> {
        let entries = match &p.node.value {
            Value::Map(m) => m,
            Value::Null => return Ok(None),
            _ => {
                return Err(self.err(
                    p.line,
                    "proxy_server_config",
                    format!("must be a mapping, not {}", p.node.what()),
                ))
            }
        };
        let mut host: Option<(String, usize, String)> = None;
        let mut port: Option<(u64, usize, String)> = None;
        let mut names = Vec::new();
        for e in entries {
            let key = format!("proxy_server_config.{}", e.key);
            match e.key.as_str() {
                "host" => {
                    let h = self.string(e, &key)?.text;
                    host = Some((h.trim_matches(['[', ']']).to_string(), e.line, key));
                }
                "port" => {
                    let n = self.whole(e, &key, 0)?;
                    if n > u64::from(u16::MAX) {
                        return Err(self.err(
                            e.line,
                            &key,
                            format!("`{n}` is not a port (0-65535)"),
                        ));
                    }
                    port = Some((n, e.line, key));
                }
                _ => names.push(e.key.as_str()),
            }
        }
        self.unmapped(p.line, "proxy_server_config", &names, "in llm-router");
        if host.is_none() && port.is_none() {
            return Ok(None);
        }
        let h = host.as_ref().map_or("0.0.0.0", |h| h.0.as_str());
        let n = port.as_ref().map_or(4000, |p| p.0);
        let text = if h.contains(':') {
            format!("[{h}]:{n}")
        } else {
            format!("{h}:{n}")
        };
        // The line named is the port's when there is one (a bad host is
        // found by the listen check too, but the port is the likelier culprit).
        let (line, key) = match (&port, &host) {
            (Some((_, l, k)), _) | (None, Some((_, l, k))) => (*l, k.clone()),
            (None, None) => (p.line, "proxy_server_config".to_string()),
        };
        Ok(Some(Val {
            text,
            comment: "proxy_server_config host and port".into(),
            line,
            key,
        }))
    }
}
