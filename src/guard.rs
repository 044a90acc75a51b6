//! [`StreamGuard`]: the body every streamed answer passes through.
//!
//! It re-frames the stream into whole SSE events (bounded: one event at most is
//! buffered) and enforces the streaming contract:
//!
//! - **Commit point.** [`StreamGuard::wait_for_first_content`] drives the
//!   stream until its first content event (text, a tool call, a finish
//!   reason), holding back role-only or empty preamble events. A stream that
//!   fails before that — an error event, a cut connection, an end, or no
//!   content within `first_byte_timeout` — fails as a whole, so the request can
//!   still go to another target without the client seeing anything.
//! - **After the commit**, a cut connection, a gap longer than `idle_timeout`,
//!   or an end without completion (no `[DONE]` and no finish reason) ends the
//!   stream with an error event in the client's format — never a clean end
//!   that looks complete. A stream that finished but left out `[DONE]` gets one.
//! - **Malformed events** (data that is not JSON) are skipped with a warning;
//!   the stream carries on.
//! - **Usage** goes into the answer's [`UsageSlot`](crate::usage::UsageSlot):
//!   OpenAI's usage chunk, or Anthropic's pieces (`message_start`'s input
//!   tokens, `message_delta`'s output tokens, cache counts included).
//!
//! Dropping the guard drops the upstream body, which closes the upstream
//! connection.
//!
//! ```
//! use std::time::Duration;
//! use http_body_util::BodyExt;
//! use llm_router::guard::{GuardConfig, StreamGuard};
//! use llm_router::request::ClientFormat;
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // An upstream that stops after one token: no finish reason, no [DONE].
//! let upstream = ProxyBody::full(
//!     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n");
//! let mut guard = StreamGuard::new(upstream, GuardConfig::new(ClientFormat::OpenAi));
//! guard.wait_for_first_content(Duration::from_secs(1)).await.unwrap();
//! let text = guard.collect().await.unwrap().to_bytes();
//! let text = String::from_utf8_lossy(&text);
//! assert!(text.starts_with("data: {\"choices\""));
//! assert!(text.contains("\"error\""));   // the client is told it is incomplete
//! # }
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Instant, Sleep};

use crate::body::{BoxError, ProxyBody};
use crate::request::ClientFormat;
use crate::sse::SseParser;

/// Settings of a [`StreamGuard`].
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// The format of the stream (and of the error events it may add).
    pub format: ClientFormat,
    /// Longest gap between upstream frames once the stream has started.
    pub idle_timeout: Duration,
    /// Largest single event accepted.
    pub max_event: usize,
    /// Most preamble bytes held back before the first content event.
    pub max_preamble: usize,
}

impl GuardConfig {
    /// Defaults: 30 s idle timeout, 8 MiB events, 1 MiB of preamble.
    pub fn new(format: ClientFormat) -> Self {
        GuardConfig {
            format,
            idle_timeout: Duration::from_secs(30),
            max_event: crate::upstream::limits::MAX_EVENT_BYTES,
            max_preamble: crate::upstream::limits::MAX_PREAMBLE_BYTES,
        }
    }

