//! [`JwtPolicy`]: the verification key and the expected claims, and the
//! verification of a token against them.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{json, Value};

use super::key::{algorithm_name, public_key, JwtKeyError, KeyKind};
use super::{JwtClaims, JwtRejection, DEFAULT_LEEWAY};
use crate::keys::BudgetGroup;

/// The longest budget group a token's claim may name.
pub const MAX_GROUP_LEN: usize = 256;

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
    /// The claim naming a client's budget group (`budget_group_claim`).
    budget_group_claim: Option<String>,
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
            .field("budget_group_claim", &self.budget_group_claim)
            .finish_non_exhaustive()
    }
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
            budget_group_claim: None,
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

    /// Take a client's budget group from this claim (a string of at most
    /// [`MAX_GROUP_LEN`] characters; a token without it, or with another
    /// value, has no group).
    pub fn budget_group_claim(mut self, claim: impl Into<String>) -> Self {
        self.budget_group_claim = Some(claim.into());
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
            "budget_group_claim": self.budget_group_claim,
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
                budget_group: self.budget_group_claim.as_ref().and_then(|claim| {
                    match data.claims.get(claim) {
                        Some(Value::String(v))
                            if !v.is_empty()
                                && v.chars().count() <= MAX_GROUP_LEN
                                && !v.chars().any(char::is_control) =>
                        {
                            Some(BudgetGroup {
                                key: claim.clone(),
                                value: v.clone(),
                            })
                        }
                        _ => None,
                    }
                }),
            }),
            _ => Err(JwtRejection::MissingClaim("sub".into())),
        }
    }
}

/// base64url, padded or not (JWTs are unpadded).
pub(super) const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);
