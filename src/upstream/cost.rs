//! The cost of an answer at the upstream edge: the price of the model an
//! attempt is sent to ([`PriceOf`]), and a non-streamed JSON answer read
//! whole before its head goes out ([`with_cost`]), so the head can carry
//! [`COST_HEADER`].
//!
//! The answer is read into memory only when its model has a price and it is
//! not a stream, and at most [`MAX_USAGE_TAP_BYTES`](super::limits::MAX_USAGE_TAP_BYTES) of it: a longer answer
//! goes on as it comes (what was read first, then the rest, frame by frame)
//! without the header. A JSON error answer is read the same way (at most
//! [`MAX_ERROR_BODY_BYTES`](super::limits::MAX_ERROR_BODY_BYTES)) when a
//! layer wants usage: an attempt that fails is charged the usage it
//! reported. A streamed answer gets no header; its cost is in the
//! log record and the metrics, read from the [`UsageSlot`] once it ends.

// Untrusted bytes (upstreams) pass through here: no unchecked indexing,
// slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::Target;
use crate::body::{BoxError, ProxyBody};
use crate::pricing::{Price, Pricing};
use crate::usage::{usage_of_json, UsageSlot};

/// The answer header with the cost of a non-streamed answer, in USD
/// (`"0.000123"`), computed from the upstream's usage and the price of the
/// model that answered.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-llm-router-cost-usd");

/// How a target's service finds the price of what it is asked: looked up
/// once for a target with a fixed model, per request for one that sends the
/// client's model name.
#[derive(Clone, Debug, Default)]
pub(super) enum PriceOf {
    /// No price catalog.
    #[default]
    Unpriced,
    /// The target's model's price (or none).
    Fixed(Option<Price>),
    /// The price of the model each request sends.
    Lookup(Arc<Pricing>),
}

impl PriceOf {
    pub(super) fn new(pricing: Option<&Arc<Pricing>>, target: &Target) -> PriceOf {
        match (pricing, target.model()) {
            (None, _) => PriceOf::Unpriced,
            (Some(pricing), Some(model)) => PriceOf::Fixed(pricing.price(model)),
            (Some(pricing), None) => PriceOf::Lookup(pricing.clone()),
        }
    }

    /// The price of the model `target` sends for the client's `model`.
    pub(super) fn get(&self, target: &Target, model: &str) -> Option<Price> {
        match self {
            PriceOf::Unpriced => None,
            PriceOf::Fixed(price) => *price,
            PriceOf::Lookup(pricing) => pricing.price(target.upstream_model(model)),
        }
    }
}

/// Whether an answer's head says JSON.
pub(super) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start();
            v.starts_with("application/json")
                || (v.starts_with("application/") && v.contains("+json"))
        })
}

/// Read a non-streamed JSON answer whole (at most `cap` bytes: a
/// successful one [`MAX_USAGE_TAP_BYTES`](super::limits::MAX_USAGE_TAP_BYTES), an error answer
/// [`MAX_ERROR_BODY_BYTES`](super::limits::MAX_ERROR_BODY_BYTES)), record
/// its usage in `slot` and, with a `price`, put its cost in
/// [`COST_HEADER`]. An answer that is longer, or whose body fails, goes on
/// as it would have: the bytes read, then the rest (or the error), without
/// the header.
pub(super) async fn with_cost(
    mut parts: http::response::Parts,
    mut body: ProxyBody,
    price: Option<Price>,
    slot: Option<UsageSlot>,
    cap: usize,
) -> Response<ProxyBody> {
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                // Trailers of a JSON answer carry nothing for the client.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buf.len().saturating_add(data.len()) > cap {
                    let read = Prefixed {
                        read: [Some(buf.freeze()), Some(data)],
                        rest: Rest::Body(body),
                    };
                    return Response::from_parts(parts, ProxyBody::new(read));
                }
                buf.extend_from_slice(&data);
            }
            Some(Err(e)) => {
                let read = Prefixed {
                    read: [Some(buf.freeze()), None],
                    rest: Rest::Failed(Some(e)),
                };
                return Response::from_parts(parts, ProxyBody::new(read));
            }
        }
    }
    let bytes = buf.freeze();
    if let Some(usage) = usage_of_json(&bytes) {
        if let Some(slot) = &slot {
            slot.set(usage);
        }
        if let Some(price) = price {
            let cost = price.cost(&usage).to_string();
            if let Ok(value) = HeaderValue::try_from(cost) {
                parts.headers.insert(COST_HEADER, value);
            }
        }
    }
    Response::from_parts(parts, ProxyBody::full(bytes))
}

/// An answer's first bytes, already read, then the rest of it.
struct Prefixed {
    read: [Option<Bytes>; 2],
    rest: Rest,
}