    /// Set the idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}

/// Why a stream failed before its first content event.
#[derive(Debug, thiserror::Error)]
pub enum StreamFailure {
    /// No content event within `first_byte_timeout`.
    #[error("no content within {0:?}")]
    FirstByteTimeout(Duration),
    /// The upstream connection broke.
    #[error("the upstream stream broke: {0}")]
    Broken(#[source] BoxError),
    /// The upstream ended the stream before sending any content.
    #[error("the upstream ended the stream before sending any content")]
    EndedEarly,
    /// The upstream sent an error event.
    #[error("the upstream sent an error event: {0}")]
    ErrorEvent(String),
    /// An event was larger than the cap.
    #[error(transparent)]
    TooLarge(#[from] crate::sse::EventTooLarge),
}

/// What one event means for the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventKind {
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
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// After the commit only the end, errors and usage matter: the deltas are
/// validated but not looked at.
#[derive(Deserialize)]
struct OpenAiChunkTail {
    #[serde(default)]
    choices: Vec<OpenAiChoiceTail>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<crate::usage::Usage>,
}

#[derive(Deserialize)]
struct OpenAiChoiceTail {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
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
}

/// An event of the Responses API: only what the guard needs of it.
#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    sequence_number: Option<u64>,
    /// `error` events carry their message at the top level.
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    response: Option<ResponsesHead>,
}

/// The `response` object of `response.*` lifecycle events.
#[derive(Deserialize)]
struct ResponsesHead {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    created_at: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<crate::usage::Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What a guard keeps of a Responses stream to end it with
/// `response.failed`: the last sequence number and the response's identity.
#[derive(Debug, Default)]
struct ResponsesState {
    next_sequence: u64,
    /// `response.created`'s JSON, read only when the stream fails.
    head_raw: Option<Bytes>,
    id: Option<String>,
    model: Option<String>,
    created_at: Option<serde_json::Value>,
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
struct Classified {
    kind: EventKind,
    usage: Option<crate::usage::Usage>,
    /// A piece of Anthropic usage (`message_start` / `message_delta`).
    anthropic_usage: Option<crate::usage::AnthropicUsage>,
    /// A chunk that carries usage and nothing else.
    usage_only: bool,
    /// A Responses event's sequence number, its response head when parsed,
    /// and the text of `response.created` when it was not.
    responses: Option<(Option<u64>, Option<ResponsesHead>, Option<Bytes>)>,
}

impl From<EventKind> for Classified {
    fn from(kind: EventKind) -> Self {
        Classified {
            kind,
            usage: None,
            anthropic_usage: None,
            usage_only: false,
            responses: None,
        }
    }
}

fn classify(
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
            let Ok(chunk) = serde_json::from_slice::<OpenAiChunkTail>(&event.data) else {
                return EventKind::Malformed.into();
            };
            if let Some(error) = chunk.error {
                return EventKind::Error(error_message(&error)).into();
            }
            let finished = chunk.choices.iter().any(|c| c.finish_reason.is_some());
            Classified {
                kind: EventKind::Content { finished },
                usage: chunk.usage,
                anthropic_usage: None,
                usage_only: chunk.usage.is_some() && chunk.choices.is_empty(),
                responses: None,
            }
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
            Classified {
                kind,
                usage: chunk.usage,
                anthropic_usage: None,
                usage_only: chunk.usage.is_some() && chunk.choices.is_empty(),
                responses: None,
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
            return Classified {
                kind,
                usage: None,
                anthropic_usage: None,
                usage_only: false,
                responses: Some((sequence_number(&event.data), None, head)),
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
    }
}

/// An event's `"sequence_number": N`, found from the end of its JSON text
/// (where the Responses API and the proxy put it); `None` when absent.
fn sequence_number(data: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sequence_number\":";
    let at = memchr::memmem::rfind(data, KEY)?;
    let digits = data.get(at.checked_add(KEY.len())?..)?;
    let digits = digits.strip_prefix(b" ").unwrap_or(digits);
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

/// The events that end a committed Responses stream that failed: an
/// `error` event, then `response.failed` (sequence numbers go on from the
/// last one seen).
fn responses_failure(state: &mut ResponsesState, code: &str, message: &str) -> Bytes {
    if state.id.is_none() {
        if let Some(raw) = state.head_raw.take() {
            if let Ok(e) = serde_json::from_slice::<ResponsesEvent<'_>>(&raw) {
                if let Some(head) = e.response {
                    state.id = head.id;
                    state.model = head.model;
                    state.created_at = head.created_at;
                }
            }
        }
    }
    let seq = state.next_sequence;
    let error = json!({"type": "error", "code": code, "message": message, "param": null,
        "sequence_number": seq});
    let failed = json!({
        "type": "response.failed",
        "sequence_number": seq.saturating_add(1),
        "response": {
            "id": state.id.as_deref().unwrap_or("resp_failed"),
            "object": "response",
            "created_at": state.created_at.clone().unwrap_or(json!(0)),
            "model": state.model.as_deref().unwrap_or_default(),
            "status": "failed",
            "error": {"code": "server_error", "message": message},
            "incomplete_details": null,
            "output": [],
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
        },
    });
    state.next_sequence = seq.saturating_add(2);
    Bytes::from(format!(
        "event: error\ndata: {error}\n\nevent: response.failed\ndata: {failed}\n\n"
    ))
}

/// The error event a guard adds when a committed stream fails.
pub fn error_event(format: ClientFormat, code: &str, message: &str) -> Bytes {
    match format {
        ClientFormat::Responses => responses_failure(&mut ResponsesState::default(), code, message),
        ClientFormat::OpenAi => {
            let body = json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}});
            Bytes::from(format!("data: {body}\n\n"))
        }
        ClientFormat::Anthropic => {
            let body = json!({"type": "error", "error": {"type": "api_error", "message": message}});
            Bytes::from(format!("event: error\ndata: {body}\n\n"))
        }
    }
}

/// The guarded stream body. See the [module docs](crate::guard).
pub struct StreamGuard<B = ProxyBody> {
    inner: Option<B>,
    parser: SseParser,
    out: VecDeque<Bytes>,
    config: GuardConfig,
    idle: Pin<Box<Sleep>>,
    committed: bool,
    saw_done: bool,
    saw_finish: bool,
    malformed: u64,
    held: usize,
    usage: Option<crate::usage::UsageSlot>,
    strip_usage: bool,
    /// Anthropic usage seen so far (it comes in pieces).
    anthropic_usage: crate::usage::AnthropicUsage,
    /// A Responses stream's numbering and identity.
    responses: ResponsesState,
}

impl<B> std::fmt::Debug for StreamGuard<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("committed", &self.committed)
            .field("saw_done", &self.saw_done)
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl<B> StreamGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Guard `inner`.
    pub fn new(inner: B, config: GuardConfig) -> Self {
        let idle = Box::pin(tokio::time::sleep(config.idle_timeout));
        StreamGuard {
            inner: Some(inner),
            parser: SseParser::new(config.max_event),
            out: VecDeque::new(),
            config,
            idle,
            committed: false,
            saw_done: false,
            saw_finish: false,
            malformed: 0,
            held: 0,
            usage: None,
            strip_usage: false,
            anthropic_usage: Default::default(),
            responses: ResponsesState::default(),
        }
    }

