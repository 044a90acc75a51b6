//! [`StreamGuard`]: the guarded body itself — the commit point
//! ([`StreamGuard::wait_for_first_content`]) and the checks after it.
//!
//! It is a [`MapBody`] of the body toolkit, which owns the frame loop: the
//! event-level rules are an [`SseEvents`] mapper ([`Events`]), and the
//! frame-level ones (the idle timer, a broken upstream) a [`MapFrames`]
//! around it ([`Guard`]).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::time::{Instant, Sleep};

use super::event::{classify, Classified, EventKind};
use super::failure::{error_event, responses_failure, ResponsesState};
use super::{GuardConfig, StreamFailure};
use crate::body::{
    opaque_body, BoxError, InnerBody, MapBody, MapEvents, MapFrames, PollFrame, ProxyBody,
    SseEvents,
};
use crate::request::ClientFormat;
use crate::sse::{EventTooLarge, SseEvent};

/// The guarded stream body. See the module docs of `upstream::guard`.
pub struct StreamGuard<B = ProxyBody>(MapBody<Guard, B>);

opaque_body!(impl[B: InnerBody] StreamGuard<B>);

impl<B> std::fmt::Debug for StreamGuard<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events = self.events();
        f.debug_struct("StreamGuard")
            .field("committed", &events.committed)
            .field("saw_done", &events.saw_done)
            .field("malformed", &events.malformed)
            .finish_non_exhaustive()
    }
}

impl<B> StreamGuard<B> {
    fn events(&self) -> &Events {
        self.0.mapper().events.events()
    }

    fn events_mut(&mut self) -> &mut Events {
        self.0.mapper_mut().events.events_mut()
    }
}

impl<B: InnerBody> StreamGuard<B> {
    /// Guard `inner`.
    pub fn new(inner: B, config: GuardConfig) -> Self {
        let last_data = Instant::now();
        let idle = Box::pin(tokio::time::sleep_until(deadline_from(
            last_data,
            config.idle_timeout,
        )));
        let events = Events {
            waiting: false,
            committed: false,
            saw_done: false,
            saw_finish: false,
            malformed: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            failure: None,
            failed: false,
            usage: None,
            strip_usage: false,
            anthropic_usage: Default::default(),
            responses: ResponsesState::default(),
            config,
        };
        let guard = Guard {
            events: SseEvents::new(events.config.max_event, events),
            idle,
            last_data,
        };
        StreamGuard(MapBody::new(inner, guard))
    }

    /// Record the stream's usage chunk into `slot`; with `strip`, keep that
    /// chunk from the client (it was asked for by the proxy, not the client).
    pub fn with_usage(mut self, slot: crate::usage::UsageSlot, strip: bool) -> Self {
        let events = self.events_mut();
        events.usage = Some(slot);
        events.strip_usage = strip;
        self
    }

    /// Drive the stream until its first content event, within `timeout`.
    /// Preamble events are kept and sent first when the body is read.
    pub async fn wait_for_first_content(&mut self, timeout: Duration) -> Result<(), StreamFailure> {
        if self.events().committed {
            return Ok(());
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let first = tokio::select! {
            biased;
            first = poll_fn(|cx| self.poll_waiting(cx)) => first,
            () = &mut deadline => return Err(StreamFailure::FirstByteTimeout(timeout)),
        };
        let events = self.events_mut();
        if let Some(failure) = events.failure.take() {
            return Err(failure);
        }
        match first {
            // The empty frame that tells the commit (see `Events::commit`).
            _ if events.committed => Ok(()),
            Some(Err(e)) => Err(StreamFailure::Broken(e)),
            _ => Err(StreamFailure::EndedEarly),
        }
    }

    /// Read the upstream with the rules before the commit point: the body
    /// gives its first frame at the commit, or ends at a failure. Only this
    /// poll reads that way, so a wait given up leaves the body as it was.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> PollFrame {
        self.events_mut().waiting = true;
        let polled = Pin::new(&mut self.0).poll_frame(cx);
        self.events_mut().waiting = false;
        polled
    }
}

