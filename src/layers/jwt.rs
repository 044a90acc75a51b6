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

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{json, Value};

/// The default leeway on `exp` and `nbf`, for clock skew between the token's
/// issuer and the proxy.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The prefix of a JWT client's identity (`jwt:<sub>`): a subject never
/// shares a rate-limit bucket or counters with an API key.
pub const IDENTITY_PREFIX: &str = "jwt:";

/// The algorithms `algorithm = "..."` accepts, by name.
pub const ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// How JWT clients are verified. See the [module docs](crate::layers::jwt).
#[derive(Clone)]
pub struct JwtPolicy {
    key: DecodingKey,
    algorithm: Algorithm,
    /// `secret` or the public key's kind, for `/auth/status`.
    key_kind: &'static str,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    secret_len: Option<usize>,
    validation: Validation,
}

impl fmt::Debug for JwtPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: a secret must not reach a log.
        f.debug_struct("JwtPolicy")
            .field("algorithm", &self.algorithm)
            .field("key", &self.key_kind)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// A JWT key or algorithm that cannot be used (a config error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    /// The HMAC secret is empty.
    #[error("the secret is empty")]
    EmptySecret,
    /// Not a known algorithm name.
    #[error("unknown algorithm `{0}`; one of {list}", list = ALGORITHMS.join(", "))]
    UnknownAlgorithm(String),
    /// The algorithm does not go with the key.
    #[error("{0}")]
    Mismatch(String),
    /// Not a usable public key PEM.
    #[error("{0}")]
    BadKey(String),
}

/// Parse an algorithm name (`RS256`, ...; case-insensitive).
///
/// ```
/// use llm_router::layers::jwt::parse_algorithm;
/// assert!(parse_algorithm("es256").is_ok());
/// assert!(parse_algorithm("none").is_err());
/// ```
pub fn parse_algorithm(name: &str) -> Result<Algorithm, JwtKeyError> {
    let name = name.trim();
    ALGORITHMS
        .iter()
        .find(|a| a.eq_ignore_ascii_case(name))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| JwtKeyError::UnknownAlgorithm(name.to_string()))
}

fn algorithm_name(a: Algorithm) -> String {
    format!("{a:?}")
}

/// The kind of a public key found in a PEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA public key",
            KeyKind::P256 => "EC P-256 public key",
            KeyKind::P384 => "EC P-384 public key",
            KeyKind::Ed25519 => "Ed25519 public key",
        }
    }

    fn default_algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::P384 => Algorithm::ES384,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn allows(self, a: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => a.family() == AlgorithmFamily::Rsa,
            KeyKind::P256 => a == Algorithm::ES256,
            KeyKind::P384 => a == Algorithm::ES384,
            KeyKind::Ed25519 => a == Algorithm::EdDSA,
        }
    }
}

/// The label of the first PEM block (`PUBLIC KEY`, ...).
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = text[start..].find("-----")?;
    Some(text[start..start + end].trim())
}

/// Read a public key PEM: its key and kind.
fn public_key(pem: &[u8]) -> Result<(DecodingKey, KeyKind), JwtKeyError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| JwtKeyError::BadKey("not a PEM file (not text)".into()))?;
    let Some(label) = pem_label(text) else {
        return Err(JwtKeyError::BadKey(
            "not a PEM file (no `-----BEGIN PUBLIC KEY-----` line)".into(),
        ));
    };
    if label.contains("PRIVATE KEY") {
        return Err(JwtKeyError::BadKey(format!(
            "holds a private key ({label}); give the public key instead (`openssl pkey -in key.pem -pubout`)"
        )));
    }
    if label == "CERTIFICATE" {
        return Err(JwtKeyError::BadKey(
            "holds a certificate; give its public key instead (`openssl x509 -in cert.pem -pubkey -noout`)".into(),
        ));
    }
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(JwtKeyError::BadKey(format!(
            "holds a `{label}` block; a `PUBLIC KEY` (or `RSA PUBLIC KEY`) PEM is needed"
        )));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        // jsonwebtoken parses an RSA key at each verification: check it now,
        // so that a broken key is a start-up error, not a 401 for everyone.
        use rsa::pkcs1::DecodeRsaPublicKey;
        let der = key
            .try_get_as_bytes()
            .map_err(|_| JwtKeyError::BadKey("not a usable RSA public key".into()))?;
        rsa::RsaPublicKey::from_pkcs1_der(der)
            .map_err(|e| JwtKeyError::BadKey(format!("not a usable RSA public key: {e}")))?;
        return Ok((key, KeyKind::Rsa));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The key is the uncompressed point: 1 + 2 x 32 bytes on P-256, 1 + 2 x 48 on P-384.
        let kind = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => KeyKind::P256,
            Ok(97) => KeyKind::P384,
            _ => {
                return Err(JwtKeyError::BadKey(
                    "an EC public key on a curve other than P-256 or P-384".into(),
                ))
            }
        };
        return Ok((key, kind));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, KeyKind::Ed25519));
    }
    Err(JwtKeyError::BadKey(
        "not a usable public key PEM (RSA, EC P-256/P-384 or Ed25519 expected)".into(),
    ))
}

