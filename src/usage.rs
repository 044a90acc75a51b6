//! Token usage of an answer, streamed or not, for limits, metrics and logs.
//!
//! The upstream edge puts a [`UsageSlot`] into every answer's extensions and
//! fills it as the body goes by: the stream guard reads the usage chunk of a
//! streamed answer, [`UsageTap`] the `usage` object of a JSON one. Outer
//! layers wrap the body to learn when it ends, then read the slot — nothing
//! parses the answer twice.
//!
//! ```
//! use llm_router::usage::{Usage, UsageSlot};
//!
//! let slot = UsageSlot::default();
//! slot.set(Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
//! assert_eq!(slot.get().unwrap().total_tokens, 5);
//! ```

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;

use crate::body::BoxError;

/// Tokens in and out, normalized across providers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Usage {
    /// Tokens of the prompt.
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    /// `total_tokens`, or the sum when the upstream left it out.
    pub fn total(&self) -> u64 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.prompt_tokens + self.completion_tokens
        }
    }
}

/// Where an answer's usage lands once seen; in the answer's extensions.
#[derive(Clone, Debug, Default)]
pub struct UsageSlot(Arc<Mutex<Option<Usage>>>);

impl UsageSlot {
    /// Record the usage.
    pub fn set(&self, usage: Usage) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
    }

    /// The usage, if seen.
    pub fn get(&self) -> Option<Usage> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Set on a request by a layer that asked the upstream for stream usage on
/// the client's behalf: the usage-only chunk is then kept from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageRequestedByProxy;

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Usage>,
}

/// Parse the `usage` object of a JSON answer.
pub fn usage_of_json(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body).ok()?.usage
}

/// Passes a JSON answer through frame by frame, keeping a copy (up to a cap)
/// to read its `usage` at the end.
#[derive(Debug)]
pub struct UsageTap<B> {
    inner: B,
    buf: Option<BytesMut>,
    cap: usize,
    slot: UsageSlot,
}

impl<B> UsageTap<B> {
    /// Tap `inner`, keeping at most `cap` bytes.
    pub fn new(inner: B, slot: UsageSlot, cap: usize) -> Self {
        UsageTap {
            inner,
            buf: Some(BytesMut::new()),
            cap,
            slot,
        }
    }
}

impl<B> Body for UsageTap<B>
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
                if let (Some(buf), Some(data)) = (this.buf.as_mut(), frame.data_ref()) {
                    if buf.len() + data.len() <= this.cap {
                        buf.extend_from_slice(data);
                    } else {
                        this.buf = None;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.buf = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                if let Some(buf) = this.buf.take() {
                    if let Some(usage) = usage_of_json(&buf) {
                        this.slot.set(usage);
                    }
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
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
mod tests {
    use super::*;
    use crate::body::ProxyBody;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn tap_reads_usage_and_passes_bytes() {
        let json =
            r#"{"id":"x","usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}"#;
        let slot = UsageSlot::default();
        let tap = UsageTap::new(ProxyBody::full(json), slot.clone(), 1024);
        let out = tap.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], json.as_bytes());
        assert_eq!(slot.get().unwrap().total(), 10);
    }

    #[test]
    fn anthropic_names() {
        let u = usage_of_json(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#).unwrap();
        assert_eq!(u.total(), 7);
    }
}
