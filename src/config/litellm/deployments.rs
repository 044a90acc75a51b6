//! Reading `model_list` entries (deployments): `model_name` with
//! `litellm_params`, and the simpler flat form (`id`, `group_name`,
//! `model_name`, `provider`, `api_key`).

use super::providers::{provider_info, split_provider, ProviderInfo, PROVIDERS};
use super::{Importer, Setting, Val};
use crate::config::import::yaml::{Entry, Node};
use crate::config::ConfigError;

#[derive(Debug)]
pub(super) struct Deployment {
    pub(super) key: String,
    pub(super) line: usize,
    pub(super) group: String,
    pub(super) group_line: usize,
    pub(super) group_key: String,
    pub(super) info: &'static ProviderInfo,
    pub(super) provider_note: String,
    pub(super) model: String,
    pub(super) base_url: Option<Val>,
    pub(super) api_key: Option<Val>,
    pub(super) timeout: Option<Val>,
    pub(super) stream_timeout: Option<Val>,
    pub(super) rpm: Option<Val>,
    pub(super) order: Option<u32>,
    pub(super) weight: Option<u32>,
    pub(super) id: Option<String>,
    pub(super) headers: Vec<(String, Val)>,
}

impl Importer {
    /// `[retry] max_retries` from `num_retries` (wins) or a deployment's
    /// `max_retries` (the first; a different one is a warning).
    pub(super) fn retries(&mut self, setting: &mut Setting, val: Val, from_settings: bool) {
        let Some(first) = &setting.value else {
            setting.value = Some(val);
            return;
        };
        if first.text == val.text {
            return;
        }
        // The value that stays, and the one that gives way.
        let (kept, dropped) = if from_settings {
            (val, first.clone())
        } else {
            (first.clone(), val)
        };
        self.warn(
            dropped.line,
            &dropped.key,
            format!(
                "[retry] max_retries is global in llm-router; {} = {} is used instead of {}",
                kept.key, kept.text, dropped.text
            ),
        );
        setting.value = Some(kept);
    }

