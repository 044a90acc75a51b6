//! Event classification: what one SSE event means for the stream (preamble,
//! content, end, error, malformed) and the usage it carries, per client format.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::text::{raw_string_len, Text};
use crate::request::ClientFormat;

/// What one event means for the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EventKind {
    /// Role-only deltas, empty content, keep-alives: held until the commit.
    Preamble,
    /// Text, tool calls, a finish reason or usage.
    Content { finished: bool },
    /// The end marker (`[DONE]` / `message_stop`).
    Done,
    /// An error event from the upstream.
    Error(String),
    /// Not JSON: skipped.
    Malformed,
}

#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<OpenAiChoice<'a>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<crate::usage::Usage>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<OpenAiDelta<'a>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct OpenAiDelta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Text>,
    #[serde(default)]
    function_call: Option<Text>,
}

impl OpenAiChoice<'_> {
    /// Bytes of output text in the choice.
    fn text(&self) -> u64 {
        let len = |s: &Option<std::borrow::Cow<'_, str>>| {
            s.as_deref()
                .map_or(0, |t| u64::try_from(t.len()).unwrap_or(u64::MAX))
        };
        let mut n = len(&self.text);
        if let Some(d) = &self.delta {
            for part in [
                len(&d.content),
                len(&d.refusal),
                len(&d.reasoning_content),
                d.tool_calls.map_or(0, |t| t.0),
                d.function_call.map_or(0, |t| t.0),
            ] {
                n = n.saturating_add(part);
            }
        }
        n
    }
}

/// After the commit only the end, errors, usage and (when a layer reads
/// usage) the length of the text matter: the rest of a delta is validated
/// but not looked at.
#[derive(Deserialize)]
struct OpenAiChunkTail<C> {
    #[serde(default = "Vec::new")]
    choices: Vec<C>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<crate::usage::Usage>,
}

/// What a committed chunk's choice tells: whether it ends the answer, and
/// the bytes of text it delivers.
trait ChoiceTail {
    fn finished(&self) -> bool;
    fn text(&self) -> u64;
}

/// A choice read for its text too (a layer reads usage: a cut stream is
/// charged what it delivered).
#[derive(Deserialize)]
struct OpenAiChoiceTail {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
    /// Only the length of its text is read.
    #[serde(default)]
    delta: Option<Text>,
    #[serde(default)]
    text: Option<Text>,
}

impl ChoiceTail for OpenAiChoiceTail {
    fn finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn text(&self) -> u64 {
        self.delta
            .map_or(0, |t| t.0)
            .saturating_add(self.text.map_or(0, |t| t.0))
    }
}

/// A choice read for its end only (no layer reads usage).
#[derive(Deserialize)]
struct OpenAiChoiceEnd {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

impl ChoiceTail for OpenAiChoiceEnd {
    fn finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn text(&self) -> u64 {
        0
    }
}

/// A committed OpenAI chunk, read whole: its choices for their text too
/// when a layer reads usage (`read_text`), else for their end only.
pub(super) fn classify_committed(data: &[u8], read_text: bool) -> Classified {
    if read_text {
        classify_tail::<OpenAiChoiceTail>(data)
    } else {
        classify_tail::<OpenAiChoiceEnd>(data)
    }
}

/// A committed OpenAI chunk, its choices read as `C`.
fn classify_tail<C: ChoiceTail + serde::de::DeserializeOwned>(data: &[u8]) -> Classified {
    let Ok(chunk) = serde_json::from_slice::<OpenAiChunkTail<C>>(data) else {
        return EventKind::Malformed.into();
    };
    if let Some(error) = chunk.error {
        return EventKind::Error(error_message(&error)).into();
    }
    Classified {
        kind: EventKind::Content {
            finished: chunk.choices.iter().any(ChoiceTail::finished),
        },
        usage: chunk.usage,
        anthropic_usage: None,
        usage_only: chunk.usage.is_some() && chunk.choices.is_empty(),
        responses: None,
        text: chunk
            .choices
            .iter()
            .fold(0u64, |n, c| n.saturating_add(c.text())),
    }
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    /// `message_start` carries the input tokens here...
    #[serde(default)]
    message: Option<AnthropicMessageHead>,
    /// ... and `message_delta` the output tokens here.
    #[serde(default)]
    usage: Option<crate::usage::AnthropicUsage>,
    /// A `content_block_delta`'s text, thinking or tool input.
    #[serde(default)]
    delta: Option<Text>,
}

/// An event of the Responses API: only what the guard needs of it.
#[derive(Deserialize)]
pub(super) struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    sequence_number: Option<u64>,
    /// `error` events carry their message at the top level.
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub(super) response: Option<ResponsesHead>,
    /// A `*.delta` event's text.
    #[serde(default)]
    delta: Option<Text>,
}

