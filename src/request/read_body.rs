//! Reading a client's body: bounded in size ([`read_body`]) and, optionally,
//! in the gap between two frames ([`read_body_within`]).

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

use crate::error::ProxyError;

/// Read a request body, refusing (413) anything larger than `limit` bytes
/// without reading past the limit. A `Content-Length` over the limit is
/// refused before a single body byte is read.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: u64) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    read_body_inner(headers, body, limit, None).await
}

/// [`read_body`], and a body that sends nothing for `stall` (between two
/// frames, or before the first) is refused with 408
/// ([`ProxyError::RequestTimeout`]): `[server] body_read_timeout`.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use llm_router::ProxyBody;
/// use llm_router::__private::request::read_body_within;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let headers = HeaderMap::new();
/// let body = read_body_within(&headers, ProxyBody::full("{}"), 1024, Duration::from_secs(30));
/// assert_eq!(&body.await.unwrap()[..], b"{}");
/// # }
/// ```
pub async fn read_body_within<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
    stall: std::time::Duration,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    read_body_inner(headers, body, limit, Some(stall)).await
}

async fn read_body_inner<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
    stall: Option<std::time::Duration>,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    // Frame by frame: a body that arrives as one frame (the usual case)
    // is kept as it came, without a copy.
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    let mut total: u64 = 0;
    loop {
        let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
        let frame = match stall {
            None => next.await,
            // A fresh timer per frame: the gap between two frames is bounded,
            // not the whole upload.
            Some(stall) => match tokio::time::timeout(stall, next).await {
                Ok(frame) => frame,
                Err(_) => return Err(ProxyError::RequestTimeout { after: stall }),
            },
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|err| {
            let err: crate::body::BoxError = err.into();
            ProxyError::bad_request(
                "body_read_error",
                format!("Could not read the request body: {err}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        match (&mut first, &mut joined) {
            (_, Some(joined)) => joined.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (Some(head), None) => {
                let mut all = bytes::BytesMut::with_capacity(
                    declared.map_or(head.len() + data.len(), |d| (d as usize).min(1 << 20)),
                );
                all.extend_from_slice(head);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
        }
    }
    Ok(match joined {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::body::ProxyBody;

    /// `body_read_timeout` bounds each gap, not the whole upload: a body
    /// that keeps sending within the bound is read; one that stalls is a 408.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn stalled_body_is_a_408() {
        use std::time::Duration;
        let headers = HeaderMap::new();
        let stall = Duration::from_secs(30);
        // Three frames 20 s apart (60 s in all): never a 30 s gap.
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >(1);
        let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
        let sender = tokio::spawn(async move {
            for part in ["{\"a\"", ":", "1}"] {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tx.send(Ok(http_body::Frame::data(Bytes::from_static(
                    part.as_bytes(),
                ))))
                .await
                .unwrap();
            }
        });
        let read = read_body_within(&headers, body, 1024, stall).await.unwrap();
        assert_eq!(&read[..], br#"{"a":1}"#);
        sender.await.unwrap();

        // One frame, then nothing: 408 once 30 s have passed, not before.
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
        let started = tokio::time::Instant::now();
        let e = read_body_within(&headers, body, 1024, stall)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 408);
        assert_eq!(e.code(), "request_timeout");
        assert_eq!(started.elapsed(), stall);
        drop(tx);
    }

    /// A stream of what `rx` receives (no tokio-stream dependency).
    fn tokio_stream_of<T>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    #[tokio::test]
    async fn body_limit() {
        let headers = HeaderMap::new();
        let ok = read_body(&headers, ProxyBody::full("12345"), 5)
            .await
            .unwrap();
        assert_eq!(&ok[..], b"12345");
        let e = read_body(&headers, ProxyBody::full("123456"), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        let mut declared = HeaderMap::new();
        declared.insert(http::header::CONTENT_LENGTH, "100".parse().unwrap());
        let e = read_body(&declared, ProxyBody::empty(), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        // Several frames are joined; the limit counts all of them.
        let frames = |parts: &'static [&'static str]| {
            let frames = parts.iter().map(|p| {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                    p.as_bytes(),
                )))
            });
            http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        };
        let joined = read_body(&headers, frames(&["12", "", "34", "5"]), 5)
            .await
            .unwrap();
        assert_eq!(&joined[..], b"12345");
        let e = read_body(&headers, frames(&["123", "456"]), 5)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(read_body(&headers, frames(&[]), 5)
            .await
            .unwrap()
            .is_empty());
    }
}
