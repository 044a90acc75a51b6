//! The one body type that flows out of the stack: [`ProxyBody`].
//!
//! Upstream bodies are wrapped, never collected: [`ProxyBody::new`] boxes any
//! [`http_body::Body`] and forwards `poll_frame`, `is_end_stream` and
//! `size_hint`, so frames reach the client as they arrive and a known
//! `Content-Length` survives. Small local answers (errors, the `mock`
//! provider, `/health`) use the unboxed [`ProxyBody::full`].
//!
//! ```
//! use http_body_util::BodyExt;
//! use llm_router::body::ProxyBody;
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
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

/// A type-erased error, used for body errors and boxed causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fails_a_stalled_body() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut body = IdleTimeout::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(5));
        tx.send(Ok(Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<Stalled>());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(tx);
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

/// A body that fails when its inner body sends nothing for `idle`: a JSON
/// answer that stalls after its head ends (the connection is aborted, so the
/// client sees an incomplete answer, never a silent hang).
///
/// The timer is armed only when the inner body has nothing ready, so a body
/// that arrives in one piece (most JSON answers) never touches the timer.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A frame came since the timer was last set.
    stale: bool,
}

impl<B> IdleTimeout<B> {
    /// Wrap `inner`.
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            sleep: None,
            stale: true,
        }
    }
}

impl<B> fmt::Debug for IdleTimeout<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// The error of a body that stalled.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
pub struct Stalled(pub Duration);

impl<B> Body for IdleTimeout<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stale = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                use std::future::Future;
                // The gap starts now: the last frame was just handed on.
                if this.stale || this.sleep.is_none() {
                    let deadline = tokio::time::Instant::now() + this.idle;
                    match &mut this.sleep {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    this.stale = false;
                }
                if this
                    .sleep
                    .as_mut()
                    .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
                {
                    Poll::Ready(Some(Err(Box::new(Stalled(this.idle)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
