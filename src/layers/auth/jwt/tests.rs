//! Verification of HMAC tokens (claims, leeway, reasons, `alg: none`), and
//! the reading of keys and algorithms.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::policy::B64;
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

#[test]
fn a_claim_may_name_the_budget_group() {
    let p = policy().budget_group_claim("team");
    let c = p
        .verify(&hs(with(good(), "team", json!("platform"))))
        .unwrap();
    let group = c.budget_group.unwrap();
    assert_eq!(
        (group.key.as_str(), group.value.as_str()),
        ("team", "platform")
    );
    // Absent, not a string, empty or too long: no group (the token is still valid).
    for v in [
        Value::Null,
        json!(7),
        json!(""),
        json!("x".repeat(MAX_GROUP_LEN + 1)),
    ] {
        let c = p.verify(&hs(with(good(), "team", v.clone()))).unwrap();
        assert!(c.budget_group.is_none(), "{v}");
    }
    // Without the setting, no group whatever the token says.
    let c = policy()
        .verify(&hs(with(good(), "team", json!("platform"))))
        .unwrap();
    assert!(c.budget_group.is_none());
    assert_eq!(p.describe()["budget_group_claim"], "team");
}
