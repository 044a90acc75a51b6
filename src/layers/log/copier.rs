//! The redacting copier: a body's JSON text copied into the log line in one
//! pass over its bytes, every string redacted, with no `serde_json::Value`
//! built and serialized again.
//!
//! [`copy`] validates the text as one JSON document with serde_json's rules
//! — so it refuses what `serde_json::from_slice` refuses: bad syntax,
//! trailing text, a control character or invalid UTF-8 in a string, a bad
//! or lone-surrogate escape, a number out of an f64's range, nesting 128
//! deep — and copies it compactly (the whitespace between tokens dropped).
//! Every string, object keys included, goes through [`Redactor::redact`]:
//! one without a backslash is read where it is (its UTF-8 checked), one with
//! escapes is decoded by serde_json. A value string longer than the cap is
//! first cut at a word boundary, as it could not be logged whole anyway, and
//! so the redaction does not read all of it (keys are never cut). A string
//! that comes out unchanged is copied as it was written, escapes and all; a
//! changed one is written escaped as serde_json writes strings. Numbers and
//! `true`/`false`/`null` are copied as written, and a repeated key is kept
//! (a reader keeps the last, as serde_json does).

use std::borrow::Cow;

use super::capture::cut_at_boundary;
use super::redact::Redactor;

/// serde_json's nesting limit: a container nested this deep is refused.
const MAX_DEPTH: usize = 128;

/// The text is not one JSON document; nothing was written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Append the JSON document `src` to `out`, compact and redacted, its value
/// strings cut to `cap` bytes (see the [module docs](self)); whether a
/// string was cut. An invalid document leaves `out` as it was.
pub(crate) fn copy(
    src: &[u8],
    out: &mut Vec<u8>,
    redactor: &mut Redactor,
    cap: usize,
) -> Result<bool, Invalid> {
    // UTF-8 is checked once, for the whole text: outside strings JSON is
    // ASCII, and a string's bytes must be UTF-8.
    let Ok(text) = std::str::from_utf8(src) else {
        return Err(Invalid);
    };
    let start = out.len();
    let mut copier = Copier {
        src,
        text,
        i: 0,
        out,
        redactor,
        cap,
        cut: false,
    };
    match copier.document() {
        Some(()) => Ok(copier.cut),
        None => {
            out.truncate(start);
            Err(Invalid)
        }
    }
}

/// Append `text` as a JSON string, escaped as serde_json escapes it: `"`,
/// `\\`, and control characters (`\n`, `\u001f`...).
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    let b = text.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut i = 0;
    let mut done = 0;
    loop {
        i = next_special(b, i);
        let Some(&c) = b.get(i) else {
            break;
        };
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[done..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
                i += 1;
                done = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[done..i]);
        out.extend_from_slice(escape);
        i += 1;
        done = i;
    }
    out.extend_from_slice(&b[done..]);
    out.push(b'"');
}

/// The cursor of [`copy`]: `None` from any step means invalid JSON.
struct Copier<'a> {
    src: &'a [u8],
    /// `src`, its UTF-8 checked.
    text: &'a str,
    i: usize,
    out: &'a mut Vec<u8>,
    redactor: &'a mut Redactor,
    cap: usize,
    cut: bool,
}

