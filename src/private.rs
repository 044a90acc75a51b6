//! Internals reachable for the crate's own tests, benches and doc examples.
//!
//! Not part of the API: anything here may change in any release. What a
//! library user composes is the facade of the crate root (see the README's
//! library section).

pub mod body {
    pub use crate::body::*;
}
pub mod catalog {
    pub use crate::catalog::*;
}
pub mod classify {
    pub use crate::classify::*;
}
pub mod docs {
    pub use crate::docs::*;
}
pub mod error {
    pub use crate::error::*;
}
pub mod escape {
    pub use crate::escape::*;
}
pub mod future {
    pub use crate::future::*;
}
pub mod openapi {
    pub use crate::openapi::*;
}
pub mod reload {
    pub use crate::reload::*;
}
pub mod request {
    pub use crate::request::*;
}
pub mod secret {
    pub use crate::secret::*;
}
pub mod sse {
    pub use crate::sse::*;
}
pub mod store {
    pub use crate::store::*;
}
pub mod timing {
    pub use crate::timing::*;
}
pub mod tokens {
    pub use crate::tokens::*;
}
pub mod usage {
    pub use crate::usage::*;
}
pub mod watch {
    pub use crate::watch::*;
}
pub mod guard {
    pub use crate::upstream::guard::*;
}
pub mod translate {
    pub use crate::upstream::translate::*;
}
