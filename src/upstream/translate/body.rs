//! Body wrappers for translated answers, built on the body toolkit
//! ([`MapBody`], [`SseEvents`]).
//!
//! - [`SseTranscode`] re-frames an event stream into whole events (with
//!   [`SseParser`](crate::sse::SseParser), so an event split at any byte is
//!   joined first) and hands each one to an [`EventTranscoder`], which
//!   writes the events of the other format. Memory is bounded by one event
//!   plus what that event produced. Each upstream frame gives exactly one
//!   output frame — possibly empty, so the stream guard's idle timer still
//!   sees an upstream that only sends keep-alives (a zero-length frame never
//!   reaches the client).
//! - [`JsonTranscode`] collects a JSON answer (bounded) and rewrites it once
//!   it has ended: a JSON document cannot be translated piecewise.
//!
//! ```
//! use bytes::BytesMut;
//! use http_body_util::BodyExt;
//! use llm_router::__private::sse::SseEvent;
//! use llm_router::__private::translate::body::{EventTranscoder, SseTranscode};
//! use llm_router::ProxyBody;
//!
//! struct Upper;
//! impl EventTranscoder for Upper {
//!     fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
//!         out.extend_from_slice(b"data: ");
//!         out.extend_from_slice(&event.data.to_ascii_uppercase());
//!         out.extend_from_slice(b"\n\n");
//!     }
//!     fn finish(&mut self, _out: &mut BytesMut) {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let body = SseTranscode::new(ProxyBody::full("data: a\n\ndata: b\n\n"), Upper);
//! let out = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&out[..], b"data: A\n\ndata: B\n\n");
//! # }
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::{opaque_body, BoxError, MapBody, MapEvents, MapFrames, ProxyBody, SseEvents};
use crate::sse::SseEvent;
#[cfg(test)]
use http_body::Frame;

/// Largest single event a transcoder accepts (like the stream guard):
/// [`limits::MAX_EVENT_BYTES`](crate::upstream::limits::MAX_EVENT_BYTES).
pub const MAX_EVENT: usize = crate::upstream::limits::MAX_EVENT_BYTES;

/// Largest JSON answer [`JsonTranscode`] collects before giving up:
/// [`limits::MAX_JSON_ANSWER_BYTES`](crate::upstream::limits::MAX_JSON_ANSWER_BYTES).
pub const MAX_JSON: usize = crate::upstream::limits::MAX_JSON_ANSWER_BYTES;

/// Turns the events of one streaming format into those of another.
pub trait EventTranscoder: Send + Unpin + 'static {
    /// One whole upstream event; append what it becomes to `out`.
    fn event(&mut self, event: &SseEvent, out: &mut BytesMut);

    /// The upstream ended cleanly; append any closing events to `out`.
    fn finish(&mut self, out: &mut BytesMut);
}

/// Whether a response is a `text/event-stream`.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// An event stream translated event by event. See the [module docs](self).
pub struct SseTranscode<T>(MapBody<SseEvents<Transcode<T>>>);

impl<T> std::fmt::Debug for SseTranscode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseTranscode")
            .field("pending", &self.0.mapper().pending())
            .finish_non_exhaustive()
    }
}

impl<T: EventTranscoder> SseTranscode<T> {
    /// Translate `inner` with `transcoder`.
    pub fn new(inner: ProxyBody, transcoder: T) -> Self {
        let events = Transcode {
            transcoder,
            buf: BytesMut::new(),
        };
        SseTranscode(MapBody::new(inner, SseEvents::new(MAX_EVENT, events)))
    }
}

opaque_body!(impl[T: EventTranscoder] SseTranscode<T>);

/// An [`EventTranscoder`] as a [`MapEvents`]: what the events of one
/// upstream frame become is written into one output frame (an empty one
/// when they gave nothing).
struct Transcode<T> {
    transcoder: T,
    buf: BytesMut,
}

impl<T: EventTranscoder> MapEvents for Transcode<T> {
    fn event(&mut self, event: SseEvent, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.transcoder.event(&event, &mut self.buf);
        Ok(())
    }

    fn end_of_frame(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.buf.is_empty() {
            out.push_back(std::mem::take(&mut self.buf).freeze());
        }
    }

    fn finish(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.transcoder.finish(&mut self.buf);
        Ok(())
    }
}

type JsonMap = Box<dyn FnOnce(Bytes) -> Bytes + Send>;

/// A JSON answer rewritten at its end. See the [module docs](self).
pub struct JsonTranscode(MapBody<CollectThenMap>);

