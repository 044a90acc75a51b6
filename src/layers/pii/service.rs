//! [`PiiLayer`], the [`Pii`] service and their policy.

// Parts of this file are the `content` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "content"), allow(unused_imports, dead_code))]

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{Request, Response};
use tower::{Layer, Service};

#[cfg(feature = "content")]
use super::body::{AnswerScrubber, Restorer};
use super::scrubber::{Detector, PiiAction, Scrubber, Vault};
use crate::body::ProxyBody;
use crate::layers::edit::{edit_answer, edit_strings, AnswerEdit, EditFuture};
use crate::request::{ClientFormat, LlmRequest};
use crate::service::layer_service;

/// Which side of the exchange is scrubbed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PiiScope {
    /// The request, before it leaves (the default).
    #[default]
    Request,
    /// The answer.
    Response,
    /// Both.
    Both,
}

impl PiiScope {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiScope::Request => "request",
            PiiScope::Response => "response",
            PiiScope::Both => "both",
        }
    }

    /// Whether requests are scrubbed.
    pub fn request(self) -> bool {
        matches!(self, PiiScope::Request | PiiScope::Both)
    }

    /// Whether answers are scrubbed.
    pub fn response(self) -> bool {
        matches!(self, PiiScope::Response | PiiScope::Both)
    }
}

/// What the PII layer does (`[pii]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiiPolicy {
    /// The detectors that run.
    pub detect: Vec<Detector>,
    /// What is done with what they find.
    pub action: PiiAction,
    /// The side scrubbed. `reversible` always scrubs the request and restores
    /// the answer, whatever this says.
    pub on: PiiScope,
    /// For scrubbing streamed answers: the most bytes of text held back per
    /// event so that PII split across events is still found (only the tail
    /// where a detector could still match waits).
    pub holdback: usize,
}

impl PiiPolicy {
    /// Default [`holdback`](Self::holdback): 64 bytes.
    pub const DEFAULT_HOLDBACK: usize = 64;
}

impl Default for PiiPolicy {
    /// Every detector, `redact`, on the request.
    fn default() -> Self {
        PiiPolicy {
            detect: Detector::ALL.to_vec(),
            action: PiiAction::Redact,
            on: PiiScope::Request,
            holdback: Self::DEFAULT_HOLDBACK,
        }
    }
}

#[cfg(feature = "content")]
/// Applies [`Pii`]. See the [module docs](crate::layers::pii).
#[derive(Clone, Debug)]
pub struct PiiLayer {
    policy: Arc<PiiPolicy>,
    scrubber: Scrubber,
}

#[cfg(feature = "content")]
impl PiiLayer {
    /// A layer scrubbing per `policy`.
    pub fn new(policy: PiiPolicy) -> Self {
        PiiLayer {
            scrubber: Scrubber::new(&policy.detect, policy.action),
            policy: Arc::new(policy),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &PiiPolicy {
        &self.policy
    }

    /// The scrubber (for logs: [`Scrubber::scrub_text`]).
    pub fn scrubber(&self) -> Scrubber {
        self.scrubber
    }
}

#[cfg(feature = "content")]
impl<S> Layer<S> for PiiLayer {
    type Service = Pii<S>;

    fn layer(&self, inner: S) -> Pii<S> {
        Pii {
            inner,
            policy: self.policy.clone(),
            scrubber: self.scrubber,
        }
    }
}

#[cfg(feature = "content")]
/// The PII service. See the [module docs](crate::layers::pii).
#[derive(Clone, Debug)]
pub struct Pii<S> {
    inner: S,
    policy: Arc<PiiPolicy>,
    scrubber: Scrubber,
}

#[cfg(feature = "content")]
layer_service!(Pii<S>, ResponseFuture<S::Future>);

#[cfg(feature = "content")]
/// Scrub every string value of a parsed request except the top-level
/// `model` and `data:` URLs (inline images); whether anything changed.
pub(crate) fn scrub_request(llm: &mut LlmRequest, scrubber: &Scrubber, vault: &mut Vault) -> bool {
    let mut changed = false;
    for (key, value) in llm.body_mut().iter_mut() {
        if key == "model" {
            continue;
        }
        changed |= edit_strings(value, &mut |s| {
            if s.starts_with("data:") && s.contains(";base64,") {
                return None;
            }
            match scrubber.scrub_with(s, vault) {
                Cow::Owned(o) => Some(o),
                Cow::Borrowed(_) => None,
            }
        });
    }
    changed
}

#[cfg(feature = "content")]
/// What happens to the answer.
enum Plan {
    Restore(Arc<Vault>),
    Scrub(Scrubber, usize),
}

#[cfg(feature = "content")]
impl<S> Pii<S> {
    /// The `call` of [`Pii`]'s `Service` impl.
    fn respond<B>(&mut self, mut req: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ProxyBody>>,
    {
        let reversible = self.policy.action == PiiAction::Reversible;
        let mut format = ClientFormat::OpenAi;
        let mut plan = None;
        if let Some(llm) = req.extensions_mut().get_mut::<LlmRequest>() {
            format = llm.format();
            if reversible || self.policy.on.request() {
                let mut vault = Vault::default();
                if scrub_request(llm, &self.scrubber, &mut vault) {
                    tracing::debug!(values = vault.len(), "PII scrubbed from the request");
                }
                if reversible && !vault.is_empty() {
                    plan = Some(Plan::Restore(Arc::new(vault)));
                }
            }
        }
        if !reversible && self.policy.on.response() {
            plan = Some(Plan::Scrub(self.scrubber, self.policy.holdback));
        }
        EditFuture::new(self.inner.call(req), plan.map(|p| PiiEdit(format, p)))
    }
}

#[cfg(feature = "content")]
/// The answer of a [`Pii`] service: the inner answer, restored or scrubbed
/// as the policy says.
pub type ResponseFuture<F> = EditFuture<F, PiiEdit>;

#[cfg(feature = "content")]
/// What a [`Pii`] service does to an answer: restore the placeholders of
/// its request, or scrub it.
pub struct PiiEdit(ClientFormat, Plan);

#[cfg(feature = "content")]
impl fmt::Debug for PiiEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PiiEdit")
            .field(&self.0)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "content")]
impl AnswerEdit for PiiEdit {
    fn apply(self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        match self {
            PiiEdit(format, Plan::Restore(vault)) => {
                edit_answer(response, format, Restorer::new(vault))
            }
            PiiEdit(format, Plan::Scrub(scrubber, holdback)) => {
                edit_answer(response, format, AnswerScrubber::new(scrubber, holdback))
            }
        }
    }
}
