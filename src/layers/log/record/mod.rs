//! One request's record: gathered on the request path as cheap raw parts
//! (clones of `Arc`s, a few strings), turned into its JSON line — redacted,
//! bodies capped — in the writer thread.
//!
//! This module holds the parts a record is made of (the request body it
//! keeps, who sent it, the stack's own error) and [`Record`] itself;
//! `render` writes its line, `body` the bodies in it.

mod body;
mod render;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::capture::{cut_at_boundary, Captured};
use crate::classify::AttemptRecord;
use crate::request::LlmRequest;
use crate::usage::Usage;

/// Who sent the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    /// A key (always logged masked).
    Key(String),
    /// A verified identity that is not a key (a JWT's `sub`).
    Identity(String),
}

/// An error of the stack itself (not an answer): its code and message.
#[derive(Clone, Debug)]
pub(crate) struct StackError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// A 500 `internal_error`: also goes to `exceptions.json`.
    pub(crate) internal: bool,
}

/// The request body a record keeps: taken on the request path, already cut
/// to `max_body_bytes`, so a record waiting for the writer never holds more
/// of it than the cap (nor the client's whole body).
#[derive(Debug)]
pub(crate) enum LoggedRequest {
    /// The whole JSON text (at most the cap): the client's bytes, shared.
    Whole(Bytes),
    /// The start of a longer text, cut at a word boundary to at most the
    /// cap; logged as a string, with `request_truncated`.
    Cut(Box<str>),
}

impl LoggedRequest {
    /// What a record keeps of `llm`: its JSON text when it fits in `cap`
    /// bytes (the client's own bytes, not copied), else the first `cap`
    /// bytes of it. An edited request is serialized only until past the cap.
    pub(crate) fn of(llm: &LlmRequest, cap: usize) -> LoggedRequest {
        if let Some(raw) = llm.raw_json() {
            if raw.len() <= cap {
                if let Ok(bytes) = llm.to_bytes(None) {
                    return LoggedRequest::Whole(bytes);
                }
            }
            return LoggedRequest::cut(raw, cap);
        }
        let mut out = CappedWriter {
            buf: Vec::new(),
            limit: cap.saturating_add(1),
        };
        match serde_json::to_writer(&mut out, llm.body()) {
            Ok(()) if out.buf.len() <= cap => LoggedRequest::Whole(Bytes::from(out.buf)),
            _ => LoggedRequest::cut(&out.buf, cap),
        }
    }

    /// The first `cap` bytes of `text`, cut at a word boundary.
    fn cut(text: &[u8], cap: usize) -> LoggedRequest {
        let head = text.get(..cap.saturating_add(1)).unwrap_or(text);
        let head = match std::str::from_utf8(head) {
            Ok(head) => head,
            Err(e) => std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default())
                .unwrap_or_default(),
        };
        LoggedRequest::Cut(cut_at_boundary(head, cap).into())
    }

    /// The bytes it keeps.
    pub(crate) fn len(&self) -> usize {
        match self {
            LoggedRequest::Whole(bytes) => bytes.len(),
            LoggedRequest::Cut(text) => text.len(),
        }
    }
}

/// A writer that takes at most `limit` bytes, then fails (which stops a
/// serializer early).
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len());
        if room == 0 && !data.is_empty() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The raw parts of one record.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) time: SystemTime,
    pub(crate) request_id: Option<String>,
    pub(crate) client: Option<Client>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) endpoint: Option<&'static str>,
    pub(crate) model: Option<String>,
    pub(crate) stream: bool,
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) status: u16,
    pub(crate) latency: Duration,
    pub(crate) ttfb: Duration,
    pub(crate) overhead: Duration,
    pub(crate) usage: Option<Usage>,
    /// The answer's cost, when its usage and price are known.
    pub(crate) cost: Option<crate::usage::Cost>,
    pub(crate) stack_error: Option<StackError>,
    /// The answer's body error, if it broke.
    pub(crate) body_error: Option<String>,
    /// Whether the answer's body was sent to its end.
    pub(crate) complete: bool,
    /// The request's body, when `requests` is on (cut on the request path).
    pub(crate) request: Option<LoggedRequest>,
    /// Whether the response body is logged (`responses`); error bodies are
    /// always captured, for the `error` field.
    pub(crate) log_response: bool,
    pub(crate) response: Option<Captured>,
    /// The cap of each logged body, in bytes.
    pub(crate) max_body: usize,
    /// Its [`weight`](Record::weight), set when it is queued.
    pub(crate) weight: usize,
}

impl Record {
    /// About how many bytes the record holds (what the queue's
    /// `queue_bytes` counts): the struct, its strings and its bodies.
    pub(crate) fn weight(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<Record>()
            + opt(&self.request_id)
            + match &self.client {
                Some(Client::Key(s) | Client::Identity(s)) => s.len(),
                None => 0,
            }
            + self.method.len()
            + self.path.len()
            + opt(&self.model)
            + self
                .attempts
                .iter()
                .map(|a| std::mem::size_of::<AttemptRecord>() + a.backend.len() + a.model.len())
                .sum::<usize>()
            + self.stack_error.as_ref().map_or(0, |e| e.message.len())
            + opt(&self.body_error)
            + self.request.as_ref().map_or(0, LoggedRequest::len)
            + self.response.as_ref().map_or(0, Captured::weight)
    }
}

/// A rendered record.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// The JSON line (no newline).
    pub(crate) line: Vec<u8>,
    /// Whether it also goes to the errors file.
    pub(crate) error: bool,
    /// The length of the line's text before its bodies: the errors file
    /// gets `line[..head]` and a closing `}` (the bodies are in the
    /// session file's line, written once).
    pub(crate) head: usize,
    /// What goes to `exceptions.json`, for an unhandled error.
    pub(crate) exception: Option<Value>,
}

#[cfg(test)]
mod tests;
