//! [`EditFuture`]: the answer of an editing layer (`pii`, `transform`) — the
//! inner service's answer, its body then wrapped by the edit the request
//! planned, if any. One future for every editing layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::ProxyBody;

/// An edit of an answer, planned when the request went in.
pub trait AnswerEdit {
    /// Apply the edit to `response` (wrap its body, or leave it).
    fn apply(self, response: Response<ProxyBody>) -> Response<ProxyBody>;
}

pin_project_lite::pin_project! {
    /// The inner answer, edited by `P` when the request planned an edit.
    pub struct EditFuture<F, P> {
        #[pin]
        inner: F,
        plan: Option<P>,
    }
}

impl<F, P> EditFuture<F, P> {
    /// The answer of `inner`, edited by `plan` when there is one.
    pub(crate) fn new(inner: F, plan: Option<P>) -> Self {
        EditFuture { inner, plan }
    }
}

impl<F, P> fmt::Debug for EditFuture<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EditFuture")
            .field("edits", &self.plan.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, P, E> Future for EditFuture<F, P>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
    P: AnswerEdit,
{
    type Output = Result<Response<ProxyBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match this.plan.take() {
            Some(plan) => plan.apply(response),
            None => response,
        }))
    }
}
