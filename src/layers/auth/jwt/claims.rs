//! What a verified token says ([`JwtClaims`]) and why a token is refused
//! ([`JwtRejection`]).

use std::fmt;

use super::IDENTITY_PREFIX;

/// What a valid token says about its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtClaims {
    /// `sub`.
    pub subject: String,
    /// `exp` (Unix seconds).
    pub expires: Option<u64>,
    /// The budget group the token names (the claim
    /// [`JwtPolicy::budget_group_claim`](super::JwtPolicy::budget_group_claim)
    /// names), if any.
    pub budget_group: Option<crate::keys::BudgetGroup>,
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