impl std::fmt::Debug for JsonTranscode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonTranscode")
            .field("buffered", &self.0.mapper().buf.len())
            .finish_non_exhaustive()
    }
}

impl JsonTranscode {
    /// Collect `inner` and hand the whole of it to `map`.
    pub fn new(inner: ProxyBody, map: impl FnOnce(Bytes) -> Bytes + Send + 'static) -> Self {
        let collect = CollectThenMap {
            buf: BytesMut::new(),
            map: Some(Box::new(map)),
        };
        JsonTranscode(MapBody::new(inner, collect))
    }
}

opaque_body!(impl[] JsonTranscode);

/// Collects up to [`MAX_JSON`] bytes, then maps the whole once at the end.
struct CollectThenMap {
    buf: BytesMut,
    map: Option<JsonMap>,
}

impl MapFrames for CollectThenMap {
    const EMPTY_WHEN_HELD: bool = false;

    fn push(&mut self, chunk: &[u8], _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if self.buf.len().saturating_add(chunk.len()) > MAX_JSON {
            return Err(format!(
                "the upstream answer is larger than {MAX_JSON} bytes and cannot be translated"
            )
            .into());
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        let whole = std::mem::take(&mut self.buf).freeze();
        let mapped = match self.map.take() {
            Some(map) => map(whole),
            None => whole,
        };
        if !mapped.is_empty() {
            out.push_back(mapped);
        }
        Ok(())
    }
}

/// Rewrite a JSON answer once it has ended; `map` gets the status and the
/// whole body. The length changes, so `Content-Length` goes.
pub fn map_json(
    response: Response<ProxyBody>,
    map: impl FnOnce(StatusCode, Bytes) -> Bytes + Send + 'static,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = JsonTranscode::new(body, move |bytes| map(status, bytes));
    Response::from_parts(parts, ProxyBody::new(body))
}

/// Translate an event stream with `transcoder`.
pub fn map_sse<T: EventTranscoder>(
    response: Response<ProxyBody>,
    transcoder: T,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, ProxyBody::new(SseTranscode::new(body, transcoder)))
}

/// Append one SSE event: `event: NAME` (when given) and `data: JSON`.
pub fn write_event(out: &mut BytesMut, name: Option<&str>, data: &serde_json::Value) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    // Writing JSON into memory cannot fail.
    let _ = serde_json::to_writer(BytesMutWriter(out), data);
    out.extend_from_slice(b"\n\n");
}

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::io::Write for BytesMutWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    struct Echo;
    impl EventTranscoder for Echo {
        fn event(&mut self, event: &SseEvent, out: &mut BytesMut) {
            out.extend_from_slice(&event.data);
            out.extend_from_slice(b";");
        }
        fn finish(&mut self, out: &mut BytesMut) {
            out.extend_from_slice(b"end");
        }
    }

    fn chunked(text: &'static str, size: usize) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = text
            .as_bytes()
            .chunks(size)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        ProxyBody::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn one_output_frame_per_input_frame_and_split_events_joined() {
        let text = "data: a\n\n: ping\n\ndata: b\n\ndata: c";
        for size in 1..6 {
            let mut body = SseTranscode::new(chunked(text, size), Echo);
            let mut frames = 0;
            let mut all = Vec::new();
            while let Some(frame) = body.frame().await {
                frames += 1;
                all.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            assert_eq!(String::from_utf8(all).unwrap(), "a;;b;c;end");
            assert!(frames >= text.len() / size, "size {size}");
        }
    }

    #[tokio::test]
    async fn errors_pass_through() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"data: a\n\n"))),
            Err("cut".into()),
        ];
        let mut body = SseTranscode::new(
            ProxyBody::new(StreamBody::new(futures_util::stream::iter(frames))),
            Echo,
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"a;");
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn json_is_rewritten_at_the_end() {
        let r = Response::builder()
            .status(201)
            .header("content-length", "9")
            .body(chunked("{\"a\":\"b\"}", 2))
            .unwrap();
        let r = map_json(r, |status, bytes| {
            Bytes::from(format!("{}:{}", status.as_u16(), bytes.len()))
        });
        assert!(r.headers().get("content-length").is_none());
        let out = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"201:9");
    }

    #[test]
    fn event_writer() {
        let mut out = BytesMut::new();
        write_event(&mut out, Some("ping"), &serde_json::json!({"type": "ping"}));
        assert_eq!(&out[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }
}
