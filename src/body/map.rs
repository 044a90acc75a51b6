//! [`MapBody`]: a body that feeds its inner body's frames through a
//! [`MapFrames`] as they come. This is the one `poll_frame` loop that the
//! translating and editing bodies share. The rules it keeps are on
//! [`MapBody`], an example on [`MapFrames`].

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{BoxError, InnerBody, PollFrame, ProxyBody};

/// Turns the bytes of a body into output frames, a data frame at a time.
/// [`MapBody`] drives it.
///
/// Only [`push`](Self::push) and [`finish`](Self::finish) are required.
/// The other methods are hooks with defaults: pass frames on without a copy,
/// keep trailers, turn an upstream error into output, act while the inner
/// body has nothing ready, end early.
///
/// ```
/// use std::collections::VecDeque;
///
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use llm_router::__private::body::{BoxError, MapBody, MapFrames};
/// use llm_router::ProxyBody;
///
/// /// Upper-cases the answer and closes it with `!`.
/// struct Shout;
///
/// impl MapFrames for Shout {
///     fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
///         out.push_back(Bytes::from(chunk.to_ascii_uppercase()));
///         Ok(())
///     }
///
///     fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
///         out.push_back(Bytes::from_static(b"!"));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = MapBody::new(ProxyBody::full("hello"), Shout);
/// let out = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&out[..], b"HELLO!");
/// # }
/// ```
pub trait MapFrames {
    /// When a data frame gives no output, send one empty frame anyway, so
    /// that there is one frame out for each data frame in (default: `true`).
    const EMPTY_WHEN_HELD: bool = true;

    /// Bytes of one data frame. Output frames are appended to `out`. An
    /// error ends the body once what `out` holds has gone out.
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError>;

    /// The same as [`push`](Self::push), given the frame's own [`Bytes`].
    /// A mapper that passes frames on as they are overrides it to avoid a
    /// copy. The default calls `push`.
    fn push_frame(&mut self, frame: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.push(&frame, out)
    }

    /// The inner body ended cleanly: append the closing output.
    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError>;

    /// Trailers from the inner body. Trailers that are returned go out at
    /// once. The default drops them, because they carry nothing for a
    /// client of a changed answer.
    fn trailers(&mut self, _trailers: HeaderMap) -> Option<HeaderMap> {
        None
    }

    /// The inner body failed, and it is not read again. `Err` passes an
    /// error on (the default passes `error` itself). `Ok` ends the body
    /// cleanly after `out`, for example after an error event written there.
    fn error(&mut self, error: BoxError, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        Err(error)
    }

    /// The inner body has nothing ready, and its waker is registered. The
    /// mapper may poll timers of its own. It returns `Ready` only once it has
    /// appended output, ended ([`is_done`](Self::is_done)) or failed. The
    /// default is `Pending`.
    fn poll_pending(
        &mut self,
        _cx: &mut Context<'_>,
        _out: &mut VecDeque<Bytes>,
    ) -> Poll<Result<(), BoxError>> {
        Poll::Pending
    }

    /// Whether the mapper ended the answer itself, checked after each call.
    /// If so, the inner body is dropped unread, `finish` is not called, and
    /// the body ends after `out`. The default is `false`.
    fn is_done(&self) -> bool {
        false
    }

    /// Whether [`finish`](Self::finish) would append nothing now. If so, the
    /// body says it has ended as soon as the inner body does, and may be
    /// left unread from there (`finish` is then not called): a body whose
    /// inner body is empty from the start is seen to be empty, and its last
    /// frame is seen to be its last. The default is `false`.
    fn holds_nothing(&self) -> bool {
        false
    }
}

