//! Backends, targets, the model route table, and [`RouteLayer`] — the
//! split point of the stack when `failover` is not in `[stack] order`.
//!
//! A [`RouteTable`] maps the model name a client sends to a [`ModelRoute`]:
//! its [`Target`]s, each a [`Backend`] plus the model name to send there.
//! [`RouteLayer`] resolves the model of every request (404 when nothing
//! matches), picks the first target by priority (weighted among equals)
//! and calls that target's own service: [`RouteLayer`] wraps a
//! [`NewService`](crate::stack::NewService) of targets and makes one service
//! per target of the table ([`PerTarget`]) when the stack is built.
//!
//! ```
//! use std::sync::Arc;
//! use llm_router::upstream::provider::mock::Mock;
//! use llm_router::routing::{Backend, ModelRoute, RouteTable, Target};
//!
//! let mock = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
//! let table = RouteTable::new(vec![
//!     ModelRoute::new("echo", vec![Target::new(mock.clone(), None)]),
//!     ModelRoute::new("*", vec![Target::new(mock, Some("echo-any"))]),
//! ]);
//! assert_eq!(table.resolve("echo").unwrap().name(), "echo");
//! assert_eq!(table.resolve("anything").unwrap().name(), "*");
//! assert_eq!(table.models().collect::<Vec<_>>(), ["echo"]);
//! ```

mod layer;
mod per_target;
mod route;
mod table;

pub use crate::classify::RetryPolicy;
pub use crate::request::without_request;
pub(crate) use crate::upstream::is_passthrough;
pub use crate::upstream::{
    state_key, target_key, without_credential_tag, Backend, BackendBuilder, BuildError, Credential,
    CredentialTag, Target, TargetKey, UpstreamApi,
};
pub use layer::{resolve_route, Route, RouteLayer};
pub use per_target::PerTarget;
pub use route::{Clients, ModelRoute};
pub use table::{pattern_prefix, RouteTable};
