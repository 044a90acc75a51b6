//! `[auth]` (its `jwt = { ... }` included): the raw serde structs and their
//! conversion into the `auth` layer's [`AuthPolicy`], keys gathered from
//! the config, a keys file and the `AUTH_KEY*` environment variables.

use std::path::Path;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::keys::RawKey;
use super::{ConfigError, LayerName, Loader};
use crate::layers::auth::{
    key_problem, merge_keys, read_keys_file, AuthKey, AuthPolicy, KeySource,
};
use crate::layers::jwt::{parse_algorithm, JwtPolicy, DEFAULT_LEEWAY};
use crate::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    keys: Option<Vec<Spanned<String>>>,
    keys_file: Option<Spanned<String>>,
    admin_keys: Option<Vec<Spanned<String>>>,
    header: Option<Spanned<String>>,
    jwt: Option<Spanned<RawJwt>>,
}

/// `[auth] jwt = { ... }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
    secret: Option<Spanned<String>>,
    public_key_file: Option<Spanned<String>>,
    algorithm: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    audience: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
    budget_group_claim: Option<Spanned<String>>,
}

/// The environment variables `auth` reads keys from, in order.
pub(super) fn auth_env_vars() -> impl Iterator<Item = String> {
    std::iter::once("AUTH_KEY".to_string()).chain((1..=99).map(|n| format!("AUTH_KEY_{n:02}")))
}