impl Copier<'_> {
    fn document(&mut self) -> Option<()> {
        self.ws();
        self.value(0)?;
        self.ws();
        (self.i == self.src.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    /// Skip whitespace (serde_json's four characters).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.src.get(self.i) {
            self.i += 1;
        }
    }

    /// One value, inside `depth` containers.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(false),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// At `{`: an object, the `depth`-th container.
    fn object(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.out.push(b'{');
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            self.out.push(b'}');
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            self.string(true)?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.out.push(b':');
            self.ws();
            self.value(depth)?;
            self.ws();
            let c = self.peek()?;
            self.i += 1;
            self.out.push(c);
            match c {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// At `[`: an array, the `depth`-th container.
    fn array(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.out.push(b'[');
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            self.out.push(b']');
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            let c = self.peek()?;
            self.i += 1;
            self.out.push(c);
            match c {
                b',' => self.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        if self.src.get(self.i..end)? != word {
            return None;
        }
        self.out.extend_from_slice(word);
        self.i = end;
        Some(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, copied as written.
    /// One that might not fit an f64 is handed to serde_json, which refuses
    /// it when it does not.
    fn number(&mut self) -> Option<()> {
        let b = self.src;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let start = self.i;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(i + 1),
            _ => return None,
        }
        let int_digits = i - int_start;
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        // The exponent when positive (saturating), for the range check.
        let mut exp = 0usize;
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let negative = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let end = digits(i);
            if end == i {
                return None;
            }
            if !negative {
                exp = b[i..end].iter().fold(0usize, |e, d| {
                    e.saturating_mul(10).saturating_add(usize::from(d - b'0'))
                });
            }
            i = end;
        }
        let text = &b[start..i];
        // Under 10^300 it fits; above, serde_json decides (it refuses
        // what would be infinite).
        if int_digits.saturating_add(exp) > 300
            && serde_json::from_slice::<serde_json::Value>(text).is_err()
        {
            return None;
        }
        self.out.extend_from_slice(text);
        self.i = i;
        Some(())
    }

    /// At `"`: a string, redacted (a value also cut to the cap).
    fn string(&mut self, key: bool) -> Option<()> {
        let b = self.src;
        let start = self.i;
        let mut j = start + 1;
        let mut escaped = false;
        loop {
            j = next_special(b, j);
            match *b.get(j)? {
                b'"' => break,
                b'\\' => {
                    // The escaped byte cannot end the string; what the
                    // escape says is checked by the decoding below.
                    escaped = true;
                    j += 2;
                }
                0..=0x1f => return None,
                _ => j += 1,
            }
        }
        let token = &b[start..=j];
        self.i = j + 1;
        let decoded: String;
        let text: &str = if escaped {
            decoded = serde_json::from_slice(token).ok()?;
            &decoded
        } else {
            self.text.get(start + 1..j)?
        };
        let cut = !key && text.len() > self.cap;
        let text = if cut {
            self.cut = true;
            cut_at_boundary(text, self.cap)
        } else {
            text
        };
        match self.redactor.redact(text) {
            Cow::Borrowed(_) if !cut => self.out.extend_from_slice(token),
            redacted => write_str(self.out, &redacted),
        }
        Some(())
    }
}

/// Where the first `"`, `\\` or control character of `b` from `i` on is,
/// eight bytes at a time (or a position at most eight bytes from the end,
/// for the caller to go on from byte by byte; `b.len()` if `i` is past it).
fn next_special(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let found = special(u64::from_le_bytes(word));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i.min(b.len())
}

/// The high bit of each byte of `w` (little-endian) that is `"`, `\\` or a
/// control character — exact up to the first such byte (a borrow can only
/// flag a byte above a true one), so the lowest bit set is the first.
fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte under n (n ≤ 0x80) sets its high bit in (x - n) & !x.
    let under = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
    let quote = w ^ (ONES * u64::from(b'"'));
    let slash = w ^ (ONES * u64::from(b'\\'));
    (under(quote, 1) | under(slash, 1) | under(w, 0x20)) & HIGHS
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::layers::pii::{Detector, PiiAction, Scrubber};

    fn redactor() -> Redactor {
        let mut r = Redactor::new(
            true,
            Some(Scrubber::new(&Detector::ALL, PiiAction::Redact)),
            None,
            vec!["backend-secret-xyz-0001".into()],
        );
        r.refresh();
        r
    }

    /// The copy of `src`, or `None` when it is refused.
    fn copied(src: &[u8], r: &mut Redactor, cap: usize) -> Option<(Vec<u8>, bool)> {
        let mut out = b"prefix".to_vec();
        match copy(src, &mut out, r, cap) {
            Ok(cut) => Some((out.split_off(6), cut)),
            Err(Invalid) => {
                assert_eq!(out, b"prefix", "a refused text leaves nothing behind");
                None
            }
        }
    }

    /// The copy as a document, with every string redacted in place the
    /// slow way: what the copy must read back as.
    fn expected(src: &[u8], r: &mut Redactor) -> Option<Value> {
        let mut v: Value = serde_json::from_slice(src).ok()?;
        r.walk(&mut v);
        Some(v)
    }

    fn check(src: &[u8], r: &mut Redactor) {
        let want = expected(src, r);
        let got = copied(src, r, usize::MAX);
        match (&want, &got) {
            (None, None) => {}
            (Some(want), Some((text, cut))) => {
                assert!(!cut);
                let read: Value = serde_json::from_slice(text).unwrap_or_else(|e| {
                    panic!(
                        "{e}: {:?} from {:?}",
                        String::from_utf8_lossy(text),
                        String::from_utf8_lossy(src)
                    )
                });
                assert_eq!(&read, want, "{:?}", String::from_utf8_lossy(src));
                // Compact: no whitespace outside strings (the serializer
                // writes none either, so a re-serialization agrees on it).
                let again = serde_json::to_vec(&read).unwrap();
                let text_ws = text.iter().filter(|b| b.is_ascii_whitespace()).count();
                let again_ws = again.iter().filter(|b| b.is_ascii_whitespace()).count();
                assert!(text_ws <= again_ws, "{:?}", String::from_utf8_lossy(text));
            }
            _ => panic!(
                "serde_json {} but the copier {}: {:?}",
                if want.is_some() { "accepts" } else { "refuses" },
                if got.is_some() { "accepts" } else { "refuses" },
                String::from_utf8_lossy(src)
            ),
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all = String::new();
        for c in (0u8..128).map(char::from).chain(['é', '😀', '\u{2028}']) {
            all.push(c);
            let one = c.to_string();
            let mut out = Vec::new();
            write_str(&mut out, &one);
            assert_eq!(out, serde_json::to_vec(&one).unwrap(), "{c:?}");
        }
        for n in 0..all.len() {
            let Some(text) = all.get(n..) else { continue };
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap());
            let long = format!("{}{text}{}", "x".repeat(n % 9), "y".repeat(n % 5));
            let mut out = Vec::new();
            write_str(&mut out, &long);
            assert_eq!(out, serde_json::to_vec(&long).unwrap());
        }
    }

    #[test]
    fn unchanged_strings_are_copied_as_written() {
        let mut r = redactor();
        let src = br#" { "a\u0062" : [ "h\u00e9 \/" , 1.50 , -0 , 1E2 ] , "a" : null } "#;
        let (text, cut) = copied(src, &mut r, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"a\u0062":["h\u00e9 \/",1.50,-0,1E2],"a":null}"#
        );
        assert!(!cut);
        // Changed ones are written escaped as serde_json writes them.
        let src = br#"{"k\u0065y sk-1234567890abcdef":"jo@example.com\n"}"#;
        let (text, _) = copied(src, &mut r, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"key sk-...def":"[EMAIL]\n"}"#
        );
    }

    #[test]
    fn value_strings_over_the_cap_are_cut_keys_are_not() {
        let mut r = redactor();
        let src = br#"{"a long key over the cap":["short","two words sk-1234567890abcdef"]}"#;
        let (text, cut) = copied(src, &mut r, 12).unwrap();
        assert!(cut);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"a long key over the cap":["short","two words "]}"#
        );
        // A cut string is written again even when the redaction left it.
        let (text, cut) = copied(br#"["\u0061bc def"]"#, &mut r, 5).unwrap();
        assert!(cut);
        assert_eq!(String::from_utf8(text).unwrap(), r#"["abc "]"#);
        let (_, cut) = copied(br#"["abc def"]"#, &mut r, 6).unwrap();
        assert!(cut);
        let (_, cut) = copied(br#"["abc def"]"#, &mut r, 7).unwrap();
        assert!(!cut);
    }

    #[test]
    fn nesting_and_numbers_are_refused_where_serde_json_refuses_them() {
        let mut r = redactor();
        for depth in [1, 2, 64, 126, 127, 128, 129, 300] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let src = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                check(src.as_bytes(), &mut r);
                let src = format!("[{}1{}]", open.repeat(depth), close.repeat(depth));
                check(src.as_bytes(), &mut r);
            }
        }
        let long = format!("1{}", "0".repeat(308));
        let longer = format!("1{}", "0".repeat(309));
        let fraction = format!("0.{}1e300", "0".repeat(400));
        for n in [
            "0",
            "-0",
            "1e308",
            "1e309",
            "-1e309",
            "1.7976931348623157e308",
            "1.8e308",
            "0e999999",
            "1e-999999",
            "1e999999999999999999999999",
            "0.0000001e310",
            "123e300",
            "99e306",
            &long,
            &longer,
            &fraction,
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "--1",
            "1.e5",
            "2E-3",
            "1ee5",
            "Infinity",
            "NaN",
        ] {
            check(n.as_bytes(), &mut r);
            check(format!("[{n}]").as_bytes(), &mut r);
            check(format!("{{\"n\":{n}}}").as_bytes(), &mut r);
        }
    }

    /// The copier against serde_json on hand-written and mutated texts:
    /// the same ones refused, and what is accepted reads back as the
    /// document with every string redacted.
    #[test]
    fn the_copier_agrees_with_serde_json() {
        let mut r = redactor();
        let seeds: &[&[u8]] = &[
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi, mail jo@example.com"}],"temperature":0.2}"#,
            br#" { "sk-1234567890abcdef" : "key backend-secret-xyz-0001" , "n" : -0.5e+10 , "x" : [ 1 , 2.0 , -3E2 , null , false, true ] } "#,
            "{\"c\":\"caf\u{e9} \u{1f600} \\u00e9 \\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000\"}".as_bytes(),
            br#"[{"a":{"b":{"c":[[],[{}]]}},"e":"","z":0},"192.168.1.20","+44 20 7946 0958"]"#,
            br#""a top-level string, Bearer abc.def-ghi_jkl012""#,
            br#"{"api_key": "plainsecretvalue99", "x":"password=hunter2hunter2"}"#,
        ];
        let fixed: &[&[u8]] = &[
            b"",
            b" ",
            b"{",
            b"}",
            b"[]",
            b"{}",
            b"[",
            b"]",
            b"\"",
            b"\"\\\"",
            b"nul",
            b"null",
            b"true ",
            b" false",
            b"tru",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"[1,]",
            b"[,1]",
            b"{,}",
            b"{1:2}",
            b"{\"a\":1 \"b\":2}",
            b"[1 2]",
            b"{\"a\":1}x",
            b"{\"a\":1} {}",
            b"\xef\xbb\xbf{}",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"\\u12g4\"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"\"\\ud83d\\ude00\"",
            b"\"\\ud83d\"",
            b"\"\x01\"",
            b"\"\x1f\"",
            b"\"\x00\"",
            b"\"\x20\"",
            b"\"\x7f\"",
            b"\"\xff\"",
            b"\"\xc3\"",
            b"\"\xc3\xa9\"",
            b"\"\xed\xa0\x80\"",
            b"[\"a\"\xff]",
            b"\xff",
            b"\"\\",
            b"\"\\\\\"",
            b"\"a\tb\"",
            b"\"a\nb\"",
            b"\t[\r\n1\r\n]\t",
            b"\x0c[]",
            b"[1]\x00",
        ];
        for src in seeds.iter().chain(fixed) {
            check(src, &mut r);
        }
        // Mutations: deterministic, bytes JSON cares about.
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnulrsaeuk\x01\x7f\xc3\xa9\xed\xa0\xf0\x9f";
        for body in crate::request::json_mutations(seeds, alphabet, 20_000) {
            check(&body, &mut r);
        }
    }
}
