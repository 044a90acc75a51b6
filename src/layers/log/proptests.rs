//! Property tests of the copier and the redactor: they are crate-private,
//! so they are tested here; the other parsers' properties are in
//! `tests/fuzz.rs` (whose docs say how to run more cases).
//!
//! - The copier agrees with serde_json on what it accepts, and what it
//!   writes reads back as the document with every string redacted; with a
//!   cap, it says it cut exactly when a value string was over the cap, and
//!   it never writes much more than it read.
//! - The redactor gives the same answer from its memo as without it, and a
//!   configured key never survives it, whatever surrounds it.

use std::borrow::Cow;
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

use super::copier::{copy, Invalid};
use super::redact::Redactor;
use crate::layers::pii::{Detector, PiiAction, Scrubber};

const SECRET: &str = "backend-secret-xyz-0001";

/// Cases per property: `PROPTEST_CASES` when set, else `default`; failures
/// are not persisted (each one found becomes a plain regression test).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A redactor masking keys (`SECRET` among them) and every kind of PII;
/// built once (its patterns take a while to compile), cloned per case.
fn redactor() -> Redactor {
    static BUILT: LazyLock<Redactor> = LazyLock::new(|| {
        let mut r = Redactor::new(
            true,
            Some(Scrubber::new(&Detector::ALL, PiiAction::Redact)),
            None,
            vec![SECRET.into()],
        );
        r.refresh();
        r
    });
    BUILT.clone()
}

/// Text made of what the redactor looks for, and what breaks parsers.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z ]{0,6}",
        2 => prop::sample::select(vec![
            SECRET, "sk-1234567890abcdef", "Bearer abc.def-ghi_jkl012", "api_key=plainsecretvalue99",
            "jo@example.com", "+44 20 7946 0958", "192.168.1.20", "4111 1111 1111 1111",
            "€", "é", "😀", "\u{2028}", "\"", "\\", "\n", "\u{1}", "\u{7f}", "-", "_", "=",
        ]).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `v` as JSON text, compact or pretty, its non-ASCII characters as `\u`
/// escapes or not.
fn write((v, pretty, ascii): (Value, bool, bool)) -> Vec<u8> {
    let text = if pretty {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    } else {
        v.to_string()
    };
    if ascii {
        // Every non-ASCII character as a `\u` escape (pairs above the BMP).
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out.into_bytes()
    } else {
        text.into_bytes()
    }
}

/// JSON texts: written compact or pretty, with `\u` escapes, mutated, or
/// any bytes at all.
fn document() -> impl Strategy<Value = Vec<u8>> {
    let written = (json_value(), any::<bool>(), any::<bool>()).prop_map(write);
    let byte = prop_oneof![
        prop::sample::select(
            b"{}[]\",:\\ 0123456789.eE+-tfnulu\x01\x7f\xc3\xa9\xed\xa0\xf0".to_vec()
        ),
        any::<u8>(),
    ];
    let edits = prop::collection::vec((any::<Index>(), 0..3u8, byte), 1..4);
    prop_oneof![
        4 => written,
        4 => ((json_value(), any::<bool>(), any::<bool>()).prop_map(write), edits).prop_map(|(mut b, edits)| {
            for (at, kind, byte) in edits {
                let at = at.index(b.len() + 1);
                match kind {
                    0 if at < b.len() => {
                        b.remove(at);
                    }
                    1 if at < b.len() => b[at] = byte,
                    _ => b.insert(at, byte),
                }
            }
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..48),
    ]
}

/// Whether a value string (object keys aside) is longer than `cap` bytes.
fn has_value_over(v: &Value, cap: usize) -> bool {
    match v {
        Value::String(s) => s.len() > cap,
        Value::Array(items) => items.iter().any(|x| has_value_over(x, cap)),
        Value::Object(map) => map.values().any(|x| has_value_over(x, cap)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn copier_agrees_with_serde_json(src in document()) {
        let mut r = redactor();
        let want = serde_json::from_slice::<Value>(&src).ok().map(|mut v| {
            r.walk(&mut v);
            v
        });
        let mut out = b"prefix".to_vec();
        let got = copy(&src, &mut out, &mut r, usize::MAX);
        match (want, got) {
            (None, Err(Invalid)) => prop_assert_eq!(&out[..], b"prefix"),
            (Some(want), Ok(cut)) => {
                prop_assert!(!cut);
                let read: Value = serde_json::from_slice(&out[6..])
                    .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&out))))?;
                prop_assert_eq!(read, want);
            }
            (want, got) => prop_assert!(false, "serde_json {:?}, the copier {:?}: {:?}",
                want.is_some(), got, String::from_utf8_lossy(&src)),
        }
    }

    #[test]
    fn copier_cuts_values_over_the_cap(src in document(), cap in 0usize..48) {
        let mut r = redactor();
        let mut out = Vec::new();
        let Ok(cut) = copy(&src, &mut out, &mut r, cap) else {
            prop_assert!(out.is_empty());
            return Ok(());
        };
        let original: Value = serde_json::from_slice(&src).unwrap();
        prop_assert_eq!(cut, has_value_over(&original, cap));
        prop_assert!(serde_json::from_slice::<Value>(&out).is_ok(), "{:?}", String::from_utf8_lossy(&out));
        prop_assert!(out.len() <= 2 * src.len() + 16, "{} bytes out for {}", out.len(), src.len());
    }

    #[test]
    fn redactor_memo_and_keys(before in text(), after in text()) {
        let mut r = redactor();
        for t in [before.as_str(), after.as_str()] {
            let direct = r.redact_uncached(t).into_owned();
            prop_assert_eq!(r.redact(t).into_owned(), direct.clone());
            // Again: now from the memo when it was clean.
            prop_assert_eq!(r.redact(t).into_owned(), direct);
        }
        let text = format!("{before}{SECRET}{after}");
        let out = r.redact(&text);
        prop_assert!(!out.contains(SECRET), "{:?}", out);
        if let Cow::Borrowed(_) = r.redact(&before) {
            prop_assert!(!before.contains(SECRET));
        }
    }
}
