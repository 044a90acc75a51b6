//! The OpenAI Responses API (`POST /v1/responses`) <-> the pivot (OpenAI
//! Chat Completions).
//!
//! Two directions, one module each:
//! - [`inbound`]: a Responses *client* served by a backend that speaks the
//!   pivot (or anything the pivot reaches): its request becomes a Chat
//!   Completions request, the pivot answer (JSON or `chat.completion.chunk`
//!   events) becomes a Response object or the Responses event stream.
//! - [`upstream`]: a Chat Completions (or, through the pivot, Messages)
//!   client served by an `openai` backend with `api = "responses"`: the pivot
//!   request becomes a Responses request, the Responses answer becomes the
//!   pivot.
//!
//! A Responses client of an `api = "responses"` backend passes through.

pub mod inbound;
pub mod upstream;
