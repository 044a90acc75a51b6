//! Secrets in transit: what of an upstream's answer must not reach the
//! client, and what of the client's request must not reach a keyed backend.
//!
//! - [`MaskedBody`] masks the backend's own key wherever it appears in the
//!   body of an error answer or an event stream (an upstream that echoes the
//!   credential in an error message or error event), chunk by chunk with
//!   [`KeyMask`]: never collected, nothing held but an end of a chunk that
//!   may begin the key. The upstream edge applies it for backends with their
//!   own `api_key`.
//! - [`sanitize_answer_headers`] drops the account headers an upstream sets
//!   ([`UPSTREAM_ACCOUNT_HEADERS`]: `set-cookie`, `openai-organization`, ...)
//!   and masks the key in any other header value.
//! - [`CLIENT_ACCOUNT_HEADERS`] (`cookie`, `openai-organization`,
//!   `openai-project`) are not forwarded to a backend that has its own
//!   `api_key`: the client's account must not ride on the company's key.
//!   With `"passthrough"` they are (the client's own key goes too).
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use llm_router::__private::secret::{KeyMask, Secret};
//! use llm_router::upstream::mask::sanitize_answer_headers;
//!
//! let mask = KeyMask::new(&Secret::new("sk-live-0123456789abcdef")).unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("set-cookie", HeaderValue::from_static("session=1"));
//! headers.insert("openai-organization", HeaderValue::from_static("org-company"));
//! headers.insert("x-debug", HeaderValue::from_static("key=sk-live-0123456789abcdef"));
//! sanitize_answer_headers(&mut headers, Some(&mask));
//! assert!(headers.get("set-cookie").is_none());
//! assert!(headers.get("openai-organization").is_none());
//! assert_eq!(headers["x-debug"], "key=sk-l...cdef");
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

use crate::body::{opaque_body, BoxError, MapBody, MapFrames, ProxyBody};
use crate::secret::KeyMask;

/// Headers of an upstream's answer that identify the company's account or
/// session, never passed to a client.
pub const UPSTREAM_ACCOUNT_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "x-goog-project-id",
];

/// Client headers naming the client's own account or session, not
/// forwarded to a backend that has its own `api_key`.
pub const CLIENT_ACCOUNT_HEADERS: &[&str] = &["cookie", "openai-organization", "openai-project"];

/// Whether any header named in `names` is present (see [`remove_all`]).
fn has_any(headers: &HeaderMap, names: &[&str]) -> bool {
    headers.keys().any(|name| names.contains(&name.as_str()))
}

/// Whether a request carries any of [`CLIENT_ACCOUNT_HEADERS`].
pub fn has_client_account_headers(headers: &HeaderMap) -> bool {
    has_any(headers, CLIENT_ACCOUNT_HEADERS)
}

/// Remove every header named in `names`; whether any was there. One pass
/// over the names present first (a few string compares each): most
/// requests and answers carry none of them, and a lookup per listed name
/// would parse and hash each one every time.
fn remove_all(headers: &mut HeaderMap, names: &[&str]) -> bool {
    if !has_any(headers, names) {
        return false;
    }
    for name in names {
        headers.remove(*name);
    }
    true
}

/// Drop [`UPSTREAM_ACCOUNT_HEADERS`]; with `mask`, mask the key in every
/// other value (a value that cannot be rebuilt is dropped).
pub fn sanitize_answer_headers(headers: &mut HeaderMap, mask: Option<&KeyMask>) {
    remove_all(headers, UPSTREAM_ACCOUNT_HEADERS);
    let Some(mask) = mask else {
        return;
    };
    if !headers.values().any(|v| mask.is_in(v.as_bytes())) {
        return;
    }
    let leaking: Vec<_> = headers
        .keys()
        .filter(|name| {
            headers
                .get_all(*name)
                .iter()
                .any(|v| mask.is_in(v.as_bytes()))
        })
        .cloned()
        .collect();
    for name in leaking {
        let values: Vec<HeaderValue> = headers
            .get_all(&name)
            .iter()
            .filter_map(|v| HeaderValue::from_bytes(&mask.mask_all(v.as_bytes())).ok())
            .collect();
        headers.remove(&name);
        for v in values {
            headers.append(name.clone(), v);
        }
    }
}

