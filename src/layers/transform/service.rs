//! [`TransformLayer`] and the [`Transform`] service.

use std::sync::Arc;

use http::{Request, Response};
use serde_json::Value;
use tower::{Layer, Service};

use super::body::TransformEditor;
use super::rule::{Direction, TransformRule};
use crate::body::ProxyBody;
use crate::layers::edit::{edit_answer, AnswerEdit, EditFuture};
use crate::request::{ClientFormat, LlmRequest};
use crate::service::layer_service;

/// Applies [`Transform`]. See the [module docs](crate::layers::transform).
#[derive(Clone, Debug)]
pub struct TransformLayer {
    request: Arc<[TransformRule]>,
    response: Arc<[TransformRule]>,
}

impl TransformLayer {
    /// A layer applying `rules`, each on its side, in the order given.
    pub fn new(rules: impl IntoIterator<Item = TransformRule>) -> Self {
        let (request, response): (Vec<_>, Vec<_>) = rules
            .into_iter()
            .partition(|r| r.direction() == Direction::Request);
        TransformLayer {
            request: request.into(),
            response: response.into(),
        }
    }

    /// The request rules, in order.
    pub fn request_rules(&self) -> &[TransformRule] {
        &self.request
    }

    /// The response rules, in order.
    pub fn response_rules(&self) -> &[TransformRule] {
        &self.response
    }
}

impl<S> Layer<S> for TransformLayer {
    type Service = Transform<S>;

    fn layer(&self, inner: S) -> Transform<S> {
        Transform {
            inner,
            request: self.request.clone(),
            response: self.response.clone(),
        }
    }
}

/// The transform service. See the [module docs](crate::layers::transform).
#[derive(Clone, Debug)]
pub struct Transform<S> {
    inner: S,
    request: Arc<[TransformRule]>,
    response: Arc<[TransformRule]>,
}

layer_service!(Transform<S>, ResponseFuture<S::Future>);

/// Apply `rules` in order to a parsed request.
pub(crate) fn apply_to_request(llm: &mut LlmRequest, rules: &[TransformRule]) {
    let body = llm.body_mut();
    let mut doc = Value::Object(std::mem::take(body));
    for rule in rules {
        if rule.apply(&mut doc) {
            tracing::debug!(transform = rule.name(), "request transformed");
        }
    }
    if let Value::Object(map) = doc {
        *body = map;
    }
}

impl<S> Transform<S> {
    /// The `call` of [`Transform`]'s `Service` impl.
    fn respond<B>(&mut self, mut req: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>, Response = Response<ProxyBody>>,
    {
        let mut format = ClientFormat::OpenAi;
        if let Some(llm) = req.extensions_mut().get_mut::<LlmRequest>() {
            format = llm.format();
            if !self.request.is_empty() {
                apply_to_request(llm, &self.request);
            }
        }
        let edit =
            (!self.response.is_empty()).then(|| TransformEdit(format, self.response.clone()));
        EditFuture::new(self.inner.call(req), edit)
    }
}

/// The answer of a [`Transform`]: the inner answer, its body wrapped by the
/// response rules.
pub type ResponseFuture<F> = EditFuture<F, TransformEdit>;

/// What a [`Transform`] does to an answer: its response rules, on a
/// successful answer.
#[derive(Debug)]
pub struct TransformEdit(ClientFormat, Arc<[TransformRule]>);

impl AnswerEdit for TransformEdit {
    fn apply(self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        if response.status().is_success() {
            edit_answer(response, self.0, TransformEditor::new(self.1))
        } else {
            response
        }
    }
}
