//! How much text an event delivers, read without keeping it: the charge of
//! a stream cut short before its upstream reported usage counts it (see
//! [`UsageSlot`](crate::usage::UsageSlot)).
//!
//! [`Text`] deserializes any JSON value and never fails, so an event of an
//! unexpected shape is still classified as before: strings under the keys
//! that carry a model's output (`content`, `reasoning_content`, `refusal`,
//! `text`, `thinking`, `partial_json`, tool call `arguments`) count their
//! bytes, `tool_calls`, `function` and `function_call` are looked into, the rest is skipped.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Keys whose string is output text.
const TEXT: &[&str] = &[
    "content",
    "reasoning_content",
    "refusal",
    "text",
    "thinking",
    "partial_json",
    "arguments",
];

/// Keys looked into for more text.
const NESTED: &[&str] = &["tool_calls", "function", "function_call"];

/// The bytes of output text in a JSON value (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Text(pub(super) u64);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor { string: true })
    }
}

/// A value whose strings do not count: only its text keys do.
struct Nested(u64);

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor { string: false })
            .map(|t| Nested(t.0))
    }
}

struct TextVisitor {
    /// A string here is text (under a text key), not a name or an id.
    string: bool,
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Text, E> {
        Ok(Text(if self.string {
            u64::try_from(v.len()).unwrap_or(u64::MAX)
        } else {
            0
        }))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_unit<E>(self) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_none<E>(self) -> Result<Text, E> {
        Ok(Text(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        let mut sum = 0u64;
        while let Some(item) = seq.next_element::<Nested>()? {
            sum = sum.saturating_add(item.0);
        }
        Ok(Text(sum))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        let mut sum = 0u64;
        while let Some(key) = map.next_key::<Key>()? {
            let n = match key {
                Key::Text => map.next_value::<Text>()?.0,
                Key::Nested => map.next_value::<Nested>()?.0,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    0
                }
            };
            sum = sum.saturating_add(n);
        }
        Ok(Text(sum))
    }
}

/// What a key's value is to [`Text`] (read without allocating).
enum Key {
    Text,
    Nested,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(if TEXT.contains(&v) {
                    Key::Text
                } else if NESTED.contains(&v) {
                    Key::Nested
                } else {
                    Key::Other
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The raw length (escapes included) of the string value of the first
/// `"key":` in a JSON text; 0 when there is none. For events the guard does
/// not parse (Responses deltas): a `"key":` cannot occur inside a string,
/// whose quotes are escaped.
pub(super) fn raw_string_len(data: &[u8], key: &[u8]) -> u64 {
    let Some(at) = memchr::memmem::find(data, key) else {
        return 0;
    };
    let rest = data.get(at.saturating_add(key.len())..).unwrap_or_default();
    let Some(body) = rest.trim_ascii_start().strip_prefix(b":") else {
        return 0;
    };
    let Some(body) = body.trim_ascii_start().strip_prefix(b"\"") else {
        return 0;
    };
    let mut from = 0usize;
    while let Some(found) = body
        .get(from..)
        .and_then(|tail| memchr::memchr2(b'"', b'\\', tail))
    {
        let at = from.saturating_add(found);
        match body.get(at) {
            Some(b'"') => return u64::try_from(at).unwrap_or(u64::MAX),
            // An escape: skip the escaped byte.
            _ => from = at.saturating_add(2),
        }
    }
    0
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn text(json: &str) -> u64 {
        serde_json::from_str::<Text>(json).unwrap().0
    }

    #[test]
    fn counts_output_text_only() {
        assert_eq!(text(r#""hello""#), 5);
        assert_eq!(text(r#"{"content":"abc","role":"assistant"}"#), 3);
        assert_eq!(text(r#"{"reasoning_content":"ab","refusal":"c"}"#), 3);
        assert_eq!(
            text(
                r#"{"tool_calls":[{"id":"call_1","function":{"name":"f","arguments":"{\"a\":1}"}}]}"#
            ),
            7
        );
        assert_eq!(text(r#"{"type":"text_delta","text":"héllo"}"#), 6);
        assert_eq!(
            text(r#"{"type":"input_json_delta","partial_json":"{\"x\""}"#),
            4
        );
        // Any shape: never an error.
        for odd in [
            "null",
            "1",
            "true",
            "[1,2]",
            r#"{"content":[{"x":1}]}"#,
            r#"{"content":null}"#,
        ] {
            assert_eq!(text(odd), 0, "{odd}");
        }
    }

    #[test]
    fn raw_delta_length() {
        let key = b"\"delta\"";
        assert_eq!(
            raw_string_len(br#"{"type":"x","delta":"hello","sequence_number":3}"#, key),
            5
        );
        assert_eq!(raw_string_len(br#"{"delta" : "a\"b\\","n":1}"#, key), 6);
        assert_eq!(raw_string_len(br#"{"delta":5}"#, key), 0);
        assert_eq!(raw_string_len(br#"{"delta":"unterminated"#, key), 0);
        assert_eq!(raw_string_len(br#"{"delta":"ends in escape\"#, key), 0);
        assert_eq!(raw_string_len(b"", key), 0);
    }
}
