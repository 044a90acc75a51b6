//! The echo's words: token counts, message text, the `max_tokens` cut and
//! the word-by-word pieces of a stream.

use serde_json::{Map, Value};

pub(super) fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message's `content` (a string, or text parts joined).
pub(super) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

pub(super) fn max_tokens(body: &Map<String, Value>) -> Option<usize> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Cut `text` to at most `limit` words; the flag says whether it was cut.
pub(super) fn truncate_words(text: &str, limit: Option<usize>) -> (String, bool) {
    match limit {
        Some(limit) if text.split_whitespace().count() > limit => (
            text.split_whitespace()
                .take(limit)
                .collect::<Vec<_>>()
                .join(" "),
            true,
        ),
        _ => (text.to_string(), false),
    }
}

/// Split into words, each but the first keeping its leading space, so the
/// pieces join back into the exact text.
pub(super) fn words_with_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest.len() - rest.trim_start().len();
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |i| start + i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}
