//! [`JsonEdit`]: a JSON answer, collected (up to a cap) and edited whole.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;

use super::Editor;
use crate::body::{BoxError, ProxyBody};

enum JsonState {
    Collecting(BytesMut),
    Passing(Option<Bytes>),
    Done,
}

/// A JSON answer, collected (up to a cap) and edited as a document.
pub(crate) struct JsonEdit<E> {
    inner: ProxyBody,
    state: JsonState,
    editor: E,
    cap: usize,
}

impl<E: Editor> JsonEdit<E> {
    pub(crate) fn new(inner: ProxyBody, editor: E, cap: usize) -> Self {
        JsonEdit {
            inner,
            state: JsonState::Collecting(BytesMut::new()),
            editor,
            cap,
        }
    }

    fn edit(&mut self, bytes: Bytes) -> Bytes {
        let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
            return bytes;
        };
        if !self.editor.document(&mut doc) {
            return bytes;
        }
        serde_json::to_vec(&doc).map(Bytes::from).unwrap_or(bytes)
    }
}

impl<E: Editor> Body for JsonEdit<E> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                JsonState::Done => return Poll::Ready(None),
                JsonState::Passing(first) => {
                    if let Some(first) = first.take() {
                        return Poll::Ready(Some(Ok(Frame::data(first))));
                    }
                    return Pin::new(&mut this.inner).poll_frame(cx);
                }
                JsonState::Collecting(buf) => {
                    match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            if let Some(data) = frame.data_ref() {
                                buf.extend_from_slice(data);
                                if buf.len() > this.cap {
                                    tracing::warn!(
                                        cap = this.cap,
                                        "a JSON answer is too large to edit; it passes unchanged"
                                    );
                                    let first = std::mem::take(buf).freeze();
                                    this.state = JsonState::Passing(Some(first));
                                }
                            }
                        }
                        Some(Err(e)) => {
                            this.state = JsonState::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                        None => {
                            let bytes = std::mem::take(buf).freeze();
                            this.state = JsonState::Done;
                            let out = this.edit(bytes);
                            if out.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, JsonState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            JsonState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
