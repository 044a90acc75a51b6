//! Small received data copied out of hyper's read buffers.
//!
//! hyper parses a message head in place: the header values, the request's
//! URI and the first body frames are slices of the connection's read buffer
//! (8 KB at least). Whatever keeps one slice keeps the whole buffer, and
//! hyper, finding its buffer shared when it reads next, takes a fresh one.
//! The proxy keeps a request's head and body until its answer has begun
//! (for retries and failover) and an upstream answer's head until the
//! client's head is written (after the first content of a stream): with the
//! slices, each open stream held two read buffers on each side. Copied into
//! allocations of their own size (a few hundred bytes), the old buffer goes
//! as soon as hyper has moved on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Uri};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Frames up to this size are copied ([`Detached`]): hyper's first read
/// buffer. A larger frame fills most of the buffer it is a slice of.
pub(crate) const DETACH_MAX: usize = 8 * 1024;

/// Give every header value storage of its own: one allocation for all of
/// them, each value a slice of it.
pub(crate) fn detach_headers(headers: &mut HeaderMap) {
    let total = headers
        .values()
        .fold(0usize, |sum, v| sum.saturating_add(v.len()));
    if total == 0 {
        return;
    }
    let mut all = BytesMut::with_capacity(total);
    for value in headers.values() {
        all.extend_from_slice(value.as_bytes());
    }
    let all = all.freeze();
    let mut at = 0usize;
    for value in headers.values_mut() {
        let Some(end) = at.checked_add(value.len()) else {
            return;
        };
        let Some(copy) = all.get(at..end).map(|bytes| all.slice_ref(bytes)) else {
            return;
        };
        // The bytes were a valid value already; on the impossible error the
        // original stays.
        if let Ok(mut owned) = HeaderValue::from_maybe_shared(copy) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
        at = end;
    }
}

/// Give a URI storage of its own (hyper's is a slice of the request line).
pub(crate) fn detach_uri(uri: &mut Uri) {
    if let Ok(owned) = Uri::from_maybe_shared(Bytes::copy_from_slice(uri.to_string().as_bytes())) {
        *uri = owned;
    }
}

pin_project! {
    /// A received body whose small data frames are copied out of the read
    /// buffer they came in (see the [module docs](self)).
    #[derive(Debug)]
    pub(crate) struct Detached<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Detached<B> {
    pub(crate) fn new(inner: B) -> Self {
        Detached { inner }
    }
}

impl<B: Body<Data = Bytes>> Body for Detached<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| {
                    frame.map_data(|data| {
                        if data.len() <= DETACH_MAX {
                            Bytes::copy_from_slice(&data)
                        } else {
                            data
                        }
                    })
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[test]
    fn header_values_survive_their_buffer_with_their_flags() {
        let buffer = Bytes::from_static(b"Bearer sk-secretapplication/json");
        let mut headers = HeaderMap::new();
        let mut key = HeaderValue::from_maybe_shared(buffer.slice(0..16)).unwrap();
        key.set_sensitive(true);
        headers.insert("authorization", key);
        headers.append(
            "accept",
            HeaderValue::from_maybe_shared(buffer.slice(16..)).unwrap(),
        );
        headers.append("accept", HeaderValue::from_static("text/event-stream"));
        headers.insert("x-empty", HeaderValue::from_static(""));
        let before = headers.clone();
        detach_headers(&mut headers);
        assert_eq!(headers, before);
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers["accept"].is_sensitive());
        let accept: Vec<_> = headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["application/json", "text/event-stream"]);
        // Nothing to copy: nothing changes.
        let mut empty = HeaderMap::new();
        detach_headers(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_uri_is_kept_as_it_was() {
        for text in [
            "/v1/chat/completions",
            "/v1/models?limit=5",
            "http://example.com:8080/x?y",
            "*",
        ] {
            let mut uri: Uri = text.parse().unwrap();
            detach_uri(&mut uri);
            assert_eq!(uri, text.parse::<Uri>().unwrap());
            assert_eq!(uri.to_string(), text);
        }
    }

    #[tokio::test]
    async fn frames_are_unchanged() {
        let small = Detached::new(Full::new(Bytes::from_static(b"{\"model\":\"m\"}")));
        assert_eq!(small.size_hint().exact(), Some(13));
        let bytes = small.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"model\":\"m\"}");
        let big = Bytes::from(vec![b'a'; DETACH_MAX + 1]);
        let body = Detached::new(Full::new(big.clone()));
        let out = body.collect().await.unwrap().to_bytes();
        // Large frames pass as they are, without a copy.
        assert_eq!(out.as_ptr(), big.as_ptr());
    }
}
