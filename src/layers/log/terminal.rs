//! [`TerminalWatch`]: whether an event stream has sent its terminal event.
//!
//! A client often closes the connection as soon as it has read the end of
//! a stream (`data: [DONE]`, `message_stop`, `response.completed`), before
//! the proxy's body has seen its own end. Such an answer was delivered in
//! full and is logged `complete`. The watch reads each event's name and the
//! start of its data — a few dozen bytes at most are kept, whatever the
//! events' size — and remembers whether the last event was a terminal one.
//!
//! (The module is private to the crate; its unit tests run this.)
//!
//! ```text
//! let mut watch = TerminalWatch::default();
//! watch.feed(b"data: {\"choices\":[]}\n\ndata: [DO");
//! assert!(!watch.ended());
//! watch.feed(b"NE]\n\n");
//! assert!(watch.ended());
//! ```

// Upstream bytes pass through here: no unchecked indexing or arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// Bytes kept of an event's name and of the start of its data.
const KEEP: usize = 48;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct TerminalWatch {
    /// The current line's first bytes (field name and value start).
    line: Vec<u8>,
    /// Whether the current line is longer than what was kept of it.
    line_cut: bool,
    /// The current event's `event:` value.
    name: Vec<u8>,
    /// The start of the current event's first `data:` value.
    data: Vec<u8>,
    has_data: bool,
    /// The last complete event was a terminal one.
    ended: bool,
}

/// Event names that end a stream.
const TERMINAL_NAMES: &[&[u8]] = &[
    b"message_stop",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
];

impl TerminalWatch {
    /// Whether the last whole event seen was a terminal one.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Read the next bytes of the stream.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(at) => {
                    let (line, after) = rest.split_at(at);
                    self.keep(line);
                    self.end_line();
                    rest = after.get(1..).unwrap_or_default();
                }
                None => {
                    self.keep(rest);
                    rest = &[];
                }
            }
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = KEEP.saturating_sub(self.line.len());
        let take = part.len().min(room);
        self.line
            .extend_from_slice(part.get(..take).unwrap_or_default());
        if take < part.len() {
            self.line_cut = true;
        }
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        self.line_cut = false;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            self.end_event();
        } else if let Some(value) = line.strip_prefix(b"event:") {
            self.name = trim(value).to_vec();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            if !self.has_data {
                self.has_data = true;
                self.data = trim(value).to_vec();
            }
        }
        self.line = line;
        self.line.clear();
    }

    fn end_event(&mut self) {
        if self.has_data || !self.name.is_empty() {
            self.ended = self.data == b"[DONE]"
                || TERMINAL_NAMES.contains(&self.name.as_slice())
                || TERMINAL_NAMES.iter().any(|name| typed(&self.data, name));
        }
        self.name.clear();
        self.data.clear();
        self.has_data = false;
    }
}

/// Whether JSON data starts `{"type":"<name>"` (how Anthropic's and the
/// Responses API's events name themselves when no `event:` line does).
fn typed(data: &[u8], name: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"{\"type\":\"") else {
        return false;
    };
    rest.strip_prefix(name)
        .is_some_and(|after| after.first() == Some(&b'"'))
}

fn trim(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended_after(stream: &str) -> bool {
        // Every split of the bytes gives the same answer.
        let bytes = stream.as_bytes();
        let whole = {
            let mut w = TerminalWatch::default();
            w.feed(bytes);
            w.ended()
        };
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let mut w = TerminalWatch::default();
            w.feed(a);
            w.feed(b);
            assert_eq!(w.ended(), whole, "split at {at}");
        }
        whole
    }

    #[test]
    fn terminal_events_of_each_format() {
        assert!(ended_after("data: {\"choices\":[]}\n\ndata: [DONE]\n\n"));
        assert!(ended_after(
            "event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        ));
        assert!(ended_after("data: {\"type\":\"message_stop\"}\n\n"));
        assert!(ended_after(
            "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{}}\r\n\r\n"
        ));
        assert!(ended_after("event: response.failed\ndata: {}\n\n"));
    }

    #[test]
    fn unfinished_streams_are_not_ended() {
        assert!(!ended_after("data: {\"choices\":[]}\n\n"));
        // The terminal event has not ended yet.
        assert!(!ended_after("data: [DONE]\n"));
        // Something came after it.
        assert!(!ended_after("data: [DONE]\n\ndata: {\"x\":1}\n\n"));
        assert!(!ended_after(
            "event: message_start\ndata: {\"type\":\"message_stop_not\"}\n\n"
        ));
        assert!(!ended_after(": keep-alive\n\n"));
    }

    #[test]
    fn long_events_keep_little() {
        let mut w = TerminalWatch::default();
        let big = format!("data: {}\n", "x".repeat(100_000));
        w.feed(big.as_bytes());
        assert!(w.line.capacity() <= 4 * KEEP && w.data.len() <= KEEP);
        w.feed(b"\nevent: message_stop\ndata: {}\n\n");
        assert!(w.ended());
    }
}
