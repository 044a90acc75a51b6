//! [`PerTarget`]: the services of a route table's targets, one each, made
//! once by the split point when the stack is built.

use std::sync::Arc;

use super::{RouteTable, Target};
use crate::error::ProxyError;
use crate::service::NewService;

/// One service per target of a [`RouteTable`], kept in the place the
/// table numbered the target with. Cheap to clone (one reference count).
///
/// ```
/// use std::sync::Arc;
/// use llm_router::upstream::provider::mock::Mock;
/// use llm_router::routing::{Backend, ModelRoute, PerTarget, RouteTable, Target};
/// use llm_router::upstream::Upstream;
///
/// let local = Arc::new(Backend::builder("local", Arc::new(Mock)).build().unwrap());
/// let table = RouteTable::new(vec![ModelRoute::new("echo", vec![Target::new(local, None)])]);
/// let services = PerTarget::new(&table, &Upstream::new());
/// let route = table.resolve("echo").unwrap();
/// assert_eq!(services.get(&route.targets()[0]).unwrap().target().backend().name(), "local");
/// ```
#[derive(Debug)]
pub struct PerTarget<S>(Arc<[Option<S>]>);

impl<S> Clone for PerTarget<S> {
    fn clone(&self) -> Self {
        PerTarget(self.0.clone())
    }
}

impl<S> PerTarget<S> {
    /// Make the service of each target of `table` with `new`.
    pub fn new<N>(table: &RouteTable, new: &N) -> Self
    where
        N: NewService<Target, Service = S>,
    {
        let mut services: Vec<Option<S>> = (0..table.target_count()).map(|_| None).collect();
        for route in table.routes() {
            for target in route.targets() {
                if let Some(place) = services.get_mut(target.slot()) {
                    *place = Some(new.new_service(target.clone()));
                }
            }
        }
        PerTarget(services.into())
    }

    /// The service of `target` (a target of the table these were made for).
    pub fn get(&self, target: &Target) -> Option<&S> {
        self.0.get(target.slot()).and_then(Option::as_ref)
    }

    /// The service of `target`, cloned for a call; an internal error for a
    /// target of another table (a bug, never a client's doing).
    pub fn for_call(&self, target: &Target) -> Result<S, ProxyError>
    where
        S: Clone,
    {
        self.get(target).cloned().ok_or_else(|| {
            ProxyError::Internal(format!(
                "target `{}` has no service at the split point",
                target.label()
            ))
        })
    }
}
