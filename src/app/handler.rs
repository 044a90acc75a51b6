//! One request's view ([`Handler`]) and the dispatch of a request between
//! the client API and the operations endpoints.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::Either;
use http::{Method, Request, Response};
use http_body::Body;

use super::{App, State};
use crate::body::{BoxError, ProxyBody};
use crate::error::ProxyError;
use crate::request::{ClientFormat, Endpoint};

/// A request's path without its trailing slash (the `/openai/v1/` and
/// `/openai/` aliases of the model list read as `/v1/`), and the format its
/// errors are answered in.
pub(super) fn path_and_format(uri: &http::Uri) -> (std::borrow::Cow<'_, str>, ClientFormat) {
    let path = uri.path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let models = path
        .strip_prefix("/openai/v1")
        .or_else(|| path.strip_prefix("/openai"))
        .filter(|rest| *rest == "/models" || rest.starts_with("/models/"));
    let format = crate::request::error_format_of_path(path);
    match models {
        Some(rest) => (format!("/v1{rest}").into(), format),
        None => (path.into(), format),
    }
}

/// 405: `path` does not take `method`.
pub(super) fn method_not_allowed(
    method: &Method,
    path: &str,
    format: ClientFormat,
) -> Response<ProxyBody> {
    ProxyError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
    }
    .to_response(format)
}

/// The answer of an endpoint that is not the client API (boxed: rare, and
/// larger than a client request's own future).
type OperationsFuture = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// One request's view: the app, and the state in force when it arrived.
#[derive(Clone)]
pub(super) struct Handler {
    pub(super) app: App,
    pub(super) state: Arc<State>,
}

impl Handler {
    /// The answer to `req`. Not an `async fn`: a client request's future is
    /// [`client_api`](Self::client_api)'s alone, without this one's
    /// arguments and branches around it (it lives as long as the answer's
    /// head takes: a slow stream's first token).
    pub(super) fn handle<B>(
        self,
        req: Request<B>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'static
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (path, format) = path_and_format(req.uri());
        let endpoint = Endpoint::from_path(&path);
        let method = req.method().clone();
        let wrong_method = |path: &str| method_not_allowed(&method, path, format);
        match endpoint {
            Some(_) if method != Method::POST => {
                Either::Right(Box::pin(std::future::ready(wrong_method(&path))) as OperationsFuture)
            }
            Some(endpoint) => Either::Left(self.client_api(endpoint, req)),
            None => Either::Right(Box::pin(self.operations(req)) as OperationsFuture),
        }
    }
}
