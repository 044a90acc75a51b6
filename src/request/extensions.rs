//! What the server and the app put into each request: the client's address
//! ([`ClientAddr`]) and the request id ([`RequestId`], from or into the
//! [`REQUEST_ID`] header), read by the layers.

use std::net::SocketAddr;

use http::HeaderValue;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as a header name (no parse or allocation where it is used).
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);

/// The client's address, put into every request's extensions by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The request id, also in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);
