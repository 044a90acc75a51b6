//! [`StreamGuard`]: the body every streamed answer passes through.
//!
//! It re-frames the stream into whole SSE events (bounded: one event at most is
//! buffered) and enforces the streaming contract:
//!
//! - **Commit point.** [`StreamGuard::wait_for_first_content`] drives the
//!   stream until its first content event (text, a tool call, a finish
//!   reason), holding back role-only or empty preamble events. A stream that
//!   fails before that — an error event, a cut connection, an end, or no
//!   content within `first_byte_timeout` — fails as a whole, so the request can
//!   still go to another target without the client seeing anything.
//! - **After the commit**, a cut connection, a gap longer than `idle_timeout`,
//!   or an end without completion (no `[DONE]` and no finish reason) ends the
//!   stream with an error event in the client's format — never a clean end
//!   that looks complete. A stream that finished but left out `[DONE]` gets one.
//! - **Malformed events** (data that is not JSON) are skipped with a warning;
//!   the stream carries on.
//! - **Usage** goes into the answer's [`UsageSlot`](crate::usage::UsageSlot):
//!   OpenAI's usage chunk, or Anthropic's pieces (`message_start`'s input
//!   tokens, `message_delta`'s output tokens, cache counts included), and
//!   the text delivered, for the charge of a stream cut short before its
//!   final usage (see [`UsageSlot`](crate::usage::UsageSlot)).
//!
//! Dropping the guard drops the upstream body, which closes the upstream
//! connection.
//!
//! ```
//! use std::time::Duration;
//! use http_body_util::BodyExt;
//! use llm_router::__private::guard::{GuardConfig, StreamGuard};
//! use llm_router::ClientFormat;
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // An upstream that stops after one token: no finish reason, no [DONE].
//! let upstream = ProxyBody::full(
//!     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n");
//! let mut guard = StreamGuard::new(upstream, GuardConfig::new(ClientFormat::OpenAi));
//! guard.wait_for_first_content(Duration::from_secs(1)).await.unwrap();
//! let text = guard.collect().await.unwrap().to_bytes();
//! let text = String::from_utf8_lossy(&text);
//! assert!(text.starts_with("data: {\"choices\""));
//! assert!(text.contains("\"error\""));   // the client is told it is incomplete
//! # }
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod config;
mod event;
mod failure;
mod plain;
mod stream;
mod text;

pub use config::GuardConfig;
pub use failure::{error_event, StreamFailure};
pub use stream::StreamGuard;

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests;
