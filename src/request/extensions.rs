//! The request id's header: the app keeps the client's [`REQUEST_ID`] or
//! puts a fresh one there, and the layers read it from the headers.

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as a header name (no parse or allocation where it is used).
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);
