//! `GET /docs` (Swagger UI) and `GET /redoc` (ReDoc): the proxy's
//! [OpenAPI document](crate::openapi) as browsable pages, with no key and no
//! internet needed.
//!
//! Every asset is compiled into the binary and served by the proxy itself
//! under `/docs/assets/` — machines that run the proxy often cannot reach a
//! CDN. The vendored files (`assets/`, see `assets/README.md` for their
//! versions, licences and how to refresh them) are Swagger UI's
//! `swagger-ui-bundle.js` and `swagger-ui.css` from the `swagger-ui-dist`
//! npm package and ReDoc's `redoc.standalone.js`.
//!
//! The pages carry no inline script: Swagger UI starts from a small served
//! script (`/docs/assets/swagger-init.js`), ReDoc from its own
//! `<redoc spec-url>` element. So the pages are sent with a strict
//! `content-security-policy` (scripts, styles, fonts and fetches from the
//! proxy itself only), on top of the security headers every answer carries.
//!
//! Caching: the vendored files live under a path naming their version and
//! are `immutable` for a year; the pages and the init script are revalidated
//! (`no-cache`). Every asset has a strong `ETag` (a hash of its bytes), and a
//! matching `If-None-Match` gets `304 Not Modified`.
//!
//! ```
//! use http::HeaderMap;
//! let page = llm_router::__private::docs::response("/docs", &HeaderMap::new()).unwrap();
//! assert_eq!(page.status(), 200);
//! assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
//! assert!(llm_router::__private::docs::response("/redoc", &HeaderMap::new()).is_some());
//! assert!(llm_router::__private::docs::response("/v1/models", &HeaderMap::new()).is_none());
//! ```

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::ProxyBody;

/// The version of the vendored `swagger-ui-dist` (in the assets' paths).
macro_rules! swagger_ui_version {
    () => {
        "5.36.0"
    };
}

/// The version of the vendored `redoc` (in the assets' paths).
macro_rules! redoc_version {
    () => {
        "2.5.4"
    };
}

/// Where the Swagger UI files are served.
macro_rules! swagger_dir {
    () => {
        concat!("/docs/assets/swagger-ui-", swagger_ui_version!(), "/")
    };
}

/// Where the ReDoc file is served.
macro_rules! redoc_dir {
    () => {
        concat!("/docs/assets/redoc-", redoc_version!(), "/")
    };
}

/// The vendored `swagger-ui-dist` version.
pub const SWAGGER_UI_VERSION: &str = swagger_ui_version!();

/// The vendored `redoc` version.
pub const REDOC_VERSION: &str = redoc_version!();

/// The path prefix of every asset the pages load.
pub const ASSETS_PREFIX: &str = "/docs/assets/";

/// The Swagger UI page.
const SWAGGER_HTML: &str = concat!(
    r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llm-router API — Swagger UI</title>
<link rel="stylesheet" href=""#,
    swagger_dir!(),
    r#"swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src=""#,
    swagger_dir!(),
    r#"swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body>
</html>
"#
);

/// Starts Swagger UI on `/openapi.json` (no call to the online validator).
const SWAGGER_INIT: &str = r##"window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"##;

/// The ReDoc page: the standalone bundle renders the `<redoc>` element.
const REDOC_HTML: &str = concat!(
    r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llm-router API — ReDoc</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src=""#,
    redoc_dir!(),
    r#"redoc.standalone.js"></script>
</body>
</html>
"#
);

/// The policy of the two pages: everything from the proxy itself. Both UIs
/// set inline styles (React style attributes, ReDoc's styled-components),
/// ReDoc runs its search in a `blob:` worker, and both show `data:` images.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `cache-control` of the versioned vendored files.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `cache-control` of the pages and the init script: revalidated each time.
const REVALIDATE: &str = "no-cache";

/// One file served here.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
    /// A page (gets [`PAGE_CSP`]).
    page: bool,
}

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Everything served: the two pages first, then the assets they load.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/docs",
        bytes: SWAGGER_HTML.as_bytes(),
        content_type: HTML,
        cache_control: REVALIDATE,
        page: true,
    },
    Asset {
        path: "/redoc",
        bytes: REDOC_HTML.as_bytes(),
        content_type: HTML,
        cache_control: REVALIDATE,
        page: true,
    },
    Asset {
        path: "/docs/assets/swagger-init.js",
        bytes: SWAGGER_INIT.as_bytes(),
        content_type: JS,
        cache_control: REVALIDATE,
        page: false,
    },
    Asset {
        path: concat!(swagger_dir!(), "swagger-ui-bundle.js"),
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
        content_type: JS,
        cache_control: IMMUTABLE,
        page: false,
    },
    Asset {
        path: concat!(swagger_dir!(), "swagger-ui.css"),
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
        content_type: "text/css; charset=utf-8",
        cache_control: IMMUTABLE,
        page: false,
    },
    Asset {
        path: concat!(redoc_dir!(), "redoc.standalone.js"),
        bytes: include_bytes!("../assets/redoc/redoc.standalone.js"),
        content_type: JS,
        cache_control: IMMUTABLE,
        page: false,
    },
];

