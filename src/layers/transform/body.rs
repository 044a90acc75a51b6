//! The transform layer's side of answer editing: its [`Editor`].

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::rule::TransformRule;
use crate::layers::edit::{Channel, Editor, Holdback, RegexFinder};

/// Applies the response rules to one answer.
///
/// - JSON answers: every rule, in order, to the whole document.
/// - Streamed answers: `regex_replace` rules to the text deltas (each channel
///   through one [`Holdback`] per rule, chained in order; the full texts a
///   Responses stream repeats through the same rules at once), then the
///   JSONPath rules to each event's document.
pub(crate) struct TransformEditor {
    rules: Arc<[TransformRule]>,
    has_regex: bool,
    channels: HashMap<Channel, Vec<Holdback<RegexFinder>>>,
}

impl TransformEditor {
    pub(crate) fn new(rules: Arc<[TransformRule]>) -> Self {
        let has_regex = rules.iter().any(TransformRule::is_regex);
        TransformEditor {
            rules,
            has_regex,
            channels: HashMap::new(),
        }
    }
}

fn stages(rules: &[TransformRule]) -> Vec<Holdback<RegexFinder>> {
    rules
        .iter()
        .filter_map(TransformRule::finder)
        .map(|(finder, holdback)| Holdback::new(finder, holdback))
        .collect()
}

impl Editor for TransformEditor {
    fn wants(&self, channel: Channel) -> bool {
        self.has_regex && channel.is_prose()
    }

    fn text(&mut self, channel: Channel, text: &str) -> String {
        let rules = &self.rules;
        let stages = self
            .channels
            .entry(channel)
            .or_insert_with(|| stages(rules));
        let mut text = text.to_string();
        for stage in stages.iter_mut() {
            text = stage.push(&text);
        }
        text
    }

    fn flush(&mut self, channel: Channel) -> String {
        let Some(mut stages) = self.channels.remove(&channel) else {
            return String::new();
        };
        let mut text = String::new();
        for stage in stages.iter_mut() {
            text = stage.finish(&text);
        }
        text
    }

    fn whole(&mut self, _channel: Channel, text: &str) -> String {
        let mut doc = Value::String(text.to_string());
        for rule in self.rules.iter().filter(|r| r.is_regex()) {
            rule.apply(&mut doc);
        }
        match doc {
            Value::String(s) => s,
            _ => text.to_string(),
        }
    }

    fn event(&mut self, doc: &mut Value) -> bool {
        self.rules
            .iter()
            .filter(|r| !r.is_regex())
            .fold(false, |changed, r| r.apply(doc) | changed)
    }

    fn document(&mut self, doc: &mut Value) -> bool {
        self.rules
            .iter()
            .fold(false, |changed, r| r.apply(doc) | changed)
    }
}
