//! End-to-end tests of JWT clients (`[auth] jwt`): the real server in-process
//! on 127.0.0.1:0, tokens signed in the test with keys generated in the test
//! (HS256 secret, RSA via the rsa crate, EC P-256 via rcgen), every reason a
//! token is refused, the `sub` as the client identity of `rate_limit` and the
//! counters, and the config errors of `jwt`.

mod support;

use std::path::{Path, PathBuf};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use support::{
    bounded, chat_body, client, json_of, model, openai_backend, MockUpstream, Proxy, Reply,
};

const SECRET: &str = "test-jwt-secret-0123456789abcdefghij";
const ISS: &str = "https://idp.example";
const AUD: &str = "llm-router";
const CLIENT_KEY: &str = "sk-client-0123456789abcdef";
const ADMIN_KEY: &str = "sk-admin-0123456789abcdef";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims that pass: `sub`, the expected `iss` and `aud`, `exp` in 10 min.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISS, "aud": AUD, "iat": now(), "exp": now() + 600})
}

fn set(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn hs256(claims: &Value) -> String {
    hs256_with(claims, SECRET)
}

fn hs256_with(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned token (`alg: none`, empty signature).
fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_vec(claims).unwrap())
    )
}

/// A fresh directory for config and key files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-router-jwt-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MOCK: &str = "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n";

/// `[auth]` with `jwt` (and `extra` keys) in front of the mock backend.
fn jwt_config(order: &str, jwt: &str, extra_auth: &str, extra: &str) -> String {
    format!("[stack]\norder = {order}\n\n[auth]\njwt = {jwt}\n{extra_auth}\n{extra}\n{MOCK}")
}

fn hs_jwt() -> String {
    format!("{{ secret = \"${{JWT_SECRET}}\", issuer = \"{ISS}\", audience = \"{AUD}\" }}")
}

fn env(name: &str) -> Option<String> {
    (name == "JWT_SECRET").then(|| SECRET.to_string())
}

async fn start_hs(extra_auth: &str, extra: &str) -> Proxy {
    let text = jwt_config(
        r#"["auth", "rate_limit", "failover"]"#,
        &hs_jwt(),
        extra_auth,
        extra,
    );
    Proxy::start_with(&text, Path::new("config.toml"), env).await
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    bounded("the proxy's answer", request.send())
        .await
        .expect("request failed")
}

