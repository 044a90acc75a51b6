//! `[[backends]]`: the raw serde struct of an entry and its validation
//! into a [`BackendConfig`].

use serde::Deserialize;
use toml::Spanned;

use super::{headers, resilience, ApiKeySetting, BackendConfig, ConfigError, Loader};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) name: Spanned<String>,
    provider: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    first_byte_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    tls_verify: Option<bool>,
    tools: Option<Spanned<String>>,
    api: Option<Spanned<String>>,
    rate_limit: Option<Spanned<resilience::RawBackendLimit>>,
    headers: Option<headers::RawHeaders>,
}

impl Loader<'_> {
    pub(super) fn backend(&self, i: usize, raw: &RawBackend) -> Result<BackendConfig, ConfigError> {
        let key = |k: &str| format!("backends[{i}].{k}");
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(Some(raw.name.span()), key("name"), "must not be empty"));
        }
        let provider = raw.provider.get_ref().as_str();
        if crate::upstream::provider::by_name(provider).is_none() {
            let message = if crate::upstream::provider::KNOWN_PROVIDERS.contains(&provider) {
                format!("provider `{provider}` is not available in this version of llm-router yet")
            } else {
                format!(
                    "unknown provider `{provider}`; known providers: {} (any OpenAI-compatible API, such as cerebras, deepinfra, openrouter or vllm, is provider = \"openai\" with its base_url)",
                    crate::upstream::provider::KNOWN_PROVIDERS.join(", ")
                )
            };
            return Err(self.err(Some(raw.provider.span()), key("provider"), message));
        }
        let base_url = match &raw.base_url {
            None => None,
            Some(url) => {
                let text = url.get_ref().trim();
                let bad = |why: String| {
                    self.err(
                        Some(url.span()),
                        key("base_url"),
                        format!("`{text}` {why}; base_url must be an absolute http:// or https:// URL, like \"https://api.openai.com/v1\""),
                    )
                };
                let uri: http::Uri = text
                    .parse()
                    .map_err(|e| bad(format!("is not a valid URL ({e})")))?;
                match uri.scheme_str() {
                    Some("http" | "https") => {}
                    Some(other) => return Err(bad(format!("has the scheme `{other}`"))),
                    None => return Err(bad("has no scheme".into())),
                }
                if uri.host().is_none_or(str::is_empty) {
                    return Err(bad("has no host".into()));
                }
                Some(text.to_string())
            }
        };
        // `LLM_ROUTER_BACKEND_<NAME>_API_KEY` is applied by `overrides`.
        let api_key = match raw.api_key.as_ref().map(|k| k.get_ref().clone()) {
            None => None,
            Some(k) if k.is_empty() => None,
            Some(k) if k == "passthrough" => Some(ApiKeySetting::Passthrough),
            Some(k) => Some(ApiKeySetting::Key(k)),
        };
        let tools = self.backend_tools(i, &raw.tools)?;
        let api = match &raw.api {
            None => crate::routing::UpstreamApi::ChatCompletions,
            Some(api) => match (api.get_ref().as_str(), provider) {
                ("chat_completions", _) => crate::routing::UpstreamApi::ChatCompletions,
                ("responses", "openai") => crate::routing::UpstreamApi::Responses,
                ("responses", other) => {
                    return Err(self.err(
                        Some(api.span()),
                        key("api"),
                        format!("\"responses\" needs provider = \"openai\", not \"{other}\""),
                    ))
                }
                (other, _) => {
                    return Err(self.err(
                        Some(api.span()),
                        key("api"),
                        format!("must be \"chat_completions\" or \"responses\", not \"{other}\""),
                    ))
                }
            },
        };
        let rate_limit = raw
            .rate_limit
            .as_ref()
            .map(|r| self.backend_limit(i, r))
            .transpose()?;
        let headers = match &raw.headers {
            Some(h) => self.header_rules(h, &key("headers"))?,
            None => Default::default(),
        };
        Ok(BackendConfig {
            name,
            provider: provider.to_string(),
            base_url,
            api_key,
            timeout: self.duration(
                &raw.timeout,
                &key("timeout"),
                crate::routing::Backend::DEFAULT_TIMEOUT,
            )?,
            connect_timeout: self.duration(
                &raw.connect_timeout,
                &key("connect_timeout"),
                crate::routing::Backend::DEFAULT_CONNECT_TIMEOUT,
            )?,
            first_byte_timeout: self.duration(
                &raw.first_byte_timeout,
                &key("first_byte_timeout"),
                crate::routing::Backend::DEFAULT_FIRST_BYTE_TIMEOUT,
            )?,
            idle_timeout: self.duration(
                &raw.idle_timeout,
                &key("idle_timeout"),
                crate::routing::Backend::DEFAULT_IDLE_TIMEOUT,
            )?,
            tls_verify: raw.tls_verify.unwrap_or(true),
            rate_limit,
            headers,
            tools,
            api,
        })
    }
}
