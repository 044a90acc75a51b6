//! JWT clients for `auth` (`[auth] jwt`): a valid Bearer JWT is a client.
//!
//! [`JwtPolicy`] holds the verification key and the expected claims; `auth`
//! calls [`JwtPolicy::verify`] on a presented credential that is shaped like
//! a JWT (`header.payload.signature`) and is not a configured key. A token
//! passes when:
//!
//! - its header's `alg` is the configured algorithm (`none`, and any other
//!   algorithm, is refused: no algorithm confusion between HMAC and public
//!   keys);
//! - its signature verifies with the secret (HS256/HS384/HS512) or the public
//!   key (RS256/RS384/RS512, PS256/PS384/PS512, ES256/ES384, EdDSA);
//! - `exp` is present and not past, `nbf` (when present) is not in the future
//!   — both with a leeway ([`DEFAULT_LEEWAY`], 30 s, for clock skew);
//! - `iss` and `aud` are present and match, when an issuer and an audience are
//!   configured;
//! - `sub` is a non-empty string: it becomes the client's identity
//!   ([`JwtClaims::identity`], `jwt:<sub>`), which rate limits, logs and
//!   metrics key on.
//!
//! Otherwise [`JwtPolicy::verify`] says why ([`JwtRejection`]: expired, not
//! yet valid, bad signature, wrong issuer, wrong audience, wrong algorithm,
//! malformed, missing claim), never echoing the secret or the token.
//!
//! The crypto is [`jsonwebtoken`]'s pure-Rust (`rust_crypto`) backend.
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use jsonwebtoken::{encode, EncodingKey, Header};
//! use llm_router::layers::jwt::{JwtPolicy, JwtRejection};
//!
//! let secret = "an-hs256-secret-of-at-least-32-bytes!";
//! let policy = JwtPolicy::hmac(secret, None).unwrap()
//!     .issuer("https://idp.example")
//!     .audience("llm-router");
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let claims = serde_json::json!({
//!     "sub": "alice", "iss": "https://idp.example", "aud": "llm-router", "exp": now + 600,
//! });
//! let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
//! assert_eq!(policy.verify(&token).unwrap().identity(), "jwt:alice");
//!
//! let expired = serde_json::json!({
//!     "sub": "alice", "iss": "https://idp.example", "aud": "llm-router", "exp": now - 3600,
//! });
//! let token = encode(&Header::default(), &expired, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
//! assert_eq!(policy.verify(&token).unwrap_err(), JwtRejection::Expired);
//! ```

mod claims;
mod key;
mod policy;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use claims::{JwtClaims, JwtRejection};
pub use key::{parse_algorithm, JwtKeyError, ALGORITHMS};
pub use policy::{JwtPolicy, MAX_GROUP_LEN};

/// The default leeway on `exp` and `nbf`, for clock skew between the token's
/// issuer and the proxy.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The prefix of a JWT client's identity (`jwt:<sub>`): a subject never
/// shares a rate-limit bucket or counters with an API key.
pub const IDENTITY_PREFIX: &str = "jwt:";

/// Whether `credential` is shaped like a JWT (`a.b.c`, base64url parts): such
/// a credential that is not a configured key is verified as a token.
///
/// ```
/// use llm_router::layers::jwt::looks_like_jwt;
/// assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
/// assert!(looks_like_jwt("a.b."));
/// assert!(!looks_like_jwt("sk-1234567890"));
/// assert!(!looks_like_jwt("a.b.c.d"));
/// ```
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}
