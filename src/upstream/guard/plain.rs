//! The common committed OpenAI chunk — text or a tool call on its way, no
//! end, no error, no usage — recognized in one validating pass over its
//! bytes, without serde: most of a stream's events are such chunks, and
//! after the commit point nothing of them matters but that they are valid
//! JSON and, when a layer reads usage, the bytes of text they deliver.
//!
//! Anything else — a finish reason, an error, usage, an escaped key or
//! text, a tool call (whose text is counted by [`Text`](super::text::Text)'s
//! rules), a duplicate key, invalid JSON — is left to the full read
//! (`event::classify_tail`), which decides as before. The tests check the
//! two agree on mutations of real chunks.

// Untrusted bytes (the upstream's) are read here: no unchecked indexing,
// slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::request::Scanner;

/// Keys whose string is output text (as for [`Text`](super::text::Text)).
fn is_text_key(key: &[u8]) -> bool {
    matches!(
        key,
        b"content"
            | b"reasoning_content"
            | b"refusal"
            | b"text"
            | b"thinking"
            | b"partial_json"
            | b"arguments"
    )
}

/// Keys [`Text`](super::text::Text) looks into: left to the full read.
fn is_nested_key(key: &[u8]) -> bool {
    matches!(key, b"tool_calls" | b"function" | b"function_call")
}

/// The bytes of text a plain committed chunk delivers (counted only with
/// `read_text`, else 0); `None` when the chunk is not plain (see the
/// [module docs](self)).
pub(super) fn plain_chunk(data: &[u8], read_text: bool) -> Option<u64> {
    let mut s = Scanner::new(data);
    s.ws();
    let mut text = 0u64;
    let mut seen = [false; 3];
    object(&mut s, |s, key| {
        let at = match key {
            b"choices" => 0,
            b"error" => 1,
            b"usage" => 2,
            _ => return s.value(2),
        };
        if std::mem::replace(seen.get_mut(at)?, true) {
            return None;
        }
        if at == 0 {
            choices(s, read_text, &mut text)
        } else {
            // An error, or usage: the full read.
            s.literal(b"null").then_some(())
        }
    })?;
    s.at_valid_end().then_some(text)
}

/// A container at the cursor, opened by `open` and closed by `close`, each
/// of its items read by `item`.
fn items<'a>(
    s: &mut Scanner<'a>,
    (open, close): (u8, u8),
    mut item: impl FnMut(&mut Scanner<'a>) -> Option<()>,
) -> Option<()> {
    if s.next()? != open {
        return None;
    }
    s.ws();
    if s.peek()? == close {
        s.next();
        return Some(());
    }
    loop {
        s.ws();
        item(s)?;
        s.ws();
        match s.next()? {
            b',' => continue,
            c if c == close => return Some(()),
            _ => return None,
        }
    }
}

/// An object at the cursor, each of its keys (unescaped) given to `field`
/// with the cursor at the value, which `field` reads.
fn object<'a>(
    s: &mut Scanner<'a>,
    mut field: impl FnMut(&mut Scanner<'a>, &'a [u8]) -> Option<()>,
) -> Option<()> {
    items(s, (b'{', b'}'), |s| {
        let start = s.position();
        if s.peek()? != b'"' || s.string()? {
            return None;
        }
        let key = s.since(start).strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        s.ws();
        if s.next()? != b':' {
            return None;
        }
        s.ws();
        field(s, key)
    })
}

/// `choices`: an array of choice objects, none finished.
fn choices(s: &mut Scanner<'_>, read_text: bool, text: &mut u64) -> Option<()> {
    items(s, (b'[', b']'), |s| {
        if s.peek()? != b'{' {
            return None;
        }
        let mut seen = [false; 3];
        object(s, |s, key| {
            let at = match key {
                b"finish_reason" => 0,
                b"delta" => 1,
                b"text" => 2,
                _ => return s.value(3),
            };
            if std::mem::replace(seen.get_mut(at)?, true) {
                return None;
            }
            match at {
                // The end: the full read.
                0 => s.literal(b"null").then_some(()),
                _ if !read_text => s.value(3),
                1 if s.literal(b"null") => Some(()),
                1 => {
                    let n = delta(s)?;
                    *text = text.saturating_add(n);
                    Some(())
                }
                _ => {
                    let n = text_value(s)?;
                    *text = text.saturating_add(n);
                    Some(())
                }
            }
        })
    })
}

/// A delta object's text: its text keys' strings.
fn delta(s: &mut Scanner<'_>) -> Option<u64> {
    let mut n = 0u64;
    object(s, |s, key| {
        if is_nested_key(key) {
            return None;
        }
        if !is_text_key(key) {
            return s.value(4);
        }
        let len = text_value(s)?;
        n = n.saturating_add(len);
        Some(())
    })?;
    Some(n)
}

/// A text key's value: a string without escapes (its length is its text's),
/// or `null`.
fn text_value(s: &mut Scanner<'_>) -> Option<u64> {
    if s.literal(b"null") {
        return Some(0);
    }
    let start = s.position();
    if s.peek()? != b'"' || s.string()? {
        return None;
    }
    let quoted = s.since(start).len().checked_sub(2)?;
    u64::try_from(quoted).ok()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    const CHUNKS: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}],"usage":null}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"think é"},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"text":"legacy","finish_reason":null}]}"#,
        r#"{"id":"c","choices":[]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a\nb"},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
    ];

    #[test]
    fn plain_chunks_are_read_without_the_full_parse() {
        assert_eq!(plain_chunk(CHUNKS[0].as_bytes(), true), Some(5));
        assert_eq!(plain_chunk(CHUNKS[1].as_bytes(), true), Some(0));
        assert_eq!(plain_chunk(CHUNKS[2].as_bytes(), true), Some(8));
        assert_eq!(plain_chunk(CHUNKS[3].as_bytes(), true), Some(6));
        assert_eq!(plain_chunk(CHUNKS[0].as_bytes(), false), Some(0));
        // Escapes, tool calls, the end, usage, errors: the full read.
        for chunk in &CHUNKS[5..] {
            assert_eq!(plain_chunk(chunk.as_bytes(), true), None, "{chunk}");
        }
    }

    /// Wherever the fast read answers, it answers as the full read does.
    #[test]
    fn the_fast_read_agrees_with_the_full_read() {
        let alphabet = b"{}[]\",:0 \\nule\xc3";
        let seeds: Vec<&[u8]> = CHUNKS.iter().map(|c| c.as_bytes()).collect();
        let mut fast = 0;
        {
            for text in seeds
                .iter()
                .map(|s| s.to_vec())
                .chain(crate::request::json_mutations(&seeds, alphabet, 20_000))
            {
                for read_text in [false, true] {
                    let Some(n) = plain_chunk(&text, read_text) else {
                        continue;
                    };
                    fast += 1;
                    let full = super::super::event::classify_committed(&text, read_text);
                    let shown = String::from_utf8_lossy(&text);
                    assert_eq!(
                        full.kind,
                        super::super::event::EventKind::Content { finished: false },
                        "{shown}"
                    );
                    assert!(full.usage.is_none(), "{shown}");
                    assert_eq!(full.text, n, "{shown}");
                }
            }
        }
        assert!(fast > 1000, "{fast}");
    }
}