/// A body mapped frame by frame through a [`MapFrames`].
///
/// The mapper sees the bytes of each data frame and appends output frames to
/// a queue. The body does the rest:
///
/// - Output goes out in order, one queued [`Bytes`] per frame.
/// - An error, whether the inner body's or the mapper's, goes out after the
///   output produced before it, and then the body ends.
/// - When the inner body ends cleanly, [`finish`](MapFrames::finish) adds the
///   closing output.
/// - Trailers are dropped unless the mapper keeps them
///   ([`trailers`](MapFrames::trailers)).
/// - It says it has ended once the inner body has ended and the mapper has
///   given all its output, or, with
///   [`holds_nothing`](MapFrames::holds_nothing), as soon as the inner body
///   says it has ended.
/// - With [`EMPTY_WHEN_HELD`](MapFrames::EMPTY_WHEN_HELD) (the default), a
///   data frame that gave no output still gives one empty frame. A body
///   further out that times idleness then sees an upstream that is busy
///   (hyper sends nothing for an empty frame).
pub struct MapBody<M, B = ProxyBody> {
    /// `None` once it ended, failed, or the mapper was done.
    inner: Option<B>,
    mapper: M,
    out: VecDeque<Bytes>,
    /// An error to report after the output produced before it.
    error: Option<BoxError>,
}

impl<M, B> MapBody<M, B> {
    /// Map `inner` through `mapper`.
    pub fn new(inner: B, mapper: M) -> Self {
        MapBody {
            inner: Some(inner),
            mapper,
            out: VecDeque::new(),
            error: None,
        }
    }

    /// The mapper.
    pub fn mapper(&self) -> &M {
        &self.mapper
    }

    /// The mapper, mutably.
    pub fn mapper_mut(&mut self) -> &mut M {
        &mut self.mapper
    }
}

impl<M, B> fmt::Debug for MapBody<M, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBody")
            .field("reading", &self.inner.is_some())
            .field("queued", &self.out.len())
            .field("failed", &self.error.is_some())
            .finish_non_exhaustive()
    }
}

