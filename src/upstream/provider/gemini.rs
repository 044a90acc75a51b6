//! The `gemini` provider: Google's Gemini API (`generateContent`).
//!
//! Requests are sent to `{base_url}/v1beta/models/{model}:generateContent`,
//! or `:streamGenerateContent?alt=sse` for streamed answers, with the key in
//! `x-goog-api-key`. The client's request (as the pivot, see
//! `upstream::translate`) is translated by `upstream::translate::gemini`, and
//! so is the answer, streamed or not, errors included: the upstream edge gets
//! the pivot back.
//!
//! ```
//! use llm_router::upstream::provider::{gemini::Gemini, Provider};
//! assert_eq!(Gemini.name(), "gemini");
//! assert_eq!(Gemini.default_base_url(), Some("https://generativelanguage.googleapis.com"));
//! ```

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::Full;
use serde_json::Value;

use super::{client_key, join_url, Call, ModelListing, Outbound, Provider};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::request::{ClientFormat, Endpoint};
use crate::upstream::translate::convert::{convert_response, CollectJson};
use crate::upstream::translate::gemini::{self, GeminiStream};
use crate::upstream::{Backend, Credential};

/// The Gemini provider adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemini;

/// Whether `segment` is safe as one URL path segment: letters, digits,
/// `-`, `.`, `_`, and not `.` or `..` (which would climb the path).
fn safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The path of a model's method (`/v1beta/models/M:generateContent`). The
/// model name goes into the URL, so it must be one safe path segment, or a
/// full resource name `models/M` / `tunedModels/M`: anything else (`..`,
/// other slashes, `?`, `%`, ...) is a 400 and never reaches the upstream.
fn model_path(model: &str, stream: bool) -> Result<String, ProxyError> {
    let ok = match model.split_once('/') {
        None => safe_segment(model),
        Some((collection, name)) => {
            matches!(collection, "models" | "tunedModels") && safe_segment(name)
        }
    };
    if !ok {
        let shown: String = model.chars().take(200).collect();
        return Err(ProxyError::bad_request(
            "invalid_model",
            format!(
                "`{}` is not a Gemini model name (one path segment of letters, digits, `-`, `.` and `_`, not `.` or `..`)",
                shown.escape_debug()
            ),
        ));
    }
    // `models/x` and `tunedModels/x` are full resource names already.
    let name = if model.contains('/') {
        model.to_string()
    } else {
        format!("models/{model}")
    };
    Ok(if stream {
        format!("/v1beta/{name}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/{name}:generateContent")
    })
}

/// Whether the answer should end with a usage chunk: when an OpenAI client
/// asked for it (or a layer did on its behalf), and always for other
/// clients, whose formats carry usage anyway.
pub(crate) fn wants_stream_usage(call: &Call<'_>) -> bool {
    match call.request.format() {
        ClientFormat::OpenAi => {
            call.request
                .body()
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                == Some(true)
        }
        _ => true,
    }
}

/// The backend's key for this call, if any.
pub(crate) fn backend_key<'a>(call: &'a Call<'a>) -> Option<&'a str> {
    match call.target.backend().credential() {
        Credential::None => None,
        Credential::Key(secret) => Some(secret.expose()),
        Credential::Passthrough => call
            .client_credential
            .map(|c| c.expose())
            .or_else(|| client_key(call.headers)),
    }
}

