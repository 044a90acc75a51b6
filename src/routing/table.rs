//! [`RouteTable`]: model name -> [`ModelRoute`] (exact names, prefix
//! patterns, the `"*"` catch-all), and [`pattern_prefix`].

use std::sync::Arc;

#[cfg(doc)]
use super::Clients;
use super::ModelRoute;
use crate::request::ClientFormat;

/// The prefix of a prefix-pattern model name (`"gpt-*"` -> `"gpt-"`): a name
/// of at least two characters whose only `*` is its last. `None` for exact
/// names and for the catch-all `"*"`.
///
/// ```
/// use llm_router::routing::pattern_prefix;
/// assert_eq!(pattern_prefix("gpt-*"), Some("gpt-"));
/// assert_eq!(pattern_prefix("*"), None);
/// assert_eq!(pattern_prefix("gpt-4o"), None);
/// assert_eq!(pattern_prefix("g*t-*"), None);
/// ```
pub fn pattern_prefix(name: &str) -> Option<&str> {
    let prefix = name.strip_suffix('*')?;
    (!prefix.is_empty() && !prefix.contains('*')).then_some(prefix)
}

/// Model name -> route: exact names first, then prefix patterns (`"gpt-*"`,
/// the longest matching prefix wins), then the optional `"*"` catch-all.
/// Routes restricted to some client APIs ([`Clients`]) are skipped for the
/// others' requests ([`RouteTable::resolve_for`]).
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: crate::FastMap<String, Slot>,
    /// Prefix patterns with their prefix, longest prefix first.
    prefixes: Vec<(String, Slot)>,
    wildcard: Slot,
    names: Vec<String>,
    /// How many targets the routes hold (each numbered, see [`Target`](super::Target)).
    targets: usize,
}

/// The routes of one name: one, or one per client restriction (restricted
/// routes first, so that they win over an unrestricted one of the name).
#[derive(Clone, Debug, Default)]
struct Slot(Vec<Arc<ModelRoute>>);

impl Slot {
    /// Add `route`: it replaces a route of the same restriction.
    fn put(&mut self, route: Arc<ModelRoute>) {
        self.0.retain(|r| r.clients != route.clients);
        if route.clients.is_some() {
            self.0.insert(0, route);
        } else {
            self.0.push(route);
        }
    }

    fn any(&self) -> Option<&Arc<ModelRoute>> {
        self.0.first()
    }

    fn serving(&self, format: ClientFormat) -> Option<&Arc<ModelRoute>> {
        self.0.iter().find(|r| r.serves(format))
    }
}

impl RouteTable {
    /// Build from routes; a later route with the same name (and the same
    /// client restriction) replaces an earlier one.
    pub fn new(routes: Vec<ModelRoute>) -> Self {
        let mut table = RouteTable::default();
        for route in routes {
            let route = Arc::new(route);
            if route.name == "*" {
                table.wildcard.put(route);
            } else if let Some(prefix) = pattern_prefix(&route.name) {
                let prefix = prefix.to_string();
                match table.prefixes.iter_mut().find(|(p, _)| *p == prefix) {
                    Some((_, slot)) => slot.put(route),
                    None => {
                        let mut slot = Slot::default();
                        slot.put(route);
                        table.prefixes.push((prefix, slot));
                    }
                }
            } else {
                if !table.routes.contains_key(&route.name) {
                    table.names.push(route.name.clone());
                }
                table
                    .routes
                    .entry(route.name.clone())
                    .or_default()
                    .put(route);
            }
        }
        // Longest prefix first; equal lengths keep the configuration order.
        table
            .prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        table.number_targets();
        table
    }

    /// Number the targets of the routes kept, so that the split point keeps
    /// one service per target in a `Vec` ([`RouteTable::target_count`]).
    fn number_targets(&mut self) {
        let mut next = 0;
        let slots = self
            .routes
            .values_mut()
            .chain(self.prefixes.iter_mut().map(|(_, slot)| slot))
            .chain(std::iter::once(&mut self.wildcard));
        for slot in slots {
            for route in &mut slot.0 {
                for target in Arc::make_mut(route).targets_mut() {
                    target.set_slot(next);
                    next += 1;
                }
            }
        }
        self.targets = next;
    }

    /// How many targets the routes hold: each [`ModelRoute::targets`] entry
    /// of [`RouteTable::routes`] has its own place below this number.
    pub fn target_count(&self) -> usize {
        self.targets
    }

    /// The route serving `model`: its own entry, else the prefix pattern with
    /// the longest matching prefix, else the `"*"` entry (whatever client
    /// API it is restricted to; requests use [`RouteTable::resolve_for`]).
    pub fn resolve(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.find(model, Slot::any)
    }