impl JwtPolicy {
    /// Verify with an HMAC secret (its UTF-8 bytes); `algorithm` is HS256
    /// unless given (HS384, HS512).
    pub fn hmac(secret: &str, algorithm: Option<Algorithm>) -> Result<Self, JwtKeyError> {
        if secret.is_empty() {
            return Err(JwtKeyError::EmptySecret);
        }
        let algorithm = algorithm.unwrap_or(Algorithm::HS256);
        if algorithm.family() != AlgorithmFamily::Hmac {
            return Err(JwtKeyError::Mismatch(format!(
                "`{}` needs a public key (public_key_file); a secret goes with HS256, HS384 or HS512",
                algorithm_name(algorithm)
            )));
        }
        Ok(Self::with_key(
            DecodingKey::from_secret(secret.as_bytes()),
            algorithm,
            "secret",
            Some(secret.len()),
        ))
    }

    /// Verify with a public key (PEM: `PUBLIC KEY`, or `RSA PUBLIC KEY`).
    /// The algorithm is inferred from the key unless given: RS256 for an RSA
    /// key, ES256 for P-256, ES384 for P-384, EdDSA for Ed25519; a given one
    /// must suit the key (RS*/PS* for RSA).
    pub fn public_key_pem(pem: &[u8], algorithm: Option<Algorithm>) -> Result<Self, JwtKeyError> {
        if let Some(a) = algorithm {
            if a.family() == AlgorithmFamily::Hmac {
                return Err(JwtKeyError::Mismatch(format!(
                    "`{}` is an HMAC algorithm: it needs `secret`, not a public key",
                    algorithm_name(a)
                )));
            }
        }
        let (key, kind) = public_key(pem)?;
        let algorithm = match algorithm {
            None => kind.default_algorithm(),
            Some(a) if kind.allows(a) => a,
            Some(a) => {
                return Err(JwtKeyError::Mismatch(format!(
                    "`{}` does not go with an {} (use {})",
                    algorithm_name(a),
                    kind.name(),
                    match kind {
                        KeyKind::Rsa => "RS256, RS384, RS512, PS256, PS384 or PS512",
                        KeyKind::P256 => "ES256",
                        KeyKind::P384 => "ES384",
                        KeyKind::Ed25519 => "EdDSA",
                    }
                )))
            }
        };
        // A trial verification: a key the backend cannot use fails here.
        match jsonwebtoken::crypto::verify("AA", b"x", &key, algorithm) {
            Ok(_) => {}
            Err(e) => {
                return Err(JwtKeyError::BadKey(format!(
                    "the {} cannot be used: {e}",
                    kind.name()
                )))
            }
        }
        Ok(Self::with_key(key, algorithm, kind.name(), None))
    }

    fn with_key(
        key: DecodingKey,
        algorithm: Algorithm,
        key_kind: &'static str,
        secret_len: Option<usize>,
    ) -> Self {
        let mut policy = JwtPolicy {
            key,
            algorithm,
            key_kind,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            secret_len,
            validation: Validation::new(algorithm),
        };
        policy.rebuild();
        policy
    }

    fn rebuild(&mut self) {
        let mut v = Validation::new(self.algorithm);
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // No audience configured: `aud` is not checked.
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        self.validation = v;
    }

