//! The one body type that flows out of the stack, [`ProxyBody`], and the
//! toolkit the bodies that wrap it are built from.
//!
//! Upstream bodies are wrapped, never collected: [`ProxyBody::new`] boxes any
//! [`http_body::Body`] and forwards `poll_frame`, `is_end_stream` and
//! `size_hint`, so frames reach the client as they arrive and a known
//! `Content-Length` survives. Small local answers (errors, the `mock`
//! provider, `/health`) use the unboxed [`ProxyBody::full`].
//!
//! The toolkit has one generic body for each way of wrapping a body, so that
//! each `poll_frame` loop is written once:
//!
//! - [`MapBody`] changes the answer. It feeds the inner body's frames
//!   through a [`MapFrames`] and owns the output queue, errors that come
//!   after the output before them, the end, and trailers. [`SseEvents`]
//!   is the `MapFrames` of event streams: it hands whole events to a
//!   [`MapEvents`]. The translations and the answer edits run on these.
//! - [`Observe`] passes the answer through unchanged and tells an
//!   [`Observer`] what went by and how it ended, exactly once: complete,
//!   failed or dropped ([`End`]). Usage, token accounting and logging run
//!   on it.
//! - [`IdleTimeout`] fails a body whose inner body goes quiet for too long.
//!
//! ```
//! use http_body_util::BodyExt;
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let body = ProxyBody::full("hello");
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hello");
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

mod detach;
mod idle;
mod map;
mod observe;
mod sse;
#[cfg(test)]
pub(crate) mod testing;

pub(crate) use detach::{detach_headers, detach_uri, Detached};
pub use idle::{IdleTimeout, Stalled};
pub use map::{MapBody, MapFrames};
pub use observe::{End, Observe, Observer};
pub use sse::{MapEvents, SseEvents};

/// `impl Body` for a newtype over another body (its field `.0`), forwarding
/// `poll_frame`, `is_end_stream` and `size_hint`, as tower-http's
/// `opaque_body!` does: a named body type made of the generic ones above
/// ([`MapBody`], [`Observe`]).
macro_rules! opaque_body {
    (impl[$($generics:tt)*] $ty:ty $(where $($bounds:tt)+)?) => {
        impl<$($generics)*> ::http_body::Body for $ty $(where $($bounds)+)? {
            type Data = ::bytes::Bytes;
            type Error = $crate::body::BoxError;

            fn poll_frame(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> $crate::body::PollFrame {
                ::http_body::Body::poll_frame(::std::pin::Pin::new(&mut self.get_mut().0), cx)
            }

            fn is_end_stream(&self) -> bool {
                ::http_body::Body::is_end_stream(&self.0)
            }

            fn size_hint(&self) -> ::http_body::SizeHint {
                ::http_body::Body::size_hint(&self.0)
            }
        }
    };
}
pub(crate) use opaque_body;

/// A type-erased error, used for body errors and boxed causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the bodies here give from `poll_frame`.
pub type PollFrame = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// A body the toolkit's bodies wrap: its data [`Bytes`], its errors
/// anything that becomes a [`BoxError`], and `Unpin` (it is polled in
/// place). Every [`Body`] of that shape is one.
pub trait InnerBody: Body<Data = Bytes, Error: Into<BoxError>> + Unpin {}

impl<B> InnerBody for B
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
}

/// The response (and post-parse request) body used throughout llm-router.
pub struct ProxyBody(Kind);

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
    /// A body that was already boxed ([`ProxyBody::from_box`]).
    Pinned(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl ProxyBody {
    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody(Kind::Empty)
    }

    /// A body made of one chunk of bytes, sent as a single frame.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::empty()
        } else {
            ProxyBody(Kind::Full(Some(bytes)))
        }
    }

    /// Wrap any body; its frames pass through one by one, as they arrive.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        ProxyBody(Kind::Boxed(body.map_err(Into::into).boxed_unsync()))
    }

    /// A body that is already on the heap, kept in its own box (no second
    /// allocation, no copy). The upstream edge builds a stream's guard in a
    /// box before the answer's head is given out, so the future waiting for
    /// the first content holds only a pointer to it.
    ///
    /// ```
    /// use llm_router::ProxyBody;
    /// use http_body_util::Full;
    /// use bytes::Bytes;
    ///
    /// let boxed = Box::new(Full::new(Bytes::from_static(b"hi")).map_err(|never| match never {}));
    /// # use http_body_util::BodyExt;
    /// let body = ProxyBody::from_box(boxed);
    /// # drop(body);
    /// ```
    pub fn from_box<B>(body: Box<B>) -> Self
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        ProxyBody(Kind::Pinned(Box::into_pin(body)))
    }
}

impl Default for ProxyBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Kind::Empty => "Empty",
            Kind::Full(_) => "Full",
            Kind::Boxed(_) | Kind::Pinned(_) => "Streaming",
        };
        f.debug_tuple("ProxyBody").field(&kind).finish()
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        match &mut self.get_mut().0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
            Kind::Pinned(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Boxed(body) => body.is_end_stream(),
            Kind::Pinned(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(body) => body.size_hint(),
            Kind::Pinned(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn full_body_is_one_frame_with_exact_size() {
        let body = ProxyBody::full("abc");
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abc");
    }

    #[tokio::test]
    async fn empty_full_is_end_stream() {
        assert!(ProxyBody::full("").is_end_stream());
        assert!(ProxyBody::empty().is_end_stream());
    }

    #[tokio::test]
    async fn boxed_body_forwards_frames_one_by_one() {
        let frames = vec![
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::data(Bytes::from_static(b"b"))),
        ];
        let stream = futures_util::stream::iter(frames);
        let mut body = ProxyBody::new(StreamBody::new(stream));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"a");
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"b");
        assert!(body.frame().await.is_none());
    }
}