/// The `response` object of `response.*` lifecycle events.
#[derive(Deserialize)]
pub(super) struct ResponsesHead {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<crate::usage::Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AnthropicMessageHead {
    #[serde(default)]
    usage: Option<crate::usage::AnthropicUsage>,
}

fn error_message(error: &serde_json::Value) -> String {
    error
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string())
}

/// An event's meaning, plus the usage it carries.
pub(super) struct Classified {
    pub(super) kind: EventKind,
    pub(super) usage: Option<crate::usage::Usage>,
    /// A piece of Anthropic usage (`message_start` / `message_delta`).
    pub(super) anthropic_usage: Option<crate::usage::AnthropicUsage>,
    /// A chunk that carries usage and nothing else.
    pub(super) usage_only: bool,
    /// A Responses event's sequence number, its response head when parsed,
    /// and the text of `response.created` when it was not.
    pub(super) responses: Option<(Option<u64>, Option<ResponsesHead>, Option<Bytes>)>,
    /// Bytes of output text the event delivers.
    pub(super) text: u64,
}

impl From<EventKind> for Classified {
    fn from(kind: EventKind) -> Self {
        Classified {
            kind,
            usage: None,
            anthropic_usage: None,
            usage_only: false,
            responses: None,
            text: 0,
        }
    }
}

pub(super) fn classify(
    format: ClientFormat,
    event: &crate::sse::SseEvent,
    committed: bool,
    usage_wanted: bool,
) -> Classified {
    if event.data.is_empty() {
        return EventKind::Preamble.into();
    }
    match format {
        ClientFormat::OpenAi if committed => {
            if event.is_done() {
                return EventKind::Done.into();
            }
            // Most chunks: read in one pass, without serde.
            if let Some(text) = super::plain::plain_chunk(&event.data, usage_wanted) {
                let mut plain = Classified::from(EventKind::Content { finished: false });
                plain.text = text;
                return plain;
            }
            classify_committed(&event.data, usage_wanted)
        }
        ClientFormat::OpenAi => {
            if event.is_done() {
                return EventKind::Done.into();
            }
            let Ok(chunk) = serde_json::from_slice::<OpenAiChunk<'_>>(&event.data) else {
                return EventKind::Malformed.into();
            };
            if let Some(error) = chunk.error {
                return EventKind::Error(error_message(&error)).into();
            }
            let mut content = false;
            let mut finished = false;
            for choice in &chunk.choices {
                if choice.finish_reason.is_some() {
                    finished = true;
                }
                if choice.text.as_deref().is_some_and(|t| !t.is_empty()) {
                    content = true;
                }
                if let Some(d) = &choice.delta {
                    let non_empty = |s: &Option<std::borrow::Cow<'_, str>>| {
                        s.as_deref().is_some_and(|t| !t.is_empty())
                    };
                    if non_empty(&d.content)
                        || non_empty(&d.refusal)
                        || non_empty(&d.reasoning_content)
                        || d.tool_calls.is_some()
                        || d.function_call.is_some()
                    {
                        content = true;
                    }
                }
            }
            let kind = if content || finished {
                EventKind::Content { finished }
            } else {
                EventKind::Preamble
            };
            let text = chunk
                .choices
                .iter()
                .fold(0u64, |n, c| n.saturating_add(c.text()));
            Classified {
                kind,
                usage: chunk.usage,
                anthropic_usage: None,
                usage_only: chunk.usage.is_some() && chunk.choices.is_empty(),
                responses: None,
                text,
            }
        }
        ClientFormat::Anthropic => {
            let Ok(e) = serde_json::from_slice::<AnthropicEvent<'_>>(&event.data) else {
                return EventKind::Malformed.into();
            };
            let kind = match e.kind.as_ref() {
                "error" => {
                    EventKind::Error(e.error.as_ref().map(error_message).unwrap_or_default())
                }
                "message_stop" => EventKind::Done,
                "content_block_start" | "content_block_delta" => {
                    EventKind::Content { finished: false }
                }
                "message_delta" => EventKind::Content { finished: true },
                _ => EventKind::Preamble,
            };
            let anthropic_usage = e.usage.or_else(|| e.message.and_then(|m| m.usage));
            Classified {
                kind,
                usage: None,
                anthropic_usage,
                usage_only: false,
                responses: None,
                text: e.delta.map_or(0, |t| t.0),
            }
        }
        ClientFormat::Responses => classify_responses(event, usage_wanted),
    }
}