    /// Record the stream's usage chunk into `slot`; with `strip`, keep that
    /// chunk from the client (it was asked for by the proxy, not the client).
    pub fn with_usage(mut self, slot: crate::usage::UsageSlot, strip: bool) -> Self {
        self.usage = Some(slot);
        self.strip_usage = strip;
        self
    }

    /// Note the usage an event carries (and a Responses event's numbering);
    /// whether the event is to be dropped.
    fn note_usage(&mut self, c: &Classified) -> bool {
        if let Some((seq, head, raw)) = &c.responses {
            if self.responses.head_raw.is_none() {
                self.responses.head_raw.clone_from(raw);
            }
            if let Some(seq) = seq {
                self.responses.next_sequence =
                    self.responses.next_sequence.max(seq.saturating_add(1));
            }
            if let Some(head) = head {
                let state = &mut self.responses;
                if state.id.is_none() {
                    state.id.clone_from(&head.id);
                    state.model.clone_from(&head.model);
                    state.created_at.clone_from(&head.created_at);
                }
            }
        }
        if let (Some(usage), Some(slot)) = (c.usage, &self.usage) {
            slot.set(usage);
        }
        if let (Some(piece), Some(slot)) = (&c.anthropic_usage, &self.usage) {
            self.anthropic_usage.merge(piece);
            slot.set(self.anthropic_usage.usage());
        }
        self.strip_usage && c.usage_only
    }

