//! Property tests of the NDJSON line splitter ([`LineSplitter`], crate-
//! private); the stream translators built on it are tested through the
//! public API in `tests/fuzz.rs` (whose docs say how to run more cases).

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;

use super::convert::LineSplitter;

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

/// Bytes with many line breaks (`\n`, `\r\n`, lone `\r`) and '€'.
fn lines() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            &b"\n"[..], b"\r\n", b"\r", b" ", b"{\"a\":1}", "€".as_bytes(), b"x",
        ]).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for end in at {
        out.push(&bytes[start..end]);
        start = end;
    }
    out.push(&bytes[start..]);
    out
}

/// The lines of `input` the simple way: split at `\n`, one `\r` before it
/// dropped, a last line without `\n` kept unless it is blank.
fn reference(input: &[u8]) -> Vec<Bytes> {
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    let mut out: Vec<Bytes> = parts
        .into_iter()
        .map(|l| Bytes::copy_from_slice(l.strip_suffix(b"\r").unwrap_or(l)))
        .collect();
    if !last.iter().all(u8::is_ascii_whitespace) {
        out.push(Bytes::copy_from_slice(last));
    }
    out
}

proptest! {
    #![proptest_config(config(512))]

    /// Any framing: the lines of the whole input, as the reference reads them.
    #[test]
    fn lines_whatever_the_framing(input in lines(), cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let mut splitter = LineSplitter::new(1 << 20);
        let mut got = Vec::new();
        for frame in split(&input, &cuts) {
            splitter.push(frame);
            while let Some(line) = splitter.next_line().unwrap() {
                got.push(line);
            }
        }
        got.extend(splitter.finish());
        prop_assert_eq!(got, reference(&input));
    }

    /// A line longer than the cap is refused as soon as more than the cap
    /// of it is held, and only then.
    #[test]
    fn long_lines_are_refused(input in lines(), cuts in prop::collection::vec(any::<Index>(), 0..12), cap in 1usize..32) {
        let mut splitter = LineSplitter::new(cap);
        let mut fed = 0;
        'frames: for frame in split(&input, &cuts) {
            splitter.push(frame);
            fed += frame.len();
            loop {
                match splitter.next_line() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        let held = input[..fed].iter().rev().take_while(|&&b| b != b'\n').count();
                        prop_assert!(held > cap, "refused with {held} bytes held");
                        break 'frames;
                    }
                }
            }
            let held = input[..fed].iter().rev().take_while(|&&b| b != b'\n').count();
            prop_assert!(held <= cap, "{held} bytes held over a cap of {cap}");
        }
    }
}
