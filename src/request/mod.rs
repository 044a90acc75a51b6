//! The parsed request that travels through the stack: [`LlmRequest`].
//!
//! The client's body is read once (bounded, see [`read_body`]), parsed once
//! into an [`LlmRequest`] and put into the request's extensions. Layers read
//! and edit it there ([`LlmRequest::body_mut`]); the upstream edge serializes
//! it once ([`LlmRequest::to_bytes`]), swapping in the target's model name
//! without copying the document. Cloning an `LlmRequest` is cheap (the JSON is
//! behind an `Arc`), which is what retry and failover rely on to replay it.
//!
//! ```
//! use llm_router::{Endpoint, LlmRequest};
//!
//! let req = LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"gpt-4","stream":true,"messages":[]}"#).unwrap();
//! assert_eq!(req.model(), "gpt-4");
//! assert!(req.is_stream());
//! let upstream = req.to_bytes(Some("gpt-4o")).unwrap();
//! assert_eq!(&upstream[..], br#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
//! ```

mod context;
mod endpoint;
mod extensions;
mod llm_request;
mod read_body;
mod scan;

pub use crate::client_format::ClientFormat;
pub use context::RequestContext;
pub use endpoint::{error_format_of, error_format_of_path, without_request, Endpoint, UnknownPath};
#[cfg(feature = "access")]
pub(crate) use extensions::want_usage;
pub use extensions::{REQUEST_ID, REQUEST_ID_HEADER};
pub use llm_request::LlmRequest;
pub use read_body::{read_body, read_body_within};
#[cfg(test)]
pub(crate) use scan::json_mutations;
pub(crate) use scan::Scanner;
