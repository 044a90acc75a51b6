//! Test helpers of the body toolkit: a scripted inner body and a driver that
//! reads a body to its end without a runtime.

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

use super::{BoxError, PollFrame};

/// One step of a [`Script`].
#[derive(Clone, Debug)]
pub(crate) enum Step {
    Data(Bytes),
    Trailers,
    Error(&'static str),
    /// Nothing ready this time (the waker is woken at once).
    Pending,
}

/// What a body gave, frame by frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Got {
    Data(Bytes),
    Trailers,
    Error(String),
}

/// An inner body that plays its steps in turn, then ends.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub(crate) steps: VecDeque<Step>,
}

impl Script {
    pub(crate) fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Script {
            steps: steps.into_iter().collect(),
        }
    }

    /// Data frames of `parts`.
    pub(crate) fn data(parts: &[&'static str]) -> Self {
        Script::new(
            parts
                .iter()
                .map(|p| Step::Data(Bytes::from_static(p.as_bytes()))),
        )
    }
}

impl Body for Script {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        let this = self.get_mut();
        Poll::Ready(match this.steps.pop_front() {
            None => None,
            Some(Step::Data(b)) => Some(Ok(Frame::data(b))),
            Some(Step::Trailers) => {
                let mut t = HeaderMap::new();
                t.insert("x-trailer", http::HeaderValue::from_static("1"));
                Some(Ok(Frame::trailers(t)))
            }
            Some(Step::Error(e)) => Some(Err(e.into())),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Poll `body` to its end (through `Pending`s that woke at once): what it
/// gave. Checks that it says it has ended once it has.
pub(crate) fn drain<B>(body: B) -> Vec<Got>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut body = body;
    let mut cx = Context::from_waker(Waker::noop());
    let mut got = Vec::new();
    let mut pendings = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Pending => {
                pendings += 1;
                assert!(pendings < 10_000, "the body never ends");
            }
            Poll::Ready(None) => {
                assert!(body.is_end_stream(), "ended without saying so");
                return got;
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => got.push(Got::Data(data)),
                Err(_) => got.push(Got::Trailers),
            },
            Poll::Ready(Some(Err(e))) => got.push(Got::Error(e.to_string())),
        }
    }
}

/// The data of `got`, joined.
pub(crate) fn joined(got: &[Got]) -> String {
    got.iter()
        .filter_map(|g| match g {
            Got::Data(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}
