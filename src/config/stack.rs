//! `[stack]`: the layer order, checked against the layers this build has.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::stack::LayerName;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStack {
    order: Spanned<Vec<Spanned<String>>>,
}

impl Loader<'_> {
    pub(super) fn stack(
        &self,
        raw: Option<RawStack>,
    ) -> Result<(Vec<LayerName>, bool), ConfigError> {
        let Some(raw) = raw else {
            // The default order, limited to the layers this build has.
            let order = LayerName::DEFAULT_ORDER
                .iter()
                .copied()
                .filter(|l| l.is_built())
                .collect();
            return Ok((order, false));
        };
        // Names and duplicates first, then what this build has.
        let mut order: Vec<LayerName> = Vec::new();
        for (i, entry) in raw.order.get_ref().iter().enumerate() {
            let key = format!("stack.order[{i}]");
            let name = entry.get_ref();
            let Some(layer) = LayerName::parse(name) else {
                let known: Vec<&str> = LayerName::ALL.iter().map(|l| l.as_str()).collect();
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("unknown layer `{name}`; known layers: {}", known.join(", ")),
                ));
            };
            if let Some(first) = order.iter().position(|l| *l == layer) {
                return Err(self.err(
                    Some(entry.span()),
                    key,
                    format!("layer `{name}` is listed twice (first as stack.order[{first}]); each layer may appear once"),
                ));
            }
            order.push(layer);
        }
        for (i, (entry, layer)) in raw.order.get_ref().iter().zip(&order).enumerate() {
            if !layer.is_built() {
                let built: Vec<&str> = LayerName::ALL
                    .iter()
                    .filter(|l| l.is_built())
                    .map(|l| l.as_str())
                    .collect();
                let built = if built.is_empty() {
                    "none yet, so `order = []`".to_string()
                } else {
                    built.join(", ")
                };
                return Err(self.err(Some(entry.span()), format!("stack.order[{i}]"), format!(
                    "layer `{}` is not available in this version of llm-router yet; remove it from [stack] order (available layers: {built})",
                    layer.as_str()
                )));
            }
        }
        Ok((order, true))
    }
}
