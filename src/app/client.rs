//! The client API: check the key from the headers, read the body once
//! (bounded), parse it and call the stack; a refused request's body is
//! read and thrown away, never kept.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;

use super::handler::Handler;
use crate::body::{BoxError, ProxyBody};
use crate::layers::auth::Checked;
use crate::request::{read_body_within, Endpoint, LlmRequest};

impl Handler {
    /// The client API: read the body, parse it, call the stack. The request
    /// is split here, so the future holds its parts once.
    pub(super) fn client_api<B>(
        self,
        endpoint: Endpoint,
        req: Request<B>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'static
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        self.client_api_parts(endpoint, parts, body)
    }

    async fn client_api_parts<B>(
        self,
        endpoint: Endpoint,
        mut parts: http::request::Parts,
        body: B,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let format = endpoint.client_format();
        // The credential is checked from the headers before the body is
        // read: a client without a valid key never gets its body buffered.
        if let Some(keys) = &self.state.auth_first {
            let checked = Checked::check(keys, &parts.headers);
            if !checked.is_authenticated() {
                return self.refuse(endpoint, parts, body, checked).await;
            }
            // `auth` takes this result instead of checking again.
            parts.extensions.insert(checked);
        }
        let version = parts.version;
        let read = read_body_within(
            &parts.headers,
            body,
            self.state.body_limit,
            self.state.body_read_timeout,
        );
        let bytes = match read.await {
            Ok(bytes) => bytes,
            Err(e) => {
                let mut response = e.to_response(format);
                if matches!(
                    e.status(),
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
                ) {
                    // The rest of the body is not read: end the connection.
                    close_connection(&mut response, version);
                }
                return response;
            }
        };
        let llm = match LlmRequest::parse_bytes(endpoint, bytes) {
            Ok(llm) => llm,
            Err(e) => return e.to_response(format),
        };
        let model = llm.model().to_string();
        parts.extensions.insert(llm);
        let req = Request::from_parts(parts, ProxyBody::empty());
        // `LlmService` is always ready: called at once, so only its boxed
        // future is held while the answer's head is awaited.
        let result = self.state.service.call_ref(req).await;
        match result {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(model = %crate::escape::Escaped(&model), status = e.status().as_u16(), error = %crate::escape::Escaped(&e), "request failed");
                } else {
                    tracing::debug!(model = %crate::escape::Escaped(&model), status = e.status().as_u16(), error = %crate::escape::Escaped(&e), "request refused");
                }
                e.to_response(format)
            }
        }
    }

    /// A client API request whose credential `auth` refuses: its body is
    /// never kept, and the request goes into the stack with an
    /// [`LlmRequest::unread`] (so `log` records it, without a body, and
    /// `metrics` counts it) to be refused by `auth` there. When `auth` only
    /// wraps each target (below the split point), the 401 is answered here.
    /// A body that was not over ends the connection after the answer; on
    /// HTTP/1 it is first read and thrown away (see [`discard`]), so that a
    /// client that sends its whole body before it reads gets the 401 rather
    /// than a reset connection.
    async fn refuse<B>(
        self,
        endpoint: Endpoint,
        mut parts: http::request::Parts,
        body: B,
        checked: Checked,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let format = endpoint.client_format();
        let version = parts.version;
        let unread = !body.is_end_stream();
        if unread && version < http::Version::HTTP_2 {
            // A body declared larger than `body_limit` is not waited for.
            let declared = body.size_hint().upper().unwrap_or(0);
            if declared <= self.state.body_limit {
                tokio::spawn(discard(
                    body,
                    self.state.body_limit,
                    self.state.body_read_timeout,
                ));
            }
        } else {
            drop(body);
        }
        let mut response = if self.state.auth_in_outer {
            parts.extensions.insert(checked);
            parts.extensions.insert(LlmRequest::unread(endpoint));
            let req = Request::from_parts(parts, ProxyBody::empty());
            match self.state.service.call_ref(req).await {
                Ok(response) => response,
                Err(e) => e.to_response(format),
            }
        } else {
            checked.into_error().to_response(format)
        };
        if unread {
            close_connection(&mut response, version);
        }
        response
    }
}

/// How long a refused request's body is read and thrown away at most
/// ([`discard`]), and the longest gap in it: the client that sends its body
/// at once is done well within them; one that stalls is not waited for.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(30);
const LINGER_GAP: std::time::Duration = std::time::Duration::from_secs(2);

/// Read a refused request's body and keep none of it: at most `limit`
/// bytes, for at most [`LINGER_TIME`] with no gap over [`LINGER_GAP`] (both
/// within `body_read_timeout`), then drop it (and so the connection, which
/// was answered with `connection: close`). hyper reads an HTTP/1
/// connection's body only while someone holds it: dropped unread, the
/// connection is closed at once, and a client still sending its body sees a
/// reset instead of the answer already written (nginx's lingering close, for
/// the same reason). Memory: one frame at a time.
async fn discard<B>(body: B, limit: u64, body_read_timeout: std::time::Duration)
where
    B: Body<Data = Bytes>,
{
    use http_body_util::BodyExt;
    let gap = LINGER_GAP.min(body_read_timeout);
    let drain = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0u64;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(gap, body.frame()).await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME.min(body_read_timeout), drain).await;
}

/// Ask for an HTTP/1 connection to end after `response` (its request's
/// body was not read to the end). HTTP/2 has no such header: there the
/// stream ends alone.
fn close_connection(response: &mut Response<ProxyBody>, version: http::Version) {
    if version < http::Version::HTTP_2 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
}
