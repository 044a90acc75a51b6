//! The answer's side of a record: the body wrapper that learns when the
//! answer ends (and how), and the tap that keeps a capped copy of what it
//! said — a JSON answer's bytes, or a stream's text reassembled from its
//! deltas.
//!
//! The tap never delays a frame: each frame is handed on as it comes, and
//! only a reference-counted handle to its bytes is kept, to be read at the
//! next poll (or when the body ends or is dropped).

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::record::Record;
use super::Shared;
use crate::body::{End, Observer};
use crate::sse::SseParser;
use crate::usage::UsageSlot;

/// The largest streamed event the tap reads; a larger one ends the tap:
/// [`limits::MAX_LOG_EVENT_BYTES`](crate::upstream::limits::MAX_LOG_EVENT_BYTES).
const MAX_EVENT: usize = crate::upstream::limits::MAX_LOG_EVENT_BYTES;
/// At most this many choices and tool calls are reassembled.
const MAX_SLOTS: u64 = 64;

/// What was kept of an answer.
#[derive(Debug)]
pub(crate) enum Captured {
    /// The first bytes of a non-streamed answer.
    Bytes {
        bytes: Bytes,
        /// More came than was kept.
        truncated: bool,
    },
    /// A streamed answer's text.
    Stream(StreamText),
}

impl Captured {
    /// About how many bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Captured::Bytes { bytes, .. } => bytes.len(),
            Captured::Stream(text) => {
                let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
                text.texts
                    .iter()
                    .map(|t| std::mem::size_of::<String>() + t.len())
                    .sum::<usize>()
                    + text
                        .tool_calls
                        .iter()
                        .map(|t| {
                            std::mem::size_of::<ToolCall>()
                                + opt(&t.id)
                                + opt(&t.name)
                                + t.arguments.len()
                        })
                        .sum::<usize>()
                    + opt(&text.finish_reason)
                    // An error event is at most one event (`MAX_EVENT`);
                    // counted by its text.
                    + text.error.as_ref().map_or(0, |e| e.to_string().len())
            }
        }
    }
}

/// One tool call of a streamed answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub(crate) key: u64,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) arguments: String,
}

/// A streamed answer, reassembled: text per choice (Anthropic: every text
/// block in one), tool calls, finish reason, and an error event if any.
#[derive(Debug, Default)]
pub(crate) struct StreamText {
    pub(crate) texts: Vec<String>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) error: Option<Value>,
    pub(crate) truncated: bool,
    kept: usize,
    cap: usize,
}

impl StreamText {
    fn new(cap: usize) -> Self {
        StreamText {
            cap,
            ..Default::default()
        }
    }

