//! The fast read of the most frequent chunk: one choice's text or
//! reasoning and nothing else, read without building a document.

/// A `chat.completion.chunk` of the common kind: one choice (index 0)
/// whose delta is a role, text or reasoning, no finish reason, logprobs,
/// usage or error. Anything else takes the general path (a `Value`).
#[derive(serde::Deserialize)]
pub(super) struct PlainChunk<'a> {
    #[serde(default, borrow)]
    pub(super) model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<PlainChoice<'a>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    service_tier: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PlainChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<PlainDelta<'a>>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    logprobs: Option<serde::de::IgnoredAny>,
}

/// Only these fields: any other (tool calls, a refusal, audio) is not plain.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainDelta<'a> {
    /// Accepted (and not needed): the role is always the assistant's.
    #[serde(default)]
    #[allow(dead_code)]
    role: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<std::borrow::Cow<'a, str>>,
}

/// What a plain chunk says: reasoning and text (either may be empty).
#[derive(Clone, Copy)]
pub(super) struct Plain<'c> {
    pub(super) reasoning: &'c str,
    pub(super) text: &'c str,
}

impl<'a> PlainChunk<'a> {
    pub(super) fn plain(&self) -> Option<Plain<'_>> {
        if self.error.is_some() || self.usage.is_some() || self.service_tier.is_some() {
            return None;
        }
        let [choice] = self.choices.as_slice() else {
            return None;
        };
        if choice.index.unwrap_or(0) != 0
            || choice.finish_reason.is_some()
            || choice.logprobs.is_some()
        {
            return None;
        }
        let delta = choice.delta.as_ref()?;
        Some(Plain {
            reasoning: delta
                .reasoning_content
                .as_deref()
                .filter(|t| !t.is_empty())
                .or(delta.reasoning.as_deref())
                .unwrap_or(""),
            text: delta.content.as_deref().unwrap_or(""),
        })
    }
}
