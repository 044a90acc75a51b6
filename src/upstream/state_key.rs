//! The keys a target's per-target state (cooldowns, circuits) is kept
//! under: `backend/model`, plus a tag of the client's credential for
//! `api_key = "passthrough"` backends, so one tenant's failures stay its own.

use super::{Credential, Target, TargetKey};
use crate::upstream::provider::ClientCredential;

/// The key under which a target's cooldown and circuit are kept: the backend
/// and the model actually asked for there.
pub fn target_key(target: &Target, requested_model: &str) -> TargetKey {
    target.key(requested_model)
}

/// A client's credential as it appears in the state keys of passthrough
/// targets: the first 8 bytes of its SHA-256, in hex. The credential itself
/// is never kept. Put into a request's extensions by the split point
/// (computed once per request) and read by the per-target layers.
///
/// ```
/// use llm_router::routing::CredentialTag;
///
/// let tag = CredentialTag::of_key("sk-tenant-a");
/// assert_eq!(tag.as_str().len(), 16);
/// assert!(!tag.as_str().contains("tenant"));
/// assert_ne!(tag, CredentialTag::of_key("sk-tenant-b"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CredentialTag([u8; 16]);

impl CredentialTag {
    /// The tag of `key`.
    pub fn of_key(key: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut hex = [b'0'; 16];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            if let [hi, lo] = pair {
                *hi = DIGITS[usize::from(byte >> 4)];
                *lo = DIGITS[usize::from(byte & 0x0f)];
            }
        }
        CredentialTag(hex)
    }

    /// The tag of a request's credential: the one `auth` verified, else the
    /// key the client sent (what a passthrough backend forwards).
    pub fn of_request(extensions: &http::Extensions, headers: &http::HeaderMap) -> Option<Self> {
        match extensions.get::<ClientCredential>() {
            Some(credential) => Some(Self::of_key(credential.0.expose())),
            None => crate::upstream::provider::client_key(headers).map(Self::of_key),
        }
    }

    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for CredentialTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialTag({})", self.as_str())
    }
}

/// The model part of a state key without its `#<tag>` (see [`state_key`]).
///
/// ```
/// use llm_router::routing::without_credential_tag;
///
/// assert_eq!(without_credential_tag("gpt-4o#0123456789abcdef"), "gpt-4o");
/// assert_eq!(without_credential_tag("gpt-4o"), "gpt-4o");
/// assert_eq!(without_credential_tag("odd#name"), "odd#name");
/// ```
pub fn without_credential_tag(model: &str) -> &str {
    match model.rsplit_once('#') {
        Some((name, tag)) if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => model,
    }
}

/// Whether `target`'s backend forwards the client's own key.
pub(crate) fn is_passthrough(target: &Target) -> bool {
    matches!(target.backend().credential(), Credential::Passthrough)
}

/// The key under which `target`'s cooldown and circuit are kept for a
/// request: [`target_key`], plus `#<tag>` of the client's credential when
/// the backend is `api_key = "passthrough"` (each tenant's own rate limits
/// and failures are its own).
///
/// ```
/// use llm_router::routing::{state_key, CredentialTag};
/// use llm_router::routing::{Backend, Credential, Target};
/// use llm_router::upstream::provider::mock::Mock;
/// use std::sync::Arc;
///
/// let backend = |name: &str, credential| {
///     let built = Backend::builder(name, Arc::new(Mock)).credential(credential).build();
///     Arc::new(built.unwrap())
/// };
/// let shared = Target::new(backend("b", Credential::None), Some("m"));
/// let tag = CredentialTag::of_key("sk-a");
/// assert_eq!(&*state_key(&shared, "m", Some(&tag)), "b/m");
/// let own = Target::new(backend("p", Credential::Passthrough), Some("m"));
/// assert_eq!(&*state_key(&own, "m", Some(&tag)), format!("p/m#{}", tag.as_str()));
/// ```
pub fn state_key(target: &Target, requested_model: &str, tag: Option<&CredentialTag>) -> TargetKey {
    match tag {
        Some(tag) if is_passthrough(target) => TargetKey::join(
            target.backend().name(),
            &format!(
                "{}#{}",
                target.upstream_model(requested_model),
                tag.as_str()
            ),
        ),
        _ => target.key(requested_model),
    }
}
