//! Small future helpers shared by the layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// Either an answer known at once (a rejection, a local answer) or the
    /// inner service's future. Lets a layer short-circuit without boxing.
    #[project = MaybeReadyProj]
    #[allow(missing_docs)]
    #[derive(Debug)]
    pub enum MaybeReady<F, T, E> {
        /// Answered without calling the inner service.
        Ready {
            value: Option<Result<T, E>>,
        },
        /// Waiting on the inner service.
        Inner {
            #[pin]
            future: F,
        },
    }
}

impl<F, T, E> MaybeReady<F, T, E> {
    /// A future that resolves at once to `value`.
    pub fn ready(value: Result<T, E>) -> Self {
        MaybeReady::Ready { value: Some(value) }
    }

    /// A future that waits on `future`.
    pub fn inner(future: F) -> Self {
        MaybeReady::Inner { future }
    }
}

impl<F, T, E> Future for MaybeReady<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            MaybeReadyProj::Ready { value } => match value.take() {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            },
            MaybeReadyProj::Inner { future } => future.poll(cx),
        }
    }
}
