//! [`SseEvents`]: the frame mapper of event streams, which hands whole
//! events to a [`MapEvents`], the event-level trait. An example is on
//! [`MapEvents`].

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use http::HeaderMap;

use super::{BoxError, MapFrames};
use crate::sse::{EventTooLarge, SseEvent, SseParser};

/// Turns the whole events of a stream into output frames. [`SseEvents`]
/// drives it.
///
/// Only [`event`](Self::event) and [`finish`](Self::finish) are required.
/// The two settings shared with [`MapFrames`] mean the same here. For the
/// other frame-level hooks (an upstream error, a quiet spell, ending early),
/// implement [`MapFrames`] on a type of your own that holds the
/// [`SseEvents`] and hands it the frames.
///
/// ```
/// use std::collections::VecDeque;
///
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use llm_router::__private::body::{BoxError, MapBody, MapEvents, SseEvents};
/// use llm_router::__private::sse::SseEvent;
/// use llm_router::ProxyBody;
///
/// /// Drops keep-alives and ends the stream with `[DONE]`.
/// struct Tidy;
///
/// impl MapEvents for Tidy {
///     fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
///         if !event.is_empty() {
///             out.push_back(event.raw);
///         }
///         Ok(())
///     }
///
///     fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
///         out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let upstream = ProxyBody::full(": ping\n\ndata: a\n\n");
/// let body = MapBody::new(upstream, SseEvents::new(1 << 20, Tidy));
/// let out = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&out[..], b"data: a\n\ndata: [DONE]\n\n");
/// # }
/// ```
pub trait MapEvents {
    /// As [`MapFrames::EMPTY_WHEN_HELD`]: one frame out for each data frame
    /// in, empty if its events gave nothing (default: `true`).
    const EMPTY_WHEN_HELD: bool = true;

    /// One whole event. Output frames are appended to `out`. An error ends
    /// the body once what `out` holds has gone out.
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), BoxError>;

    /// An event grew past the cap. `rest` is everything held, that event's
    /// start included. The default fails with `error`. `Ok` goes on reading.
    fn too_large(
        &mut self,
        error: EventTooLarge,
        _rest: Option<SseEvent>,
        _out: &mut VecDeque<Bytes>,
    ) -> Result<(), BoxError> {
        Err(error.into())
    }

    /// Every event of one data frame has been given (also called after
    /// [`finish`](Self::finish), and after a failure). A mapper that writes
    /// all of them into one buffer sends it now. The default does nothing.
    fn end_of_frame(&mut self, _out: &mut VecDeque<Bytes>) {}

    /// The stream ended cleanly, after its last event (one that lacked its
    /// blank line included): append the closing output.
    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError>;

    /// As [`MapFrames::trailers`]. The default drops them.
    fn trailers(&mut self, _trailers: HeaderMap) -> Option<HeaderMap> {
        None
    }
}

/// The frame mapper of event streams. It re-frames a body's bytes into whole
/// events with [`SseParser`] and hands each event to a [`MapEvents`], the
/// event-level trait. An event split at any byte is joined first. The parser
/// holds at most one incomplete event, up to a cap.
///
/// Translated streams
/// (`EventTranscoder`s) and edited
/// ones (`transform`, `pii`) both run on it, and a
/// [`MapBody`](super::MapBody) around it owns the body's loop. A mapper that
/// also needs the frame-level hooks (an upstream error turned into an error
/// event, an idle timer) implements [`MapFrames`] itself around an
/// `SseEvents`.
pub struct SseEvents<M> {
    parser: SseParser,
    events: M,
}

impl<M> SseEvents<M> {
    /// Parse events of at most `max_event` bytes and hand them to `events`.
    pub fn new(max_event: usize, events: M) -> Self {
        SseEvents {
            parser: SseParser::new(max_event),
            events,
        }
    }

    /// The event mapper.
    pub fn events(&self) -> &M {
        &self.events
    }

    /// The event mapper, mutably.
    pub fn events_mut(&mut self) -> &mut M {
        &mut self.events
    }

    /// Bytes held that do not form a whole event yet.
    pub fn pending(&self) -> usize {
        self.parser.pending()
    }
}

impl<M: MapEvents> SseEvents<M> {
    /// Hand on every whole event the parser holds.
    fn drain(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        loop {
            match self.parser.next_event() {
                Ok(Some(event)) => self.events.event(event, out)?,
                Ok(None) => return Ok(()),
                Err(error) => {
                    let rest = self.parser.finish();
                    return self.events.too_large(error, rest, out);
                }
            }
        }
    }

    /// The last event (if the stream left one unended), then the end.
    fn last(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(event) = self.parser.finish() {
            self.events.event(event, out)?;
        }
        self.events.finish(out)
    }
}

impl<M> fmt::Debug for SseEvents<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseEvents")
            .field("pending", &self.parser.pending())
            .finish_non_exhaustive()
    }
}