/// The frame-level rules: the idle timer, a broken upstream.
struct Guard {
    events: SseEvents<Events>,
    /// After the commit, a quiet upstream that outlasts it fails the
    /// stream. Not reset at each data frame (a timer reset takes the
    /// timer wheel's lock): when it fires, it is set again from the last
    /// data frame if that came since.
    idle: Pin<Box<Sleep>>,
    /// When the last data frame came.
    last_data: Instant,
}

impl Guard {
    /// The event mapper, before a call (see [`Events::unhold`]).
    fn reading(&mut self, out: &mut VecDeque<Bytes>) -> &mut Events {
        let events = self.events.events_mut();
        events.unhold(out);
        events
    }
}

impl MapFrames for Guard {
    const EMPTY_WHEN_HELD: bool = false;

    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.reading(out);
        self.last_data = Instant::now();
        self.events.push(chunk, out)
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.reading(out);
        self.events.finish(out)
    }

    fn poll_pending(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut VecDeque<Bytes>,
    ) -> Poll<Result<(), BoxError>> {
        let events = self.events.events_mut();
        events.unhold(out);
        if !out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Before the commit, `first_byte_timeout` is the limit.
        if events.waiting {
            return Poll::Pending;
        }
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Data came since the timer was set: it runs from there.
            let due = deadline_from(self.last_data, events.config.idle_timeout);
            if due <= Instant::now() {
                break;
            }
            self.idle.as_mut().reset(due);
        }
        let message = format!(
            "The upstream sent nothing for {}",
            crate::error::humanize(events.config.idle_timeout)
        );
        events.fail("upstream_idle_timeout", &message, out);
        Poll::Ready(Ok(()))
    }

    fn error(&mut self, error: BoxError, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        let events = self.reading(out);
        if events.waiting {
            events.failure = Some(StreamFailure::Broken(error));
        } else {
            let message = format!("The upstream connection broke mid-answer: {error}");
            events.fail("upstream_stream_interrupted", &message, out);
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        let events = self.events.events();
        events.failed || events.failure.is_some()
    }
}

/// The event-level rules: held before the commit point, checked after it.
struct Events {
    config: GuardConfig,
    /// [`StreamGuard::wait_for_first_content`] is reading: events are held
    /// and a failure is a [`StreamFailure`]. The events of the data frame
    /// that commits are all taken so.
    waiting: bool,
    committed: bool,
    saw_done: bool,
    saw_finish: bool,
    malformed: u64,
    /// The events held before the commit, after one empty frame (see
    /// [`commit`](Self::commit)); `held_bytes` counts them.
    held: VecDeque<Bytes>,
    held_bytes: usize,
    /// Why the stream failed before the commit point.
    failure: Option<StreamFailure>,
    /// The guard ended the stream after the commit with an error event.
    failed: bool,
    usage: Option<crate::usage::UsageSlot>,
    strip_usage: bool,
    /// Anthropic usage seen so far (it comes in pieces).
    anthropic_usage: crate::usage::AnthropicUsage,
    /// A Responses stream's numbering and identity.
    responses: ResponsesState,
}

impl MapEvents for Events {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if self.failure.is_some() {
            // Failed before the commit: the rest of the frame is not read.
        } else if self.waiting {
            if let Err(failure) = self.take_event(event) {
                self.failure = Some(failure);
            }
        } else {
            self.pass_event(event, out);
        }
        Ok(())
    }

    fn too_large(
        &mut self,
        error: EventTooLarge,
        _rest: Option<SseEvent>,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), BoxError> {
        if self.waiting {
            self.failure.get_or_insert(error.into());
        } else {
            self.fail("upstream_event_too_large", &error.to_string(), out);
        }
        Ok(())
    }

    fn end_of_frame(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.waiting || self.failure.is_some() {
            return;
        }
        if self.committed {
            self.commit(out);
        } else if self.held_bytes > self.config.max_preamble {
            self.failure = Some(StreamFailure::Broken(
                "the upstream sent too much preamble without content".into(),
            ));
        }
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if !self.waiting {
            self.end_of_upstream(out);
        } else if !self.committed && self.failure.is_none() {
            self.failure = Some(StreamFailure::EndedEarly);
        }
        Ok(())
    }
}

