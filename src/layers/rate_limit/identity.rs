//! [`ClientIdentity`]: the verified identity `auth` gives a request, which
//! `rate_limit` keys on.

/// The verified identity of a client, set by `auth` (a key or a JWT `sub`).
/// `Debug` masks it: it may be a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity(pub String);

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientIdentity({})", crate::secret::mask_key(&self.0))
    }
}