enum Rest {
    Body(ProxyBody),
    /// The body failed after what was read: the error, once.
    Failed(Option<BoxError>),
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        for read in &mut this.read {
            if let Some(bytes) = read.take().filter(|b| !b.is_empty()) {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
        }
        match &mut this.rest {
            Rest::Body(body) => Pin::new(body).poll_frame(cx),
            Rest::Failed(error) => Poll::Ready(error.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read
            .iter()
            .all(|r| r.as_ref().is_none_or(Bytes::is_empty))
            && match &self.rest {
                Rest::Body(body) => body.is_end_stream(),
                Rest::Failed(error) => error.is_none(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .flatten()
            .map(|b| u64::try_from(b.len()).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        match &self.rest {
            Rest::Body(body) => {
                let hint = body.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower().saturating_add(read));
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper.saturating_add(read));
                }
                out
            }
            Rest::Failed(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::upstream::limits::MAX_USAGE_TAP_BYTES;
    use futures_util::stream;
    use http_body_util::StreamBody;

    fn head() -> http::response::Parts {
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts
    }

    fn frames(chunks: Vec<Result<&'static str, &'static str>>) -> ProxyBody {
        let items = chunks.into_iter().map(|c| match c {
            Ok(text) => Ok(Frame::data(Bytes::from_static(text.as_bytes()))),
            Err(e) => Err(BoxError::from(e)),
        });
        ProxyBody::new(StreamBody::new(stream::iter(items)))
    }

    #[tokio::test]
    async fn whole_answer_gets_its_cost() {
        let body = frames(vec![
            Ok(r#"{"id":"x","usage":{"prompt_tokens":1000,"#),
            Ok(r#""completion_tokens":100,"total_tokens":1100}}"#),
        ]);
        let slot = UsageSlot::priced(Some(Price::new(2.5, 10.0)));
        let answer = with_cost(
            head(),
            body,
            Some(Price::new(2.5, 10.0)),
            Some(slot.clone()),
            MAX_USAGE_TAP_BYTES,
        )
        .await;
        assert_eq!(answer.headers()[COST_HEADER], "0.0035");
        assert_eq!(slot.get().unwrap().total(), 1100);
        let bytes = answer.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.ends_with(b"1100}}"));
    }

    #[tokio::test]
    async fn an_error_answer_is_read_for_its_usage() {
        let body = frames(vec![
            Ok(r#"{"error":{"message":"overloaded"},"#),
            Ok(r#""usage":{"prompt_tokens":30,"completion_tokens":2}}"#),
        ]);
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.status = http::StatusCode::SERVICE_UNAVAILABLE;
        parts.headers = head().headers;
        let slot = UsageSlot::default();
        let cap = crate::upstream::limits::MAX_ERROR_BODY_BYTES;
        // Unpriced: the usage, no header.
        let answer = with_cost(parts, body, None, Some(slot.clone()), cap).await;
        assert_eq!(answer.status(), 503);
        assert!(answer.headers().get(COST_HEADER).is_none());
        assert_eq!(slot.reported().unwrap().total(), 32);
        let bytes = answer.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"{\"error\""));
    }

    #[tokio::test]
    async fn no_usage_no_header() {
        let answer = with_cost(
            head(),
            frames(vec![Ok("{}")]),
            Some(Price::new(1.0, 1.0)),
            None,
            MAX_USAGE_TAP_BYTES,
        )
        .await;
        assert!(answer.headers().get(COST_HEADER).is_none());
    }

    #[tokio::test]
    async fn a_broken_body_goes_on_as_it_came() {
        let body = frames(vec![Ok("{\"a\":"), Err("reset")]);
        let answer = with_cost(
            head(),
            body,
            Some(Price::new(1.0, 1.0)),
            None,
            MAX_USAGE_TAP_BYTES,
        )
        .await;
        assert!(answer.headers().get(COST_HEADER).is_none());
        let mut body = answer.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"{\"a\":");
        assert_eq!(
            body.frame().await.unwrap().unwrap_err().to_string(),
            "reset"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_long_answer_is_not_held() {
        static BIG: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| "x".repeat(MAX_USAGE_TAP_BYTES));
        let body = ProxyBody::new(StreamBody::new(stream::iter([
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"{\"t\":\""))),
            Ok(Frame::data(Bytes::from(BIG.as_str()))),
            Ok(Frame::data(Bytes::from_static(b"\"}"))),
        ])));
        let answer = with_cost(
            head(),
            body,
            Some(Price::new(1.0, 1.0)),
            None,
            MAX_USAGE_TAP_BYTES,
        )
        .await;
        assert!(answer.headers().get(COST_HEADER).is_none());
        let bytes = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), MAX_USAGE_TAP_BYTES + 8);
    }

    #[test]
    fn json_content_types() {
        let mut h = http::HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(!is_json(&h));
    }
}