impl Events {
    /// Note the usage an event carries (and a Responses event's numbering);
    /// whether the event is to be dropped.
    fn note_usage(&mut self, c: &Classified) -> bool {
        if let Some((seq, head, raw)) = &c.responses {
            if self.responses.head_raw.is_none() {
                self.responses.head_raw.clone_from(raw);
            }
            if let Some(seq) = seq {
                self.responses.next_sequence =
                    self.responses.next_sequence.max(seq.saturating_add(1));
            }
            if let Some(head) = head {
                let state = &mut self.responses;
                if state.id.is_none() {
                    state.id.clone_from(&head.id);
                    state.model.clone_from(&head.model);
                    state.created_at.clone_from(&head.created_at);
                }
            }
        }
        let Some(slot) = &self.usage else {
            return false;
        };
        // The final usage: OpenAI's usage chunk, the Responses API's last
        // event, Anthropic's `message_delta` (its first event's is partial).
        if let Some(usage) = c.usage {
            slot.set(usage);
            slot.settle();
        }
        if let Some(piece) = &c.anthropic_usage {
            self.anthropic_usage.merge(piece);
            slot.set(self.anthropic_usage.usage());
            if c.kind == (EventKind::Content { finished: true }) {
                slot.settle();
            }
        }
        let dropped = self.strip_usage && c.usage_only;
        if !dropped {
            slot.delivered(c.text);
        }
        dropped
    }

    /// The stream ended complete: its usage is what the upstream reported.
    fn settle(&self) {
        if let Some(slot) = &self.usage {
            slot.settle();
        }
    }

    /// Before the commit: hold or commit on one event.
    fn take_event(&mut self, event: SseEvent) -> Result<(), StreamFailure> {
        let c = classify(self.config.format, &event, false, self.usage.is_some());
        let drop_it = self.note_usage(&c);
        match c.kind {
            EventKind::Error(message) => return Err(StreamFailure::ErrorEvent(message)),
            EventKind::Malformed => {
                self.warn_malformed(&event.data);
                return Ok(());
            }
            EventKind::Preamble => {
                self.held_bytes = self.held_bytes.saturating_add(event.raw.len());
            }
            EventKind::Content { finished } => {
                self.committed = true;
                self.saw_finish |= finished;
            }
            EventKind::Done => {
                // Done before any content: an empty but complete answer.
                self.committed = true;
                self.saw_done = true;
                self.settle();
            }
        }
        if !drop_it {
            if self.held.is_empty() {
                self.held.push_back(Bytes::new());
            }
            self.held.push_back(event.raw);
        }
        Ok(())
    }

    /// The commit: the held events go out, after one empty frame that tells
    /// [`StreamGuard::wait_for_first_content`] the commit came (it keeps
    /// that frame from the client). `out` is empty here (the body reads the
    /// upstream only once its output is out): the held queue becomes it.
    fn commit(&mut self, out: &mut VecDeque<Bytes>) {
        if self.held.is_empty() {
            self.held.push_back(Bytes::new());
        }
        self.release(out);
    }

    /// A read outside a wait, after one was given up before the commit,
    /// sends the events held so far first, as they were read.
    fn unhold(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.waiting && !self.held.is_empty() {
            // The empty frame meant for the wait.
            self.held.pop_front();
            self.release(out);
        }
    }