/// Whether `path` (without a trailing slash) is one of the pages or assets.
pub fn serves(path: &str) -> bool {
    find(path).is_some()
}

fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}

/// FNV-1a, 64 bits: a content hash for the `ETag` (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `ETag` of each of [`ASSETS`], computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                HeaderValue::try_from(format!("\"{:016x}\"", fnv1a(a.bytes)))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak validators
/// compare equal, as RFC 9110 §13.1.2 asks for this header.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The answer for a `GET`/`HEAD` of `path` (without a trailing slash): a
/// page, an asset, or `304` when the client's copy is current; `None` when
/// `path` is none of them.
pub fn response(path: &str, request: &HeaderMap) -> Option<Response<ProxyBody>> {
    let (i, asset) = find(path)?;
    let etag = etags()
        .get(i)
        .cloned()
        .unwrap_or(HeaderValue::from_static("\"0\""));
    let fresh = not_modified(request, &etag);
    let mut response = if fresh {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(ProxyBody::full(Bytes::from_static(asset.bytes)))
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
    }
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(asset.cache_control),
    );
    if asset.page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    Some(response)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<ProxyBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[tokio::test]
    async fn pages_load_only_assets_served_here() {
        for page in ["/docs", "/redoc"] {
            let r = response(page, &HeaderMap::new()).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["cache-control"], "no-cache");
            assert!(r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"));
            let html = String::from_utf8(body(r).await.to_vec()).unwrap();
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{html}"
            );
            // No inline script: every <script> has a src served here.
            for part in html.split("<script").skip(1) {
                let src = part
                    .split("src=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or_else(|| panic!("inline script in {page}: {part}"));
                assert!(serves(src), "{page} loads {src}, not served");
            }
            for part in html.split("href=\"").skip(1) {
                let href = part.split('"').next().unwrap();
                assert!(serves(href), "{page} links {href}, not served");
            }
        }
        let redoc = body(response("/redoc", &HeaderMap::new()).unwrap()).await;
        assert!(contains(&redoc, "spec-url=\"/openapi.json\""));
        let init = body(response("/docs/assets/swagger-init.js", &HeaderMap::new()).unwrap()).await;
        assert!(contains(&init, "url: \"/openapi.json\""));
        assert!(contains(&init, "validatorUrl: null"));
    }

    #[tokio::test]
    async fn vendored_files_are_versioned_immutable_and_typed() {
        let bundle = concat!(swagger_dir!(), "swagger-ui-bundle.js");
        let r = response(bundle, &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], JS);
        assert_eq!(r.headers()["cache-control"], IMMUTABLE);
        assert!(!r.headers().contains_key("content-security-policy"));
        let bytes = body(r).await;
        assert!(bytes.len() > 100_000);
        // The vendored files are the versions their paths name.
        assert!(contains(&bytes, SWAGGER_UI_VERSION));
        let redoc = body(
            response(
                concat!(redoc_dir!(), "redoc.standalone.js"),
                &HeaderMap::new(),
            )
            .unwrap(),
        )
        .await;
        assert!(contains(&redoc, &format!("\"{REDOC_VERSION}\"")));
        let css = response(concat!(swagger_dir!(), "swagger-ui.css"), &HeaderMap::new()).unwrap();
        assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
        assert!(response(
            "/docs/assets/swagger-ui-0.0.1/swagger-ui.css",
            &HeaderMap::new()
        )
        .is_none());
        assert!(response("/docs/assets/", &HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn etag_revalidation() {
        let first = response("/docs", &HeaderMap::new()).unwrap();
        let etag = first.headers()["etag"].clone();
        assert!(etag.to_str().unwrap().starts_with('"'));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            format!("\"x\", W/{}", etag.to_str().unwrap())
                .parse()
                .unwrap(),
        );
        let again = response("/docs", &h).unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()["etag"], etag);
        assert!(!again.headers().contains_key("content-type"));
        assert!(body(again).await.is_empty());
        h.insert(header::IF_NONE_MATCH, "\"other\"".parse().unwrap());
        assert_eq!(response("/docs", &h).unwrap().status(), 200);
        // Different contents, different tags.
        let redoc = response("/redoc", &HeaderMap::new()).unwrap();
        assert_ne!(redoc.headers()["etag"], etag);
    }

    #[test]
    fn every_asset_path_is_under_the_prefix() {
        for asset in ASSETS.iter().filter(|a| !a.page) {
            assert!(asset.path.starts_with(ASSETS_PREFIX), "{}", asset.path);
        }
        assert!(serves("/docs") && serves("/redoc") && !serves("/docs/"));
    }
}
