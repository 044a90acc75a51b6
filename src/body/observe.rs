//! [`Observe`]: a body passed through unchanged to an [`Observer`], which
//! learns how it ended ([`End`]). The end rule is on [`Observe`], an example
//! on [`Observer`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, SizeHint};

use super::{BoxError, InnerBody, PollFrame};

/// How an observed body ended. See [`Observe`] for when each is told.
#[derive(Debug)]
pub enum End<'a> {
    /// All of it went out.
    Complete,
    /// The inner body failed with this error, which goes on to the client.
    Error(&'a BoxError),
    /// It was dropped before its end.
    Dropped,
}

/// Watches a body go by. [`Observe`] drives it.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use llm_router::__private::body::{End, Observe, Observer};
/// use llm_router::ProxyBody;
/// use std::sync::{Arc, Mutex};
///
/// /// Counts the bytes of an answer and records whether all of it went out.
/// struct Count(usize, Arc<Mutex<Option<(usize, bool)>>>);
///
/// impl Observer for Count {
///     fn on_data(&mut self, data: &Bytes) {
///         self.0 += data.len();
///     }
///
///     fn on_end(self, end: End<'_>) {
///         *self.1.lock().unwrap() = Some((self.0, matches!(end, End::Complete)));
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let seen = Arc::new(Mutex::new(None));
/// let body = Observe::new(ProxyBody::full("hello"), Count(0, seen.clone()));
/// body.collect().await.unwrap();
/// assert_eq!(*seen.lock().unwrap(), Some((5, true)));
///
/// let body = Observe::new(ProxyBody::full("hello"), Count(0, seen.clone()));
/// drop(body);
/// assert_eq!(*seen.lock().unwrap(), Some((0, false)));
/// # }
/// ```
pub trait Observer {
    /// The body is polled. This runs before the inner body is polled and
    /// until the end, so work kept back from the previous frame can be done
    /// while that frame is on its way. The default does nothing.
    fn before_poll(&mut self) {}

    /// A data frame passes, before it is handed on. The default does nothing.
    fn on_data(&mut self, _data: &Bytes) {}

    /// The body ended, failed, or was dropped. This is called exactly once.
    fn on_end(self, end: End<'_>);
}

/// A body passed through unchanged, with an [`Observer`] that
/// sees its data go by and learns how it ended. The observer is told the
/// [`End`] exactly once, and the end rule is kept here:
///
/// - [`End::Complete`]: the inner body returned its end, or said it had
///   ended after a frame (hyper stops polling a body once it has said so,
///   so the last frame is where the end is seen), or it was dropped after
///   saying so (an empty body that is never polled).
/// - [`End::Error`]: the inner body failed. The error then goes on to the
///   client unchanged.
/// - [`End::Dropped`]: the body was dropped before either, for example
///   because the client went away.
pub struct Observe<B: Body, O: Observer> {
    inner: B,
    /// `None` once told the end.
    observer: Option<O>,
}

impl<B: Body, O: Observer> Observe<B, O> {
    /// Pass `inner` through, watched by `observer`.
    pub fn new(inner: B, observer: O) -> Self {
        Observe {
            inner,
            observer: Some(observer),
        }
    }

    fn end(&mut self, end: End<'_>) {
        if let Some(observer) = self.observer.take() {
            observer.on_end(end);
        }
    }
}

impl<B: Body + fmt::Debug, O: Observer + fmt::Debug> fmt::Debug for Observe<B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .field("observer", &self.observer)
            .finish()
    }
}

impl<B: Body, O: Observer> Drop for Observe<B, O> {
    fn drop(&mut self) {
        let end = if self.inner.is_end_stream() {
            End::Complete
        } else {
            End::Dropped
        };
        self.end(end);
    }
}

impl<B: InnerBody, O: Observer + Unpin> Body for Observe<B, O> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        let this = self.get_mut();
        if let Some(observer) = &mut this.observer {
            observer.before_poll();
        }
        match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let (Some(observer), Some(data)) = (&mut this.observer, frame.data_ref()) {
                    observer.on_data(data);
                }
                if this.inner.is_end_stream() {
                    this.end(End::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                let e = e.into();
                this.end(End::Error(&e));
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.end(End::Complete);
                Poll::Ready(None)
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::body::testing::{drain, joined, Got, Script, Step};

    /// What an observer saw: a line per call.
    #[derive(Default, Clone)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Observer for Log {
        fn before_poll(&mut self) {
            self.0.lock().unwrap().push("poll".into());
        }

        fn on_data(&mut self, data: &Bytes) {
            let line = format!("data {}", String::from_utf8_lossy(data));
            self.0.lock().unwrap().push(line);
        }

        fn on_end(self, end: End<'_>) {
            let line = match end {
                End::Complete => "complete".to_string(),
                End::Error(e) => format!("error {e}"),
                End::Dropped => "dropped".to_string(),
            };
            self.0.lock().unwrap().push(line);
        }
    }

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn the_end_is_seen_at_the_last_frame_and_told_once() {
        let log = Log::default();
        let got = drain(Observe::new(Script::data(&["a", "b"]), log.clone()));
        assert_eq!(joined(&got), "ab");
        assert_eq!(
            log.lines(),
            lines(&["poll", "data a", "poll", "data b", "complete"])
        );
    }

    #[test]
    fn trailers_and_quiet_spells_are_not_data() {
        let log = Log::default();
        let script = Script::new([
            Step::Data(Bytes::from_static(b"a")),
            Step::Pending,
            Step::Trailers,
        ]);
        let got = drain(Observe::new(script, log.clone()));
        assert_eq!(got.last(), Some(&Got::Trailers));
        assert_eq!(
            log.lines(),
            lines(&["poll", "data a", "poll", "poll", "complete"])
        );
    }

    #[test]
    fn an_error_is_told_and_passed_on() {
        let log = Log::default();
        let script = Script::new([Step::Data(Bytes::from_static(b"a")), Step::Error("cut")]);
        let got = drain(Observe::new(script, log.clone()));
        assert_eq!(got.last(), Some(&Got::Error("cut".into())));
        assert_eq!(log.lines(), lines(&["poll", "data a", "poll", "error cut"]));
    }

    #[test]
    fn a_drop_before_the_end_is_told_unless_it_had_ended() {
        let log = Log::default();
        let mut body = Observe::new(Script::data(&["a", "b"]), log.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        drop(body);
        assert_eq!(log.lines(), lines(&["poll", "data a", "dropped"]));

        // Never polled, but empty: all of it went out.
        let log = Log::default();
        drop(Observe::new(Script::default(), log.clone()));
        assert_eq!(log.lines(), lines(&["complete"]));
    }
}
