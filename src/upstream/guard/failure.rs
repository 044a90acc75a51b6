//! How a guarded stream fails: [`StreamFailure`] before the commit point,
//! and the error events the guard adds when a committed stream fails.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::event::ResponsesEvent;
use crate::body::BoxError;
use crate::request::ClientFormat;

/// Why a stream failed before its first content event.
#[derive(Debug, thiserror::Error)]
pub enum StreamFailure {
    /// No content event within `first_byte_timeout`.
    #[error("no content within {0:?}")]
    FirstByteTimeout(Duration),
    /// The upstream connection broke.
    #[error("the upstream stream broke: {0}")]
    Broken(#[source] BoxError),
    /// The upstream ended the stream before sending any content.
    #[error("the upstream ended the stream before sending any content")]
    EndedEarly,
    /// The upstream sent an error event.
    #[error("the upstream sent an error event: {0}")]
    ErrorEvent(String),
    /// An event was larger than the cap.
    #[error(transparent)]
    TooLarge(#[from] crate::sse::EventTooLarge),
}

/// What a guard keeps of a Responses stream to end it with
/// `response.failed`: the last sequence number and the response's identity.
#[derive(Debug, Default)]
pub(super) struct ResponsesState {
    pub(super) next_sequence: u64,
    /// `response.created`'s JSON, read only when the stream fails.
    pub(super) head_raw: Option<Bytes>,
    pub(super) id: Option<String>,
    pub(super) model: Option<String>,
    pub(super) created_at: Option<serde_json::Value>,
}

/// The events that end a committed Responses stream that failed: an
/// `error` event, then `response.failed` (sequence numbers go on from the
/// last one seen).
pub(super) fn responses_failure(state: &mut ResponsesState, code: &str, message: &str) -> Bytes {
    if state.id.is_none() {
        if let Some(raw) = state.head_raw.take() {
            if let Ok(e) = serde_json::from_slice::<ResponsesEvent<'_>>(&raw) {
                if let Some(head) = e.response {
                    state.id = head.id;
                    state.model = head.model;
                    state.created_at = head.created_at;
                }
            }
        }
    }
    let seq = state.next_sequence;
    let error = json!({"type": "error", "code": code, "message": message, "param": null,
        "sequence_number": seq});
    let failed = json!({
        "type": "response.failed",
        "sequence_number": seq.saturating_add(1),
        "response": {
            "id": state.id.as_deref().unwrap_or("resp_failed"),
            "object": "response",
            "created_at": state.created_at.clone().unwrap_or(json!(0)),
            "model": state.model.as_deref().unwrap_or_default(),
            "status": "failed",
            "error": {"code": "server_error", "message": message},
            "incomplete_details": null,
            "output": [],
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
        },
    });
    state.next_sequence = seq.saturating_add(2);
    Bytes::from(format!(
        "event: error\ndata: {error}\n\nevent: response.failed\ndata: {failed}\n\n"
    ))
}

/// The error event a guard adds when a committed stream fails.
pub fn error_event(format: ClientFormat, code: &str, message: &str) -> Bytes {
    match format {
        ClientFormat::Responses => responses_failure(&mut ResponsesState::default(), code, message),
        ClientFormat::OpenAi => {
            let body = json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}});
            Bytes::from(format!("data: {body}\n\n"))
        }
        ClientFormat::Anthropic => {
            let body = json!({"type": "error", "error": {"type": "api_error", "message": message}});
            Bytes::from(format!("event: error\ndata: {body}\n\n"))
        }
    }
}