impl Loader<'_> {
    fn secrets(
        &self,
        list: &Option<Vec<Spanned<String>>>,
        key: &str,
    ) -> Result<Vec<Secret>, ConfigError> {
        let mut out: Vec<Secret> = Vec::new();
        for (i, k) in list.iter().flatten().enumerate() {
            let text = k.get_ref().trim();
            // `${KEY:-}` with KEY unset: no key from this entry.
            if text.is_empty() {
                continue;
            }
            if let Some(problem) = key_problem(text) {
                return Err(self.err(
                    Some(k.span()),
                    format!("{key}[{i}]"),
                    format!("the key {problem}"),
                ));
            }
            if !out.iter().any(|o| o.expose() == text) {
                out.push(Secret::new(text));
            }
        }
        Ok(out)
    }

    /// `[auth]`. `auth` in the order with no key from any source is an
    /// error; the implicit default order leaves `auth` out when there is no
    /// `[auth]` section and no `AUTH_KEY*` variable.
    pub(super) fn auth(
        &self,
        raw: Option<&RawAuth>,
        raw_keys: &[RawKey],
        dir: &Path,
        stack: &mut Vec<LayerName>,
        stack_explicit: bool,
    ) -> Result<AuthPolicy, ConfigError> {
        let mut policy = AuthPolicy::default();
        // `ENABLE_AUTH=false` (the other routers' switch) turns auth off,
        // whatever the config says.
        if (self.env)("ENABLE_AUTH").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            )
        }) {
            stack.retain(|l| *l != LayerName::Auth);
            return Ok(policy);
        }
        if let Some(raw) = raw {
            if let Some(jwt) = &raw.jwt {
                policy.jwt = Some(self.jwt(jwt, dir)?);
            }
            policy.keys = self
                .secrets(&raw.keys, "auth.keys")?
                .into_iter()
                .map(|key| AuthKey::plain(key, KeySource::Config))
                .collect();
            policy.admin_keys = self.secrets(&raw.admin_keys, "auth.admin_keys")?;
            if let Some(h) = &raw.header {
                let name =
                    HeaderName::from_bytes(h.get_ref().trim().to_ascii_lowercase().as_bytes())
                        .map_err(|_| {
                            self.err(
                                Some(h.span()),
                                "auth.header",
                                format!("`{}` is not a valid header name", h.get_ref()),
                            )
                        })?;
                policy.header = Some(name);
            }
        }
        // `AUTH_HEADER_NAME`: the header a key is also accepted from, when
        // `[auth] header` does not name one.
        if policy.header.is_none() {
            if let Some(name) = (self.env)("AUTH_HEADER_NAME").filter(|v| !v.trim().is_empty()) {
                let header = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                    .map_err(|_| ConfigError {
                        file: "environment".into(),
                        line: None,
                        key: Some("AUTH_HEADER_NAME".into()),
                        message: format!("`{name}` is not a valid header name"),
                    })?;
                policy.header = Some(header);
            }
        }
        for var in auth_env_vars() {
            let Some(value) = (self.env)(&var) else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if let Some(problem) = key_problem(value) {
                return Err(ConfigError {
                    file: "environment".into(),
                    line: None,
                    key: Some(var),
                    message: format!("the key {problem}"),
                });
            }
            if !policy.keys.iter().any(|k| k.key.expose() == value) {
                policy
                    .keys
                    .push(AuthKey::plain(Secret::new(value), KeySource::Env(var)));
            }
        }
        let virtual_keys = self.virtual_keys(raw_keys, &policy.keys, &policy.admin_keys)?;
        policy.keys.extend(virtual_keys);
        if let Some(file) = raw.and_then(|r| r.keys_file.as_ref()) {
            let path = dir.join(file.get_ref());
            let keys = read_keys_file(&path)
                .map_err(|e| self.err(Some(file.span()), "auth.keys_file", e.to_string()))?;
            policy.keys = merge_keys(std::mem::take(&mut policy.keys), keys, &policy.admin_keys)
                .map_err(|m| {
                    self.err(
                        Some(file.span()),
                        "auth.keys_file",
                        format!("`{}`: {m}", path.display()),
                    )
                })?;
            policy.keys_file = Some(path);
        }

        if !stack_explicit && raw.is_none() && policy.is_empty() {
            stack.retain(|l| *l != LayerName::Auth);
        }
        if stack.contains(&LayerName::Auth) && policy.is_empty() {
            let line = self
                .line_of_header("auth")
                .or_else(|| self.line_of_header("stack"));
            let from_file = if policy.keys_file.is_some() {
                " (the keys file holds none)"
            } else {
                ""
            };
            return Err(ConfigError {
                file: self.file.clone(),
                line,
                key: Some("auth".into()),
                message: format!(
                    "`auth` is in [stack] order but no key is configured{from_file}; set [auth] keys, keys_file, admin_keys or jwt, a [[keys]] entry, or the environment variable AUTH_KEY (or AUTH_KEY_01..AUTH_KEY_99)"
                ),
            });
        }
        Ok(policy)
    }

    /// `[auth] jwt`: an HMAC secret or a public key file (relative to the
    /// config file), the algorithm (inferred when absent), issuer, audience
    /// and leeway. A missing secret, an unreadable key file or a bad PEM is
    /// an error here, at start-up.
    fn jwt(&self, raw: &Spanned<RawJwt>, dir: &Path) -> Result<JwtPolicy, ConfigError> {
        let span = raw.span();
        let raw = raw.get_ref();
        let algorithm = match &raw.algorithm {
            None => None,
            Some(a) => Some(
                parse_algorithm(a.get_ref())
                    .map_err(|e| self.err(Some(a.span()), "auth.jwt.algorithm", e.to_string()))?,
            ),
        };
        // The key the error is about: the algorithm when one was given, else the key's own.
        let blame = |key_span: std::ops::Range<usize>, key: &str| match &raw.algorithm {
            Some(a) => (a.span(), "auth.jwt.algorithm".to_string()),
            None => (key_span, key.to_string()),
        };
        let mut policy = match (&raw.secret, &raw.public_key_file) {
            (Some(_), Some(file)) => {
                return Err(self.err(
                    Some(file.span()),
                    "auth.jwt",
                    "set either `secret` (HS256) or `public_key_file` (RS256, ES256, ...), not both",
                ))
            }
            (None, None) => {
                return Err(self.err(
                    Some(span),
                    "auth.jwt",
                    "needs `secret` (an HMAC secret, HS256) or `public_key_file` (a PEM public key: RS256, ES256, ...)",
                ))
            }
            (Some(secret), None) => {
                if secret.get_ref().is_empty() {
                    return Err(self.err(
                        Some(secret.span()),
                        "auth.jwt.secret",
                        "is empty (an unset `${VAR:-}`?); set the secret, e.g. secret = \"${JWT_SECRET}\"",
                    ));
                }
                JwtPolicy::hmac(secret.get_ref(), algorithm).map_err(|e| {
                    let (span, key) = blame(secret.span(), "auth.jwt.secret");
                    self.err(Some(span), key, e.to_string())
                })?
            }
            (None, Some(file)) => {
                let path = dir.join(file.get_ref().trim());
                let pem = std::fs::read(&path).map_err(|e| {
                    self.err(
                        Some(file.span()),
                        "auth.jwt.public_key_file",
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                })?;
                JwtPolicy::public_key_pem(&pem, algorithm).map_err(|e| {
                    let (span, key) = match e {
                        crate::layers::jwt::JwtKeyError::Mismatch(_) => {
                            blame(file.span(), "auth.jwt.public_key_file")
                        }
                        _ => (file.span(), "auth.jwt.public_key_file".to_string()),
                    };
                    let message = match e {
                        crate::layers::jwt::JwtKeyError::BadKey(why) => {
                            format!("`{}` {why}", path.display())
                        }
                        other => other.to_string(),
                    };
                    self.err(Some(span), key, message)
                })?
            }
        };
        if let Some(iss) = raw.issuer.as_ref().map(|i| i.get_ref().trim()) {
            if !iss.is_empty() {
                policy = policy.issuer(iss);
            }
        }
        if let Some(aud) = raw.audience.as_ref().map(|a| a.get_ref().trim()) {
            if !aud.is_empty() {
                policy = policy.audience(aud);
            }
        }
        let leeway = match &raw.leeway {
            Some(l) if matches!(l.get_ref().trim(), "0" | "0s" | "0ms") => {
                std::time::Duration::ZERO
            }
            other => self.duration(other, "auth.jwt.leeway", DEFAULT_LEEWAY)?,
        };
        if leeway > std::time::Duration::from_secs(600) {
            let l = raw.leeway.as_ref().map(Spanned::span);
            return Err(self.err(
                l,
                "auth.jwt.leeway",
                "is longer than 10m; the leeway only absorbs clock skew (the default is 30s)",
            ));
        }
        let mut policy = policy.leeway(leeway);
        if let Some(claim) = &raw.budget_group_claim {
            let name = claim.get_ref().trim();
            if name.is_empty() {
                return Err(self.err(
                    Some(claim.span()),
                    "auth.jwt.budget_group_claim",
                    "is empty; name the claim that holds a client's budget group, e.g. \"team\"",
                ));
            }
            policy = policy.budget_group_claim(name);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::layers::auth::KeySource;
    use crate::stack::LayerName;

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(text, Path::new("c.toml"), &move |n| {
            vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn implicit_order_has_auth_only_with_keys() {
        let c = parse(MIN).unwrap();
        assert!(!c.stack.contains(&LayerName::Auth));
        assert!(c.stack.contains(&LayerName::Headers));
        let c = parse_env(MIN, &[("AUTH_KEY", "sk-env")]).unwrap();
        assert!(c.stack.contains(&LayerName::Auth));
        let c = parse(&format!("{MIN}[auth]\nkeys = [\"sk-a\"]\n")).unwrap();
        assert!(c.stack.contains(&LayerName::Auth));
    }

    #[test]
    fn auth_without_any_key_is_an_error() {
        let e = parse(&format!("[stack]\norder = [\"auth\"]\n\n{MIN}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.message.contains("no key"), "{e}");
        assert!(e.message.contains("AUTH_KEY"), "{e}");
        // An empty section with the implicit order: an error too.
        let e = parse(&format!("{MIN}\n[auth]\nkeys = [\"${{PROXY_KEY:-}}\"]\n")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
    }

    #[test]
    fn enable_auth_false_and_auth_header_name() {
        let text = format!(
            "[stack]\norder = [\"auth\", \"failover\"]\n\n[auth]\nkeys = [\"sk-cfg\"]\n\n{MIN}"
        );
        let off = |n: &str| (n == "ENABLE_AUTH").then(|| "False".to_string());
        let c = Config::parse(&text, Path::new("c.toml"), &off).unwrap();
        assert!(!c.stack.contains(&LayerName::Auth), "{:?}", c.stack);
        assert!(c.auth.keys.is_empty());
        let named = |n: &str| match n {
            "AUTH_HEADER_NAME" => Some("X-Router-Key".to_string()),
            "ENABLE_AUTH" => Some("true".to_string()),
            _ => None,
        };
        let c = Config::parse(&text, Path::new("c.toml"), &named).unwrap();
        assert!(c.stack.contains(&LayerName::Auth));
        assert_eq!(c.auth.header.as_ref().unwrap(), "x-router-key");
        let bad = |n: &str| (n == "AUTH_HEADER_NAME").then(|| "bad name".to_string());
        let e = Config::parse(&text, Path::new("c.toml"), &bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("AUTH_HEADER_NAME"), "{e}");
    }

    #[test]
    fn keys_from_every_source() {
        let dir =
            std::env::temp_dir().join(format!("llm-router-policy-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keys.txt"), "# comment\nsk-file\n\nsk-cfg\n").unwrap();
        let text = format!(
            "[stack]\norder = [\"auth\"]\n\n[auth]\nkeys = [\"sk-cfg\", \"${{PROXY_KEY}}\"]\nkeys_file = \"keys.txt\"\nadmin_keys = [\"sk-admin\"]\nheader = \"X-Proxy-Key\"\n\n{MIN}"
        );
        let env = |n: &str| match n {
            "PROXY_KEY" => Some("sk-subst".to_string()),
            "AUTH_KEY" => Some("sk-env0".to_string()),
            "AUTH_KEY_01" => Some("sk-env1".to_string()),
            "AUTH_KEY_99" => Some("sk-env99".to_string()),
            "AUTH_KEY_1" => Some("not-read".to_string()),
            _ => None,
        };
        let c = Config::parse(&text, &dir.join("config.toml"), &env).unwrap();
        let keys: Vec<(&str, String)> = c
            .auth
            .keys
            .iter()
            .map(|k| (k.key.expose(), k.source.to_string()))
            .collect();
        assert_eq!(
            keys,
            [
                ("sk-cfg", "config".to_string()),
                ("sk-subst", "config".to_string()),
                ("sk-env0", "env AUTH_KEY".to_string()),
                ("sk-env1", "env AUTH_KEY_01".to_string()),
                ("sk-env99", "env AUTH_KEY_99".to_string()),
                ("sk-file", "keys_file".to_string()),
            ]
        );
        assert_eq!(c.auth.keys[5].source, KeySource::File);
        assert_eq!(c.auth.admin_keys.len(), 1);
        assert_eq!(c.auth.header.as_ref().unwrap(), "x-proxy-key");
        assert_eq!(
            c.auth.keys_file.as_deref(),
            Some(dir.join("keys.txt").as_path())
        );
        // The keys never show in Debug.
        let debug = format!("{:?}", c.auth);
        assert!(
            !debug.contains("sk-file") && !debug.contains("sk-admin"),
            "{debug}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auth_errors_name_line_and_key() {
        let e = parse(&format!("{MIN}\n[auth]\nkeys_file = \"nope.txt\"\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(10), Some("auth.keys_file")),
            "{e}"
        );
        assert!(e.message.contains("nope.txt"), "{e}");
        let e = parse(&format!("{MIN}\n[auth]\nkeys = [\"ok\", \"two words\"]\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(10), Some("auth.keys[1]")),
            "{e}"
        );
        assert!(!e.message.contains("two words"), "the key leaked: {e}");
        let e = parse(&format!(
            "{MIN}\n[auth]\nkeys = [\"k\"]\nheader = \"bad header\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth.header"), "{e}");
        let e = parse(&format!("{MIN}\n[auth]\njwt = {{ issuer = \"i\" }}\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(10), Some("auth.jwt")),
            "{e}"
        );
        assert!(e.message.contains("secret"), "{e}");
        let e = parse(&format!("{MIN}\n[auth]\nkey = [\"k\"]\n")).unwrap_err();
        assert!(e.message.contains("did you mean `keys`"), "{e}");
        let e = parse_env(MIN, &[("AUTH_KEY_02", "bad key")]).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.key.as_deref()),
            ("environment", Some("AUTH_KEY_02"))
        );
    }
}
