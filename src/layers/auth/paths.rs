//! The admin and operational endpoints: which paths need an admin key, which
//! read-only ones a client key may call while no admin key exists
//! ([`KeyStore::check_operations`]).

use http::HeaderMap;

use super::{Authenticated, KeyStore};
use crate::error::ProxyError;

/// The admin endpoints: they need an admin key when `auth` is on. Any path
/// under `/admin/` is one too.
pub const ADMIN_PATHS: &[&str] = &[
    "/providers",
    "/backend/info",
    "/router/stats",
    "/router/health",
    "/router/rate-limits",
    "/auth/status",
    "/auth/metrics",
    "/auth/reload-keys",
    "/admin/reload",
    "/admin/keys",
];

/// Whether `path` is an admin endpoint.
///
/// ```
/// use llm_router::layers::auth::is_admin_path;
/// assert!(is_admin_path("/auth/status"));
/// assert!(is_admin_path("/admin/anything"));
/// assert!(!is_admin_path("/v1/models"));
/// ```
pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PATHS.contains(&path) || path.starts_with("/admin/")
}

/// The read-only operational endpoints (`GET` only): while no admin key is
/// configured at all, any valid client key may call them, as the routers
/// llm-router replaces allowed; once an admin key exists they are admin
/// endpoints like the others. Reloads never are.
///
/// ```
/// use llm_router::layers::auth::is_read_only_operation;
/// assert!(is_read_only_operation("/router/health"));
/// assert!(is_read_only_operation("/auth/metrics"));
/// assert!(!is_read_only_operation("/auth/reload-keys"));
/// assert!(!is_read_only_operation("/admin/reload"));
/// ```
pub fn is_read_only_operation(path: &str) -> bool {
    matches!(
        path,
        "/providers" | "/backend/info" | "/auth/status" | "/auth/metrics"
    ) || path.starts_with("/router/")
}

impl KeyStore {
    /// Check the caller of an operational endpoint: an admin key, or — for a
    /// `GET` of a [read-only one](is_read_only_operation) while no admin key
    /// is configured at all — any valid client key.
    pub fn check_operations(
        &self,
        headers: &HeaderMap,
        path: &str,
        read: bool,
    ) -> Result<Authenticated, ProxyError> {
        if read && is_read_only_operation(path) && self.keys().admin.is_empty() {
            self.authenticate(headers)
        } else {
            self.check_admin(headers)
        }
    }
}