impl<M: MapEvents> MapFrames for SseEvents<M> {
    const EMPTY_WHEN_HELD: bool = M::EMPTY_WHEN_HELD;

    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.parser.push(chunk);
        let result = self.drain(out);
        self.events.end_of_frame(out);
        result
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        let result = self.last(out);
        self.events.end_of_frame(out);
        result
    }

    fn trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        self.events.trailers(trailers)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::body::testing::{drain, joined, Got, Script, Step};
    use crate::body::MapBody;

    /// Writes each event's data and `;` into one buffer, sent once per
    /// frame; at the end, `end`. Passes an oversized event on when `lenient`.
    #[derive(Default)]
    struct Echo {
        buf: Vec<u8>,
        lenient: bool,
    }

    impl MapEvents for Echo {
        fn event(&mut self, event: SseEvent, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.buf.extend_from_slice(&event.data);
            self.buf.push(b';');
            Ok(())
        }

        fn too_large(
            &mut self,
            error: EventTooLarge,
            rest: Option<SseEvent>,
            out: &mut VecDeque<Bytes>,
        ) -> Result<(), BoxError> {
            if !self.lenient {
                return Err(error.into());
            }
            self.end_of_frame(out);
            if let Some(rest) = rest {
                out.push_back(rest.raw);
            }
            Ok(())
        }

        fn end_of_frame(&mut self, out: &mut VecDeque<Bytes>) {
            if !self.buf.is_empty() {
                out.push_back(Bytes::from(std::mem::take(&mut self.buf)));
            }
        }

        fn finish(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.buf.extend_from_slice(b"end");
            Ok(())
        }
    }

    fn data(s: &'static str) -> Got {
        Got::Data(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn events_of_a_frame_go_out_as_one_frame_and_the_last_one_at_the_end() {
        let script = Script::data(&["data: a\n\ndata: b\n\nda", "ta: c\n", "\ndata: d"]);
        let got = drain(MapBody::new(script, SseEvents::new(1024, Echo::default())));
        assert_eq!(got, [data("a;b;"), data(""), data("c;"), data("d;end")]);
    }

    #[test]
    fn an_event_too_large_fails_after_the_events_before_it_or_passes() {
        let script = || Script::data(&["data: a\n\ndata: 0123456789", "more\n\ndata: b\n\n"]);
        let got = drain(MapBody::new(script(), SseEvents::new(8, Echo::default())));
        assert_eq!(
            got,
            [
                data("a;"),
                Got::Error("a streamed event is larger than 8 bytes".into())
            ]
        );
        let lenient = Echo {
            lenient: true,
            ..Echo::default()
        };
        let got = drain(MapBody::new(script(), SseEvents::new(8, lenient)));
        assert_eq!(
            joined(&got),
            "a;data: 0123456789;b;end",
            "passed on raw, then parsing goes on"
        );
    }

    #[test]
    fn upstream_errors_pass_after_the_events_before_them() {
        let script = Script::new([
            Step::Data(Bytes::from_static(b"data: a\n\ndata: held")),
            Step::Error("cut"),
        ]);
        let got = drain(MapBody::new(script, SseEvents::new(1024, Echo::default())));
        assert_eq!(got, [data("a;"), Got::Error("cut".into())]);
    }

    /// Frame-level hooks on top: a mapper of its own around the events
    /// turns an upstream error into a last frame.
    struct Guarded(SseEvents<Echo>);

    impl MapFrames for Guarded {
        const EMPTY_WHEN_HELD: bool = false;

        fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.0.push(chunk, out)
        }

        fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            self.0.finish(out)
        }

        fn error(&mut self, error: BoxError, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
            out.push_back(Bytes::from(format!("error: {error}")));
            Ok(())
        }
    }

    #[test]
    fn frame_level_hooks_wrap_the_event_mapper() {
        let script = Script::new([
            Step::Data(Bytes::from_static(b"data: a\n\ndata: held")),
            Step::Data(Bytes::from_static(b"")),
            Step::Error("cut"),
        ]);
        let events = Guarded(SseEvents::new(1024, Echo::default()));
        let got = drain(MapBody::new(script, events));
        assert_eq!(got, [data("a;"), data("error: cut")]);
    }

    proptest! {
        /// However the stream is cut, the events are the same.
        #[test]
        fn any_split_gives_the_same_events(
            events in proptest::collection::vec("[a-z]{0,6}", 0..6),
            cuts in proptest::collection::vec(0usize..128, 0..6),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let text: String = events.iter().map(|e| format!(": c{nl}data: {e}{nl}{nl}")).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut steps = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                steps.push(Step::Data(Bytes::copy_from_slice(&text.as_bytes()[at..cut])));
                at = cut;
            }
            let frames_in = steps.len();
            let got = drain(MapBody::new(Script::new(steps), SseEvents::new(1024, Echo::default())));
            let expected: String = events.iter().map(|e| format!("{e};")).collect();
            prop_assert_eq!(joined(&got), format!("{expected}end"));
            prop_assert_eq!(got.len(), frames_in + 1);
        }
    }
}
