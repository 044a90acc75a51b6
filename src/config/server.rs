//! `[server]`: its raw serde struct, its validation into [`ServerConfig`]
//! and the `listen` address syntax.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader, ServerConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<String>>,
    body_limit: Option<Spanned<i64>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    header_read_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    body_read_timeout: Option<Spanned<String>>,
}

impl Loader<'_> {
    pub(super) fn server(
        &self,
        raw: Option<RawServer>,
        dir: &Path,
    ) -> Result<ServerConfig, ConfigError> {
        let mut server = ServerConfig::default();
        let Some(raw) = raw else { return Ok(server) };
        if let Some(listen) = &raw.listen {
            let (host, port) = parse_listen(listen.get_ref())
                .map_err(|m| self.err(Some(listen.span()), "server.listen", m))?;
            server.host = host;
            server.port = port;
        }
        if let Some(limit) = &raw.body_limit {
            let value = *limit.get_ref();
            if value <= 0 {
                return Err(self.err(
                    Some(limit.span()),
                    "server.body_limit",
                    "must be a positive number of bytes",
                ));
            }
            server.body_limit = value as u64;
        }
        server.shutdown_timeout = self.duration(
            &raw.shutdown_timeout,
            "server.shutdown_timeout",
            ServerConfig::DEFAULT_SHUTDOWN_TIMEOUT,
        )?;
        if let Some(max) = &raw.max_connections {
            let value = *max.get_ref();
            server.max_connections = u32::try_from(value)
                .ok()
                .filter(|n| *n > 0 && *n <= ServerConfig::MAX_MAX_CONNECTIONS)
                .ok_or_else(|| {
                    self.err(
                        Some(max.span()),
                        "server.max_connections",
                        format!(
                            "must be between 1 and {}",
                            ServerConfig::MAX_MAX_CONNECTIONS
                        ),
                    )
                })?;
        }
        server.header_read_timeout = self.duration(
            &raw.header_read_timeout,
            "server.header_read_timeout",
            ServerConfig::DEFAULT_HEADER_READ_TIMEOUT,
        )?;
        server.idle_timeout = self.duration(
            &raw.idle_timeout,
            "server.idle_timeout",
            ServerConfig::DEFAULT_IDLE_TIMEOUT,
        )?;
        server.body_read_timeout = self.duration(
            &raw.body_read_timeout,
            "server.body_read_timeout",
            ServerConfig::DEFAULT_BODY_READ_TIMEOUT,
        )?;
        let resolve = |p: &Spanned<String>| dir.join(p.get_ref());
        server.tls_cert = raw.tls_cert.as_ref().map(resolve);
        server.tls_key = raw.tls_key.as_ref().map(resolve);
        match (&raw.tls_cert, &raw.tls_key) {
            (Some(c), None) => {
                return Err(self.err(
                    Some(c.span()),
                    "server.tls_cert",
                    "tls_cert is set but tls_key is not; set both to serve HTTPS",
                ))
            }
            (None, Some(k)) => {
                return Err(self.err(
                    Some(k.span()),
                    "server.tls_key",
                    "tls_key is set but tls_cert is not; set both to serve HTTPS",
                ))
            }
            _ => {}
        }
        for (value, key) in [
            (&raw.tls_cert, "server.tls_cert"),
            (&raw.tls_key, "server.tls_key"),
        ] {
            if let Some(v) = value {
                let path = resolve(v);
                if !path.is_file() {
                    return Err(self.err(
                        Some(v.span()),
                        key,
                        format!("file `{}` does not exist", path.display()),
                    ));
                }
            }
        }
        Ok(server)
    }
}

/// Split `host:port` (`[v6]:port` for IPv6).
fn parse_listen(listen: &str) -> Result<(String, u16), String> {
    let hint = "must be host:port, like \"127.0.0.1:8080\" or \"[::1]:8080\"";
    let (host, port) = listen
        .trim()
        .rsplit_once(':')
        .filter(|_| !listen.trim().ends_with(']'))
        .ok_or_else(|| format!("`{listen}` has no port; {hint}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{listen}` has no host; {hint}"));
    }
    let valid_host = host.parse::<std::net::IpAddr>().is_ok()
        || host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid_host {
        return Err(format!(
            "`{host}` is not an IP address or host name; {hint}"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0-65535); {hint}"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("[::1]:80").unwrap(), ("::1".into(), 80));
        assert_eq!(
            parse_listen("localhost:0").unwrap(),
            ("localhost".into(), 0)
        );
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
        assert!(parse_listen(":80").is_err());
        assert!(parse_listen("bad host:80").is_err());
    }
}
