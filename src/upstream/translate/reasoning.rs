//! OpenAI reasoning models and their token limit parameter.
//!
//! OpenAI's reasoning models — the o-series (`o1`, `o3`, `o3-mini`,
//! `o4-mini`, …) and the GPT-5 family and later (`gpt-5`, `gpt-5-mini`,
//! `gpt-5.1-codex`, …) — refuse `max_tokens` with a 400 ("Use
//! `max_completion_tokens` instead"). The pivot keeps whatever limit the
//! client sent (`max_tokens` from Anthropic clients and older OpenAI
//! clients), so the OpenAI provider fits it to the model it calls:
//!
//! | the pivot has | sent to a reasoning model |
//! | --- | --- |
//! | `max_tokens` only | `max_completion_tokens` (same value) |
//! | `max_tokens` and `max_completion_tokens` | `max_completion_tokens` only |
//! | `max_completion_tokens` only, or neither | unchanged |
//!
//! Other models get the request unchanged. The model is recognized on the
//! last segment of its name after `/` (`openai/o3-mini`, `azure/gpt-5`),
//! case-insensitively, with a fine-tune's `ft:` prefix ignored.
//!
//! ```
//! use serde_json::json;
//! use llm_router::__private::translate::reasoning::{fit_token_limit, is_reasoning_model};
//!
//! assert!(is_reasoning_model("openai/o3-mini"));
//! assert!(!is_reasoning_model("gpt-4o"));
//! let mut body = json!({"model": "gpt-5", "max_tokens": 64000});
//! assert!(fit_token_limit("gpt-5", body.as_object_mut().unwrap()));
//! assert_eq!(body, json!({"model": "gpt-5", "max_completion_tokens": 64000}));
//! ```

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use serde_json::{Map, Value};

/// Whether `model` is an OpenAI reasoning model (o-series, GPT-5 and later),
/// which takes `max_completion_tokens` and not `max_tokens`.
pub fn is_reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    let name = name.to_ascii_lowercase();
    let name = name.strip_prefix("ft:").unwrap_or(&name);
    // o1, o3-mini, o4-mini-2025-04-16: `o`, a version number, then the end
    // or a `-` suffix.
    if let Some(rest) = name.strip_prefix('o') {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = rest.get(digits..).unwrap_or("");
        return digits > 0 && (after.is_empty() || after.starts_with('-'));
    }
    // gpt-5, gpt-5-mini, gpt-5.1-codex, and later generations.
    if let Some(rest) = name.strip_prefix("gpt-") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major = rest.get(..digits).and_then(|d| d.parse::<u32>().ok());
        let after = rest.get(digits..).unwrap_or("");
        return major.is_some_and(|m| m >= 5)
            && (after.is_empty() || after.starts_with('-') || after.starts_with('.'));
    }
    false
}

/// Whether [`fit_token_limit`] would change `body` (a cheap check: no copy).
pub fn needs_token_limit_fix(model: &str, body: &Map<String, Value>) -> bool {
    body.contains_key("max_tokens") && is_reasoning_model(model)
}

/// For a reasoning model, `max_tokens` becomes `max_completion_tokens`
/// (dropped when `max_completion_tokens` is already set). Returns whether
/// `body` changed.
pub fn fit_token_limit(model: &str, body: &mut Map<String, Value>) -> bool {
    if !needs_token_limit_fix(model, body) {
        return false;
    }
    let Some(max) = body.shift_remove("max_tokens") else {
        return false;
    };
    let set = body
        .get("max_completion_tokens")
        .is_some_and(|v| !v.is_null());
    if !set && !max.is_null() {
        body.insert("max_completion_tokens".into(), max);
    }
    true
}

/// The largest completion an older (non-reasoning) OpenAI chat model
/// accepts, for the families whose cap is documented; `None` for every other
/// model (reasoning models take the large limits agent clients send).
pub fn output_cap(model: &str) -> Option<u64> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let name = name.strip_prefix("ft:").unwrap_or(&name);
    if name.starts_with("gpt-4o") || name.starts_with("chatgpt-4o") {
        Some(16_384)
    } else if name.starts_with("gpt-4.1") {
        Some(32_768)
    } else if name.starts_with("gpt-4") || name.starts_with("gpt-3.5") {
        Some(4_096)
    } else {
        None
    }
}

