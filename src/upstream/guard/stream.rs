//! [`StreamGuard`]: the guarded body itself — the commit point
//! ([`StreamGuard::wait_for_first_content`]) and the checks after it.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::event::{classify, Classified, EventKind};
use super::failure::{error_event, responses_failure, ResponsesState};
use super::{GuardConfig, StreamFailure};
use crate::body::{BoxError, ProxyBody};
use crate::request::ClientFormat;
use crate::sse::SseParser;

/// The guarded stream body. See the module docs of `upstream::guard`.
pub struct StreamGuard<B = ProxyBody> {
    inner: Option<B>,
    parser: SseParser,
    out: VecDeque<Bytes>,
    config: GuardConfig,
    idle: Pin<Box<Sleep>>,
    committed: bool,
    saw_done: bool,
    saw_finish: bool,
    malformed: u64,
    held: usize,
    usage: Option<crate::usage::UsageSlot>,
    strip_usage: bool,
    /// Anthropic usage seen so far (it comes in pieces).
    anthropic_usage: crate::usage::AnthropicUsage,
    /// A Responses stream's numbering and identity.
    responses: ResponsesState,
}

impl<B> std::fmt::Debug for StreamGuard<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("committed", &self.committed)
            .field("saw_done", &self.saw_done)
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl<B> StreamGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Guard `inner`.
    pub fn new(inner: B, config: GuardConfig) -> Self {
        let idle = Box::pin(tokio::time::sleep(config.idle_timeout));
        StreamGuard {
            inner: Some(inner),
            parser: SseParser::new(config.max_event),
            out: VecDeque::new(),
            config,
            idle,
            committed: false,
            saw_done: false,
            saw_finish: false,
            malformed: 0,
            held: 0,
            usage: None,
            strip_usage: false,
            anthropic_usage: Default::default(),
            responses: ResponsesState::default(),
        }
    }

    /// Record the stream's usage chunk into `slot`; with `strip`, keep that
    /// chunk from the client (it was asked for by the proxy, not the client).
    pub fn with_usage(mut self, slot: crate::usage::UsageSlot, strip: bool) -> Self {
        self.usage = Some(slot);
        self.strip_usage = strip;
        self
    }

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

    /// Drive the stream until its first content event, within `timeout`.
    /// Preamble events are kept and sent first when the body is read.
    pub async fn wait_for_first_content(&mut self, timeout: Duration) -> Result<(), StreamFailure> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            if self.committed {
                return Ok(());
            }
            let frame = tokio::select! {
                biased;
                frame = poll_fn(|cx| self.poll_inner(cx)) => frame,
                () = &mut deadline => return Err(StreamFailure::FirstByteTimeout(timeout)),
            };
            match frame {
                None => {
                    self.inner = None;
                    if let Some(event) = self.parser.finish() {
                        self.take_event(event)?;
                        if self.committed {
                            continue;
                        }
                    }
                    return Err(StreamFailure::EndedEarly);
                }
                Some(Err(e)) => {
                    self.inner = None;
                    return Err(StreamFailure::Broken(e));
                }
                Some(Ok(data)) => {
                    self.parser.push(&data);
                    while let Some(event) = self.parser.next_event()? {
                        self.take_event(event)?;
                    }
                    if !self.committed && self.held > self.config.max_preamble {
                        return Err(StreamFailure::Broken(
                            "the upstream sent too much preamble without content".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Before the commit: hold or commit on one event.
    fn take_event(&mut self, event: crate::sse::SseEvent) -> Result<(), StreamFailure> {
        let c = classify(self.config.format, &event, false, self.usage.is_some());
        let drop_it = self.note_usage(&c);
        match c.kind {
            EventKind::Error(message) => return Err(StreamFailure::ErrorEvent(message)),
            EventKind::Malformed => {
                self.warn_malformed(&event.data);
                return Ok(());
            }
            EventKind::Preamble => {
                self.held = self.held.saturating_add(event.raw.len());
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
            self.out.push_back(event.raw);
        }
        Ok(())
    }

    fn warn_malformed(&mut self, data: &[u8]) {
        self.malformed = self.malformed.saturating_add(1);
        if self.malformed == 1 {
            let shown = data.get(..200).unwrap_or(data);
            let shown = String::from_utf8_lossy(shown).into_owned();
            tracing::warn!(event = %crate::escape::Escaped(&shown), "skipping a malformed event from the upstream");
        }
    }

    /// Poll the upstream for its next data chunk, resetting the idle timer.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(inner) = self.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.idle
                            .as_mut()
                            .reset(deadline_after(self.config.idle_timeout));
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Trailers carry nothing for the client: skip.
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// After the commit: one event.
    fn pass_event(&mut self, event: crate::sse::SseEvent) {
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
        self.out.push_back(event.raw);
    }

    fn fail(&mut self, code: &str, message: &str) {
        tracing::warn!(code, message, "streamed answer cut short");
        self.inner = None;
        let event = match self.config.format {
            ClientFormat::Responses => responses_failure(&mut self.responses, code, message),
            format => error_event(format, code, message),
        };
        self.out.push_back(event);
    }

    fn end_of_upstream(&mut self) {
        self.inner = None;
        if let Some(event) = self.parser.finish() {
            self.pass_event(event);
        }
        if self.saw_done {
            return;
        }
        match self.config.format {
            ClientFormat::OpenAi if self.saw_finish => {
                self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                self.settle();
            }
            _ => self.fail(
                "upstream_stream_incomplete",
                "The upstream ended the stream before the answer was complete",
            ),
        }
    }
}

impl<B> Body for StreamGuard<B>
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
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.inner.is_none() {
                return Poll::Ready(None);
            }
            match this.poll_inner(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    this.parser.push(&data);
                    loop {
                        match this.parser.next_event() {
                            Ok(Some(event)) => this.pass_event(event),
                            Ok(None) => break,
                            Err(e) => {
                                this.fail("upstream_event_too_large", &e.to_string());
                                break;
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!("The upstream connection broke mid-answer: {e}");
                    this.fail("upstream_stream_interrupted", &message);
                }
                Poll::Ready(None) => this.end_of_upstream(),
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let message = format!(
                            "The upstream sent nothing for {}",
                            crate::error::humanize(this.config.idle_timeout)
                        );
                        this.fail("upstream_idle_timeout", &message);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none() && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// `d` from now; a duration too long to add is about 30 years (as
/// [`tokio::time::sleep`] does).
fn deadline_after(d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}
