//! An incremental Server-Sent Events parser with bounded memory.
//!
//! Network chunks split events anywhere — inside a line, inside a UTF-8
//! character, between `\r` and `\n`. [`SseParser`] takes chunks as they come
//! and yields whole events; it holds at most one incomplete event, and refuses
//! one larger than its cap instead of growing without bound.
//!
//! ```
//! use llm_router::__private::sse::SseParser;
//!
//! let mut p = SseParser::new(1 << 20);
//! p.push(b"event: ping\ndata: {\"a\"");
//! assert!(p.next_event().unwrap().is_none());
//! p.push(b":1}\n\ndata: [DONE]\n\n");
//! let e = p.next_event().unwrap().unwrap();
//! assert_eq!(e.event.as_deref(), Some("ping"));
//! assert_eq!(&e.data[..], br#"{"a":1}"#);
//! assert!(p.next_event().unwrap().unwrap().is_done());
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event exactly as received, blank line included.
    pub raw: Bytes,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (empty when there were none).
    pub data: Bytes,
}

impl SseEvent {
    /// `data: [DONE]`, OpenAI's end-of-stream marker.
    pub fn is_done(&self) -> bool {
        self.data.as_ref() == b"[DONE]"
    }

    /// An event with no data (comments, keep-alives).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.event.is_none()
    }
}

/// An event larger than the parser's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a streamed event is larger than {limit} bytes")]
pub struct EventTooLarge {
    /// The cap.
    pub limit: usize,
}

/// The incremental parser. See the module docs of `sse`.
#[derive(Debug)]
pub struct SseParser {
    buf: BytesMut,
    /// Bytes of `buf` already searched for a blank line.
    scanned: usize,
    max_event: usize,
}

impl SseParser {
    /// A parser refusing events over `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            buf: BytesMut::new(),
            scanned: 0,
            max_event,
        }
    }

    /// Add a chunk from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that do not form a complete event yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        match find_event_end(&self.buf, self.scanned) {
            Some(end) => {
                self.scanned = 0;
                let raw = self.buf.split_to(end).freeze();
                Ok(Some(parse_event(raw)))
            }
            None => {
                // Resume a little before the end: a delimiter may straddle chunks.
                self.scanned = self.buf.len().saturating_sub(3);
                if self.buf.len() > self.max_event {
                    Err(EventTooLarge {
                        limit: self.max_event,
                    })
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// At the end of the stream: whatever is left, as a final event (an
    /// upstream may omit the last blank line), or `None` if only blank space.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(parse_event(rest))
    }
}

/// Index just past the blank line ending the first event, searching from `from`.
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        // Jump to the next line break (memchr scans a word at a time).
        i = i.checked_add(memchr::memchr2(b'\n', b'\r', buf.get(i..)?)?)?;
        let at = |k: usize| i.checked_add(k).and_then(|j| buf.get(j)).copied();
        match at(0)? {
            b'\n' => {
                if at(1) == Some(b'\n') {
                    return i.checked_add(2);
                }
                if at(1) == Some(b'\r') && at(2) == Some(b'\n') {
                    return i.checked_add(3);
                }
            }
            _ if at(1) == Some(b'\r') => return i.checked_add(2),
            _ => {}
        }
        i = i.checked_add(1)?;
    }
}

fn parse_event(raw: Bytes) -> SseEvent {
    let mut event = None;
    let mut data: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let text: &[u8] = raw.as_ref();
    let mut rest = text;
    while !rest.is_empty() {
        let len = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        let (line, after) = rest.split_at_checked(len).unwrap_or((rest, &[]));
        let (field, value): (&[u8], Option<&[u8]>) = match memchr::memchr(b':', line) {
            Some(0) => (&[], None), // comment
            Some(n) => {
                let (field, value) = line.split_at_checked(n).unwrap_or((line, &[]));
                let value = value.strip_prefix(b":").unwrap_or(value);
                (field, Some(value.strip_prefix(b" ").unwrap_or(value)))
            }
            None => (line, Some(&[])),
        };
        match (field, value) {
            (b"data", Some(value)) => {
                // A view into `raw`, not a copy.
                let value = raw.slice_ref(value);
                match (&mut joined, &data) {
                    (Some(j), _) => {
                        j.extend_from_slice(b"\n");
                        j.extend_from_slice(&value);
                    }
                    (None, Some(first)) => {
                        let mut j = BytesMut::from(first.as_ref());
                        j.extend_from_slice(b"\n");
                        j.extend_from_slice(&value);
                        joined = Some(j);
                    }
                    (None, None) => data = Some(value),
                }
            }
            (b"event", Some(value)) => event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        // Skip one line ending (\r\n counts as one).
        let after = after.strip_prefix(b"\r").unwrap_or(after);
        rest = after.strip_prefix(b"\n").unwrap_or(after);
    }
    let data = match joined {
        Some(j) => j.freeze(),
        None => data.unwrap_or_default(),
    };
    SseEvent { raw, event, data }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn all_events(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            p.push(piece);
            while let Some(e) = p.next_event().unwrap() {
                out.push(e);
            }
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn split_at_every_byte_gives_the_same_events() {
        let input = b"data: {\"x\":\"\xc3\xa9\"}\n\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
        let whole = all_events(input, input.len());
        assert_eq!(whole.len(), 5);
        for size in 1..8 {
            assert_eq!(all_events(input, size), whole, "chunk size {size}");
        }
        assert_eq!(&whole[0].data[..], "{\"x\":\"é\"}".as_bytes());
        assert_eq!(whole[1].event.as_deref(), Some("message_start"));
        assert!(whole[2].is_empty());
        assert_eq!(&whole[3].data[..], b"line1\nline2");
        assert!(whole[4].is_done());
        let raw: Vec<u8> = whole.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(raw, input.to_vec());
    }

    #[test]
    fn missing_final_blank_line() {
        let events = all_events(b"data: {}\n\ndata: [DONE]", 3);
        assert_eq!(events.len(), 2);
        assert!(events[1].is_done());
        assert!(all_events(b"data: {}\n\n\n", 2).len() == 1);
    }

    #[test]
    fn bounded() {
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456789abcdefghij");
        assert_eq!(p.next_event(), Err(EventTooLarge { limit: 16 }));
    }

    #[test]
    fn data_without_space() {
        let events = all_events(b"data:{\"a\":1}\n\n", 100);
        assert_eq!(&events[0].data[..], b"{\"a\":1}");
    }
}
