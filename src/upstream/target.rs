//! [`Target`]: a backend and the model name to ask it for, with its
//! priority, weight and retry policy; and [`TargetKey`], the `backend/model`
//! key its cooldown and circuit are kept under.

use std::fmt;
use std::sync::Arc;

use super::Backend;
use crate::classify::RetryPolicy;

/// A target's key, `backend/model` (see [`Target::key`]): reads as a `&str`.
///
/// ```
/// use llm_router::routing::TargetKey;
/// let key = TargetKey::join("openai", "gpt-4o");
/// assert_eq!(&*key, "openai/gpt-4o");
/// ```
#[derive(Clone)]
pub struct TargetKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Shared(Arc<str>),
    Inline {
        len: u8,
        buf: [u8; TargetKey::INLINE],
    },
    Heap(Box<str>),
}

impl TargetKey {
    const INLINE: usize = 86;

    /// `backend/model`; kept inline when it fits.
    pub fn join(backend: &str, model: &str) -> Self {
        let len = backend.len() + 1 + model.len();
        if len > Self::INLINE {
            return TargetKey(KeyRepr::Heap(format!("{backend}/{model}").into_boxed_str()));
        }
        let mut buf = [0u8; Self::INLINE];
        buf[..backend.len()].copy_from_slice(backend.as_bytes());
        buf[backend.len()] = b'/';
        buf[backend.len() + 1..len].copy_from_slice(model.as_bytes());
        TargetKey(KeyRepr::Inline {
            len: len as u8,
            buf,
        })
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            KeyRepr::Shared(s) => s,
            KeyRepr::Heap(s) => s,
            // Two whole `&str`s and an ASCII `/`: valid UTF-8.
            KeyRepr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or("")
            }
        }
    }
}

impl std::ops::Deref for TargetKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TargetKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for TargetKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TargetKey {}

impl PartialEq<str> for TargetKey {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TargetKey {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One place a model's requests can go: a backend and the model name to ask it for.
///
/// Cheap to clone (one reference count): a target travels in each attempt's
/// extensions.
#[derive(Clone, Debug)]
pub struct Target(pub(crate) Arc<TargetInner>);

#[derive(Clone, Debug)]
pub(crate) struct TargetInner {
    backend: Arc<Backend>,
    model: Option<Arc<str>>,
    /// Removed from the front of the client's model name when `model` is
    /// `None` (set by [`ModelRoute::with_strip_prefix`]).
    pub(crate) strip: Option<Arc<str>>,
    pub(crate) priority: u32,
    pub(crate) weight: u32,
    /// `backend/model` when the model is fixed (see [`Target::key`]).
    key: Option<Arc<str>>,
    /// The model's own retry policy (`[[models]] retry`), used by the
    /// `retry` layer instead of its own.
    retry: Option<Arc<RetryPolicy>>,
    /// Its place among the targets of its [`RouteTable`](super::RouteTable):
    /// where the split point keeps the target's own service.
    slot: usize,
}

impl Target {
    /// A target on `backend`; `model` `None` or `"*"` sends the client's model name unchanged.
    pub fn new(backend: Arc<Backend>, model: Option<&str>) -> Self {
        let model: Option<Arc<str>> = model.filter(|m| *m != "*" && !m.is_empty()).map(Arc::from);
        let key = model
            .as_ref()
            .map(|m| Arc::from(format!("{}/{}", backend.name, m)));
        Target(Arc::new(TargetInner {
            backend,
            model,
            strip: None,
            priority: 1,
            weight: 1,
            key,
            retry: None,
            slot: 0,
        }))
    }

    /// The key under which this target's cooldown and circuit are kept:
    /// `backend/model`, with the model actually asked for there. Built once
    /// for a target with a fixed model; for a target sending the client's
    /// model, built on the stack when it is short (no allocation).
    pub fn key(&self, requested_model: &str) -> TargetKey {
        match &self.0.key {
            Some(key) => TargetKey(KeyRepr::Shared(key.clone())),
            None => TargetKey::join(&self.0.backend.name, self.upstream_model(requested_model)),
        }
    }

    /// Its place among the targets of the [`RouteTable`](super::RouteTable)
    /// it is in (numbered by the table; 0 outside one).
    pub(crate) fn slot(&self) -> usize {
        self.0.slot
    }

    pub(crate) fn set_slot(&mut self, slot: usize) {
        if self.0.slot != slot {
            Arc::make_mut(&mut self.0).slot = slot;
        }
    }

    /// Priority: lower is tried first (default 1).
    pub fn priority(mut self, priority: u32) -> Self {
        Arc::make_mut(&mut self.0).priority = priority;
        self
    }

    /// Share of the load among targets of equal priority (default 1).
    pub fn weight(mut self, weight: u32) -> Self {
        Arc::make_mut(&mut self.0).weight = weight;
        self
    }

    /// Retry this target by `policy` rather than by the `retry` layer's own
    /// (a model's `retry = { ... }`).
    pub fn with_retry(mut self, policy: Arc<RetryPolicy>) -> Self {
        Arc::make_mut(&mut self.0).retry = Some(policy);
        self
    }

    /// The target's own retry policy, if it has one.
    pub fn retry(&self) -> Option<&Arc<RetryPolicy>> {
        self.0.retry.as_ref()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0.backend
    }

    /// The configured model name, `None` for "the client's".
    pub fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }

    /// The model name to send upstream for a client that asked for `requested`:
    /// the configured one, else the client's (minus the route's prefix when
    /// the route strips it).
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        match (&self.0.model, &self.0.strip) {
            (Some(model), _) => model,
            (None, Some(prefix)) => requested
                .strip_prefix(&**prefix)
                .filter(|rest| !rest.is_empty())
                .unwrap_or(requested),
            (None, None) => requested,
        }
    }

    /// The priority.
    pub fn get_priority(&self) -> u32 {
        self.0.priority
    }

    /// The weight.
    pub fn get_weight(&self) -> u32 {
        self.0.weight
    }

    /// A stable label, `backend/model` (`backend/*` for pass-through names).
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.0.backend.name,
            self.0.model.as_deref().unwrap_or("*")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::provider::mock::Mock;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    #[test]
    fn target_keys_inline_shared_and_long() {
        let b = backend("up");
        let fixed = Target::new(b.clone(), Some("gpt-4o"));
        assert_eq!(fixed.key("anything"), "up/gpt-4o");
        let any = Target::new(b, None);
        assert_eq!(any.key("llama-3"), "up/llama-3");
        let long = "m".repeat(200);
        assert_eq!(&*any.key(&long), format!("up/{long}"));
        assert_eq!(any.key("llama-3").to_string(), "up/llama-3");
    }
    #[test]
    fn star_target_model_passes_client_name() {
        let t = Target::new(backend("x"), Some("*"));
        assert_eq!(t.upstream_model("gpt-4"), "gpt-4");
        let t = Target::new(backend("x"), Some("gpt-4o"));
        assert_eq!(t.upstream_model("gpt-4"), "gpt-4o");
        assert_eq!(t.label(), "x/gpt-4o");
    }
}