    /// The route serving `model` for a client of `format`: as
    /// [`RouteTable::resolve`], skipping routes restricted to other client APIs.
    pub fn resolve_for(&self, model: &str, format: ClientFormat) -> Option<&Arc<ModelRoute>> {
        self.find(model, |slot| slot.serving(format))
    }

    fn find<'a>(
        &'a self,
        model: &str,
        pick: impl Fn(&'a Slot) -> Option<&'a Arc<ModelRoute>>,
    ) -> Option<&'a Arc<ModelRoute>> {
        self.routes
            .get(model)
            .and_then(&pick)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
                    .find_map(|(_, slot)| pick(slot))
            })
            .or_else(|| pick(&self.wildcard))
    }

    /// The listed model names (not the patterns, not `"*"`), in configuration order.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Every route: exact names, prefix patterns (longest first), the wildcard last.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<ModelRoute>> {
        self.names
            .iter()
            .filter_map(|n| self.routes.get(n))
            .chain(self.prefixes.iter().map(|(_, slot)| slot))
            .chain(std::iter::once(&self.wildcard))
            .flat_map(|slot| slot.0.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Backend, Clients, Target};
    use crate::upstream::provider::mock::Mock;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::builder(name, Arc::new(Mock)).build().unwrap())
    }

    #[test]
    fn routes_restricted_to_client_apis() {
        let openai = Clients::parse(&["openai"]).unwrap();
        let anthropic = Clients::parse(&["anthropic"]).unwrap();
        let table = RouteTable::new(vec![
            ModelRoute::new("*", vec![Target::new(backend("o"), None)]).with_clients(openai),
            ModelRoute::new("*", vec![Target::new(backend("a"), None)]).with_clients(anthropic),
            ModelRoute::new("gpt-*", vec![Target::new(backend("g"), None)]).with_clients(openai),
            ModelRoute::new("exact", vec![Target::new(backend("e"), None)]),
        ]);
        let to = |model: &str, format| {
            table
                .resolve_for(model, format)
                .map(|r| r.targets()[0].backend().name().to_string())
        };
        assert_eq!(to("x", ClientFormat::OpenAi).as_deref(), Some("o"));
        assert_eq!(to("x", ClientFormat::Responses).as_deref(), Some("o"));
        assert_eq!(to("x", ClientFormat::Anthropic).as_deref(), Some("a"));
        // A pattern restricted to other clients is passed over for the catch-all.
        assert_eq!(to("gpt-4o", ClientFormat::OpenAi).as_deref(), Some("g"));
        assert_eq!(to("gpt-4o", ClientFormat::Anthropic).as_deref(), Some("a"));
        // An unrestricted exact name serves everyone.
        assert_eq!(to("exact", ClientFormat::Anthropic).as_deref(), Some("e"));
        assert_eq!(table.routes().count(), 4);
        // Without the anthropic route, Anthropic clients find nothing.
        let openai_only = RouteTable::new(vec![ModelRoute::new(
            "*",
            vec![Target::new(backend("o"), None)],
        )
        .with_clients(openai)]);
        assert!(openai_only
            .resolve_for("x", ClientFormat::Anthropic)
            .is_none());
        assert!(openai_only.resolve("x").is_some());
    }
    #[test]
    fn exact_then_longest_prefix_then_wildcard() {
        let b = backend("b");
        let table = RouteTable::new(vec![
            ModelRoute::new("*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-4*", vec![Target::new(b.clone(), None)]),
            ModelRoute::new("gpt-4o", vec![Target::new(b.clone(), None)]),
        ]);
        let name = |m: &str| table.resolve(m).map(|r| r.name().to_string());
        assert_eq!(name("gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(name("gpt-4o-mini").as_deref(), Some("gpt-4*"));
        assert_eq!(name("gpt-3.5-turbo").as_deref(), Some("gpt-*"));
        assert_eq!(name("gpt-").as_deref(), Some("gpt-*"));
        assert_eq!(name("claude-3").as_deref(), Some("*"));
        // Patterns are not model names: /v1/models lists exact names only.
        assert_eq!(table.models().collect::<Vec<_>>(), ["gpt-4o"]);
        let order: Vec<&str> = table.routes().map(|r| r.name()).collect();
        assert_eq!(order, ["gpt-4o", "gpt-4*", "gpt-*", "*"]);

        let no_wildcard = RouteTable::new(vec![ModelRoute::new(
            "claude-*",
            vec![Target::new(b, None)],
        )]);
        assert!(no_wildcard.resolve("gpt-4o").is_none());
        assert!(no_wildcard.resolve("claude-").is_some());
    }
}
