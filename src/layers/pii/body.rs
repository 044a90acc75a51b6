//! The PII layer's side of answer editing: restoring placeholders
//! (`reversible`) and scrubbing answers (`on = "response"`/`"both"`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use regex_automata::hybrid::dfa::Cache;

use super::scrubber::{Finding, Scrubber, Vault};
use crate::layers::edit::{edit_strings, Channel, Editor, Finder, Holdback, Prefixes};

/// Puts the original values back in place of `<EMAIL_1>`-style placeholders.
///
/// In a stream, a placeholder may be split across events: a trailing `<…`
/// that could still become one of the request's placeholders (`<`, `<EM`,
/// `<EMAIL_1`) is held back until the next event of its channel (at most 19
/// bytes); all other text is sent at once.
pub(crate) struct Restorer {
    vault: Arc<Vault>,
    pending: HashMap<Channel, String>,
}

impl Restorer {
    pub(crate) fn new(vault: Arc<Vault>) -> Self {
        Restorer {
            vault,
            pending: HashMap::new(),
        }
    }
}

impl Editor for Restorer {
    fn wants(&self, _channel: Channel) -> bool {
        true
    }

    fn text(&mut self, channel: Channel, text: &str) -> String {
        let held = self.pending.remove(&channel);
        if held.is_none() && !text.contains('<') {
            return text.to_string();
        }
        let mut buf = held.unwrap_or_default();
        buf.push_str(text);
        let cut = self.vault.pending_placeholder(&buf).unwrap_or(buf.len());
        let out = self
            .vault
            .restore_with(&buf[..cut], channel.is_json())
            .into_owned();
        if cut < buf.len() {
            self.pending.insert(channel, buf[cut..].to_string());
        }
        out
    }

    fn flush(&mut self, channel: Channel) -> String {
        self.pending
            .remove(&channel)
            .map(|rest| {
                self.vault
                    .restore_with(&rest, channel.is_json())
                    .into_owned()
            })
            .unwrap_or_default()
    }

    fn whole(&mut self, channel: Channel, text: &str) -> String {
        self.vault
            .restore_with(text, channel.is_json())
            .into_owned()
    }

    fn document(&mut self, doc: &mut Value) -> bool {
        let vault = &self.vault;
        edit_strings(doc, &mut |s| match vault.restore(s) {
            std::borrow::Cow::Owned(o) => Some(o),
            std::borrow::Cow::Borrowed(_) => None,
        })
    }
}

thread_local! {
    /// The lazy DFA cache of the detectors' [`Prefixes`] (one DFA for the
    /// process), one per thread: streams share it rather than each keeping
    /// its own (30 to 50 KiB).
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// [`Finder`] running the scrubber's detectors; only text where one of
/// their patterns could still match waits ([`Scrubber::prefixes`]).
struct ScrubFinder {
    scrubber: Scrubber,
    findings: Vec<Finding>,
    prefixes: Option<(Arc<Prefixes>, Option<Vec<usize>>)>,
}

impl Finder for ScrubFinder {
    fn find(&mut self, hay: &str, from: usize, out: &mut Vec<(usize, usize, String)>) {
        self.scrubber.find_into(hay, &mut self.findings);
        for f in self.findings.iter().filter(|f| f.start >= from) {
            out.push((
                f.start,
                f.end,
                self.scrubber.one_way(f.detector, f.text(hay)),
            ));
        }
    }

    fn pending_from(&mut self, hay: &str, from: usize) -> usize {
        let Some((prefixes, only)) = &self.prefixes else {
            return from;
        };
        CACHE.with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return from;
            };
            let cache = cache.get_or_insert_with(|| prefixes.cache());
            prefixes.pending_from(cache, hay, from, only.as_deref())
        })
    }
}

/// Scrubs answers (`redact` or `mask`): every string of a JSON answer; the
/// text and tool-call arguments of a stream, each channel holding back the
/// tail where a detector could still match (at most `holdback` bytes) so PII
/// split across events is still found.
pub(crate) struct AnswerScrubber {
    scrubber: Scrubber,
    holdback: usize,
    prefixes: Option<(Arc<Prefixes>, Option<Vec<usize>>)>,
    channels: HashMap<Channel, Holdback<ScrubFinder>>,
}

impl AnswerScrubber {
    pub(crate) fn new(scrubber: Scrubber, holdback: usize) -> Self {
        AnswerScrubber {
            scrubber,
            holdback,
            prefixes: scrubber.prefixes(),
            channels: HashMap::new(),
        }
    }
}

impl Editor for AnswerScrubber {
    fn wants(&self, _channel: Channel) -> bool {
        true
    }

    fn text(&mut self, channel: Channel, text: &str) -> String {
        let (scrubber, holdback, prefixes) = (self.scrubber, self.holdback, &self.prefixes);
        self.channels
            .entry(channel)
            .or_insert_with(|| {
                Holdback::new(
                    ScrubFinder {
                        scrubber,
                        findings: Vec::new(),
                        prefixes: prefixes.clone(),
                    },
                    holdback,
                )
            })
            .push(text)
    }

    fn flush(&mut self, channel: Channel) -> String {
        self.channels
            .remove(&channel)
            .map(|mut stage| stage.finish(""))
            .unwrap_or_default()
    }

    fn whole(&mut self, _channel: Channel, text: &str) -> String {
        self.scrubber.scrub_text(text).into_owned()
    }

    fn document(&mut self, doc: &mut Value) -> bool {
        let scrubber = self.scrubber;
        edit_strings(doc, &mut |s| match scrubber.scrub_text(s) {
            std::borrow::Cow::Owned(o) => Some(o),
            std::borrow::Cow::Borrowed(_) => None,
        })
    }
}
