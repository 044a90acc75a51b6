//! `[cors]`: the raw serde struct and its conversion into the `cors`
//! layer's [`CorsPolicy`].

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::layers::cors::{CorsPolicy, HeaderList, Origins};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    allow_origins: Option<Spanned<Vec<Spanned<String>>>>,
    allow_methods: Option<Vec<Spanned<String>>>,
    allow_headers: Option<Vec<Spanned<String>>>,
    expose_headers: Option<Vec<Spanned<String>>>,
    max_age: Option<Spanned<String>>,
    allow_credentials: Option<bool>,
}

impl Loader<'_> {
    fn header_list(
        &self,
        list: &Option<Vec<Spanned<String>>>,
        key: &str,
        default: HeaderList,
    ) -> Result<HeaderList, ConfigError> {
        let Some(list) = list else { return Ok(default) };
        if list.iter().any(|h| h.get_ref().trim() == "*") {
            return Ok(HeaderList::Any);
        }
        list.iter()
            .enumerate()
            .map(|(i, h)| {
                HeaderName::from_bytes(h.get_ref().trim().to_ascii_lowercase().as_bytes()).map_err(
                    |_| {
                        self.err(
                            Some(h.span()),
                            format!("{key}[{i}]"),
                            format!("`{}` is not a valid header name", h.get_ref()),
                        )
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map(HeaderList::List)
    }

    /// `[cors]` (`None` when the section is absent).
    pub(super) fn cors(&self, raw: Option<&RawCors>) -> Result<Option<CorsPolicy>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let d = CorsPolicy::default();
        let allow_origins = match &raw.allow_origins {
            None => d.allow_origins.clone(),
            Some(list) => {
                let items = list.get_ref();
                if items.is_empty() {
                    return Err(self.err(
                        Some(list.span()),
                        "cors.allow_origins",
                        "lists no origin; write [\"*\"] for any, or the origins like \"https://app.example\"",
                    ));
                }
                if items.iter().any(|o| o.get_ref().trim() == "*") {
                    if items.len() > 1 {
                        return Err(self.err(
                            Some(list.span()),
                            "cors.allow_origins",
                            "\"*\" allows any origin; it cannot be listed with others",
                        ));
                    }
                    Origins::Any
                } else {
                    let mut out = Vec::new();
                    for (i, o) in items.iter().enumerate() {
                        out.push(self.origin(o, i)?);
                    }
                    Origins::List(out)
                }
            }
        };
        let allow_methods = match &raw.allow_methods {
            None => d.allow_methods.clone(),
            Some(list) if list.iter().any(|m| m.get_ref().trim() == "*") => None,
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, m)| {
                        Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes())
                            .map_err(|_| {
                                self.err(
                                    Some(m.span()),
                                    format!("cors.allow_methods[{i}]"),
                                    format!("`{}` is not an HTTP method", m.get_ref()),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let policy = CorsPolicy {
            allow_origins,
            allow_methods,
            allow_headers: self.header_list(
                &raw.allow_headers,
                "cors.allow_headers",
                d.allow_headers.clone(),
            )?,
            expose_headers: self.header_list(
                &raw.expose_headers,
                "cors.expose_headers",
                d.expose_headers.clone(),
            )?,
            max_age: self.duration(&raw.max_age, "cors.max_age", d.max_age)?,
            allow_credentials: raw.allow_credentials.unwrap_or(d.allow_credentials),
        };
        if let Some(problem) = policy.problem() {
            return Err(ConfigError {
                file: self.file.clone(),
                line: self.line_of_header("cors"),
                key: Some("cors".into()),
                message: problem.to_string(),
            });
        }
        Ok(Some(policy))
    }

    /// One `allow_origins` entry: `scheme://host[:port]`, nothing else.
    fn origin(&self, o: &Spanned<String>, i: usize) -> Result<HeaderValue, ConfigError> {
        let text = o.get_ref().trim().trim_end_matches('/');
        let bad = |why: &str| {
            self.err(
                Some(o.span()),
                format!("cors.allow_origins[{i}]"),
                format!("`{}` {why}; an origin is scheme://host[:port], like \"https://app.example\" or \"http://localhost:3000\"", o.get_ref()),
            )
        };
        let uri: http::Uri = text.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme().is_none() || uri.host().is_none_or(str::is_empty) {
            return Err(bad("has no scheme or no host"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad("has a path"));
        }
        HeaderValue::from_str(text).map_err(|_| bad("is not a valid header value"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::layers::cors::Origins;

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    #[test]
    fn cors_section() {
        let c = parse(MIN).unwrap();
        assert!(c.cors.is_none());
        let c = parse(&format!(
            "{MIN}\n[cors]\nallow_origins = [\"https://app.example/\", \"http://localhost:3000\"]\nallow_methods = [\"get\", \"POST\"]\nallow_headers = [\"authorization\"]\nmax_age = \"1h\"\nallow_credentials = true\n"
        ))
        .unwrap();
        let cors = c.cors.unwrap();
        assert_eq!(
            cors.allow_origins,
            Origins::List(vec![
                "https://app.example".parse().unwrap(),
                "http://localhost:3000".parse().unwrap()
            ])
        );
        assert_eq!(cors.max_age.as_secs(), 3600);
        for (body, key, words) in [
            (
                "allow_origins = [\"*\", \"https://a.example\"]",
                "cors.allow_origins",
                "cannot be listed",
            ),
            ("allow_origins = []", "cors.allow_origins", "no origin"),
            (
                "allow_origins = [\"app.example\"]",
                "cors.allow_origins[0]",
                "scheme",
            ),
            (
                "allow_origins = [\"https://a.example/path\"]",
                "cors.allow_origins[0]",
                "path",
            ),
            ("allow_credentials = true", "cors", "allow_credentials"),
            (
                "allow_methods = [\"GE T\"]",
                "cors.allow_methods[0]",
                "method",
            ),
            ("max_age = \"10\"", "cors.max_age", "unit"),
        ] {
            let e = parse(&format!("{MIN}\n[cors]\n{body}\n")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
            assert!(e.message.contains(words), "{body}: {e}");
            assert_eq!(
                e.line,
                Some(if key == "cors" { 9 } else { 10 }),
                "{body}: {e}"
            );
        }
    }
}