impl<M: MapFrames + Unpin, B: InnerBody> Body for MapBody<M, B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if let Some(e) = this.error.take() {
                return Poll::Ready(Some(Err(e)));
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            let mut data_frame = false;
            let result = match Pin::new(inner).poll_frame(cx) {
                Poll::Pending => match this.mapper.poll_pending(cx, &mut this.out) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => result,
                },
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        data_frame = true;
                        this.mapper.push_frame(data, &mut this.out)
                    }
                    Err(frame) => {
                        let kept = frame
                            .into_trailers()
                            .ok()
                            .and_then(|trailers| this.mapper.trailers(trailers));
                        if let Some(trailers) = kept {
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(())
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.inner = None;
                    this.mapper.error(e.into(), &mut this.out)
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    this.mapper.finish(&mut this.out)
                }
            };
            match result {
                Err(e) => {
                    this.inner = None;
                    this.error = Some(e);
                }
                Ok(()) if this.mapper.is_done() => this.inner = None,
                Ok(()) if data_frame && M::EMPTY_WHEN_HELD && this.out.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::new()))));
                }
                Ok(()) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let inner_ended = match &self.inner {
            None => true,
            Some(inner) => self.mapper.holds_nothing() && inner.is_end_stream(),
        };
        inner_ended && self.out.is_empty() && self.error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // The length changes: unknown until the end.
        if self.is_end_stream() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::body::testing::{drain, joined, Got, Script, Step};

    /// Sends whole lines upper-cased (at most one frame per chunk), holds
    /// the rest; fails at an `x`, after the lines before it; at the end
    /// sends the rest and `END`.
    #[derive(Default)]
    struct Lines<const EMPTY: bool>(Vec<u8>);

    impl<const EMPTY: bool> MapFrames for Lines<EMPTY> {
        const EMPTY_WHEN_HELD: bool = EMPTY;

        fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            let x = chunk.iter().position(|&b| b == b'x');
            self.0.extend_from_slice(&chunk[..x.unwrap_or(chunk.len())]);
            if let Some(end) = self.0.iter().rposition(|&b| b == b'\n') {
                let line: Vec<u8> = self.0.drain(..=end).collect();
                out.push_back(Bytes::from(line.to_ascii_uppercase()));
            }
            match x {
                Some(_) => Err("an x".into()),
                None => Ok(()),
            }
        }

        fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            if !self.0.is_empty() {
                out.push_back(Bytes::from(self.0.to_ascii_uppercase()));
            }
            out.push_back(Bytes::from_static(b"END"));
            Ok(())
        }
    }

    fn data(s: &'static str) -> Got {
        Got::Data(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn one_frame_out_per_data_frame_in_when_asked() {
        let got = drain(MapBody::new(
            Script::data(&["a", "b\nc", "d"]),
            Lines::<true>::default(),
        ));
        assert_eq!(
            got,
            [data(""), data("AB\n"), data(""), data("CD"), data("END")]
        );
        let got = drain(MapBody::new(
            Script::data(&["a", "b\nc", "d"]),
            Lines::<false>::default(),
        ));
        assert_eq!(got, [data("AB\n"), data("CD"), data("END")]);
    }

    #[test]
    fn a_mapper_error_follows_the_output_before_it() {
        let got = drain(MapBody::new(
            Script::data(&["a\nb", "c\nx\nd", "never read"]),
            Lines::<true>::default(),
        ));
        assert_eq!(got, [data("A\n"), data("BC\n"), Got::Error("an x".into())]);
    }

    #[test]
    fn an_upstream_error_ends_the_body_without_finish() {
        let script = Script::new([
            Step::Data(Bytes::from_static(b"a\nb")),
            Step::Error("cut"),
            Step::Data(Bytes::from_static(b"never read")),
        ]);
        let got = drain(MapBody::new(script, Lines::<true>::default()));
        assert_eq!(got, [data("A\n"), Got::Error("cut".into())]);
    }

    /// Keeps trailers; turns an upstream error into an output frame and
    /// ends; answers a quiet upstream with a `tick` the first time.
    #[derive(Default)]
    struct Hooks {
        ticked: bool,
        done: bool,
    }

    impl MapFrames for Hooks {
        const EMPTY_WHEN_HELD: bool = false;

        fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.push_frame(Bytes::copy_from_slice(chunk), out)
        }

        fn push_frame(&mut self, frame: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.done = frame.as_ref() == b"stop";
            out.push_back(frame);
            Ok(())
        }

        fn finish(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            Err("finish is not called".into())
        }

        fn trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
            Some(trailers)
        }

        fn error(&mut self, error: BoxError, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            out.push_back(Bytes::from(format!("event: {error}")));
            self.done = true;
            Ok(())
        }

        fn poll_pending(
            &mut self,
            _cx: &mut Context<'_>,
            out: &mut VecDeque<Bytes>,
        ) -> Poll<Result<(), BoxError>> {
            if std::mem::replace(&mut self.ticked, true) {
                return Poll::Pending;
            }
            out.push_back(Bytes::from_static(b"tick"));
            Poll::Ready(Ok(()))
        }

        fn is_done(&self) -> bool {
            self.done
        }
    }

    #[test]
    fn hooks_keep_trailers_turn_errors_into_output_and_end_early() {
        let script = Script::new([
            Step::Data(Bytes::from_static(b"a")),
            Step::Pending,
            Step::Trailers,
            Step::Pending,
            Step::Error("cut"),
            Step::Data(Bytes::from_static(b"never read")),
        ]);
        let got = drain(MapBody::new(script, Hooks::default()));
        assert_eq!(
            got,
            [data("a"), data("tick"), Got::Trailers, data("event: cut")]
        );
        let got = drain(MapBody::new(
            Script::data(&["a", "stop", "b"]),
            Hooks::default(),
        ));
        assert_eq!(got, [data("a"), data("stop")]);
    }

    #[test]
    fn size_is_unknown_until_the_end() {
        let mut body = MapBody::new(Script::data(&["a"]), Lines::<false>::default());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Poll::Ready(Some(_)) = Pin::new(&mut body).poll_frame(&mut cx) {}
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }

    /// Passes frames on; holds nothing when asked to say so.
    struct Pass(bool);

    impl MapFrames for Pass {
        fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            out.push_back(Bytes::copy_from_slice(chunk));
            Ok(())
        }

        fn finish(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            Ok(())
        }

        fn holds_nothing(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn a_mapper_that_holds_nothing_ends_with_its_inner_body() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(MapBody::new(Script::default(), Pass(true)).is_end_stream());
        assert!(!MapBody::new(Script::default(), Pass(false)).is_end_stream());

        let mut body = MapBody::new(Script::data(&["a"]), Pass(true));
        assert!(!body.is_end_stream());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert!(
            body.is_end_stream(),
            "the last frame is seen to be the last"
        );

        let mut body = MapBody::new(Script::data(&["a"]), Pass(false));
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert!(!body.is_end_stream(), "finish is still to come");
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
        assert!(body.is_end_stream());
    }

    /// An input cut into frames anywhere, with trailers, quiet spells and
    /// an upstream error anywhere, through [`Lines`].
    fn run<const EMPTY: bool>(input: &str, cuts: &[usize], error_at: Option<usize>, noise: u8) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut frames = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            frames.push(Bytes::copy_from_slice(&input.as_bytes()[at..cut]));
            at = cut;
        }
        let error_at = error_at.map(|e| e % (frames.len() + 1));
        let mut steps = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            if Some(i) == error_at {
                steps.push(Step::Error("cut"));
            }
            match (noise >> (i % 8)) & 3 {
                1 => steps.push(Step::Trailers),
                2 => steps.push(Step::Pending),
                _ => {}
            }
            steps.push(Step::Data(frame.clone()));
        }
        if error_at == Some(frames.len()) {
            steps.push(Step::Error("cut"));
        }
        let got = drain(MapBody::new(Script::new(steps), Lines::<EMPTY>::default()));

        // What came before the first error, upstream's or the mapper's.
        let read: Vec<&Bytes> = frames
            .iter()
            .take(error_at.unwrap_or(frames.len()))
            .collect();
        let text: String = read.iter().map(|b| String::from_utf8_lossy(b)).collect();
        let (text, failure) = match text.find('x') {
            Some(x) => (&text[..x], Some("an x")),
            None => (&text[..], error_at.map(|_| "cut")),
        };
        let expected = match failure {
            Some(_) => text[..text.rfind('\n').map_or(0, |n| n + 1)].to_ascii_uppercase(),
            None => format!("{}END", text.to_ascii_uppercase()),
        };
        assert_eq!(joined(&got), expected);
        assert!(!got.contains(&Got::Trailers), "trailers are dropped");
        let errors: Vec<usize> = (0..got.len())
            .filter(|&i| matches!(got[i], Got::Error(_)))
            .collect();
        match failure {
            Some(message) => {
                assert_eq!(errors, [got.len() - 1], "one error, last");
                assert_eq!(got[got.len() - 1], Got::Error(message.into()));
            }
            None => assert!(errors.is_empty()),
        }
        let data_out = got.iter().filter(|g| matches!(g, Got::Data(_))).count();
        if EMPTY {
            // One frame per data frame pushed; the failing push gives at
            // most one; then the end's (the rest, if any, and `END`).
            let pushed_ok = read
                .iter()
                .position(|b| b.contains(&b'x'))
                .unwrap_or(read.len());
            let at_end = match failure {
                Some(_) => 0,
                None => 1 + usize::from(!text.ends_with('\n') && !text.is_empty()),
            };
            let while_reading = data_out - at_end;
            if failure == Some("an x") {
                assert!((pushed_ok..=pushed_ok + 1).contains(&while_reading));
            } else {
                assert_eq!(while_reading, pushed_ok);
            }
        } else {
            let empties = got
                .iter()
                .filter(|g| **g == Got::Data(Bytes::new()))
                .count();
            assert_eq!(empties, 0, "no empty frames");
        }
    }

    proptest! {
        #[test]
        fn the_loop_holds_under_any_split(
            input in "[ab\n]{0,40}(x[ab\n]{0,5})?",
            cuts in proptest::collection::vec(0usize..64, 0..8),
            error_at in proptest::option::of(0usize..16),
            noise in any::<u8>(),
        ) {
            run::<true>(&input, &cuts, error_at, noise);
            run::<false>(&input, &cuts, error_at, noise);
        }
    }
}
