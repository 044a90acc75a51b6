//! [`JsonEdit`]: a JSON answer, collected (up to a cap) and edited whole, an
//! [`EditDocument`] driven by the body toolkit's [`MapBody`].

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use serde_json::Value;

use super::Editor;
use crate::body::{opaque_body, BoxError, MapBody, MapFrames, ProxyBody};

/// A JSON answer, collected (up to a cap) and edited as a document.
pub(crate) struct JsonEdit<E>(MapBody<EditDocument<E>>);

impl<E: Editor> JsonEdit<E> {
    pub(crate) fn new(inner: ProxyBody, editor: E, cap: usize) -> Self {
        let edit = EditDocument {
            state: JsonState::Collecting(BytesMut::new()),
            editor,
            cap,
        };
        JsonEdit(MapBody::new(inner, edit))
    }
}

opaque_body!(impl[E: Editor] JsonEdit<E>);

enum JsonState {
    Collecting(BytesMut),
    /// Over the cap: the frames pass as they come.
    Passing,
}

/// Collects the answer, then edits it as one document at its end; an
/// answer over `cap` bytes passes unchanged, its frames as they come.
struct EditDocument<E> {
    state: JsonState,
    editor: E,
    cap: usize,
}

impl<E: Editor> EditDocument<E> {
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

impl<E: Editor> MapFrames for EditDocument<E> {
    const EMPTY_WHEN_HELD: bool = false;

    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.push_frame(Bytes::copy_from_slice(chunk), out)
    }

    fn push_frame(&mut self, frame: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        match &mut self.state {
            JsonState::Passing => out.push_back(frame),
            JsonState::Collecting(buf) => {
                buf.extend_from_slice(&frame);
                if buf.len() > self.cap {
                    tracing::warn!(
                        cap = self.cap,
                        "a JSON answer is too large to edit; it passes unchanged"
                    );
                    out.push_back(std::mem::take(buf).freeze());
                    self.state = JsonState::Passing;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let JsonState::Collecting(buf) = &mut self.state {
            let bytes = std::mem::take(buf).freeze();
            let edited = self.edit(bytes);
            if !edited.is_empty() {
                out.push_back(edited);
            }
        }
        Ok(())
    }

    /// Trailers of an answer passing unchanged go with it.
    fn trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        matches!(self.state, JsonState::Passing).then_some(trailers)
    }
}
