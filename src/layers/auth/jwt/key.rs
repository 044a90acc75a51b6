//! The key and algorithm of [`JwtPolicy`](super::JwtPolicy): algorithm
//! names, and the reading of a public key PEM (RSA, EC P-256/P-384,
//! Ed25519) into a verification key of a known kind.

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// The algorithms `algorithm = "..."` accepts, by name.
pub const ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

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

pub(super) fn algorithm_name(a: Algorithm) -> String {
    format!("{a:?}")
}

/// The kind of a public key found in a PEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA public key",
            KeyKind::P256 => "EC P-256 public key",
            KeyKind::P384 => "EC P-384 public key",
            KeyKind::Ed25519 => "Ed25519 public key",
        }
    }

    pub(super) fn default_algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::P384 => Algorithm::ES384,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }

    pub(super) fn allows(self, a: Algorithm) -> bool {
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
pub(super) fn public_key(pem: &[u8]) -> Result<(DecodingKey, KeyKind), JwtKeyError> {
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