/// Remove [`CLIENT_ACCOUNT_HEADERS`] from a request going to a keyed
/// backend. Whether any was there.
pub fn strip_client_account_headers(headers: &mut HeaderMap) -> bool {
    remove_all(headers, CLIENT_ACCOUNT_HEADERS)
}

/// An answer body with the backend's key masked. See the [module docs](self).
pub struct MaskedBody(MapBody<Masking>);

opaque_body!(impl[] MaskedBody);

impl std::fmt::Debug for MaskedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.mapper().carry.len();
        f.debug_struct("MaskedBody")
            .field("held", &held)
            .finish_non_exhaustive()
    }
}

impl MaskedBody {
    /// Mask `mask`'s key in `inner`.
    pub fn new(inner: ProxyBody, mask: Arc<KeyMask>) -> Self {
        let masking = Masking {
            mask,
            carry: BytesMut::new(),
        };
        MaskedBody(MapBody::new(inner, masking))
    }
}

/// Masks each frame as it comes, holding back an end that may begin the
/// key: one frame out per frame in (possibly shorter, or empty).
struct Masking {
    mask: Arc<KeyMask>,
    carry: BytesMut,
}

impl MapFrames for Masking {
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.push_frame(Bytes::copy_from_slice(chunk), out)
    }

    fn push_frame(&mut self, frame: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        out.push_back(self.mask.mask_chunk(&mut self.carry, frame));
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        let rest = self.mask.finish(&mut self.carry);
        if !rest.is_empty() {
            out.push_back(rest);
        }
        Ok(())
    }

    fn trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        Some(trailers)
    }

    fn error(&mut self, error: BoxError, _out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        // What was held may begin the key: it is dropped.
        self.carry.clear();
        Err(error)
    }

    fn holds_nothing(&self) -> bool {
        self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{drain, Got, Script, Step};
    use crate::secret::{mask_key, Secret};
    use http_body::{Body, Frame};
    use http_body_util::{BodyExt, StreamBody};

    fn mask() -> Arc<KeyMask> {
        Arc::new(KeyMask::new(&Secret::new("sk-live-0123456789abcdef")).unwrap())
    }

    #[test]
    fn a_held_start_of_the_key_is_dropped_at_an_error_and_trailers_pass() {
        let script = Script::new([
            Step::Data(Bytes::from_static(b"bad key sk-live")),
            Step::Trailers,
            Step::Error("cut"),
        ]);
        let got = drain(MaskedBody::new(ProxyBody::new(script), mask()));
        assert_eq!(
            got,
            [
                Got::Data(Bytes::from_static(b"bad key ")),
                Got::Trailers,
                Got::Error("cut".into())
            ]
        );
    }

    #[test]
    fn its_end_is_known_as_soon_as_the_inner_body_has_ended() {
        assert!(MaskedBody::new(ProxyBody::empty(), mask()).is_end_stream());
        let mut body = MaskedBody::new(ProxyBody::full("no key here"), mask());
        assert!(!body.is_end_stream());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert!(body.is_end_stream());
        // An end that may begin the key is still to come.
        let mut body = MaskedBody::new(ProxyBody::full("key: sk-li"), mask());
        assert!(std::pin::Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert!(!body.is_end_stream());
    }

    #[tokio::test]
    async fn a_body_split_anywhere_has_its_key_masked() {
        let key = "sk-live-0123456789abcdef";
        let mask = Arc::new(KeyMask::new(&Secret::new(key)).unwrap());
        let text = format!("{{\"error\":{{\"message\":\"Incorrect API key provided: {key}\"}}}}");
        for size in [1, 2, 5, 7, 13, 100] {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = text
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let inner = ProxyBody::new(StreamBody::new(futures_util::stream::iter(frames)));
            let out = MaskedBody::new(inner, mask.clone())
                .collect()
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(
                String::from_utf8(out.to_vec()).unwrap(),
                text.replace(key, &mask_key(key)),
                "chunks of {size}"
            );
        }
    }
}