    pub(super) fn deployment(
        &mut self,
        i: usize,
        item: &Node,
        retries: &mut Setting,
    ) -> Result<Deployment, ConfigError> {
        let key = format!("model_list[{i}]");
        let Some(entries) = item.entries() else {
            return Err(self.err(
                item.line,
                &key,
                format!(
                    "must be a mapping with `model_name` and `litellm_params`, not {}",
                    item.what()
                ),
            ));
        };
        if item.get("litellm_params").is_none()
            && (item.get("provider").is_some() || item.get("group_name").is_some())
        {
            return self.simple_deployment(i, item, entries, retries);
        }
        let name = item.get("model_name").ok_or_else(|| {
            self.err(
                item.line,
                &key,
                "missing `model_name` (the name clients ask for)",
            )
        })?;
        let group = name.node.text().ok_or_else(|| {
            self.err(
                name.line,
                &format!("{key}.model_name"),
                format!("must be a string, not {}", name.node.what()),
            )
        })?;
        let params = item.get("litellm_params").ok_or_else(|| {
            self.err(
                item.line,
                &key,
                format!("model `{group}` has no `litellm_params` (with `model: provider/name`)"),
            )
        })?;
        let pkey = format!("{key}.litellm_params");
        let Some(p) = params.node.entries() else {
            return Err(self.err(
                params.line,
                &pkey,
                format!("must be a mapping, not {}", params.node.what()),
            ));
        };
        let model = params.node.get("model").ok_or_else(|| {
            self.err(
                params.line,
                &pkey,
                format!("model `{group}` has no `litellm_params.model` (like `openai/gpt-4o`)"),
            )
        })?;
        let model_key = format!("{pkey}.model");
        let model_text = model.node.text().ok_or_else(|| {
            self.err(
                model.line,
                &model_key,
                format!("must be a string, not {}", model.node.what()),
            )
        })?;
        let custom = match params.node.get("custom_llm_provider") {
            Some(c) => Some(c.node.text().ok_or_else(|| {
                self.err(
                    c.line,
                    &format!("{pkey}.custom_llm_provider"),
                    "must be a string",
                )
            })?),
            None => None,
        };
        let (info, upstream, note) = split_provider(&model_text, custom.as_deref())
            .map_err(|m| self.err(model.line, &model_key, m))?;
        let mut d = Deployment {
            key: key.clone(),
            line: item.line,
            group: group.trim().to_string(),
            group_line: name.line,
            group_key: format!("{key}.model_name"),
            info,
            provider_note: format!("{model_key}: {note}"),
            model: upstream,
            base_url: None,
            api_key: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            order: None,
            weight: None,
            id: None,
            headers: Vec::new(),
        };
        let mut unmapped = Vec::new();
        for e in p {
            let k = format!("{pkey}.{}", e.key);
            match e.key.as_str() {
                "model" | "custom_llm_provider" => {}
                "api_base" | "base_url" => d.base_url = Some(self.string(e, &k)?),
                "api_key" => d.api_key = Some(self.string(e, &k)?),
                "timeout" => d.timeout = self.seconds(e, &k)?,
                "stream_timeout" => d.stream_timeout = self.seconds(e, &k)?,
                "rpm" => d.rpm = Some(self.rpm(e, &k)?),
                "tpm" => self.tpm(e.line, &k),
                "max_retries" => {
                    let n = self.whole(e, &k, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{k} (global in llm-router)"),
                        line: e.line,
                        key: k.clone(),
                    };
                    self.retries(retries, val, false);
                }
                "order" => d.order = Some(self.whole(e, &k, 0)?.min(u32::MAX as u64) as u32),
                "weight" => d.weight = Some(self.weight(e, &k)?),
                "organization" => {
                    let v = self.string(e, &k)?;
                    d.headers.push(("openai-organization".into(), v));
                }
                "extra_headers" => match e.node.entries() {
                    Some(h) => {
                        for he in h {
                            let hk = format!("{k}.{}", he.key);
                            let v = self.string(he, &hk)?;
                            d.headers.push((he.key.to_ascii_lowercase(), v));
                        }
                    }
                    None => {
                        return Err(self.err(e.line, &k, format!("must be a mapping of header names to values, not {}", e.node.what())))
                    }
                },
                "api_version" if info.litellm == "azure" => self.warn(
                    e.line,
                    &k,
                    "not needed: the deployment is imported at Azure's OpenAI-compatible v1 endpoint (`<api_base>/openai/v1`), which takes no api-version",
                ),
                other => unmapped.push(other),
            }
        }
        self.unmapped(params.line, &pkey, &unmapped, "(default request parameters and provider-specific settings are not injected by llm-router)");
        if info.litellm == "azure" {
            let Some(base) = &mut d.base_url else {
                return Err(self.err(
                    params.line,
                    &pkey,
                    format!("model `{group}`: an azure/ deployment needs `api_base` (https://<resource>.openai.azure.com)"),
                ));
            };
            base.text = format!("{}/openai/v1", base.text.trim_end_matches('/'));
            base.comment = format!("{}, at Azure's OpenAI-compatible v1 endpoint", base.comment);
            self.warn(model.line, &model_key, format!(
                "azure/{}: imported as provider openai at `<api_base>/openai/v1` with the deployment name as the model; Azure resources without the v1 API need their own adapter",
                d.model
            ));
        }
        if d.base_url.is_none() && info.base_url.is_none() {
            return Err(self.err(
                params.line,
                &pkey,
                format!(
                    "model `{group}`: a {}/ deployment needs `api_base` (the server's address)",
                    info.litellm
                ),
            ));
        }
        // Deployment-level keys.
        let mut unmapped = Vec::new();
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "model_name" | "litellm_params" => {}
                "rpm" => {
                    if d.rpm.is_none() {
                        d.rpm = Some(self.rpm(e, &k)?);
                    }
                }
                "tpm" => self.tpm(e.line, &k),
                "model_info" => {
                    let mut meta = Vec::new();
                    for m in e.node.entries().unwrap_or_default() {
                        if m.key == "id" {
                            d.id = m.node.text();
                        } else {
                            meta.push(m.key.as_str());
                        }
                    }
                    self.unmapped(e.line, &k, &meta, "(model metadata)");
                }
                other => unmapped.push(other),
            }
        }
        self.unmapped(item.line, &key, &unmapped, "in llm-router");
        Ok(d)
    }

    /// The simple form: `{ id, group_name, model_name, provider, api_key }`.
    fn simple_deployment(
        &mut self,
        i: usize,
        item: &Node,
        entries: &[Entry],
        retries: &mut Setting,
    ) -> Result<Deployment, ConfigError> {
        let key = format!("model_list[{i}]");
        let text_of = |this: &Self, name: &str| -> Result<Option<(String, usize)>, ConfigError> {
            match item.get(name) {
                None => Ok(None),
                Some(e) => e
                    .node
                    .text()
                    .map(|t| Some((t.trim().to_string(), e.line)))
                    .ok_or_else(|| {
                        this.err(
                            e.line,
                            &format!("{key}.{name}"),
                            format!("must be a string, not {}", e.node.what()),
                        )
                    }),
            }
        };
        let model = text_of(self, "model_name")?.ok_or_else(|| {
            self.err(
                item.line,
                &key,
                "missing `model_name` (the model to ask the provider for)",
            )
        })?;
        let (group, group_line, group_key) = match text_of(self, "group_name")? {
            Some((g, l)) => (g, l, format!("{key}.group_name")),
            None => (model.0.clone(), model.1, format!("{key}.model_name")),
        };
        let provider = text_of(self, "provider")?.ok_or_else(|| {
            self.err(
                item.line,
                &key,
                format!("model `{group}` has no `provider`"),
            )
        })?;
        let info = provider_info(&provider.0).ok_or_else(|| {
            self.err(
                provider.1,
                &format!("{key}.provider"),
                format!(
                    "unknown provider `{}`; known: {}",
                    provider.0,
                    PROVIDERS
                        .iter()
                        .map(|p| p.litellm)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let (_, mut upstream, _) = split_provider(&model.0, Some(info.litellm))
            .map_err(|m| self.err(model.1, &format!("{key}.model_name"), m))?;
        // `model_name: openrouter/openai/gpt-4o` with `provider: openai`:
        // LiteLLM's `openrouter/` names the service, and OpenRouter's own
        // model id is the rest (`openai/gpt-4o`).
        if let Some(rest) = upstream
            .strip_prefix("openrouter/")
            .filter(|r| !r.is_empty())
        {
            upstream = rest.to_string();
        }
        let mut d = Deployment {
            key: key.clone(),
            line: item.line,
            group,
            group_line,
            group_key,
            info,
            provider_note: format!("{key}.provider"),
            model: upstream,
            base_url: None,
            api_key: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            order: None,
            weight: None,
            id: None,
            headers: Vec::new(),
        };
        let mut unmapped = Vec::new();
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "model_name" | "group_name" | "provider" => {}
                "id" => d.id = e.node.text(),
                "api_base" | "base_url" => d.base_url = Some(self.string(e, &k)?),
                "api_key" => d.api_key = Some(self.string(e, &k)?),
                "timeout" => d.timeout = self.seconds(e, &k)?,
                "stream_timeout" => d.stream_timeout = self.seconds(e, &k)?,
                "rpm" => d.rpm = Some(self.rpm(e, &k)?),
                "tpm" => self.tpm(e.line, &k),
                "order" | "priority" => {
                    d.order = Some(self.whole(e, &k, 0)?.min(u32::MAX as u64) as u32)
                }
                "weight" => d.weight = Some(self.weight(e, &k)?),
                "max_retries" => {
                    let n = self.whole(e, &k, 0)?;
                    let val = Val {
                        text: n.to_string(),
                        comment: format!("{k} (global in llm-router)"),
                        line: e.line,
                        key: k.clone(),
                    };
                    self.retries(retries, val, false);
                }
                other => unmapped.push(other),
            }
        }
        self.unmapped(item.line, &key, &unmapped, "in llm-router");
        if d.base_url.is_none() && info.base_url.is_none() {
            return Err(self.err(
                item.line,
                &key,
                format!(
                    "model `{}`: a {} deployment needs `api_base`",
                    d.group, info.litellm
                ),
            ));
        }
        Ok(d)
    }

    fn rpm(&mut self, e: &Entry, key: &str) -> Result<Val, ConfigError> {
        let n = self.whole(e, key, 1)?;
        Ok(Val {
            text: n.to_string(),
            comment: format!("{key}: {n} requests a minute"),
            line: e.line,
            key: key.to_string(),
        })
    }

    fn tpm(&mut self, line: usize, key: &str) {
        self.warn(
            line,
            key,
            "no per-backend token limit in llm-router (only [rate_limit] tokens, per client); ignored",
        );
    }

    fn weight(&mut self, e: &Entry, key: &str) -> Result<u32, ConfigError> {
        match e.node.number() {
            Some(w) if w > 0.0 && w.is_finite() => {
                if w.fract() != 0.0 {
                    self.warn(
                        e.line,
                        key,
                        format!(
                            "weights are whole numbers in llm-router; {w} is rounded to {}",
                            w.round().max(1.0)
                        ),
                    );
                }
                Ok(w.round().clamp(1.0, u32::MAX as f64) as u32)
            }
            _ => Err(self.err(e.line, key, "must be a number greater than 0")),
        }
    }
}