    /// Move the held events to `out`.
    fn release(&mut self, out: &mut VecDeque<Bytes>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.held);
        } else {
            out.append(&mut self.held);
        }
    }

    fn warn_malformed(&mut self, data: &[u8]) {
        self.malformed = self.malformed.saturating_add(1);
        if self.malformed == 1 {
            let shown = data.get(..200).unwrap_or(data);
            let shown = String::from_utf8_lossy(shown).into_owned();
            tracing::warn!(event = %crate::escape::Escaped(&shown), "skipping a malformed event from the upstream");
        }
    }

    /// After the commit: one event.
    fn pass_event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) {
        let c = classify(self.config.format, &event, true, self.usage.is_some());
        if self.note_usage(&c) {
            return;
        }
        match c.kind {
            EventKind::Malformed => {
                self.warn_malformed(&event.data);
                return;
            }
            EventKind::Done => {
                self.saw_done = true;
                self.settle();
            }
            EventKind::Content { finished } => self.saw_finish |= finished,
            // The upstream's own error event already tells the client the
            // answer is incomplete: no second one at the end.
            EventKind::Error(_) => self.saw_done = true,
            EventKind::Preamble => {}
        }
        out.push_back(event.raw);
    }

    /// End the stream with an error event in the client's format (the
    /// upstream is not read again).
    fn fail(&mut self, code: &str, message: &str, out: &mut VecDeque<Bytes>) {
        tracing::warn!(code, message, "streamed answer cut short");
        self.failed = true;
        let event = match self.config.format {
            ClientFormat::Responses => responses_failure(&mut self.responses, code, message),
            format => error_event(format, code, message),
        };
        out.push_back(event);
    }

    /// The upstream ended, after its last event: complete, or not.
    fn end_of_upstream(&mut self, out: &mut VecDeque<Bytes>) {
        if self.saw_done {
            return;
        }
        match self.config.format {
            ClientFormat::OpenAi if self.saw_finish => {
                out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                self.settle();
            }
            _ => self.fail(
                "upstream_stream_incomplete",
                "The upstream ended the stream before the answer was complete",
                out,
            ),
        }
    }
}

/// `d` after `start`; a duration too long to add is about 30 years (as
/// [`tokio::time::sleep`] does).
fn deadline_from(start: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    start
        .checked_add(d)
        .or_else(|| start.checked_add(FAR))
        .unwrap_or(start)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::body::testing::{drain, joined, Script, Step};

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const HI: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    const STOP: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

    fn guard(steps: impl IntoIterator<Item = Step>) -> StreamGuard<Script> {
        StreamGuard::new(Script::new(steps), GuardConfig::new(ClientFormat::OpenAi))
    }

    fn data(s: &str) -> Step {
        Step::Data(Bytes::from(s.to_string()))
    }

    /// How `guard` fails before its commit point.
    async fn failure(mut guard: StreamGuard<Script>) -> StreamFailure {
        let waited = guard.wait_for_first_content(Duration::from_secs(1)).await;
        waited.unwrap_err()
    }

    #[tokio::test]
    async fn every_event_of_the_frame_that_commits_is_checked_before_it() {
        let error = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        let e = failure(guard([data(&format!("{ROLE}{HI}{error}")), data(STOP)])).await;
        assert!(matches!(e, StreamFailure::ErrorEvent(m) if m == "overloaded"));
    }

    #[tokio::test]
    async fn the_commit_sends_what_was_held_and_the_rest_of_its_frame() {
        let mut guard = guard([
            data(ROLE),
            Step::Pending,
            data(&format!("{HI}{STOP}")),
            data("data: [DONE]\n\n"),
        ]);
        guard
            .wait_for_first_content(Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            joined(&drain(guard)),
            format!("{ROLE}{HI}{STOP}data: [DONE]\n\n")
        );
    }

    #[tokio::test]
    async fn too_much_preamble_fails() {
        let mut config = GuardConfig::new(ClientFormat::OpenAi);
        config.max_preamble = ROLE.len();
        let e = failure(StreamGuard::new(
            Script::new([data(ROLE), data(ROLE), data(HI)]),
            config,
        ))
        .await;
        assert!(e.to_string().contains("too much preamble"), "{e}");
    }

    #[tokio::test]
    async fn a_wait_given_up_leaves_what_it_held_to_the_body() {
        let mut guard = guard([data(ROLE), Step::Pending, data(HI), data(STOP)]);
        {
            let wait = guard.wait_for_first_content(Duration::from_secs(1));
            tokio::pin!(wait);
            let polled = poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "the role alone does not commit");
        }
        assert_eq!(
            joined(&drain(guard)),
            format!("{ROLE}{HI}{STOP}data: [DONE]\n\n")
        );
    }
}
