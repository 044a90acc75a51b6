//! The `[[backends]]` of the generated config: one per deployment, shared
//! by deployments that reach the same place in the same way.

use super::deployments::Deployment;
use super::providers::ProviderInfo;
use super::{Importer, Val};
use crate::config::import::clean_name;

#[derive(Debug)]
pub(super) struct BackendOut {
    pub(super) name: String,
    pub(super) info: &'static ProviderInfo,
    pub(super) provider_note: String,
    pub(super) origin: (usize, String),
    pub(super) base_url: Option<Val>,
    pub(super) api_key: Option<Val>,
    pub(super) timeout: Option<Val>,
    pub(super) stream_timeout: Option<Val>,
    pub(super) rpm: Option<Val>,
    pub(super) headers: Vec<(String, Val)>,
    /// No rpm and no id of its own: other deployments may share it.
    pub(super) shareable: bool,
    /// The deployments it serves (`model_list[0]`, ...).
    pub(super) users: Vec<String>,
}

impl Importer {
    /// One backend per deployment; deployments without an rpm or an id of
    /// their own that agree on provider, address, key, timeouts and headers
    /// share one. Returns the backends and, per deployment, its backend's index.
    pub(super) fn backends(
        &mut self,
        deployments: &[Deployment],
        global_timeout: Option<&Val>,
        global_stream_timeout: Option<&Val>,
    ) -> (Vec<BackendOut>, Vec<usize>) {
        let mut out: Vec<BackendOut> = Vec::new();
        let mut of_deployment = Vec::with_capacity(deployments.len());
        for d in deployments {
            let api_key = match (&d.api_key, d.info.key_var) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(var)) => Some(Val {
                    text: self.var(var, Some("")),
                    comment: format!(
                        "LiteLLM's default key variable for {}/ (unset: no key)",
                        d.info.litellm
                    ),
                    line: d.line,
                    key: d.key.clone(),
                }),
                (None, None) => None,
            };
            let candidate = BackendOut {
                name: String::new(),
                info: d.info,
                provider_note: d.provider_note.clone(),
                origin: (d.line, d.key.clone()),
                base_url: d.base_url.clone(),
                api_key,
                timeout: d.timeout.clone().or_else(|| global_timeout.cloned()),
                stream_timeout: d
                    .stream_timeout
                    .clone()
                    .or_else(|| global_stream_timeout.cloned()),
                rpm: d.rpm.clone(),
                headers: d.headers.clone(),
                shareable: d.rpm.is_none() && d.id.is_none(),
                users: vec![d.key.clone()],
            };
            if candidate.shareable {
                if let Some(i) = out
                    .iter()
                    .position(|b| b.shareable && b.same_as(&candidate))
                {
                    out[i].users.push(d.key.clone());
                    of_deployment.push(i);
                    continue;
                }
            }
            let base = match &d.id {
                Some(id) => clean_name(id),
                None => d
                    .info
                    .litellm
                    .replace("ollama_chat", "ollama")
                    .replace('_', "-"),
            };
            let mut name = base.clone();
            let mut n = 2;
            while out.iter().any(|b| b.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            of_deployment.push(out.len());
            out.push(BackendOut { name, ..candidate });
        }
        (out, of_deployment)
    }
}

impl BackendOut {
    /// Whether `other` reaches the same place in the same way.
    fn same_as(&self, other: &BackendOut) -> bool {
        let text = |v: &Option<Val>| v.as_ref().map(|v| v.text.clone());
        self.info.litellm == other.info.litellm
            && text(&self.base_url) == text(&other.base_url)
            && text(&self.api_key) == text(&other.api_key)
            && text(&self.timeout) == text(&other.timeout)
            && text(&self.stream_timeout) == text(&other.stream_timeout)
            && self
                .headers
                .iter()
                .map(|(h, v)| (h, &v.text))
                .eq(other.headers.iter().map(|(h, v)| (h, &v.text)))
    }
}
