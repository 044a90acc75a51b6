//! The request id's header (the app keeps the client's [`REQUEST_ID`] or
//! puts a fresh one there, and the layers read it from the headers), and
//! what a layer that reads an answer's usage puts into the request
//! ([`want_usage`]).

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as a header name (no parse or allocation where it is used).
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);

/// Ask for an answer's usage (a layer that reads its
/// [`UsageSlot`](crate::usage::UsageSlot)): mark the request
/// [`UsageWanted`](crate::usage::UsageWanted) and, for a stream whose client
/// did not ask for usage (Responses streams always end with theirs), ask the
/// upstream for it (`stream_options.include_usage`) and mark the request
/// [`UsageRequestedByProxy`](crate::usage::UsageRequestedByProxy), so that
/// the usage-only chunk is kept from the client.
#[cfg(feature = "access")]
pub(crate) fn want_usage(extensions: &mut http::Extensions) {
    extensions.insert(crate::usage::UsageWanted);
    let Some(llm) = extensions.get_mut::<super::LlmRequest>() else {
        return;
    };
    if !llm.is_stream() || llm.format() == super::ClientFormat::Responses {
        return;
    }
    let asked = llm
        .body()
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    if asked
        || extensions
            .get::<crate::usage::UsageRequestedByProxy>()
            .is_some()
    {
        return;
    }
    if let Some(llm) = extensions.get_mut::<super::LlmRequest>() {
        let options = llm
            .body_mut()
            .entry("stream_options")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let serde_json::Value::Object(o) = options {
            o.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
    }
    extensions.insert(crate::usage::UsageRequestedByProxy);
}