    /// Room for `text`, within the cap: what fits of it.
    fn admit<'t>(&mut self, text: &'t str) -> &'t str {
        let room = self.cap.saturating_sub(self.kept);
        if text.len() <= room {
            self.kept += text.len();
            return text;
        }
        self.truncated = true;
        let cut = cut_at_boundary(text, room);
        self.kept = self.cap;
        cut
    }

    fn push_text(&mut self, index: u64, text: &str) {
        if text.is_empty() || index >= MAX_SLOTS || self.truncated {
            return;
        }
        let text = self.admit(text);
        let i = index as usize;
        if self.texts.len() <= i {
            self.texts.resize(i + 1, String::new());
        }
        self.texts[i].push_str(text);
    }

    fn tool(&mut self, key: u64) -> Option<&mut ToolCall> {
        if key >= MAX_SLOTS {
            return None;
        }
        let pos = match self.tool_calls.iter().position(|t| t.key == key) {
            Some(p) => p,
            None => {
                self.tool_calls.push(ToolCall {
                    key,
                    ..Default::default()
                });
                self.tool_calls.len() - 1
            }
        };
        self.tool_calls.get_mut(pos)
    }

    fn push_arguments(&mut self, key: u64, text: &str) {
        if text.is_empty() || self.truncated {
            return;
        }
        let text = self.admit(text);
        if let Some(t) = self.tool(key) {
            t.arguments.push_str(text);
        }
    }

    /// Read one event's data (OpenAI chunks and Anthropic events alike).
    fn event(&mut self, data: &[u8]) {
        if data == b"[DONE]" || data.is_empty() {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Event<'_>>(data) else {
            return;
        };
        if let Some(error) = event.error {
            self.error = Some(error);
        }
        for choice in &event.choices {
            let index = choice.index.unwrap_or(0);
            if let Some(text) = &choice.text {
                self.push_text(index, text);
            }
            if let Some(delta) = &choice.delta {
                if let Some(content) = &delta.content {
                    self.push_text(index, content);
                }
                for call in delta.tool_calls.iter().flatten() {
                    let key = index * MAX_SLOTS + call.index.unwrap_or(0);
                    if let Some(t) = self.tool(key) {
                        if let Some(id) = &call.id {
                            t.id = Some(id.to_string());
                        }
                        if let Some(name) = call.function.as_ref().and_then(|f| f.name.as_ref()) {
                            t.name = Some(name.to_string());
                        }
                    }
                    if let Some(args) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        self.push_arguments(key, args);
                    }
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.to_string());
            }
        }
        let block = event.index.unwrap_or(0);
        match event.kind.as_deref() {
            Some("content_block_start") => {
                if let Some(b) = &event.content_block {
                    match b.kind.as_deref() {
                        Some("text") => {
                            if let Some(text) = &b.text {
                                self.push_text(0, text);
                            }
                        }
                        Some("tool_use") | Some("server_tool_use") => {
                            if let Some(t) = self.tool(block) {
                                t.id = b.id.as_deref().map(str::to_string);
                                t.name = b.name.as_deref().map(str::to_string);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some("content_block_delta") => {
                if let Some(d) = &event.delta {
                    match d.kind.as_deref() {
                        Some("text_delta") => {
                            if let Some(text) = &d.text {
                                self.push_text(0, text);
                            }
                        }
                        Some("input_json_delta") => {
                            if let Some(json) = &d.partial_json {
                                self.push_arguments(block, json);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some("message_delta") => {
                if let Some(reason) = event.delta.as_ref().and_then(|d| d.stop_reason.as_ref()) {
                    self.finish_reason = Some(reason.to_string());
                }
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<BlockDelta<'a>>,
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<ChoiceDelta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

/// Keeps a capped copy of an answer as it passes.
#[derive(Debug)]
pub(crate) enum Tap {
    /// A non-streamed answer: its first `cap` bytes.
    Bytes {
        buf: BytesMut,
        cap: usize,
        truncated: bool,
        pending: Option<Bytes>,
    },
    /// A streamed answer: its events, read for their text.
    Sse {
        parser: Box<SseParser>,
        text: StreamText,
        broken: bool,
        pending: Option<Bytes>,
    },
}

impl Tap {
    /// A tap for an answer with this content type.
    pub(crate) fn for_content_type(content_type: &str, cap: usize) -> Tap {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
        {
            Tap::Sse {
                parser: Box::new(SseParser::new(MAX_EVENT)),
                text: StreamText::new(cap),
                broken: false,
                pending: None,
            }
        } else {
            Tap::Bytes {
                buf: BytesMut::new(),
                cap,
                truncated: false,
                pending: None,
            }
        }
    }

    /// Keep a frame's bytes, to read later.
    fn defer(&mut self, bytes: &Bytes) {
        self.catch_up();
        match self {
            Tap::Bytes { pending, .. } | Tap::Sse { pending, .. } => *pending = Some(bytes.clone()),
        }
    }

    /// Read what was deferred.
    fn catch_up(&mut self) {
        match self {
            Tap::Bytes {
                buf,
                cap,
                truncated,
                pending,
            } => {
                if let Some(bytes) = pending.take() {
                    let room = cap.saturating_sub(buf.len());
                    if bytes.len() > room {
                        *truncated = true;
                    }
                    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            Tap::Sse {
                parser,
                text,
                broken,
                pending,
            } => {
                let Some(bytes) = pending.take() else { return };
                if *broken {
                    return;
                }
                parser.push(&bytes);
                loop {
                    match parser.next_event() {
                        Ok(Some(event)) => text.event(&event.data),
                        Ok(None) => break,
                        Err(_) => {
                            *broken = true;
                            text.truncated = true;
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Everything kept.
    fn finish(mut self) -> Captured {
        self.catch_up();
        match self {
            Tap::Bytes { buf, truncated, .. } => Captured::Bytes {
                bytes: buf.freeze(),
                truncated,
            },
            Tap::Sse {
                mut parser,
                mut text,
                broken,
                ..
            } => {
                if !broken {
                    if let Some(event) = parser.finish() {
                        text.event(&event.data);
                    }
                }
                Captured::Stream(text)
            }
        }
    }
}

/// `text` cut to at most `cap` bytes, and then back to the end of its last
/// whole word (so no half key, address or number is left at the end).
pub(crate) fn cut_at_boundary(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let word = |c: char| c.is_alphanumeric() || "-_.@+/=:%~".contains(c);
    // Do not cut inside a word: back off to just after the last non-word char.
    if text[end..].chars().next().is_some_and(word) {
        end = text[..end]
            .char_indices()
            .rev()
            .find(|(_, c)| !word(*c))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
    }
    &text[..end]
}

/// Sends the record once the answer ends.
pub(crate) struct Done {
    pub(crate) shared: Arc<Shared>,
    pub(crate) record: Box<Record>,
    pub(crate) started: Instant,
    pub(crate) slot: Option<UsageSlot>,
}

/// Watches the answer's body go by ([`Observe`](crate::body::Observe));
/// the record is completed and sent when it ends, breaks, or is dropped (a
/// client that went away).
pub(crate) struct Logged {
    pub(crate) tap: Option<Tap>,
    /// For an event stream: whether its terminal event went out.
    pub(crate) watch: Option<super::terminal::TerminalWatch>,
    pub(crate) done: Done,
}

impl Observer for Logged {
    /// The previous frame is on its way: read it now.
    fn before_poll(&mut self) {
        if let Some(tap) = &mut self.tap {
            tap.catch_up();
        }
    }

    fn on_data(&mut self, data: &Bytes) {
        if let Some(tap) = &mut self.tap {
            tap.defer(data);
        }
        if let Some(watch) = &mut self.watch {
            watch.feed(data);
        }
    }

    fn on_end(self, end: End<'_>) {
        let (complete, error) = match end {
            End::Complete => (true, None),
            End::Error(e) => (false, Some(e.to_string())),
            // A client that left after the stream's terminal event got the
            // whole answer.
            End::Dropped => (self.watch.as_ref().is_some_and(|w| w.ended()), None),
        };
        let Done {
            shared,
            mut record,
            started,
            slot,
        } = self.done;
        record.latency = started.elapsed();
        record.complete = complete;
        record.body_error = error;
        record.usage = slot.as_ref().and_then(UsageSlot::get);
        // The answer's, and what the attempts that failed before it reported.
        record.cost = crate::classify::request_cost(&record.attempts, slot.as_ref());
        record.response = self.tap.map(Tap::finish);
        shared.send(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: &[&str], cap: usize) -> StreamText {
        let mut tap = Tap::for_content_type("text/event-stream", cap);
        for e in events {
            // Split each event in two frames, anywhere.
            let bytes = Bytes::from(e.to_string());
            let mid = bytes.len() / 2;
            tap.defer(&bytes.slice(..mid));
            tap.defer(&bytes.slice(mid..));
        }
        match tap.finish() {
            Captured::Stream(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn openai_stream_reassembled() {
        let t = stream(
            &[
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"you\\\"\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ],
            1000,
        );
        assert_eq!(t.texts, ["Hello \"you\""]);
        assert_eq!(t.tool_calls.len(), 1);
        assert_eq!(t.tool_calls[0].name.as_deref(), Some("f"));
        assert_eq!(t.tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(t.finish_reason.as_deref(), Some("stop"));
        assert!(!t.truncated && t.error.is_none());
    }

    #[test]
    fn anthropic_stream_reassembled() {
        let t = stream(
            &[
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi there\"}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"get\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
            ],
            1000,
        );
        assert_eq!(t.texts, ["Hi there"]);
        assert_eq!(t.tool_calls[0].name.as_deref(), Some("get"));
        assert_eq!(t.tool_calls[0].arguments, "{}");
        assert_eq!(t.finish_reason.as_deref(), Some("tool_use"));
        assert_eq!(t.error.as_ref().unwrap()["message"], "busy");
    }

    #[test]
    fn stream_text_is_capped_at_a_word() {
        let event =
            |s: &str| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{s}\"}}}}]}}\n\n");
        let events: Vec<String> = (0..50).map(|i| event(&format!("word{i} "))).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let t = stream(&refs, 40);
        assert!(t.truncated);
        assert!(t.texts[0].len() <= 40, "{}", t.texts[0]);
        assert!(t.texts[0].starts_with("word0 word1 "), "{}", t.texts[0]);
        assert!(t.texts[0].ends_with(' '), "{:?}", t.texts[0]);
    }

    #[test]
    fn bytes_are_capped() {
        let mut tap = Tap::for_content_type("application/json", 5);
        tap.defer(&Bytes::from_static(b"abc"));
        tap.defer(&Bytes::from_static(b"defg"));
        match tap.finish() {
            Captured::Bytes { bytes, truncated } => {
                assert_eq!(&bytes[..], b"abcde");
                assert!(truncated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cuts_between_words() {
        assert_eq!(cut_at_boundary("short", 10), "short");
        assert_eq!(cut_at_boundary("key sk-1234567890abcdef", 12), "key ");
        assert_eq!(cut_at_boundary("one two three", 7), "one two");
        assert_eq!(cut_at_boundary("ééé", 3), "");
        assert_eq!(cut_at_boundary("a ééé", 4), "a ");
    }
}