/// POST a chat request with `token` as a Bearer credential: (status, body).
async fn chat(proxy: &Proxy, token: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(&chat_body("echo"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let r = send(req).await;
    let status = r.status().as_u16();
    (status, json_of(r).await)
}

/// Assert a 401 in the OpenAI format with `code`, whose message holds
/// `words` and never the secret; returns the message.
fn assert_refused(status: u16, body: &Value, code: &str, words: &str) -> String {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(words), "{code}: {message}");
    assert!(
        !body.to_string().contains(SECRET),
        "the secret leaked: {body}"
    );
    message
}

#[tokio::test]
async fn hs256_token_is_a_client() {
    let proxy = start_hs("", "").await;
    let (status, body) = chat(&proxy, Some(&hs256(&claims("alice")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    // Also in x-api-key, and on the Anthropic endpoint.
    let r = send(
        client()
            .post(proxy.at("/v1/messages"))
            .header("x-api-key", hs256(&claims("alice")))
            .json(&json!({"model": "echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    // And for the model list.
    let r = send(
        client()
            .get(proxy.at("/v1/models"))
            .bearer_auth(hs256(&claims("alice"))),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Within the 30 s leeway: still accepted.
    let t = hs256(&set(claims("alice"), "exp", json!(now() - 10)));
    assert_eq!(chat(&proxy, Some(&t)).await.0, 200);
    let t = hs256(&set(claims("alice"), "nbf", json!(now() + 10)));
    assert_eq!(chat(&proxy, Some(&t)).await.0, 200);
}

#[tokio::test]
async fn hs256_refusals_say_why() {
    let proxy = start_hs("", "").await;
    let good = claims("alice");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            hs256(&set(good.clone(), "exp", json!(now() - 120))),
            "token_expired",
            "expired",
        ),
        (
            "nbf in the future",
            hs256(&set(good.clone(), "nbf", json!(now() + 120))),
            "token_not_yet_valid",
            "not valid yet",
        ),
        (
            "wrong issuer",
            hs256(&set(good.clone(), "iss", json!("https://evil.example"))),
            "invalid_token_issuer",
            "issuer",
        ),
        (
            "wrong audience",
            hs256(&set(good.clone(), "aud", json!("another-service"))),
            "invalid_token_audience",
            "audience",
        ),
        (
            "no issuer",
            hs256(&json!({"sub": "alice", "aud": AUD, "exp": now() + 600})),
            "invalid_token_claims",
            "`iss`",
        ),
        (
            "no sub",
            hs256(&json!({"iss": ISS, "aud": AUD, "exp": now() + 600})),
            "invalid_token_claims",
            "`sub`",
        ),
        (
            "no exp",
            hs256(&json!({"sub": "alice", "iss": ISS, "aud": AUD})),
            "invalid_token_claims",
            "`exp`",
        ),
        (
            "bad signature",
            hs256_with(&good, "another-secret-0123456789abcdefghij"),
            "invalid_token_signature",
            "signature",
        ),
        (
            "alg none",
            unsigned(&good),
            "invalid_token_algorithm",
            "unsigned",
        ),
        (
            "HS512 instead of HS256",
            encode(
                &Header::new(Algorithm::HS512),
                &good,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap(),
            "invalid_token_algorithm",
            "HS256",
        ),
        (
            "malformed",
            "abc.def.ghi".to_string(),
            "malformed_token",
            "malformed",
        ),
        (
            "malformed header JSON",
            format!("{}.{}.sig", b64(b"{not json"), b64(b"{}")),
            "malformed_token",
            "malformed",
        ),
    ];
    for (what, token, code, words) in cases {
        let (status, body) = chat(&proxy, Some(&token)).await;
        let message = assert_refused(status, &body, code, words);
        assert!(
            !message.contains(&token),
            "{what}: the token is echoed: {message}"
        );
    }
    // A tampered payload (sub changed, signature kept).
    let token = hs256(&good);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims("mallory")).unwrap()),
        parts[2]
    );
    let (status, body) = chat(&proxy, Some(&forged)).await;
    assert_refused(status, &body, "invalid_token_signature", "signature");
    // Not a JWT at all, and nothing at all.
    let (status, body) = chat(&proxy, Some("not-a-token")).await;
    assert_refused(status, &body, "invalid_api_key", "Invalid API key or token");
    let (status, body) = chat(&proxy, None).await;
    assert_refused(status, &body, "missing_api_key", "token");

    // In the Anthropic format on /v1/messages, the reason in the message.
    let r = send(
        client()
            .post(proxy.at("/v1/messages"))
            .bearer_auth(hs256(&set(good.clone(), "exp", json!(now() - 120))))
            .json(&json!({"model": "echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body = json_of(r).await;
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn jwt_alongside_keys_and_never_admin() {
    let proxy = start_hs(
        &format!("keys = [\"{CLIENT_KEY}\"]\nadmin_keys = [\"{ADMIN_KEY}\"]\n"),
        "",
    )
    .await;
    assert_eq!(chat(&proxy, Some(CLIENT_KEY)).await.0, 200);
    assert_eq!(chat(&proxy, Some(&hs256(&claims("alice")))).await.0, 200);
    let (status, body) = chat(&proxy, Some("sk-wrong-0123456789")).await;
    assert_refused(status, &body, "invalid_api_key", "Invalid");
    // A valid token on an admin endpoint: 403; the admin key: 200.
    let r = send(
        client()
            .get(proxy.at("/auth/metrics"))
            .bearer_auth(hs256(&claims("alice"))),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(json_of(r).await["error"]["code"], "admin_key_required");
    // An expired token on an admin endpoint: 401 with the reason.
    let r = send(
        client()
            .get(proxy.at("/auth/status"))
            .bearer_auth(hs256(&set(claims("alice"), "exp", json!(now() - 120)))),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"]["code"], "token_expired");

    // The counters: per subject (`jwt:alice`), refusals by reason; the
    // status shows how tokens are checked, never the secret.
    let r = send(
        client()
            .get(proxy.at("/auth/metrics"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(r.status(), 200);
    let m = json_of(r).await;
    let alice = m["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "jwt:alice")
        .unwrap_or_else(|| panic!("no jwt:alice in {m}"));
    assert!(alice["requests"].as_u64().unwrap() >= 1, "{m}");
    assert_eq!(m["rejected"]["invalid_token"]["token_expired"], 1, "{m}");
    let r = send(
        client()
            .get(proxy.at("/auth/status"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    let status = json_of(r).await;
    assert_eq!(status["jwt"]["algorithm"], "HS256", "{status}");
    assert_eq!(status["jwt"]["issuer"], ISS, "{status}");
    assert_eq!(status["jwt"]["leeway_secs"], 30, "{status}");
    assert!(!status.to_string().contains(SECRET), "{status}");
}

#[tokio::test]
async fn each_subject_has_its_own_rate_limit() {
    let proxy = start_hs(
        &format!("admin_keys = [\"{ADMIN_KEY}\"]\n"),
        "[rate_limit]\nrequests = 2\nwindow = \"60s\"\n",
    )
    .await;
    let alice = hs256(&claims("alice"));
    let bob = hs256(&claims("bob"));
    assert_eq!(chat(&proxy, Some(&alice)).await.0, 200);
    assert_eq!(chat(&proxy, Some(&alice)).await.0, 200);
    let (status, body) = chat(&proxy, Some(&alice)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Bob is another client.
    assert_eq!(chat(&proxy, Some(&bob)).await.0, 200);
    // A new token for alice is still alice: the limit follows the subject,
    // not the token.
    let again = hs256(&set(claims("alice"), "exp", json!(now() + 900)));
    assert_ne!(again, alice);
    assert_eq!(chat(&proxy, Some(&again)).await.0, 429);
    assert_eq!(chat(&proxy, Some(&bob)).await.0, 200);
    assert_eq!(chat(&proxy, Some(&bob)).await.0, 429);
    // The admin view names the subjects (an identity, not a secret to mask).
    let r = send(
        client()
            .get(proxy.at("/router/rate-limits"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    let limits = json_of(r).await.to_string();
    assert!(
        limits.contains("jwt:alice") && limits.contains("jwt:bob"),
        "{limits}"
    );
}

#[tokio::test]
async fn the_token_never_reaches_the_upstream() {
    let upstream = MockUpstream::start("up", Reply::Chat).await;
    let text = format!(
        "[stack]\norder = [\"auth\", \"failover\"]\n\n[auth]\njwt = {}\n\n{}{}",
        hs_jwt(),
        openai_backend("up", &upstream.base_url(), "api_key = \"sk-upstream-key\""),
        model("echo", "up", None),
    );
    let proxy = Proxy::start_with(&text, Path::new("config.toml"), env).await;
    let token = hs256(&claims("alice"));
    assert_eq!(chat(&proxy, Some(&token)).await.0, 200);
    let seen = upstream.only_request();
    assert_eq!(seen.header("authorization"), Some("Bearer sk-upstream-key"));
    let all: String = seen
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    assert!(!all.contains(&token), "{all}");
}

/// An RSA key pair: (private PKCS#8 PEM, public SPKI PEM).
fn rsa_pair() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (private, public)
}

/// A proxy whose `jwt` verifies with the public key in `jwt.pem` (next to
/// the config file), `algorithm` given or inferred.
async fn start_with_key(test: &str, public_pem: &str, algorithm: Option<&str>) -> Proxy {
    let dir = temp_dir(test);
    std::fs::write(dir.join("jwt.pem"), public_pem).unwrap();
    let algorithm = algorithm
        .map(|a| format!(", algorithm = \"{a}\""))
        .unwrap_or_default();
    let jwt = format!(
        "{{ public_key_file = \"jwt.pem\"{algorithm}, issuer = \"{ISS}\", audience = \"{AUD}\" }}"
    );
    let text = jwt_config(r#"["auth", "failover"]"#, &jwt, "", "");
    Proxy::start_with(&text, &dir.join("config.toml"), |_| None).await
}

#[tokio::test]
async fn rs256_with_a_public_key_file() {
    let (private, public) = rsa_pair();
    let proxy = start_with_key("rs256", &public, None).await;
    let sign = |claims: &Value, alg: Algorithm, key: &EncodingKey| {
        encode(&Header::new(alg), claims, key).unwrap()
    };
    let key = EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    let token = sign(&claims("carol"), Algorithm::RS256, &key);
    assert_eq!(chat(&proxy, Some(&token)).await.0, 200);
    // Expired and wrong-audience tokens signed with the right key.
    let t = sign(
        &set(claims("carol"), "exp", json!(now() - 120)),
        Algorithm::RS256,
        &key,
    );
    let (status, body) = chat(&proxy, Some(&t)).await;
    assert_refused(status, &body, "token_expired", "expired");
    let t = sign(
        &set(claims("carol"), "aud", json!("x")),
        Algorithm::RS256,
        &key,
    );
    let (status, body) = chat(&proxy, Some(&t)).await;
    assert_refused(status, &body, "invalid_token_audience", "audience");
    // Signed by another RSA key: bad signature.
    let (other, _) = rsa_pair();
    let t = sign(
        &claims("carol"),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(other.as_bytes()).unwrap(),
    );
    let (status, body) = chat(&proxy, Some(&t)).await;
    assert_refused(status, &body, "invalid_token_signature", "signature");
    // The classic confusion: HS256 "signed" with the public key as the
    // HMAC secret. Refused by algorithm, before any HMAC is computed.
    let t = sign(
        &claims("carol"),
        Algorithm::HS256,
        &EncodingKey::from_secret(public.as_bytes()),
    );
    let (status, body) = chat(&proxy, Some(&t)).await;
    assert_refused(status, &body, "invalid_token_algorithm", "RS256");
    let (status, body) = chat(&proxy, Some(&unsigned(&claims("carol")))).await;
    assert_refused(status, &body, "invalid_token_algorithm", "unsigned");
}

#[tokio::test]
async fn es256_with_a_public_key_file() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    for algorithm in [None, Some("ES256")] {
        let proxy = start_with_key("es256", &pair.public_key_pem(), algorithm).await;
        let token = encode(&Header::new(Algorithm::ES256), &claims("dave"), &key).unwrap();
        assert_eq!(chat(&proxy, Some(&token)).await.0, 200, "{algorithm:?}");
        let t = encode(
            &Header::new(Algorithm::ES256),
            &set(claims("dave"), "nbf", json!(now() + 300)),
            &key,
        )
        .unwrap();
        let (status, body) = chat(&proxy, Some(&t)).await;
        assert_refused(status, &body, "token_not_yet_valid", "not valid yet");
        let t = encode(
            &Header::new(Algorithm::ES256),
            &set(claims("dave"), "iss", json!("https://other.example")),
            &key,
        )
        .unwrap();
        let (status, body) = chat(&proxy, Some(&t)).await;
        assert_refused(status, &body, "invalid_token_issuer", "issuer");
        // Another EC key: bad signature.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let t = encode(
            &Header::new(Algorithm::ES256),
            &claims("dave"),
            &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let (status, body) = chat(&proxy, Some(&t)).await;
        assert_refused(status, &body, "invalid_token_signature", "signature");
    }
}

// ---------------------------------------------------------------------------
// Config

fn parse_in(
    dir: &Path,
    jwt: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<llm_router::config::Config, llm_router::config::ConfigError> {
    // Line 4 is the `jwt` line.
    let text = format!("[stack]\norder = [\"auth\", \"failover\"]\n[auth]\njwt = {jwt}\n\n{MOCK}");
    llm_router::config::Config::parse(&text, &dir.join("config.toml"), &env)
}

#[test]
fn jwt_only_auth_is_valid() {
    let dir = temp_dir("config-ok");
    let c = parse_in(&dir, &hs_jwt(), env).unwrap();
    assert!(c.auth.keys.is_empty() && c.auth.admin_keys.is_empty());
    let jwt = c.auth.jwt.as_ref().expect("jwt parsed");
    assert_eq!(jwt.algorithm(), Algorithm::HS256);
    // The implicit order keeps `auth` for a jwt-only section too.
    let text = format!("[auth]\njwt = {}\n\n{MOCK}", hs_jwt());
    let c = llm_router::config::Config::parse(&text, &dir.join("config.toml"), &env).unwrap();
    assert!(c.stack.contains(&llm_router::stack::LayerName::Auth));
    // Debug never prints the secret.
    assert!(!format!("{c:?}").contains(SECRET));
    // A short secret is valid but warned about.
    let c = parse_in(&dir, "{ secret = \"short\" }", |_| None).unwrap();
    let warnings = c.warnings().join("\n");
    assert!(warnings.contains("auth.jwt.secret"), "{warnings}");
    assert!(!warnings.contains("short\""), "{warnings}");
    // Leeway and an explicit algorithm.
    let c = parse_in(
        &dir,
        &format!("{{ secret = \"{SECRET}\", algorithm = \"HS512\", leeway = \"5s\" }}"),
        |_| None,
    )
    .unwrap();
    let jwt = c.auth.jwt.unwrap();
    assert_eq!(jwt.algorithm(), Algorithm::HS512);
    assert_eq!(jwt.describe()["leeway_secs"], 5);
}

#[test]
fn jwt_config_errors_name_file_line_and_key() {
    let dir = temp_dir("config-errors");
    let (_, rsa_public) = rsa_pair();
    std::fs::write(dir.join("rsa.pem"), &rsa_public).unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.join("ec.pem"), ec.public_key_pem()).unwrap();
    std::fs::write(dir.join("private.pem"), ec.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("garbage.pem"),
        "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("text.pem"), "hello\n").unwrap();

    let cases: &[(&str, &str, &str)] = &[
        // (jwt table, key, words in the message)
        ("{ secret = \"${JWT_SECRET}\" }", "JWT_SECRET", "JWT_SECRET"),
        (
            "{ secret = \"${JWT_SECRET:-}\" }",
            "auth.jwt.secret",
            "empty",
        ),
        ("{ issuer = \"i\" }", "auth.jwt", "secret"),
        (
            "{ secret = \"s\", public_key_file = \"rsa.pem\" }",
            "auth.jwt",
            "not both",
        ),
        (
            "{ public_key_file = \"missing.pem\" }",
            "auth.jwt.public_key_file",
            "missing.pem",
        ),
        (
            "{ public_key_file = \"garbage.pem\" }",
            "auth.jwt.public_key_file",
            "garbage.pem",
        ),
        (
            "{ public_key_file = \"text.pem\" }",
            "auth.jwt.public_key_file",
            "not a PEM",
        ),
        (
            "{ public_key_file = \"private.pem\" }",
            "auth.jwt.public_key_file",
            "private key",
        ),
        (
            "{ public_key_file = \"ec.pem\", algorithm = \"RS256\" }",
            "auth.jwt.algorithm",
            "ES256",
        ),
        (
            "{ public_key_file = \"rsa.pem\", algorithm = \"HS256\" }",
            "auth.jwt.algorithm",
            "secret",
        ),
        (
            "{ secret = \"s\", algorithm = \"none\" }",
            "auth.jwt.algorithm",
            "unknown algorithm",
        ),
        (
            "{ secret = \"s\", algorithm = \"ES256\" }",
            "auth.jwt.algorithm",
            "public key",
        ),
        (
            "{ secret = \"s\", leeway = \"1h\" }",
            "auth.jwt.leeway",
            "10m",
        ),
        (
            "{ secret = \"s\", leeway = \"ten\" }",
            "auth.jwt.leeway",
            "",
        ),
        ("{ secret = \"s\", issuers = \"i\" }", "auth.jwt", "issuer"),
    ];
    for (jwt, key, words) in cases {
        let e = parse_in(&dir, jwt, |_| None).unwrap_err();
        assert!(
            e.key.as_deref().is_some_and(|k| k.contains(key)) || e.message.contains(key),
            "{jwt}: {e}"
        );
        assert_eq!(e.line, Some(4), "{jwt}: {e}");
        assert!(e.message.contains(words), "{jwt}: {e}");
        assert!(e.file.ends_with("config.toml"), "{jwt}: {e}");
    }
    // The RSA and EC keys themselves are fine, and the algorithm is inferred.
    let c = parse_in(&dir, "{ public_key_file = \"rsa.pem\" }", |_| None).unwrap();
    assert_eq!(c.auth.jwt.unwrap().algorithm(), Algorithm::RS256);
    let c = parse_in(&dir, "{ public_key_file = \"ec.pem\" }", |_| None).unwrap();
    assert_eq!(c.auth.jwt.unwrap().algorithm(), Algorithm::ES256);
    let c = parse_in(
        &dir,
        "{ public_key_file = \"rsa.pem\", algorithm = \"PS256\" }",
        |_| None,
    )
    .unwrap();
    assert_eq!(c.auth.jwt.unwrap().algorithm(), Algorithm::PS256);
}
