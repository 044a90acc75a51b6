//! `GET /openapi.json`: the OpenAPI 3.1 description of the proxy's own
//! endpoints.
//!
//! The document is a static file, `src/openapi.json`, compiled in; only
//! `info.version` is set at run time, to the crate version. It describes the
//! client API (request and answer schemas, streaming as `text/event-stream`),
//! the operational and admin endpoints, the security schemes (`Authorization:
//! Bearer` — a key or a JWT — and `x-api-key`) and both error formats with
//! the status codes of the contract. Edit the file when an endpoint changes;
//! `tests/openapi.rs` checks that every endpoint is in it, and
//! `tests/python/test_openapi.py` validates it (openapi-spec-validator) and
//! checks real answers of the proxy against its schemas.
//!
//! ```
//! let doc: serde_json::Value = serde_json::from_slice(&llm_router::__private::openapi::document()).unwrap();
//! assert_eq!(doc["openapi"], "3.1.0");
//! assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
//! assert!(doc["paths"]["/v1/chat/completions"]["post"].is_object());
//! ```

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::ProxyBody;

/// The document as written in `src/openapi.json` (its `info.version` may be stale).
pub const SOURCE: &str = include_str!("openapi.json");

/// The document served at `/openapi.json`: [`SOURCE`] with `info.version`
/// set to the crate version. Built once.
pub fn document() -> Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: serde_json::Value =
            serde_json::from_str(SOURCE).expect("src/openapi.json is valid JSON");
        doc["info"]["version"] = serde_json::Value::from(env!("CARGO_PKG_VERSION"));
        Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serializes"))
    })
    .clone()
}

/// The `GET /openapi.json` answer.
pub fn response() -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(document()));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves() {
        let doc: serde_json::Value = serde_json::from_slice(&document()).unwrap();
        fn walk(v: &serde_json::Value, doc: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        let ptr = r.trim_start_matches('#');
                        if doc.pointer(ptr).is_none() {
                            out.push(r.to_string());
                        }
                    }
                    m.values().for_each(|v| walk(v, doc, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, doc, out)),
                _ => {}
            }
        }
        let mut missing = Vec::new();
        walk(&doc, &doc, &mut missing);
        assert!(missing.is_empty(), "unresolved $refs: {missing:?}");
    }
}
