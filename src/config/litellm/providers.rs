//! LiteLLM's provider prefixes (`openai/`, `anthropic/`, `ollama_chat/`, ...),
//! what each becomes in llm-router, and splitting `provider/model`.

/// A LiteLLM provider prefix and what it becomes.
#[derive(Debug)]
pub(super) struct ProviderInfo {
    /// LiteLLM's name (the prefix before `/`).
    pub(super) litellm: &'static str,
    /// The llm-router provider.
    pub(super) provider: &'static str,
    /// The base_url when the config has no `api_base`.
    pub(super) base_url: Option<&'static str>,
    /// LiteLLM's default key variable for it.
    pub(super) key_var: Option<&'static str>,
}

pub(super) const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        litellm: "openai",
        provider: "openai",
        base_url: Some("https://api.openai.com/v1"),
        key_var: Some("OPENAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "text-completion-openai",
        provider: "openai",
        base_url: Some("https://api.openai.com/v1"),
        key_var: Some("OPENAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "anthropic",
        provider: "anthropic",
        base_url: Some("https://api.anthropic.com"),
        key_var: Some("ANTHROPIC_API_KEY"),
    },
    ProviderInfo {
        litellm: "gemini",
        provider: "gemini",
        base_url: Some("https://generativelanguage.googleapis.com"),
        key_var: Some("GEMINI_API_KEY"),
    },
    ProviderInfo {
        litellm: "ollama",
        provider: "ollama",
        base_url: Some("http://localhost:11434"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "ollama_chat",
        provider: "ollama",
        base_url: Some("http://localhost:11434"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "azure",
        provider: "openai",
        base_url: None,
        key_var: Some("AZURE_API_KEY"),
    },
    ProviderInfo {
        litellm: "cerebras",
        provider: "openai",
        base_url: Some("https://api.cerebras.ai/v1"),
        key_var: Some("CEREBRAS_API_KEY"),
    },
    ProviderInfo {
        litellm: "deepinfra",
        provider: "openai",
        base_url: Some("https://api.deepinfra.com/v1/openai"),
        key_var: Some("DEEPINFRA_API_KEY"),
    },
    ProviderInfo {
        litellm: "openrouter",
        provider: "openai",
        base_url: Some("https://openrouter.ai/api/v1"),
        key_var: Some("OPENROUTER_API_KEY"),
    },
    ProviderInfo {
        litellm: "hosted_vllm",
        provider: "openai",
        base_url: None,
        key_var: None,
    },
    ProviderInfo {
        litellm: "groq",
        provider: "openai",
        base_url: Some("https://api.groq.com/openai/v1"),
        key_var: Some("GROQ_API_KEY"),
    },
    ProviderInfo {
        litellm: "mistral",
        provider: "openai",
        base_url: Some("https://api.mistral.ai/v1"),
        key_var: Some("MISTRAL_API_KEY"),
    },
    ProviderInfo {
        litellm: "together_ai",
        provider: "openai",
        base_url: Some("https://api.together.xyz/v1"),
        key_var: Some("TOGETHERAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "fireworks_ai",
        provider: "openai",
        base_url: Some("https://api.fireworks.ai/inference/v1"),
        key_var: Some("FIREWORKS_AI_API_KEY"),
    },
    ProviderInfo {
        litellm: "xai",
        provider: "openai",
        base_url: Some("https://api.x.ai/v1"),
        key_var: Some("XAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "deepseek",
        provider: "openai",
        base_url: Some("https://api.deepseek.com/v1"),
        key_var: Some("DEEPSEEK_API_KEY"),
    },
    ProviderInfo {
        litellm: "perplexity",
        provider: "openai",
        base_url: Some("https://api.perplexity.ai"),
        key_var: Some("PERPLEXITYAI_API_KEY"),
    },
    ProviderInfo {
        litellm: "lm_studio",
        provider: "openai",
        base_url: Some("http://localhost:1234/v1"),
        key_var: None,
    },
    ProviderInfo {
        litellm: "nvidia_nim",
        provider: "openai",
        base_url: Some("https://integrate.api.nvidia.com/v1"),
        key_var: Some("NVIDIA_NIM_API_KEY"),
    },
];

pub(super) fn provider_info(name: &str) -> Option<&'static ProviderInfo> {
    PROVIDERS.iter().find(|p| p.litellm == name)
}

fn known_prefixes() -> String {
    PROVIDERS
        .iter()
        .map(|p| format!("{}/", p.litellm))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `provider/model` -> the provider and the model sent upstream.
pub(super) fn split_provider(
    model: &str,
    custom: Option<&str>,
) -> Result<(&'static ProviderInfo, String, String), String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("is empty; write the provider and the model, like `openai/gpt-4o`".into());
    }
    if let Some(custom) = custom {
        let info = provider_info(custom).ok_or_else(|| {
            format!(
                "custom_llm_provider `{custom}` has no equivalent in llm-router; known: {}",
                PROVIDERS
                    .iter()
                    .map(|p| p.litellm)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let rest = model
            .strip_prefix(&format!("{custom}/"))
            .unwrap_or(model)
            .to_string();
        return Ok((info, rest, format!("custom_llm_provider {custom}")));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(info) = provider_info(prefix) {
            if rest.is_empty() {
                return Err(format!("`{model}` names no model after `{prefix}/`"));
            }
            return Ok((info, rest.to_string(), format!("the `{prefix}/` prefix")));
        }
        return Err(format!(
            "unknown provider prefix `{prefix}/` in `{model}`; llm-router speaks {} (OpenAI-compatible APIs: `openai/` with `api_base`)",
            known_prefixes()
        ));
    }
    // No prefix: LiteLLM infers the provider from the name; Claude models are
    // Anthropic's, the rest OpenAI's.
    if model.starts_with("claude-") {
        let info = provider_info("anthropic").expect("anthropic is listed");
        return Ok((
            info,
            model.to_string(),
            "no prefix, a Claude model: anthropic".into(),
        ));
    }
    let info = provider_info("openai").expect("openai is listed");
    Ok((info, model.to_string(), "no prefix: openai".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_prefixes() {
        let (i, m, _) = split_provider("openai/gpt-4o", None).unwrap();
        assert_eq!((i.provider, m.as_str()), ("openai", "gpt-4o"));
        let (i, m, _) = split_provider("deepinfra/meta-llama/Llama-3.3-70B", None).unwrap();
        assert_eq!(i.base_url, Some("https://api.deepinfra.com/v1/openai"));
        assert_eq!(m, "meta-llama/Llama-3.3-70B");
        let (i, _, _) = split_provider("ollama_chat/llama3", None).unwrap();
        assert_eq!(i.provider, "ollama");
        let (i, m, _) = split_provider("gpt-4o-mini", None).unwrap();
        assert_eq!((i.provider, m.as_str()), ("openai", "gpt-4o-mini"));
        let (i, _, _) = split_provider("claude-3-5-sonnet-20241022", None).unwrap();
        assert_eq!(i.provider, "anthropic");
        let (i, m, _) = split_provider("meta-llama/x", Some("hosted_vllm")).unwrap();
        assert_eq!((i.litellm, m.as_str()), ("hosted_vllm", "meta-llama/x"));
        let e = split_provider("bedrock/anthropic.claude-v2", None).unwrap_err();
        assert!(e.contains("unknown provider prefix `bedrock/`"), "{e}");
        assert!(e.contains("cerebras/"), "{e}");
    }
}