/// A Responses API event: `response.created` / `in_progress` / `queued`
/// are preamble; the first output item commits; `response.completed` and
/// `response.incomplete` end it; `error` and `response.failed` are errors.
fn classify_responses(event: &crate::sse::SseEvent, usage_wanted: bool) -> Classified {
    // Events named by their `event:` line are read without parsing their
    // JSON when the guard needs nothing in them but their number (the last
    // field of the events the proxy writes): output deltas and items
    // (content), `created` (its head is kept, parsed only if the stream
    // fails), `in_progress`/`queued` (preamble), and the end when no layer
    // wants the usage. Errors are always parsed.
    if let Some(name) = event.event.as_deref() {
        let looks_whole = event.data.first() == Some(&b'{') && event.data.last() == Some(&b'}');
        let kind = match name {
            _ if !looks_whole => None,
            "error" | "response.failed" => None,
            "response.completed" | "response.incomplete" if usage_wanted => None,
            "response.completed" | "response.incomplete" => Some(EventKind::Done),
            "response.created" | "response.in_progress" | "response.queued" => {
                Some(EventKind::Preamble)
            }
            _ => Some(EventKind::Content { finished: false }),
        };
        if let Some(kind) = kind {
            let head = (name == "response.created").then(|| event.data.clone());
            // The text a delta delivers, when a layer reads the usage (for
            // the charge of a stream cut short), without parsing the event.
            let text = if usage_wanted && name.ends_with(".delta") {
                raw_string_len(&event.data, b"\"delta\"")
            } else {
                0
            };
            return Classified {
                kind,
                usage: None,
                anthropic_usage: None,
                usage_only: false,
                responses: Some((sequence_number(&event.data), None, head)),
                text,
            };
        }
    }
    let Ok(e) = serde_json::from_slice::<ResponsesEvent<'_>>(&event.data) else {
        return EventKind::Malformed.into();
    };
    let kind = match e.kind.as_ref() {
        "response.created" | "response.in_progress" | "response.queued" => EventKind::Preamble,
        "response.completed" | "response.incomplete" => EventKind::Done,
        "error" => EventKind::Error(e.message.as_deref().unwrap_or_default().to_string()),
        "response.failed" => EventKind::Error(
            e.response
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .map(error_message)
                .unwrap_or_else(|| "the response failed".into()),
        ),
        _ => EventKind::Content { finished: false },
    };
    let usage = match kind {
        EventKind::Done => e.response.as_ref().and_then(|r| r.usage),
        _ => None,
    };
    Classified {
        kind,
        usage,
        anthropic_usage: None,
        usage_only: false,
        responses: Some((e.sequence_number, e.response, None)),
        text: e.delta.map_or(0, |t| t.0),
    }
}

/// An event's `"sequence_number": N`, found from the end of its JSON text
/// (where the Responses API and the proxy put it); `None` when absent.
fn sequence_number(data: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sequence_number\":";
    // Built once (per event, building it would cost as much as the search).
    static FINDER: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(KEY));
    let at = FINDER.rfind(data)?;
    let digits = data.get(at.checked_add(KEY.len())?..)?;
    let digits = digits.strip_prefix(b" ").unwrap_or(digits);
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}