pub(crate) fn sensitive(value: String) -> Result<HeaderValue, ProxyError> {
    let mut value = HeaderValue::try_from(value).map_err(|_| {
        ProxyError::bad_request("invalid_api_key", "The API key contains invalid characters")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

pub(crate) fn post(
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Outbound, ProxyError> {
    let mut builder = Request::builder().method(Method::POST).uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder
        .body(Full::new(body))
        .map(Outbound::Http)
        .map_err(|e| ProxyError::Internal(format!("building the upstream request: {e}")))
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://generativelanguage.googleapis.com")
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Outbound, ProxyError> {
        let request = call.request;
        if request.endpoint().counts_tokens() {
            return super::local_count(call);
        }
        if !matches!(
            request.endpoint(),
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses
        ) {
            return Err(ProxyError::bad_request(
                "unsupported_endpoint",
                format!(
                    "the `gemini` provider serves chat requests only, not {}",
                    request.endpoint().as_str()
                ),
            ));
        }
        let model = call.target.upstream_model(request.model());
        let pivot = crate::upstream::translate::pivot_request(request, call.target)?;
        let body = gemini::request_to_gemini(&pivot, model)?;
        let backend = call.target.backend();
        let uri = join_url(backend.base_url(), &model_path(model, request.is_stream())?)?;
        let mut headers = super::forward_headers_for(call);
        if let Some(key) = backend_key(call) {
            headers.insert("x-goog-api-key", sensitive(key.to_string())?);
        }
        post(uri, headers, Bytes::from(body.to_string()))
    }

    fn respond(&self, call: &Call<'_>, response: Response<ProxyBody>) -> Response<ProxyBody> {
        let status = response.status();
        let model = call.target.upstream_model(call.request.model()).to_string();
        if !status.is_success() {
            return convert_response(
                response,
                "application/json",
                CollectJson::new(move |body: &[u8]| {
                    Ok(Bytes::from(
                        gemini::error_to_openai(status, body).to_string(),
                    ))
                })
                .error_answer(),
            );
        }
        if call.request.is_stream() {
            let conv = GeminiStream::new(&model, wants_stream_usage(call));
            return convert_response(response, "text/event-stream", conv);
        }
        convert_response(
            response,
            "application/json",
            CollectJson::new(move |body: &[u8]| gemini::convert_answer_body(body, &model)),
        )
    }

    /// `GET /v1beta/models?pageSize=1000` with `x-goog-api-key`.
    fn model_list(&self, backend: &Backend) -> Result<ModelListing, ProxyError> {
        let uri = backend.uri_for("/v1beta/models?pageSize=1000")?;
        super::list_request(backend, uri, |key| {
            let mut headers = http::HeaderMap::new();
            if let Some(key) = key {
                headers.insert("x-goog-api-key", sensitive(key.to_string())?);
            }
            Ok(headers)
        })
    }

    /// `{"models": [{"name": "models/gemini-2.5-flash", "supportedGenerationMethods": [..]}]}`:
    /// the names without `models/`, of the models that generate content
    /// (the only ones this provider can call).
    fn parse_model_list(&self, body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            models: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            supported_generation_methods: Option<Vec<String>>,
        }
        let list: List = serde_json::from_slice(body)?;
        Ok(list
            .models
            .into_iter()
            .filter(|m| {
                m.supported_generation_methods
                    .as_ref()
                    .is_none_or(|methods| methods.iter().any(|x| x == "generateContent"))
            })
            .filter_map(|m| m.name)
            .map(|name| match name.strip_prefix("models/") {
                Some(short) => short.to_string(),
                None => name,
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn model_list() {
        let backend = Backend::builder("g", std::sync::Arc::new(Gemini))
            .api_key("gemini-key")
            .build()
            .unwrap();
        let Ok(ModelListing::Fetch(r)) = Gemini.model_list(&backend) else {
            panic!("no request");
        };
        assert_eq!(
            r.uri().to_string(),
            "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000"
        );
        assert_eq!(r.headers()["x-goog-api-key"], "gemini-key");
        let ids = Gemini
            .parse_model_list(
                br#"{"models":[
                {"name":"models/gemini-2.5-flash","supportedGenerationMethods":["generateContent","countTokens"]},
                {"name":"models/text-embedding-004","supportedGenerationMethods":["embedContent"]},
                {"name":"tunedModels/mine"}],"nextPageToken":"x"}"#,
            )
            .unwrap();
        assert_eq!(ids, ["gemini-2.5-flash", "tunedModels/mine"]);
    }

    #[test]
    fn paths() {
        assert_eq!(
            model_path("gemini-2.5-flash", false).unwrap(),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            model_path("models/gemini-2.5-flash", true).unwrap(),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            model_path("tunedModels/abc", false).unwrap(),
            "/v1beta/tunedModels/abc:generateContent"
        );
        assert!(model_path("a b", false).is_err());
        assert!(model_path("x?y", false).is_err());
    }

    /// Regression: `gem/../../admin` reached the upstream as
    /// `POST /v1beta/../../admin:generateContent`.
    #[test]
    fn model_names_cannot_climb_the_path() {
        for bad in [
            "gem/../../admin",
            "..",
            ".",
            "models/..",
            "models/../admin",
            "tunedModels/.",
            "a/b",
            "models/a/b",
            "other/x",
            "x%2F..",
            "",
            "models/",
        ] {
            let err = model_path(bad, false).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(model_path("gemini-2.0-flash-001", false).is_ok());
        assert!(model_path("my.model..v2", false).is_ok());
    }
}
