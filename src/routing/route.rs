//! [`ModelRoute`]: the targets of one client-facing model name and the
//! order to try them in; [`Clients`], the client APIs a route serves.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::table::pattern_prefix;
use super::Target;
use crate::request::ClientFormat;

/// The targets of one client-facing model name.
#[derive(Clone, Debug)]
pub struct ModelRoute {
    pub(super) name: String,
    targets: Vec<Target>,
    context_fallback: Option<String>,
    pub(super) clients: Option<Clients>,
}

/// The client APIs a route serves (`[[models]] clients`): a route restricted
/// to some is skipped for requests of the others, so that two routes of one
/// name (two `"*"`) can send OpenAI clients and Anthropic clients to
/// different backends, as routers with one provider list per API do.
///
/// ```
/// use llm_router::routing::Clients;
/// use llm_router::ClientFormat;
/// let anthropic = Clients::parse(&["anthropic"]).unwrap();
/// assert!(anthropic.serves(ClientFormat::Anthropic));
/// assert!(!anthropic.serves(ClientFormat::OpenAi));
/// let openai = Clients::parse(&["openai"]).unwrap();
/// assert!(openai.serves(ClientFormat::Responses));
/// assert!(Clients::parse(&["grpc"]).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clients(u8);

impl Clients {
    /// The names accepted: `openai` (Chat Completions, Completions,
    /// Embeddings and Responses), `responses` (the Responses API only),
    /// `anthropic` (Messages).
    pub const NAMES: &'static [&'static str] = &["openai", "responses", "anthropic"];

    fn bit(format: ClientFormat) -> u8 {
        match format {
            ClientFormat::OpenAi => 1,
            ClientFormat::Responses => 2,
            ClientFormat::Anthropic => 4,
        }
    }

    /// From names; an unknown name is returned as the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Clients, String> {
        let mut bits = 0;
        for name in names {
            bits |= match name.as_ref() {
                "openai" => 1 | 2,
                "responses" => 2,
                "anthropic" => 4,
                other => return Err(other.to_string()),
            };
        }
        Ok(Clients(bits))
    }

    /// Whether requests of `format` may use the route.
    pub fn serves(self, format: ClientFormat) -> bool {
        self.0 & Self::bit(format) != 0
    }
}

impl ModelRoute {
    /// A route for `name` (`"*"` matches any name not listed).
    pub fn new(name: impl Into<String>, mut targets: Vec<Target>) -> Self {
        targets.sort_by_key(|t| t.0.priority);
        ModelRoute {
            name: name.into(),
            targets,
            context_fallback: None,
            clients: None,
        }
    }

    /// Serve only requests of these client APIs (see [`Clients`]).
    pub fn with_clients(mut self, clients: Clients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Whether requests of `format` may use this route.
    pub fn serves(&self, format: ClientFormat) -> bool {
        self.clients.is_none_or(|c| c.serves(format))
    }

    /// For a prefix pattern (`"cerebras/*"`): the targets that send the
    /// client's model name send it without the prefix (`cerebras/llama-3.3-70b`
    /// asks the backend for `llama-3.3-70b`). No effect on other names.
    pub fn with_strip_prefix(mut self) -> Self {
        if let Some(prefix) = pattern_prefix(&self.name) {
            let prefix: Arc<str> = Arc::from(prefix);
            for t in &mut self.targets {
                Arc::make_mut(&mut t.0).strip = Some(prefix.clone());
            }
        }
        self
    }

    /// The model tried when a target answers "context length exceeded".
    pub fn with_context_fallback(mut self, model: impl Into<String>) -> Self {
        self.context_fallback = Some(model.into());
        self
    }

    /// The client-facing name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The targets, sorted by priority.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub(super) fn targets_mut(&mut self) -> &mut [Target] {
        &mut self.targets
    }

    /// The context fallback model, if any.
    pub fn context_fallback(&self) -> Option<&str> {
        self.context_fallback.as_deref()
    }

    /// The targets in the order to try them: by priority, and within one
    /// priority a weighted random order (so load is shared by weight).
    pub fn ordered(&self) -> Vec<&Target> {
        if let [only] = &self.targets[..] {
            return vec![only];
        }
        let mut out = Vec::with_capacity(self.targets.len());
        let mut rest: &[Target] = &self.targets;
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|t| t.0.priority == first.0.priority)
                .count();
            let (group, tail) = rest.split_at(n);
            let mut group: Vec<&Target> = group.iter().collect();
            while !group.is_empty() {
                let i = weighted_index(&group);
                out.push(group.remove(i));
            }
            rest = tail;
        }
        out
    }

    /// The target a single-target dispatch uses: first priority, weighted.
    pub fn first_choice(&self) -> Option<&Target> {
        let first = self.targets.first()?;
        let n = self
            .targets
            .iter()
            .take_while(|t| t.0.priority == first.0.priority)
            .count();
        let group: Vec<&Target> = self.targets[..n].iter().collect();
        group.get(weighted_index(&group)).copied()
    }
}

fn weighted_index(group: &[&Target]) -> usize {
    let total: u64 = group.iter().map(|t| u64::from(t.0.weight.max(1))).sum();
    if group.len() <= 1 || total == 0 {
        return 0;
    }
    let mut pick = random_u64() % total;
    for (i, t) in group.iter().enumerate() {
        let w = u64::from(t.0.weight.max(1));
        if pick < w {
            return i;
        }
        pick -= w;
    }
    0
}

/// A fast, non-cryptographic random number (load sharing only).
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Backend;
    use crate::upstream::provider::mock::Mock;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    #[test]
    fn priority_then_weight() {
        let route = ModelRoute::new(
            "m",
            vec![
                Target::new(backend("c"), None).priority(2),
                Target::new(backend("a"), None).weight(3),
                Target::new(backend("b"), None).weight(1),
            ],
        );
        let mut a_first = 0;
        for _ in 0..400 {
            let order = route.ordered();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2].backend().name(), "c");
            if order[0].backend().name() == "a" {
                a_first += 1;
            }
        }
        // weight 3 of 4: about 300 of 400.
        assert!((240..=360).contains(&a_first), "a first {a_first} times");
    }
    #[test]
    fn strip_prefix_applies_to_pass_through_targets_of_patterns() {
        let route = ModelRoute::new(
            "cerebras/*",
            vec![
                Target::new(backend("c"), None),
                Target::new(backend("d"), Some("fixed")),
            ],
        )
        .with_strip_prefix();
        let t = &route.targets()[0];
        assert_eq!(t.upstream_model("cerebras/llama-3.3-70b"), "llama-3.3-70b");
        assert_eq!(
            t.upstream_model("cerebras/meta-llama/Llama-3"),
            "meta-llama/Llama-3"
        );
        // Nothing after the prefix: the name is sent as it is.
        assert_eq!(t.upstream_model("cerebras/"), "cerebras/");
        assert_eq!(route.targets()[1].upstream_model("cerebras/x"), "fixed");
        // No effect on an exact name.
        let exact = ModelRoute::new("m", vec![Target::new(backend("e"), None)]).with_strip_prefix();
        assert_eq!(exact.targets()[0].upstream_model("m"), "m");
    }
}