    /// Require this `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self.rebuild();
        self
    }

    /// Require this `aud` (one of the token's audiences).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self.rebuild();
        self
    }

    /// The leeway on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]; whole seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.rebuild();
        self
    }

    /// The accepted algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A warning about the key, if it is weak: an HMAC secret shorter than
    /// the hash (RFC 7518 §3.2 asks for at least as many bytes).
    pub fn weakness(&self) -> Option<String> {
        let len = self.secret_len?;
        let want = match self.algorithm {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        (len < want).then(|| {
            format!(
                "the secret is {len} bytes; {} wants at least {want} (RFC 7518 §3.2): a short secret can be guessed offline from any token",
                algorithm_name(self.algorithm)
            )
        })
    }

    /// What `/auth/status` shows (never the key).
    pub fn describe(&self) -> Value {
        json!({
            "algorithm": algorithm_name(self.algorithm),
            "key": self.key_kind,
            "issuer": self.issuer,
            "audience": self.audience,
            "leeway_secs": self.leeway.as_secs(),
        })
    }

    /// Verify `token`: the claims of a valid token, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<JwtClaims, JwtRejection> {
        // The header first, to refuse `alg: none` and other algorithms by
        // name (jsonwebtoken would only call them malformed or mismatched).
        let header = token.split('.').next().unwrap_or_default();
        let header: Value = B64
            .decode(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| JwtRejection::Malformed("the header is not base64url JSON".into()))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtRejection::Malformed("the header has no `alg`".into()))?;
        if alg != algorithm_name(self.algorithm) {
            return Err(JwtRejection::WrongAlgorithm {
                got: alg.chars().take(16).collect(),
                expected: algorithm_name(self.algorithm),
            });
        }
        let data =
            jsonwebtoken::decode::<Value>(token, &self.key, &self.validation).map_err(|e| {
                match e.into_kind() {
                    ErrorKind::ExpiredSignature => JwtRejection::Expired,
                    ErrorKind::ImmatureSignature => JwtRejection::NotYetValid,
                    ErrorKind::InvalidSignature => JwtRejection::BadSignature,
                    ErrorKind::InvalidIssuer => JwtRejection::WrongIssuer,
                    ErrorKind::InvalidAudience => JwtRejection::WrongAudience,
                    ErrorKind::InvalidAlgorithm => JwtRejection::WrongAlgorithm {
                        got: alg.chars().take(16).collect(),
                        expected: algorithm_name(self.algorithm),
                    },
                    ErrorKind::MissingRequiredClaim(c) => JwtRejection::MissingClaim(c),
                    ErrorKind::InvalidClaimFormat(c) => {
                        JwtRejection::Malformed(format!("the `{c}` claim is not a number"))
                    }
                    ErrorKind::Base64(_) => {
                        JwtRejection::Malformed("a part is not base64url".into())
                    }
                    ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                        JwtRejection::Malformed("the header or the claims are not JSON".into())
                    }
                    ErrorKind::InvalidToken => JwtRejection::Malformed(
                        "not header.payload.signature, or an unusable claim".into(),
                    ),
                    // A signature of the wrong size or encoding, a key the
                    // backend refuses: the signature does not verify.
                    _ => JwtRejection::BadSignature,
                }
            })?;
        match data.claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => Ok(JwtClaims {
                subject: sub.clone(),
                expires: data.claims.get("exp").and_then(Value::as_u64),
            }),
            _ => Err(JwtRejection::MissingClaim("sub".into())),
        }
    }
}

/// base64url, padded or not (JWTs are unpadded).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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

/// What a valid token says about its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtClaims {
    /// `sub`.
    pub subject: String,
    /// `exp` (Unix seconds).
    pub expires: Option<u64>,
}

impl JwtClaims {
    /// The client identity: `jwt:<sub>`.
    pub fn identity(&self) -> String {
        format!("{IDENTITY_PREFIX}{}", self.subject)
    }
}

/// Why a token is refused (a 401; never carries the secret or the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtRejection {
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// The signature does not verify with the configured key.
    BadSignature,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not include the configured audience.
    WrongAudience,
    /// The header's `alg` is not the configured algorithm (`none` included).
    WrongAlgorithm {
        /// The token's `alg` (at most 16 characters of it).
        got: String,
        /// The configured one.
        expected: String,
    },
    /// A required claim is absent (`exp`, `sub`, `iss`, `aud`).
    MissingClaim(String),
    /// Not a parseable JWT.
    Malformed(String),
}

