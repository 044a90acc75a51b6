//! A Responses client served through the pivot (see [`super`]).
//! (Placeholder until the translation lands.)

use http::Response;
use serde_json::{Map, Value};

use crate::body::ProxyBody;
use crate::error::ProxyError;

/// The Responses request as a Chat Completions (pivot) request.
pub fn request_to_openai(_body: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    Err(ProxyError::bad_request(
        "unsupported_feature",
        "Responses requests cannot be translated yet",
    ))
}

/// Hosted tool types a translated backend cannot run.
pub fn dropped_tools(_body: &Map<String, Value>) -> Vec<String> {
    Vec::new()
}

/// The pivot answer as the Responses answer for `request`.
pub fn answer_from_openai(
    _request: &Map<String, Value>,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    response
}
