//! A pivot request served by a Responses API backend (see [`super`]).
//! (Placeholder until the translation lands.)

use http::Response;
use serde_json::{Map, Value};

use crate::body::ProxyBody;
use crate::error::ProxyError;

/// The pivot request as a Responses API request.
pub fn request_from_openai(_pivot: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    Err(ProxyError::bad_request(
        "unsupported_feature",
        "Responses upstreams cannot be translated yet",
    ))
}

/// The Responses API answer as the pivot.
pub fn answer_to_openai(
    response: Response<ProxyBody>,
    _include_usage: bool,
) -> Response<ProxyBody> {
    response
}