/// Fit a request translated from another client format (an Anthropic or
/// Responses client's) to the OpenAI model it goes to: the token limit
/// under the name the model takes ([`fit_token_limit`]), and for the older
/// chat models of [`output_cap`] — which refuse both — no
/// `reasoning_effort` (Claude Code sends one on every request) and a limit
/// no larger than the model's cap (Claude Code asks for 64000). Returns
/// whether `body` changed.
pub fn fit_translated(model: &str, body: &mut Map<String, Value>) -> bool {
    let mut changed = fit_token_limit(model, body);
    if let Some(cap) = output_cap(model) {
        changed |= body.shift_remove("reasoning_effort").is_some();
        for key in ["max_tokens", "max_completion_tokens"] {
            if let Some(v) = body.get_mut(key) {
                if v.as_u64().is_some_and(|n| n > cap) {
                    *v = Value::from(cap);
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_models_by_name() {
        for model in [
            "o1",
            "o1-mini",
            "o1-preview",
            "o1-2024-12-17",
            "o3",
            "o3-mini",
            "o3-pro",
            "o3-deep-research",
            "o4-mini",
            "o4-mini-2025-04-16",
            "O3-MINI",
            "openai/o3-mini",
            "azure/openai/o4-mini",
            "ft:o4-mini-2025-04-16:acme::abc123",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5-codex",
            "gpt-5-2025-08-07",
            "gpt-5.1",
            "gpt-5.1-codex-max",
            "gpt-5.2-pro",
            "GPT-5",
            "openai/gpt-5-mini",
            "gpt-6",
            "gpt-10-mini",
        ] {
            assert!(is_reasoning_model(model), "{model}");
        }
        for model in [
            "",
            "o",
            "o-mini",
            "omni-moderation-latest",
            "ollama/llama3",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.5-preview",
            "gpt-3.5-turbo",
            "gpt-50x",
            "gpt-",
            "gpt-5x",
            "openai/gpt-4o",
            "o3/llama",
            "claude-opus-4-8",
            "gemini-2.5-pro",
            "chatgpt-4o-latest",
            "my-o3",
            "o3mini",
        ] {
            assert!(!is_reasoning_model(model), "{model}");
        }
    }

    fn fit(model: &str, body: Value) -> (bool, Value) {
        let mut body = body;
        let map = body.as_object_mut().unwrap();
        let cheap = needs_token_limit_fix(model, map);
        let changed = fit_token_limit(model, map);
        assert_eq!(cheap, changed, "{model}: the cheap check agrees");
        (changed, body)
    }

    #[test]
    fn max_tokens_becomes_max_completion_tokens() {
        let (changed, body) = fit("o3-mini", json!({"model": "x", "max_tokens": 100}));
        assert!(changed);
        assert_eq!(body, json!({"model": "x", "max_completion_tokens": 100}));
        // Both set: max_completion_tokens wins, max_tokens goes.
        let (changed, body) = fit(
            "gpt-5",
            json!({"max_completion_tokens": 50, "max_tokens": 100}),
        );
        assert!(changed);
        assert_eq!(body, json!({"max_completion_tokens": 50}));
        // A null max_completion_tokens is no value.
        let (_, body) = fit(
            "gpt-5",
            json!({"max_completion_tokens": null, "max_tokens": 7}),
        );
        assert_eq!(body, json!({"max_completion_tokens": 7}));
        // A null max_tokens just goes.
        let (changed, body) = fit("gpt-5", json!({"max_tokens": null}));
        assert!(changed);
        assert_eq!(body, json!({}));
    }

    #[test]
    fn nothing_to_fix() {
        for (model, body) in [
            ("gpt-4o", json!({"max_tokens": 100})),
            ("llama3", json!({"max_tokens": 100})),
            ("o3", json!({"max_completion_tokens": 100})),
            ("gpt-5", json!({"messages": []})),
        ] {
            let (changed, after) = fit(model, body.clone());
            assert!(!changed, "{model}");
            assert_eq!(after, body, "{model}");
        }
    }

    #[test]
    fn other_keys_keep_their_order() {
        let (_, body) = fit(
            "o4-mini",
            json!({"model": "m", "max_tokens": 5, "messages": [], "stream": true}),
        );
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["model", "messages", "stream", "max_completion_tokens"]
        );
    }

    #[test]
    fn translated_requests_fit_older_models() {
        let mut body = json!({"max_tokens": 64000, "reasoning_effort": "high"});
        assert!(fit_translated("gpt-4o", body.as_object_mut().unwrap()));
        assert_eq!(body, json!({"max_tokens": 16384}));
        let mut body = json!({"max_tokens": 64000, "reasoning_effort": "high"});
        assert!(fit_translated("gpt-5", body.as_object_mut().unwrap()));
        assert_eq!(
            body,
            json!({"reasoning_effort": "high", "max_completion_tokens": 64000})
        );
        // Models the table does not know are left alone.
        let mut body = json!({"max_tokens": 64000, "reasoning_effort": "high"});
        assert!(!fit_translated(
            "qwen3-coder",
            body.as_object_mut().unwrap()
        ));
        assert_eq!(output_cap("openai/gpt-4.1-mini"), Some(32_768));
        assert_eq!(output_cap("gpt-4-turbo"), Some(4_096));
        assert_eq!(output_cap("o3"), None);
    }
}