    /// Drive the stream until its first content event, within `timeout`.
    /// Preamble events are kept and sent first when the body is read.
    pub async fn wait_for_first_content(&mut self, timeout: Duration) -> Result<(), StreamFailure> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            if self.committed {
                return Ok(());
            }
            let frame = tokio::select! {
                biased;
                frame = poll_fn(|cx| self.poll_inner(cx)) => frame,
                () = &mut deadline => return Err(StreamFailure::FirstByteTimeout(timeout)),
            };
            match frame {
                None => {
                    self.inner = None;
                    if let Some(event) = self.parser.finish() {
                        self.take_event(event)?;
                        if self.committed {
                            continue;
                        }
                    }
                    return Err(StreamFailure::EndedEarly);
                }
                Some(Err(e)) => {
                    self.inner = None;
                    return Err(StreamFailure::Broken(e));
                }
                Some(Ok(data)) => {
                    self.parser.push(&data);
                    while let Some(event) = self.parser.next_event()? {
                        self.take_event(event)?;
                    }
                    if !self.committed && self.held > self.config.max_preamble {
                        return Err(StreamFailure::Broken(
                            "the upstream sent too much preamble without content".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Before the commit: hold or commit on one event.
    fn take_event(&mut self, event: crate::sse::SseEvent) -> Result<(), StreamFailure> {
        let c = classify(self.config.format, &event, false, self.usage.is_some());
        let drop_it = self.note_usage(&c);
        match c.kind {
            EventKind::Error(message) => return Err(StreamFailure::ErrorEvent(message)),
            EventKind::Malformed => {
                self.warn_malformed(&event.data);
                return Ok(());
            }
            EventKind::Preamble => {
                self.held = self.held.saturating_add(event.raw.len());
            }
            EventKind::Content { finished } => {
                self.committed = true;
                self.saw_finish |= finished;
            }
            EventKind::Done => {
                // Done before any content: an empty but complete answer.
                self.committed = true;
                self.saw_done = true;
            }
        }
        if !drop_it {
            self.out.push_back(event.raw);
        }
        Ok(())
    }

    fn warn_malformed(&mut self, data: &[u8]) {
        self.malformed = self.malformed.saturating_add(1);
        if self.malformed == 1 {
            let shown = data.get(..200).unwrap_or(data);
            let shown = String::from_utf8_lossy(shown).into_owned();
            tracing::warn!(event = %crate::escape::Escaped(&shown), "skipping a malformed event from the upstream");
        }
    }

    /// Poll the upstream for its next data chunk, resetting the idle timer.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(inner) = self.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.idle
                            .as_mut()
                            .reset(deadline_after(self.config.idle_timeout));
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Trailers carry nothing for the client: skip.
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// After the commit: one event.
    fn pass_event(&mut self, event: crate::sse::SseEvent) {
        let c = classify(self.config.format, &event, true, self.usage.is_some());
        if self.note_usage(&c) {
            return;
        }
        match c.kind {
            EventKind::Malformed => {
                self.warn_malformed(&event.data);
                return;
            }
            EventKind::Done => self.saw_done = true,
            EventKind::Content { finished } => self.saw_finish |= finished,
            // The upstream's own error event already tells the client the
            // answer is incomplete: no second one at the end.
            EventKind::Error(_) => self.saw_done = true,
            EventKind::Preamble => {}
        }
        self.out.push_back(event.raw);
    }

    fn fail(&mut self, code: &str, message: &str) {
        tracing::warn!(code, message, "streamed answer cut short");
        self.inner = None;
        let event = match self.config.format {
            ClientFormat::Responses => responses_failure(&mut self.responses, code, message),
            format => error_event(format, code, message),
        };
        self.out.push_back(event);
    }

    fn end_of_upstream(&mut self) {
        self.inner = None;
        if let Some(event) = self.parser.finish() {
            self.pass_event(event);
        }
        if self.saw_done {
            return;
        }
        match self.config.format {
            ClientFormat::OpenAi if self.saw_finish => {
                self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            _ => self.fail(
                "upstream_stream_incomplete",
                "The upstream ended the stream before the answer was complete",
            ),
        }
    }
}

impl<B> Body for StreamGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.inner.is_none() {
                return Poll::Ready(None);
            }
            match this.poll_inner(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    this.parser.push(&data);
                    loop {
                        match this.parser.next_event() {
                            Ok(Some(event)) => this.pass_event(event),
                            Ok(None) => break,
                            Err(e) => {
                                this.fail("upstream_event_too_large", &e.to_string());
                                break;
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!("The upstream connection broke mid-answer: {e}");
                    this.fail("upstream_stream_interrupted", &message);
                }
                Poll::Ready(None) => this.end_of_upstream(),
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let message = format!(
                            "The upstream sent nothing for {}",
                            crate::error::humanize(this.config.idle_timeout)
                        );
                        this.fail("upstream_idle_timeout", &message);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none() && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// `d` from now; a duration too long to add is about 30 years (as
/// [`tokio::time::sleep`] does).
fn deadline_after(d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    type Tx = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

    fn channel_body() -> (Tx, ProxyBody) {
        let (tx, rx) = mpsc::channel(16);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (tx, ProxyBody::new(StreamBody::new(stream)))
    }

    fn ev(s: &str) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from(format!("data: {s}\n\n"))))
    }

    const ROLE: &str = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
    const HI: &str = r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
    const STOP: &str = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

    async fn drain(guard: StreamGuard) -> String {
        String::from_utf8(guard.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn preamble_held_until_content() {
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        tx.send(ev(ROLE)).await.unwrap();
        {
            let wait = guard.wait_for_first_content(Duration::from_secs(5));
            tokio::pin!(wait);
            // Role-only: not committed yet.
            assert!(tokio::time::timeout(Duration::from_secs(1), &mut wait)
                .await
                .is_err());
            tx.send(ev(HI)).await.unwrap();
            wait.await.unwrap();
        }
        tx.send(ev(STOP)).await.unwrap();
        tx.send(ev("[DONE]")).await.unwrap();
        drop(tx);
        let out = drain(guard).await;
        assert_eq!(
            out,
            format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn first_byte_timeout() {
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        tx.send(ev(ROLE)).await.unwrap();
        let e = guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, StreamFailure::FirstByteTimeout(_)));
    }

    #[tokio::test]
    async fn error_event_before_commit_fails() {
        let body = ProxyBody::full(format!(
            "data: {ROLE}\n\ndata: {{\"error\":{{\"message\":\"overloaded\"}}}}\n\n"
        ));
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        let e = guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, StreamFailure::ErrorEvent(m) if m == "overloaded"));
    }

    #[tokio::test]
    async fn ended_before_content_fails() {
        let body = ProxyBody::full(format!("data: {ROLE}\n\n"));
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        let e = guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, StreamFailure::EndedEarly));
    }

    #[tokio::test]
    async fn cut_after_commit_ends_with_error_event() {
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        tx.send(ev(HI)).await.unwrap();
        guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap();
        tx.send(Err("connection reset".into())).await.unwrap();
        drop(tx);
        let out = drain(guard).await;
        assert!(out.starts_with(&format!("data: {HI}\n\n")));
        assert!(out.contains("upstream_stream_interrupted"), "{out}");
        assert!(!out.contains("[DONE]"));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_after_commit() {
        let (tx, body) = channel_body();
        let config = GuardConfig::new(ClientFormat::Anthropic).idle_timeout(Duration::from_secs(3));
        let mut guard = StreamGuard::new(body, config);
        tx.send(Ok(Frame::data(Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
        ))))
        .await
        .unwrap();
        guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap();
        let out = drain(guard).await;
        assert!(out.contains("event: error"), "{out}");
        assert!(out.contains("sent nothing for 3s"), "{out}");
        drop(tx);
    }

    #[tokio::test]
    async fn missing_done_after_finish_is_added_and_malformed_skipped() {
        let body = ProxyBody::full(format!("data: {HI}\n\ndata: not json\n\ndata: {STOP}\n\n"));
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap();
        let out = drain(guard).await;
        assert_eq!(
            out,
            format!("data: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
        );
    }

    #[tokio::test]
    async fn anthropic_usage_is_put_together_from_its_pieces() {
        let body = ProxyBody::full(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":100}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        let slot = crate::usage::UsageSlot::default();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Anthropic))
            .with_usage(slot.clone(), true);
        guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap();
        let out = drain(guard).await;
        assert!(
            out.ends_with("data: {\"type\":\"message_stop\"}\n\n"),
            "{out}"
        );
        assert!(out.contains("message_delta"), "nothing stripped: {out}");
        let usage = slot.get().unwrap();
        assert_eq!(usage.prompt_tokens, 125);
        assert_eq!(usage.cached_tokens, 100);
        assert_eq!(usage.completion_tokens, 15);
        assert_eq!(usage.total(), 140);
    }

    #[tokio::test]
    async fn events_split_across_frames() {
        let whole = format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n");
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::OpenAi));
        let feeder = tokio::spawn(async move {
            for b in whole.as_bytes().chunks(1) {
                tx.send(Ok(Frame::data(Bytes::copy_from_slice(b))))
                    .await
                    .unwrap();
            }
        });
        guard
            .wait_for_first_content(Duration::from_secs(2))
            .await
            .unwrap();
        let out = drain(guard).await;
        feeder.await.unwrap();
        assert_eq!(
            out,
            format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
        );
    }

    fn rev(kind: &str, seq: u64, extra: &str) -> String {
        format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{extra}}}\n\n")
    }

    #[tokio::test(start_paused = true)]
    async fn responses_preamble_commit_and_failure() {
        let head =
            r#","response":{"id":"resp_1","model":"m","created_at":5,"status":"in_progress"}"#;
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Responses));
        tx.send(Ok(Frame::data(Bytes::from(rev(
            "response.created",
            0,
            head,
        )))))
        .await
        .unwrap();
        tx.send(Ok(Frame::data(Bytes::from(rev(
            "response.in_progress",
            1,
            head,
        )))))
        .await
        .unwrap();
        {
            let wait = guard.wait_for_first_content(Duration::from_secs(5));
            tokio::pin!(wait);
            // Preamble only: not committed.
            assert!(tokio::time::timeout(Duration::from_secs(1), &mut wait)
                .await
                .is_err());
            tx.send(Ok(Frame::data(Bytes::from(rev(
                "response.output_item.added",
                2,
                r#","output_index":0,"item":{"type":"message"}"#,
            )))))
            .await
            .unwrap();
            wait.await.unwrap();
        }
        // The upstream breaks after the commit.
        tx.send(Err("reset".into())).await.unwrap();
        drop(tx);
        let out = drain(guard).await;
        let events: Vec<serde_json::Value> = out
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "error",
                "response.failed"
            ]
        );
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
        let failed = &events[4]["response"];
        assert_eq!(failed["id"], "resp_1");
        assert_eq!(failed["status"], "failed");
        assert!(!out.contains("response.completed"));
    }

    #[tokio::test(start_paused = true)]
    async fn responses_error_before_output_fails_over() {
        let (tx, body) = channel_body();
        let mut guard = StreamGuard::new(body, GuardConfig::new(ClientFormat::Responses));
        tx.send(Ok(Frame::data(Bytes::from(rev("response.created", 0, "")))))
            .await
            .unwrap();
        tx.send(Ok(Frame::data(Bytes::from(rev(
            "response.failed",
            1,
            r#","response":{"error":{"code":"server_error","message":"overloaded"}}"#,
        )))))
        .await
        .unwrap();
        let e = guard
            .wait_for_first_content(Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, StreamFailure::ErrorEvent(m) if m == "overloaded"));
    }

    #[tokio::test(start_paused = true)]
    async fn responses_completed_carries_usage() {
        let slot = crate::usage::UsageSlot::default();
        let stream = format!(
            "{}{}{}",
            rev("response.created", 0, ""),
            rev("response.output_text.delta", 1, r#","delta":"Hi""#),
            rev(
                "response.completed",
                2,
                r#","response":{"usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":2},"output_tokens":3,"total_tokens":10}}"#
            ),
        );
        let mut guard = StreamGuard::new(
            ProxyBody::full(stream.clone()),
            GuardConfig::new(ClientFormat::Responses),
        )
        .with_usage(slot.clone(), false);
        guard
            .wait_for_first_content(Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(drain(guard).await, stream);
        let usage = slot.get().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (7, 3, 2)
        );
    }
}