impl JwtRejection {
    /// The OpenAI-style error `code`.
    pub fn code(&self) -> &'static str {
        match self {
            JwtRejection::Expired => "token_expired",
            JwtRejection::NotYetValid => "token_not_yet_valid",
            JwtRejection::BadSignature => "invalid_token_signature",
            JwtRejection::WrongIssuer => "invalid_token_issuer",
            JwtRejection::WrongAudience => "invalid_token_audience",
            JwtRejection::WrongAlgorithm { .. } => "invalid_token_algorithm",
            JwtRejection::MissingClaim(_) => "invalid_token_claims",
            JwtRejection::Malformed(_) => "malformed_token",
        }
    }
}

impl fmt::Display for JwtRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid token: ")?;
        match self {
            JwtRejection::Expired => f.write_str("it has expired (exp is past)"),
            JwtRejection::NotYetValid => f.write_str("it is not valid yet (nbf is in the future)"),
            JwtRejection::BadSignature => f.write_str("its signature does not verify"),
            JwtRejection::WrongIssuer => f.write_str("its issuer (iss) is not the expected one"),
            JwtRejection::WrongAudience => {
                f.write_str("its audience (aud) is not the expected one")
            }
            JwtRejection::WrongAlgorithm { got, expected } if got.eq_ignore_ascii_case("none") => {
                write!(
                    f,
                    "unsigned tokens (alg `{got}`) are never accepted; this proxy accepts {expected}"
                )
            }
            JwtRejection::WrongAlgorithm { got, expected } => write!(
                f,
                "it is signed with `{got}`; this proxy accepts {expected} only"
            ),
            JwtRejection::MissingClaim(c) => {
                write!(f, "it has no `{c}` claim (or not a usable one)")
            }
            JwtRejection::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn policy() -> JwtPolicy {
        JwtPolicy::hmac(SECRET, None)
            .unwrap()
            .issuer("iss-a")
            .audience("aud-a")
    }

    fn good() -> Value {
        json!({"sub": "alice", "iss": "iss-a", "aud": "aud-a", "exp": now() + 60})
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        if value.is_null() {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = value;
        }
        v
    }

    #[test]
    fn accepts_and_names_the_subject() {
        let c = policy().verify(&hs(good())).unwrap();
        assert_eq!(c.subject, "alice");
        assert_eq!(c.identity(), "jwt:alice");
        // An audience list that includes ours.
        let v = with(good(), "aud", json!(["other", "aud-a"]));
        assert!(policy().verify(&hs(v)).is_ok());
    }

    #[test]
    fn leeway_on_exp_and_nbf() {
        let p = policy();
        // Within the 30 s leeway: accepted.
        assert!(p
            .verify(&hs(with(good(), "exp", json!(now() - 10))))
            .is_ok());
        assert!(p
            .verify(&hs(with(good(), "nbf", json!(now() + 10))))
            .is_ok());
        // Beyond it: refused.
        let e = p
            .verify(&hs(with(good(), "exp", json!(now() - 120))))
            .unwrap_err();
        assert_eq!(e, JwtRejection::Expired);
        let e = p
            .verify(&hs(with(good(), "nbf", json!(now() + 120))))
            .unwrap_err();
        assert_eq!(e, JwtRejection::NotYetValid);
        // With no leeway, 10 s past is expired.
        let p = policy().leeway(Duration::ZERO);
        assert_eq!(
            p.verify(&hs(with(good(), "exp", json!(now() - 10))))
                .unwrap_err(),
            JwtRejection::Expired
        );
    }

    #[test]
    fn reasons() {
        let p = policy();
        let cases = [
            (with(good(), "iss", json!("iss-b")), "invalid_token_issuer"),
            (
                with(good(), "aud", json!("aud-b")),
                "invalid_token_audience",
            ),
            (with(good(), "iss", Value::Null), "invalid_token_claims"),
            (with(good(), "aud", Value::Null), "invalid_token_claims"),
            (with(good(), "exp", Value::Null), "invalid_token_claims"),
            (with(good(), "sub", Value::Null), "invalid_token_claims"),
            (with(good(), "sub", json!("")), "invalid_token_claims"),
            (with(good(), "sub", json!(42)), "invalid_token_claims"),
            (with(good(), "exp", json!("soon")), "invalid_token_claims"),
        ];
        for (claims, code) in cases {
            let e = p.verify(&hs(claims.clone())).unwrap_err();
            assert_eq!(e.code(), code, "{claims}: {e}");
            assert!(!e.to_string().contains(SECRET));
        }
        // Another secret: bad signature.
        let other = encode(
            &Header::default(),
            &good(),
            &EncodingKey::from_secret(b"another-secret-another-secret-00"),
        )
        .unwrap();
        assert_eq!(p.verify(&other).unwrap_err(), JwtRejection::BadSignature);
        // A tampered payload: bad signature.
        let token = hs(good());
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil = B64.encode(serde_json::to_vec(&with(good(), "sub", json!("mallory"))).unwrap());
        let evil = evil.trim_end_matches('=').to_string();
        parts[1] = &evil;
        assert_eq!(
            p.verify(&parts.join(".")).unwrap_err(),
            JwtRejection::BadSignature
        );
    }

    #[test]
    fn alg_none_and_other_algorithms() {
        let p = policy();
        let unsigned = |alg: &str| {
            let h = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let c = B64.encode(serde_json::to_vec(&good()).unwrap());
            format!("{}.{}.", h.trim_end_matches('='), c.trim_end_matches('='))
        };
        for alg in ["none", "None", "NONE"] {
            let e = p.verify(&unsigned(alg)).unwrap_err();
            assert_eq!(e.code(), "invalid_token_algorithm", "{alg}");
            assert!(e.to_string().contains("unsigned"), "{e}");
        }
        let e = p.verify(&unsigned("HS512")).unwrap_err();
        assert_eq!(e.code(), "invalid_token_algorithm");
        assert!(e.to_string().contains("HS256"), "{e}");
    }

    #[test]
    fn malformed() {
        let p = policy();
        for token in ["a.b.c", "..", "eyJhbGciOiJIUzI1NiJ9.!!!.x", "e30.e30.e30"] {
            let e = p.verify(token).unwrap_err();
            assert!(
                matches!(e.code(), "malformed_token" | "invalid_token_algorithm"),
                "{token}: {e}"
            );
        }
        // The signature is checked before the claims are read: garbage with
        // a bad signature is a bad signature...
        let h = B64.encode(r#"{"alg":"HS256"}"#);
        let h = h.trim_end_matches('=');
        let e = p.verify(&format!("{h}.bm90IGpzb24.c2ln")).unwrap_err();
        assert_eq!(e.code(), "invalid_token_signature", "{e}");
        // ... and correctly signed claims that are not JSON are malformed.
        let message = format!("{h}.bm90IGpzb24");
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let e = p.verify(&format!("{message}.{sig}")).unwrap_err();
        assert_eq!(e.code(), "malformed_token", "{e}");
    }

    #[test]
    fn key_errors() {
        assert_eq!(
            JwtPolicy::hmac("", None).unwrap_err(),
            JwtKeyError::EmptySecret
        );
        assert!(matches!(
            JwtPolicy::hmac("s", Some(Algorithm::RS256)).unwrap_err(),
            JwtKeyError::Mismatch(_)
        ));
        assert!(JwtPolicy::hmac("short", None).unwrap().weakness().is_some());
        assert!(JwtPolicy::hmac(SECRET, None).unwrap().weakness().is_none());
        for (pem, words) in [
            ("hello", "not a PEM"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not a usable public key",
            ),
        ] {
            let e = JwtPolicy::public_key_pem(pem.as_bytes(), None).unwrap_err();
            assert!(e.to_string().contains(words), "{pem}: {e}");
        }
        assert!(parse_algorithm("none").is_err());
        assert_eq!(parse_algorithm("rs256").unwrap(), Algorithm::RS256);
        assert_eq!(parse_algorithm("EDDSA").unwrap(), Algorithm::EdDSA);
    }

    #[test]
    fn ec_keys_infer_the_algorithm() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p = JwtPolicy::public_key_pem(pair.public_key_pem().as_bytes(), None).unwrap();
        assert_eq!(p.algorithm(), Algorithm::ES256);
        let e = JwtPolicy::public_key_pem(pair.public_key_pem().as_bytes(), Some(Algorithm::RS256))
            .unwrap_err();
        assert!(e.to_string().contains("ES256"), "{e}");
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let p = JwtPolicy::public_key_pem(pair.public_key_pem().as_bytes(), None).unwrap();
        assert_eq!(p.algorithm(), Algorithm::ES384);
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let p = JwtPolicy::public_key_pem(pair.public_key_pem().as_bytes(), None).unwrap();
        assert_eq!(p.algorithm(), Algorithm::EdDSA);
        // Debug never shows the key.
        let p = JwtPolicy::hmac(SECRET, None).unwrap();
        assert!(!format!("{p:?}").contains(SECRET));
    }
}
