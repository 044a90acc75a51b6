//! Property tests ("fuzzing" on the stable toolchain) of every parser that
//! reads bytes the proxy does not control, through the public API: the
//! request scanner ([`LlmRequest::parse_bytes`]), the SSE decoder
//! ([`SseParser`]), the NDJSON decoder (the Ollama stream), each provider's
//! stream translator (Anthropic both ways, Gemini, Ollama) and the XML tool
//! parser ([`XmlScanner`] and the streamed rewrite of `xml_tools::answer`),
//! both Responses translators (chat chunks into Responses events for a
//! Responses client, Responses events into chat chunks for an `api =
//! "responses"` backend) and the token estimator.
//! The log's copier and redactor, and the NDJSON line splitter, are
//! crate-private: their properties are in `src/layers/log/proptests.rs` and
//! `src/translate/proptests.rs`.
//!
//! Each parser gets arbitrary bytes and valid-looking inputs (generated
//! events, then mutated), split into frames at arbitrary points (a '€' cut
//! in the middle included), with index and count fields that include
//! `u64::MAX` and 10^12. The properties: nothing panics; the output stays
//! within a multiple of the input; the output does not depend on how the
//! input was split; the scanner agrees with serde_json.
//!
//! Every case is generated (no sleeps, no network). The default case count
//! keeps this file well under a minute in a debug build; more, locally:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --test fuzz
//! ```
//!
//! Failures are not persisted to `proptest-regressions/`: each one found is
//! a plain regression test below (`regressions`), with its input written out.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::{Body, Frame};
use http_body_util::StreamBody;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

use llm_router::__private::sse::{SseEvent, SseParser};
use llm_router::__private::translate::xml_tools::{self, Piece, XmlScanner};
use llm_router::routing::{Backend, Target};
use llm_router::upstream::provider::{self, Call};
use llm_router::ProxyBody;
use llm_router::{Endpoint, LlmRequest};

// ---------------------------------------------------------------------------
// Harness

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Each failure found becomes a plain regression test instead.
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

/// `bytes` cut at `cuts` (positions taken modulo the length; repeated
/// positions give empty frames).
fn split(bytes: &[u8], cuts: &[Index]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for end in at {
        out.push(Bytes::copy_from_slice(&bytes[start..end]));
        start = end;
    }
    out.push(Bytes::copy_from_slice(&bytes[start..]));
    out
}

/// `text` cut at `cuts`, each moved back to a char boundary.
fn split_str<'a>(text: &'a str, cuts: &[Index]) -> Vec<&'a str> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|i| {
            let mut n = i.index(text.len() + 1);
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            n
        })
        .collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for end in at {
        out.push(&text[start..end]);
        start = end;
    }
    out.push(&text[start..]);
    out
}

/// A body made of these frames, every one ready at once.
fn body_of(frames: Vec<Bytes>) -> ProxyBody {
    let frames = frames
        .into_iter()
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    ProxyBody::new(StreamBody::new(futures_util::stream::iter(frames)))
}

/// Everything a body yields (its frames' data joined), and its error if it
/// ended with one. Polled without a runtime: every frame is ready.
fn drain(body: ProxyBody) -> (Vec<u8>, Option<String>) {
    let mut body = std::pin::pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(e))) => return (out, Some(e.to_string())),
            Poll::Ready(None) => return (out, None),
            Poll::Pending => panic!("a body of ready frames is never pending"),
        }
    }
}

/// An upstream answer with this content type and these frames.
fn answer(content_type: &str, frames: Vec<Bytes>) -> Response<ProxyBody> {
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(body_of(frames))
        .expect("a valid response")
}

/// The streamed chat request every provider test answers.
static STREAM_REQUEST: LazyLock<LlmRequest> = LazyLock::new(|| {
    LlmRequest::parse(
        Endpoint::ChatCompletions,
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("a valid request")
});

fn target(provider: &str) -> Target {
    let backend = Backend::builder(provider, provider::by_name(provider).expect("a provider"))
        .base_url("http://127.0.0.1:9")
        .build()
        .expect("a backend");
    Target::new(Arc::new(backend), Some("m"))
}

static GEMINI: LazyLock<Target> = LazyLock::new(|| target("gemini"));
static OLLAMA: LazyLock<Target> = LazyLock::new(|| target("ollama"));

/// The provider's streamed answer to [`STREAM_REQUEST`] for these frames.
fn respond(target: &Target, content_type: &str, frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
    let headers = HeaderMap::new();
    let call = Call {
        request: &STREAM_REQUEST,
        target,
        headers: &headers,
        client_credential: None,
    };
    let response = target
        .backend()
        .provider()
        .respond(&call, answer(content_type, frames));
    drain(response.into_body())
}

/// Output events made comparable across runs: each event's lines, the
/// `data:` JSON parsed, generated values (`id`s, `created`) renamed in
/// order of appearance.
fn normalized(out: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(out);
    let mut ids: Vec<String> = Vec::new();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let mut lines = Vec::new();
            for line in event.split('\n') {
                let mut v = match line.strip_prefix("data: ") {
                    Some(data) => serde_json::from_str(data)
                        .unwrap_or_else(|_| Value::String(line.to_string())),
                    None => Value::String(line.to_string()),
                };
                canonical(&mut v, &mut ids);
                lines.push(v);
            }
            Value::Array(lines)
        })
        .collect()
}

fn canonical(v: &mut Value, ids: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match (k.as_str(), &*x) {
                    ("created", Value::Number(_)) => *x = json!(0),
                    ("id", Value::String(id)) => {
                        let n = match ids.iter().position(|i| i == id) {
                            Some(n) => n,
                            None => {
                                ids.push(id.clone());
                                ids.len() - 1
                            }
                        };
                        *x = json!(format!("id{n}"));
                    }
                    _ => canonical(x, ids),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| canonical(x, ids)),
        _ => {}
    }
}

/// Every event of a translator's own output is well formed: UTF-8,
/// an optional `event:` line, then `data: ` with JSON or `[DONE]`.
fn assert_well_formed(out: &[u8]) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(out)
        .map_err(|e| TestCaseError::fail(format!("output is not UTF-8: {e}")))?;
    prop_assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = match event.split_once('\n') {
            Some((name, data)) => {
                prop_assert!(name.starts_with("event: "), "{event:?}");
                data
            }
            None => event,
        };
        let data = data
            .strip_prefix("data: ")
            .ok_or_else(|| TestCaseError::fail(format!("not a data line: {event:?}")))?;
        prop_assert!(
            data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
            "not JSON: {data:?}"
        );
    }
    Ok(())
}

/// Output within `factor` times the input (plus a constant for the closing
/// events): no translator may amplify what an upstream sends without bound.
fn assert_bounded(input: usize, output: usize, factor: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        output <= factor * input + 4096,
        "{output} bytes out for {input} in"
    );
    Ok(())
}

/// SSE text of these events (`event:` line when the JSON has a `type`).
fn sse(events: &[Value], named: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if named {
            if let Some(t) = e.get("type").and_then(Value::as_str) {
                out.extend_from_slice(format!("event: {t}\n").as_bytes());
            }
        }
        match e {
            Value::String(s) => out.extend_from_slice(format!("data: {s}\n\n").as_bytes()),
            v => out.extend_from_slice(format!("data: {v}\n\n").as_bytes()),
        }
    }
    out
}

/// `bytes` with up to a few bytes removed, replaced or inserted.
fn mutate(mut bytes: Vec<u8>, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    for (at, kind, byte) in edits {
        let at = at.index(bytes.len() + 1);
        match kind % 3 {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => bytes[at] = *byte,
            _ => bytes.insert(at, *byte),
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// Strategies

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

fn edits() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    let byte = prop_oneof![
        prop::sample::select(b"{}[]\",:\\ 0123456789.-eEtfnul\n\r".to_vec()),
        any::<u8>(),
    ];
    prop::collection::vec((any::<Index>(), any::<u8>(), byte), 0..4)
}

/// Text rich in what breaks parsers: multi-byte characters, markup,
/// quotes, backslashes, line breaks, control characters.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec!['€', 'é', '😀', '中', '\u{2028}']),
        2 => prop::sample::select(vec!['<', '>', '/', '"', '\\', '\n', '\r', ' ', '{', '}', ':', '\u{0}', '\u{1f}']),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 0..24).prop_map(String::from_iter)
}

/// A short name (id, model, tool name).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,12}",
        1 => text(),
    ]
}

/// A count or index as an upstream may send it: small, or extreme.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..4u64,
        1 => Just(u64::MAX),
        1 => Just(1_000_000_000_000u64),
        1 => any::<u64>(),
    ]
}

/// Any JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
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

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

/// An object of the present fields only.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// The SSE decoder

mod sse_decoder {
    use super::*;

    fn events(parser: &mut SseParser, frames: &[Bytes]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for frame in frames {
            parser.push(frame);
            while let Some(e) = parser.next_event().expect("under the cap") {
                out.push(e);
            }
        }
        out.extend(parser.finish());
        out
    }

    /// SSE-ish bytes: field names, line breaks of every kind, '€'.
    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            3 => prop::sample::select(vec![
                &b"data: "[..], b"data:", b"event: ", b"id: 1", b": c", b"\n", b"\r\n", b"\r",
                b"\n\n", b"{\"a\":1}", b"[DONE]", "€".as_bytes(), b"x",
            ]).prop_map(<[u8]>::to_vec),
            1 => prop::collection::vec(any::<u8>(), 0..6),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    /// One generated event: an optional name and its data lines.
    fn event() -> impl Strategy<Value = (Option<String>, Vec<String>)> {
        let line = "[^\r\n]{0,12}";
        (
            proptest::option::of("[a-z_]{1,10}"),
            prop::collection::vec(line, 1..4),
        )
    }

    proptest! {
        #![proptest_config(config(512))]

        /// Any bytes, any framing: the same events as in one piece, and
        /// together they are the input (less trailing blank space).
        #[test]
        fn any_framing_gives_the_same_events(input in sse_bytes(), cuts in cuts()) {
            let whole = events(&mut SseParser::new(1 << 20), &[Bytes::from(input.clone())]);
            let framed = events(&mut SseParser::new(1 << 20), &split(&input, &cuts));
            prop_assert_eq!(&whole, &framed);
            let raw: Vec<u8> = whole.iter().flat_map(|e| e.raw.to_vec()).collect();
            prop_assert!(input.starts_with(&raw));
            prop_assert!(input[raw.len()..].iter().all(u8::is_ascii_whitespace));
            for e in &whole {
                prop_assert!(e.data.len() <= e.raw.len());
            }
        }

        /// Well-formed events, with any one line ending, read back as sent.
        #[test]
        fn generated_events_read_back(
            sent in prop::collection::vec(event(), 0..8),
            ending in prop::sample::select(vec!["\n", "\r\n", "\r"]),
            comments in any::<bool>(),
            cuts in cuts(),
        ) {
            let mut input = String::new();
            for (name, lines) in &sent {
                if comments {
                    input.push_str(&format!(": keep-alive{ending}"));
                }
                if let Some(name) = name {
                    input.push_str(&format!("event: {name}{ending}"));
                }
                for line in lines {
                    input.push_str(&format!("data: {line}{ending}"));
                }
                input.push_str(ending);
            }
            let got: Vec<(Option<String>, Vec<u8>)> =
                events(&mut SseParser::new(1 << 20), &split(input.as_bytes(), &cuts))
                    .into_iter()
                    .filter(|e| !e.is_empty())
                    .map(|e| (e.event, e.data.to_vec()))
                    .collect();
            // An event of one empty data line is no event (as the spec says).
            let want: Vec<(Option<String>, Vec<u8>)> = sent
                .iter()
                .map(|(name, lines)| (name.clone(), lines.join("\n").into_bytes()))
                .filter(|(name, data)| name.is_some() || !data.is_empty())
                .collect();
            prop_assert_eq!(got, want);
        }

        /// Nothing incomplete past the cap is held: the parser refuses it.
        #[test]
        fn held_bytes_stay_under_the_cap(input in sse_bytes(), cuts in cuts(), cap in 1usize..64) {
            let mut parser = SseParser::new(cap);
            'frames: for frame in split(&input, &cuts) {
                parser.push(&frame);
                loop {
                    match parser.next_event() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'frames,
                    }
                }
                prop_assert!(parser.pending() <= cap);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The request scanner

mod request_scanner {
    use super::*;

    /// A request-like body: `model` and `stream` among other fields, in
    /// any order, with arbitrary whitespace.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let model = prop_oneof![
            4 => name().prop_map(Value::String),
            1 => json_value(),
        ];
        let stream = prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            Just(Value::Null),
            json_value(),
        ];
        (
            opt(model),
            opt(stream),
            prop::collection::vec((text(), json_value()), 0..4),
            any::<u64>(),
            prop::collection::vec(prop::sample::select(vec!["", " ", "\n", "\t", "\r\n  "]), 8),
            any::<bool>(),
        )
            .prop_map(|(model, stream, fields, seed, ws, repeat_model)| {
                let mut pairs: Vec<(String, Value)> = fields;
                if let Some(m) = &model {
                    pairs.insert(
                        (seed % 3) as usize % (pairs.len() + 1),
                        ("model".into(), m.clone()),
                    );
                    if repeat_model {
                        pairs.push(("model".into(), json!("other")));
                    }
                }
                if let Some(s) = stream {
                    let at = (seed / 7) as usize % (pairs.len() + 1);
                    pairs.insert(at, ("stream".into(), s));
                }
                let w = |i: usize| ws[(seed as usize + i) % ws.len()];
                let mut out = format!("{}{{", w(0));
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!(
                        "{}{}{}:{}{}{}",
                        w(i + 1),
                        Value::String(k.clone()),
                        w(i + 2),
                        w(i + 3),
                        v,
                        w(i + 4)
                    ));
                }
                out.push_str(&format!("}}{}", w(5)));
                out.into_bytes()
            })
    }

    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => body(),
            4 => (body(), edits()).prop_map(|(b, e)| mutate(b, &e)),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    /// What serde_json makes of a body: the request it must give, or None
    /// for a 400.
    fn expected(bytes: &[u8]) -> Option<Map<String, Value>> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
            return None;
        };
        match map.get("model") {
            Some(Value::String(m)) if !m.is_empty() => {}
            _ => return None,
        }
        match map.get("stream") {
            None | Some(Value::Bool(_)) | Some(Value::Null) => Some(map),
            Some(_) => None,
        }
    }

    proptest! {
        #![proptest_config(config(1024))]

        /// The lazy parse against serde_json: the same bodies refused; for
        /// the others the same model, stream flag and document, and the
        /// bytes sent upstream (as they are, or with the model spliced in)
        /// read back as the document with that model.
        #[test]
        fn parse_agrees_with_serde_json(bytes in bodies(), new_model in name()) {
            let parsed = LlmRequest::parse_bytes(Endpoint::ChatCompletions, Bytes::from(bytes.clone()));
            let want = expected(&bytes);
            match (parsed, want) {
                (Err(e), None) => prop_assert_eq!(e.status(), 400),
                (Ok(r), Some(map)) => {
                    // A body the full parse took goes upstream re-serialized:
                    // its numbers as serde_json writes them back (without
                    // its `float_roundtrip` feature, the last digit of a
                    // float may change).
                    prop_assert_eq!(r.body(), &map);
                    let map = if r.is_unedited() {
                        map
                    } else {
                        serde_json::from_slice(&serde_json::to_vec(&map).unwrap()).unwrap()
                    };
                    prop_assert_eq!(Some(r.model()), map["model"].as_str());
                    prop_assert_eq!(r.is_stream(), map.get("stream") == Some(&Value::Bool(true)));
                    let same: Value = serde_json::from_slice(&r.to_bytes(None).unwrap()).unwrap();
                    prop_assert_eq!(&same, &Value::Object(map.clone()));
                    let renamed: Value =
                        serde_json::from_slice(&r.to_bytes(Some(&new_model)).unwrap()).unwrap();
                    let mut want_renamed = map.clone();
                    want_renamed.insert("model".into(), Value::String(new_model.clone()));
                    prop_assert_eq!(&renamed, &Value::Object(want_renamed));
                }
                (Ok(r), None) => prop_assert!(false, "accepted what serde_json refuses: {:?} ({})",
                    String::from_utf8_lossy(&bytes), r.model()),
                (Err(e), Some(_)) => prop_assert!(false, "refused what serde_json accepts: {:?}: {e}",
                    String::from_utf8_lossy(&bytes)),
            }
        }

        /// A plain body (no escapes, one `model`, shallow, ordinary
        /// numbers) takes the lazy path: it goes upstream as its own bytes.
        #[test]
        fn plain_bodies_stay_raw(bytes in body()) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let plain = expected(&bytes).is_some()
                && !text.contains('\\')
                && text.matches("\"model\"").count() == 1
                && text.matches("\"stream\"").count() <= 1
                && !regex_lite_exponent(&text);
            if plain {
                let r = LlmRequest::parse_bytes(Endpoint::ChatCompletions, Bytes::from(bytes.clone())).unwrap();
                prop_assert!(r.is_unedited(), "{text:?}");
                prop_assert_eq!(&r.to_bytes(None).unwrap()[..], &bytes[..]);
            }
        }
    }

    /// A number with a three-digit exponent or 300 digits (left to the full
    /// parse by design).
    fn regex_lite_exponent(text: &str) -> bool {
        let b = text.as_bytes();
        let mut run = 0;
        for (i, c) in b.iter().enumerate() {
            if c.is_ascii_digit() {
                run += 1;
                if run >= 300 {
                    return true;
                }
            } else {
                run = 0;
            }
            if matches!(c, b'e' | b'E') {
                let rest = &b[i + 1..];
                let rest = rest
                    .strip_prefix(b"+")
                    .or(rest.strip_prefix(b"-"))
                    .unwrap_or(rest);
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    return true;
                }
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------
// Anthropic stream -> OpenAI chunks

mod anthropic_to_openai {
    use super::*;
    use llm_router::__private::translate::anthropic;

    pub(super) fn usage() -> impl Strategy<Value = Value> {
        (opt(number()), opt(number()), opt(number()), opt(number())).prop_map(|(i, o, r, c)| {
            object(vec![
                ("input_tokens", i.map(Value::from)),
                ("output_tokens", o.map(Value::from)),
                ("cache_read_input_tokens", r.map(Value::from)),
                ("cache_creation_input_tokens", c.map(Value::from)),
            ])
        })
    }

    pub(super) fn event() -> impl Strategy<Value = Value> {
        let block = (
            prop::sample::select(vec!["text", "thinking", "tool_use", "server_tool_use", "x"]),
            text(),
            name(),
            opt(json_value()),
        )
            .prop_map(|(kind, t, n, input)| {
                json!({"type": kind, "text": t, "thinking": t, "id": n, "name": n, "input": input})
            });
        let delta = (
            prop::sample::select(vec![
                "text_delta",
                "thinking_delta",
                "input_json_delta",
                "signature_delta",
            ]),
            text(),
        )
            .prop_map(
                |(kind, t)| json!({"type": kind, "text": t, "thinking": t, "partial_json": t}),
            );
        prop_oneof![
            1 => (name(), name(), usage()).prop_map(|(id, model, u)| json!({"type": "message_start",
                "message": {"id": id, "model": model, "usage": u}})),
            1 => (number(), block).prop_map(|(i, b)| json!({"type": "content_block_start", "index": i, "content_block": b})),
            3 => (number(), delta).prop_map(|(i, d)| json!({"type": "content_block_delta", "index": i, "delta": d})),
            1 => number().prop_map(|i| json!({"type": "content_block_stop", "index": i})),
            1 => (opt(prop::sample::select(vec!["end_turn", "tool_use", "max_tokens", "refusal", "?"])), usage())
                .prop_map(|(s, u)| json!({"type": "message_delta", "delta": {"stop_reason": s}, "usage": u})),
            1 => Just(json!({"type": "message_stop"})),
            1 => Just(json!({"type": "ping"})),
            1 => (name(), text()).prop_map(|(t, m)| json!({"type": "error", "error": {"type": t, "message": m}})),
            1 => json_value(),
        ]
    }

    pub(super) fn stream() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(event(), 0..16),
            edits(),
            any::<bool>(),
        )
            .prop_map(|(events, e, mutated)| {
                let bytes = sse(&events, true);
                if mutated {
                    mutate(bytes, &e)
                } else {
                    bytes
                }
            })
    }

    fn translate(frames: Vec<Bytes>, include_usage: bool) -> (Vec<u8>, Option<String>) {
        let response = answer("text/event-stream", frames);
        drain(anthropic::answer_to_openai(response, include_usage).into_body())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_stream_any_framing(input in stream(), cuts in cuts(), include_usage in any::<bool>()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())], include_usage);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_bounded(input.len(), whole.len(), 32)?;
            let (framed, err) = translate(split(&input, &cuts), include_usage);
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts), true);
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }
}

// ---------------------------------------------------------------------------
// OpenAI chunks -> Anthropic stream

mod openai_to_anthropic {
    use super::*;
    use llm_router::__private::translate::anthropic;

    pub(super) fn tool_call(index: BoxedStrategy<u64>) -> impl Strategy<Value = Value> {
        (opt(index), opt(name()), opt(name()), opt(text())).prop_map(|(i, id, n, args)| {
            object(vec![
                ("index", i.map(Value::from)),
                ("id", id.map(Value::from)),
                ("type", Some(json!("function"))),
                (
                    "function",
                    Some(object(vec![
                        ("name", n.map(Value::from)),
                        ("arguments", args.map(Value::from)),
                    ])),
                ),
            ])
        })
    }

    /// A `chat.completion.chunk`, `[DONE]`, an error, or anything.
    pub(super) fn chunk(
        index: BoxedStrategy<u64>,
        content: BoxedStrategy<String>,
    ) -> impl Strategy<Value = Value> {
        let delta = (
            opt(Just("assistant".to_string())),
            opt(content),
            opt(text()),
            opt(text()),
            opt(prop::collection::vec(tool_call(index.clone()), 0..3)),
        )
            .prop_map(|(role, content, reasoning, refusal, calls)| {
                object(vec![
                    ("role", role.map(Value::from)),
                    ("content", content.map(Value::from)),
                    ("reasoning_content", reasoning.map(Value::from)),
                    ("refusal", refusal.map(Value::from)),
                    ("tool_calls", calls.map(Value::from)),
                ])
            });
        let choice = (
            opt(index),
            delta,
            opt(prop::sample::select(vec![
                "stop",
                "length",
                "tool_calls",
                "content_filter",
                "?",
            ])),
            opt(json_value()),
        )
            .prop_map(|(i, d, f, logprobs)| {
                object(vec![
                    ("index", i.map(Value::from)),
                    ("delta", Some(d)),
                    ("finish_reason", f.map(Value::from)),
                    ("logprobs", logprobs),
                ])
            });
        let usage = (number(), number(), opt(number())).prop_map(|(p, c, cached)| {
            object(vec![
                ("prompt_tokens", Some(p.into())),
                ("completion_tokens", Some(c.into())),
                (
                    "prompt_tokens_details",
                    cached.map(|c| json!({"cached_tokens": c})),
                ),
            ])
        });
        prop_oneof![
            6 => (name(), name(), prop::collection::vec(choice, 0..3), opt(usage))
                .prop_map(|(id, model, choices, usage)| object(vec![
                    ("id", Some(id.into())),
                    ("object", Some(json!("chat.completion.chunk"))),
                    ("created", Some(json!(1))),
                    ("model", Some(model.into())),
                    ("choices", Some(choices.into())),
                    ("usage", usage),
                ])),
            1 => Just(Value::String("[DONE]".into())),
            1 => (name(), text()).prop_map(|(t, m)| json!({"error": {"type": t, "message": m}})),
            1 => json_value(),
        ]
    }

    pub(super) fn stream(
        index: BoxedStrategy<u64>,
        content: BoxedStrategy<String>,
    ) -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(chunk(index, content), 0..12),
            edits(),
            any::<bool>(),
        )
            .prop_map(|(events, e, mutated)| {
                let bytes = sse(&events, false);
                if mutated {
                    mutate(bytes, &e)
                } else {
                    bytes
                }
            })
    }

    fn translate(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        let response = answer("text/event-stream", frames);
        drain(anthropic::answer_from_openai(response).into_body())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_stream_any_framing(input in stream(number().boxed(), text().boxed()), cuts in cuts()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())]);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_bounded(input.len(), whole.len(), 32)?;
            let (framed, err) = translate(split(&input, &cuts));
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts));
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Gemini stream -> OpenAI chunks

mod gemini_stream {
    use super::*;

    fn part() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => text().prop_map(|t| json!({"text": t})),
            1 => text().prop_map(|t| json!({"text": t, "thought": true})),
            1 => (opt(name()), opt(name()), opt(json_value())).prop_map(|(id, n, args)| {
                json!({"functionCall": object(vec![("id", id.map(Value::from)), ("name", n.map(Value::from)), ("args", args)])})
            }),
            1 => json_value(),
        ]
    }

    pub(super) fn response(index: BoxedStrategy<u64>) -> impl Strategy<Value = Value> {
        let candidate = (
            opt(index),
            prop::collection::vec(part(), 0..3),
            opt(prop::sample::select(vec![
                "STOP",
                "MAX_TOKENS",
                "SAFETY",
                "?",
            ])),
        )
            .prop_map(|(i, parts, finish)| {
                object(vec![
                    ("index", i.map(Value::from)),
                    ("content", Some(json!({"role": "model", "parts": parts}))),
                    ("finishReason", finish.map(Value::from)),
                ])
            });
        let meta = (
            opt(number()),
            opt(number()),
            opt(number()),
            opt(number()),
            opt(number()),
            opt(number()),
        )
            .prop_map(|(p, t, c, th, total, cached)| {
                object(vec![
                    ("promptTokenCount", p.map(Value::from)),
                    ("toolUsePromptTokenCount", t.map(Value::from)),
                    ("candidatesTokenCount", c.map(Value::from)),
                    ("thoughtsTokenCount", th.map(Value::from)),
                    ("totalTokenCount", total.map(Value::from)),
                    ("cachedContentTokenCount", cached.map(Value::from)),
                ])
            });
        prop_oneof![
            8 => (prop::collection::vec(candidate, 0..3), opt(meta), opt(name()), opt(name()), any::<bool>())
                .prop_map(|(candidates, meta, model, id, blocked)| object(vec![
                    ("candidates", Some(candidates.into())),
                    ("usageMetadata", meta),
                    ("modelVersion", model.map(Value::from)),
                    ("responseId", id.map(Value::from)),
                    ("promptFeedback", blocked.then(|| json!({"blockReason": "SAFETY"}))),
                ])),
            1 => (number(), text()).prop_map(|(code, m)| json!({"error": {"code": code, "message": m, "status": "X"}})),
            1 => json_value(),
        ]
    }

    pub(super) fn stream(index: BoxedStrategy<u64>) -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(response(index), 0..10),
            edits(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(events, e, mutated, as_array)| {
                let bytes = if as_array && !events.is_empty() {
                    sse(&[Value::Array(events)], false)
                } else {
                    sse(&events, false)
                };
                if mutated {
                    mutate(bytes, &e)
                } else {
                    bytes
                }
            })
    }

    pub(super) fn translate(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        respond(&GEMINI, "text/event-stream", frames)
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Candidate indexes small (extreme ones: `extreme_indexes` below).
        #[test]
        fn any_stream_any_framing(input in stream((0..4u64).boxed()), cuts in cuts()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())]);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_bounded(input.len(), whole.len(), 96)?;
            let (framed, err) = translate(split(&input, &cuts));
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts));
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 96)?;
        }
    }

    proptest! {
        #![proptest_config(config(64))]

        /// Candidate indexes as an upstream may choose them: u64::MAX,
        /// 10^12 (known: overflow and a Vec sized by the index, fixed on
        /// branch h-upstr).
        #[test]
        fn extreme_indexes(input in stream(number().boxed())) {
            let (out, _) = translate(vec![Bytes::from(input.clone())]);
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 96)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Ollama NDJSON stream -> OpenAI chunks

mod ollama_stream {
    use super::*;

    fn line() -> impl Strategy<Value = Value> {
        let call = (opt(name()), opt(json_value()))
            .prop_map(|(n, args)| json!({"function": object(vec![("name", n.map(Value::from)), ("arguments", args)])}));
        prop_oneof![
            8 => (opt(name()), opt(text()), opt(text()), opt(prop::collection::vec(call, 0..3)), opt(any::<bool>()),
                  opt(prop::sample::select(vec!["stop", "length", "?"])), opt(number()), opt(number()))
                .prop_map(|(model, content, thinking, calls, done, reason, p, e)| object(vec![
                    ("model", model.map(Value::from)),
                    ("message", Some(object(vec![
                        ("role", Some(json!("assistant"))),
                        ("content", content.map(Value::from)),
                        ("thinking", thinking.map(Value::from)),
                        ("tool_calls", calls.map(Value::from)),
                    ]))),
                    ("done", done.map(Value::from)),
                    ("done_reason", reason.map(Value::from)),
                    ("prompt_eval_count", p.map(Value::from)),
                    ("eval_count", e.map(Value::from)),
                ])),
            1 => text().prop_map(|m| json!({"error": m})),
            1 => json_value(),
        ]
    }

    pub(super) fn stream() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(line(), 0..12),
            prop::sample::select(vec!["\n", "\r\n", "\n\n"]),
            edits(),
            any::<bool>(),
        )
            .prop_map(|(lines, end, e, mutated)| {
                let mut bytes = Vec::new();
                for l in lines {
                    bytes.extend_from_slice(l.to_string().as_bytes());
                    bytes.extend_from_slice(end.as_bytes());
                }
                if mutated {
                    mutate(bytes, &e)
                } else {
                    bytes
                }
            })
    }

    pub(super) fn translate(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        respond(&OLLAMA, "application/x-ndjson", frames)
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_stream_any_framing(input in stream(), cuts in cuts()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())]);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_bounded(input.len(), whole.len(), 32)?;
            let (framed, err) = translate(split(&input, &cuts));
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts));
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }
}

// ---------------------------------------------------------------------------
// The XML tool parser

mod xml_tools_parser {
    use super::*;

    /// Text with tool calls in it, well formed or not.
    pub(super) fn tool_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            3 => prop::sample::select(vec![
                "<tool_call>", "</tool_call>", "<name>", "</name>", "<arguments>", "</arguments>",
                "<use_mcp_tool>", "</use_mcp_tool>", "<server_name>s</server_name>", "<tool_name>",
                "</tool_name>", "{\"city\": \"Paris\"}", "{}", "<![CDATA[", "]]>", "&lt;", "&amp;",
                "get_weather", "<", "</", "<tool", " ", "\n", "€", "é", "😀",
            ]).prop_map(str::to_string),
            2 => text(),
            1 => Just("<tool_call><name>f</name><arguments>{\"a\":\"€\"}</arguments></tool_call>".to_string()),
        ];
        prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
    }

    fn merge(out: &mut Vec<Piece>, pieces: Vec<Piece>) {
        for p in pieces {
            match (out.last_mut(), p) {
                (Some(Piece::Text(last)), Piece::Text(t)) => last.push_str(&t),
                (_, Piece::Text(t)) if t.is_empty() => {}
                (_, p) => out.push(p),
            }
        }
    }

    fn scan(parts: &[&str]) -> Vec<Piece> {
        let mut scanner = XmlScanner::new();
        let mut out = Vec::new();
        for part in parts {
            merge(&mut out, scanner.push(part));
        }
        merge(&mut out, scanner.finish());
        out
    }

    proptest! {
        #![proptest_config(config(1024))]

        /// Any framing (at char boundaries) gives what the whole text gives;
        /// text out is never more than text in; calls only where a tag was.
        #[test]
        fn scanner_any_framing(input in prop_oneof![tool_text(), text()], cuts in cuts()) {
            let whole = scan(&[&input]);
            let mut merged = Vec::new();
            merge(&mut merged, xml_tools::parse_text(&input));
            prop_assert_eq!(&whole, &merged);
            prop_assert_eq!(&scan(&split_str(&input, &cuts)), &whole);
            let text_len: usize = whole.iter().map(|p| match p { Piece::Text(t) => t.len(), _ => 0 }).sum();
            prop_assert!(text_len <= input.len());
            let calls = whole.iter().filter(|p| matches!(p, Piece::Call(_))).count();
            prop_assert!(calls <= input.matches("<tool_call>").count() + input.matches("<use_mcp_tool>").count());
            if !input.contains('<') {
                prop_assert_eq!(text_len, input.len());
            }
        }
    }

    fn translate(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        let response = answer("text/event-stream", frames);
        drain(xml_tools::answer(response, &STREAM_REQUEST).into_body())
    }

    fn xml_stream(index: BoxedStrategy<u64>) -> impl Strategy<Value = Vec<u8>> {
        openai_to_anthropic::stream(index, tool_text().boxed())
    }

    proptest! {
        #![proptest_config(config(256))]

        /// The streamed rewrite: choice indexes small (extreme ones:
        /// `stream_extreme_indexes` below).
        #[test]
        fn stream_any_framing(input in xml_stream((0..4u64).boxed()), cuts in cuts()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())]);
            prop_assert!(err.is_none());
            assert_bounded(input.len(), whole.len(), 32)?;
            let (framed, err) = translate(split(&input, &cuts));
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn stream_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts));
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }

    proptest! {
        #![proptest_config(config(64))]

        /// Choice indexes as an upstream may choose them (known: overflow
        /// and a Vec sized by the index, fixed on branch h-upstr).
        #[test]
        fn stream_extreme_indexes(input in xml_stream(number().boxed())) {
            let (out, _) = translate(vec![Bytes::from(input.clone())]);
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Amplification: what an upstream names once must not be copied into every
// event without bound.

mod amplification {
    use super::*;

    /// Names of 4 to 20 KB, then hundreds of small events.
    fn long() -> impl Strategy<Value = (String, usize)> {
        ((4usize << 10)..(20 << 10), 200usize..400).prop_map(|(len, n)| ("€".repeat(len / 3), n))
    }

    proptest! {
        #![proptest_config(config(8))]

        #[test]
        fn anthropic_message_names((long, n) in long()) {
            let mut events = vec![json!({"type": "message_start", "message": {"id": long, "model": long}})];
            events.extend((0..n).map(|_| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}})));
            let input = sse(&events, false);
            let response = answer("text/event-stream", vec![Bytes::from(input.clone())]);
            let (out, _) = drain(llm_router::__private::translate::anthropic::answer_to_openai(response, false).into_body());
            assert_bounded(input.len(), out.len(), 32)?;
        }

        #[test]
        fn gemini_model_version_and_response_id((long, n) in long()) {
            let mut events = vec![json!({"modelVersion": long, "responseId": long, "candidates": [{"content": {"parts": [{"text": "a"}]}}]})];
            events.extend((0..n).map(|_| json!({"candidates": [{"content": {"parts": [{"text": "hello"}]}}]})));
            let input = sse(&events, false);
            let (out, _) = gemini_stream::translate(vec![Bytes::from(input.clone())]);
            assert_bounded(input.len(), out.len(), 32)?;
        }

        #[test]
        fn ollama_model((long, n) in long()) {
            let mut input = json!({"model": long, "message": {"content": "a"}}).to_string().into_bytes();
            for _ in 0..n {
                input.extend_from_slice(b"\n{\"message\":{\"content\":\"hello\"}}");
            }
            let (out, _) = ollama_stream::translate(vec![Bytes::from(input.clone())]);
            assert_bounded(input.len(), out.len(), 32)?;
        }

        /// One event whose envelope (`id`, `model`) and choice fields
        /// (`logprobs`) are long, its text many tool calls.
        #[test]
        fn xml_stream_envelope_and_choice_fields((long, n) in long()) {
            let calls = "<tool_call><name>f</name></tool_call>".repeat(n);
            let event = json!({"id": long, "model": long, "choices": [{"index": 0, "logprobs": {"content": long},
                "delta": {"content": calls}, "finish_reason": null}]});
            let input = sse(&[event], false);
            let response = answer("text/event-stream", vec![Bytes::from(input.clone())]);
            let (out, _) = drain(xml_tools::answer(response, &STREAM_REQUEST).into_body());
            assert_bounded(input.len(), out.len(), 32)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Regressions: each failure the properties found, as a fixed input.

mod regressions {
    use super::*;
    use llm_router::__private::translate::anthropic;

    /// The `data:` JSON of each output event.
    fn data(out: &[u8]) -> Vec<Value> {
        String::from_utf8(out.to_vec())
            .expect("UTF-8")
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    fn usage_chunk(out: &[u8]) -> Value {
        data(out)
            .into_iter()
            .find_map(|e| e.get("usage").filter(|u| u.is_object()).cloned())
            .expect("a usage chunk")
    }

    /// Token counts near u64::MAX overflowed the sums of the usage chunk
    /// (a panic in a debug build, a wrapped count in release).
    #[test]
    fn anthropic_usage_at_u64_max_saturates() {
        let input = sse(
            &[
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {
                    "input_tokens": u64::MAX, "cache_read_input_tokens": u64::MAX, "cache_creation_input_tokens": 1}}}),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": u64::MAX}}),
                json!({"type": "message_stop"}),
            ],
            true,
        );
        let response = answer("text/event-stream", vec![Bytes::from(input)]);
        let (out, err) = drain(anthropic::answer_to_openai(response, true).into_body());
        assert_eq!(err, None);
        let usage = usage_chunk(&out);
        assert_eq!(usage["prompt_tokens"], u64::MAX);
        assert_eq!(usage["completion_tokens"], u64::MAX);
        assert_eq!(usage["total_tokens"], u64::MAX);
    }

    #[test]
    fn gemini_usage_at_u64_max_saturates() {
        let input = sse(
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": u64::MAX, "toolUsePromptTokenCount": 5,
                    "candidatesTokenCount": u64::MAX, "thoughtsTokenCount": 1}}),
            ],
            false,
        );
        let (out, err) = gemini_stream::translate(vec![Bytes::from(input)]);
        assert_eq!(err, None);
        let usage = usage_chunk(&out);
        assert_eq!(usage["prompt_tokens"], u64::MAX);
        assert_eq!(usage["completion_tokens"], u64::MAX);
        assert_eq!(usage["total_tokens"], u64::MAX);
    }

    #[test]
    fn ollama_usage_at_u64_max_saturates() {
        let line = json!({"message": {"content": "hi"}, "done": true, "prompt_eval_count": u64::MAX, "eval_count": 1});
        let (out, err) = ollama_stream::translate(vec![Bytes::from(format!("{line}\n"))]);
        assert_eq!(err, None);
        assert_eq!(usage_chunk(&out)["total_tokens"], u64::MAX);
    }

    /// An id or model name over 256 bytes is not repeated in every chunk
    /// (the translation keeps its own); one of 256 is.
    #[test]
    fn anthropic_long_message_names_are_not_repeated() {
        for (len, kept) in [(256, true), (257, false)] {
            let long = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let mut events =
                vec![json!({"type": "message_start", "message": {"id": long, "model": long}})];
            events.extend((0..3).map(|_| {
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "hello"}})
            }));
            let response = answer("text/event-stream", vec![Bytes::from(sse(&events, true))]);
            let (out, _) = drain(anthropic::answer_to_openai(response, false).into_body());
            let chunks = data(&out);
            assert_eq!(chunks.len(), 4);
            for chunk in chunks {
                assert_eq!(chunk["model"] == long.as_str(), kept, "{len}");
                assert_eq!(chunk["id"] == long.as_str(), kept, "{len}");
            }
        }
    }

    #[test]
    fn gemini_long_model_version_and_response_id_are_not_repeated() {
        let long = "x".repeat(257);
        let mut events = vec![json!({"modelVersion": long, "responseId": long,
            "candidates": [{"content": {"parts": [{"text": "a"}]}}]})];
        events.push(json!({"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}));
        let (out, _) = gemini_stream::translate(vec![Bytes::from(sse(&events, false))]);
        let chunks = data(&out);
        assert!(chunks.len() >= 3);
        for chunk in chunks {
            assert_eq!(chunk["model"], "m");
            assert!(!chunk["id"].as_str().unwrap().contains(&long));
        }
    }

    #[test]
    fn ollama_long_model_is_not_repeated() {
        let long = "x".repeat(257);
        let input = format!(
            "{}\n{}\n",
            json!({"model": long, "message": {"content": "a"}}),
            json!({"message": {"content": "b"}, "done": true})
        );
        let (out, _) = ollama_stream::translate(vec![Bytes::from(input)]);
        let chunks = data(&out);
        assert!(chunks.len() >= 3);
        assert!(chunks.iter().all(|c| c["model"] == "m"));
    }

    /// A streamed chunk whose text holds several tool calls became one event
    /// per call, each with a copy of the chunk's envelope and of the
    /// choice's other fields: a large `id` or `logprobs` was copied once
    /// per call. Now they go out once.
    #[test]
    fn xml_stream_copies_large_fields_once() {
        let long = "x".repeat(1000);
        let event = json!({"id": long, "model": "m", "choices": [{"index": 0, "logprobs": {"content": long},
            "delta": {"content": "<tool_call><name>f</name></tool_call>".repeat(3)}, "finish_reason": null}]});
        let response = answer("text/event-stream", vec![Bytes::from(sse(&[event], false))]);
        let (out, _) = drain(xml_tools::answer(response, &STREAM_REQUEST).into_body());
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.matches(&long).count(), 2, "{text}");
        let events = data(&out);
        let calls: Vec<&Value> = events
            .iter()
            .flat_map(|e| {
                e["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .collect();
        assert_eq!(calls.len(), 3);
        assert_eq!(
            events[0]["choices"][0]["logprobs"]["content"],
            long.as_str()
        );
        assert!(events.iter().all(|e| e["model"] == "m"));
    }
}

// ---------------------------------------------------------------------------
// OpenAI chunks -> Responses events (a Responses client through the pivot)

/// Responses output made comparable across runs: generated ids and times
/// renamed in order of appearance, wherever they are referred to.
fn normalized_responses(out: &[u8]) -> Vec<Value> {
    fn walk(v: &mut Value, ids: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    match (k.as_str(), &*x) {
                        ("created_at" | "completed_at" | "created", Value::Number(_)) => {
                            *x = json!(0)
                        }
                        ("id" | "item_id" | "call_id", Value::String(id)) => {
                            let n = ids.iter().position(|i| i == id).unwrap_or_else(|| {
                                ids.push(id.clone());
                                ids.len() - 1
                            });
                            *x = json!(format!("id{n}"));
                        }
                        _ => walk(x, ids),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, ids)),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(out);
    let mut ids = Vec::new();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let mut lines = Vec::new();
            for line in event.split('\n') {
                let mut v = match line.strip_prefix("data: ") {
                    Some(data) => serde_json::from_str(data)
                        .unwrap_or_else(|_| Value::String(line.to_string())),
                    None => Value::String(line.to_string()),
                };
                walk(&mut v, &mut ids);
                lines.push(v);
            }
            Value::Array(lines)
        })
        .collect()
}

/// Every event has a `type` and the sequence numbers count up from 0.
fn assert_numbered(out: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(out);
    let mut next = 0u64;
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {data}")))?;
        prop_assert!(v["type"].is_string(), "{data}");
        prop_assert_eq!(v["sequence_number"].as_u64(), Some(next), "{}", data);
        next += 1;
    }
    Ok(())
}

mod openai_to_responses {
    use super::*;
    use llm_router::__private::translate::responses::inbound;

    static REQUEST: LazyLock<Map<String, Value>> = LazyLock::new(|| {
        json!({"model": "m", "stream": true, "input": "hi", "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "ns", "description": "d", "tools": [
                {"type": "function", "name": "g", "parameters": {"type": "object"}}]}]})
        .as_object()
        .cloned()
        .unwrap_or_default()
    });

    fn translate(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        let response = answer("text/event-stream", frames);
        drain(inbound::answer_from_openai(&REQUEST, response).into_body())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_stream_any_framing(
            input in openai_to_anthropic::stream(number().boxed(), text().boxed()),
            cuts in cuts(),
        ) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())]);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_numbered(&whole)?;
            // The terminal event repeats every output item in full.
            assert_bounded(input.len(), whole.len(), 64)?;
            let (framed, err) = translate(split(&input, &cuts));
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized_responses(&whole), normalized_responses(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts));
            assert_well_formed(&out)?;
            assert_numbered(&out)?;
            assert_bounded(input.len(), out.len(), 64)?;
        }

        #[test]
        fn any_request_translates_or_refuses(body in json_value()) {
            if let Value::Object(body) = body {
                let _ = inbound::request_to_openai(&body);
                let _ = inbound::dropped_tools(&body);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Responses events -> OpenAI chunks (an `api = "responses"` backend)

mod responses_to_openai {
    use super::*;
    use llm_router::__private::translate::responses::upstream;

    fn event() -> impl Strategy<Value = Value> {
        let item = (
            prop::sample::select(vec!["message", "function_call", "reasoning", "web_search_call", "x"]),
            name(),
            name(),
            text(),
        )
            .prop_map(|(kind, id, n, args)| {
                json!({"type": kind, "id": id, "call_id": id, "name": n, "arguments": args, "content": []})
            })
            .boxed();
        let usage = (number(), number()).prop_map(|(i, o)| {
            json!({"input_tokens": i, "output_tokens": o, "total_tokens": i.saturating_add(o),
                "input_tokens_details": {"cached_tokens": 0}})
        });
        let response = (
            name(),
            name(),
            opt(usage),
            prop::sample::select(vec!["completed", "incomplete", "failed", "in_progress"]),
        )
            .prop_map(|(id, model, usage, status)| {
                object(vec![
                    ("id", Some(id.into())),
                    ("model", Some(model.into())),
                    ("created_at", Some(json!(1))),
                    ("status", Some(status.into())),
                    ("usage", usage),
                    (
                        "incomplete_details",
                        Some(json!({"reason": "max_output_tokens"})),
                    ),
                    (
                        "error",
                        Some(json!({"code": "server_error", "message": "x"})),
                    ),
                ])
            })
            .boxed();
        prop_oneof![
            1 => response.clone().prop_map(|r| json!({"type": "response.created", "response": r})),
            1 => response.clone().prop_map(|r| json!({"type": "response.in_progress", "response": r})),
            2 => (number(), item.clone()).prop_map(|(i, it)| json!({"type": "response.output_item.added", "output_index": i, "item": it})),
            4 => (number(), number(), name(), text()).prop_map(|(o, c, id, d)| json!({"type": "response.output_text.delta",
                "output_index": o, "content_index": c, "item_id": id, "delta": d})),
            2 => (number(), name(), text()).prop_map(|(o, id, d)| json!({"type": "response.function_call_arguments.delta",
                "output_index": o, "item_id": id, "delta": d})),
            1 => (number(), text()).prop_map(|(o, d)| json!({"type": "response.reasoning_summary_text.delta",
                "output_index": o, "summary_index": 0, "delta": d})),
            1 => (number(), text()).prop_map(|(o, d)| json!({"type": "response.refusal.delta", "output_index": o, "delta": d})),
            1 => (number(), item).prop_map(|(i, it)| json!({"type": "response.output_item.done", "output_index": i, "item": it})),
            1 => response.clone().prop_map(|r| json!({"type": "response.completed", "response": r})),
            1 => response.clone().prop_map(|r| json!({"type": "response.incomplete", "response": r})),
            1 => response.prop_map(|r| json!({"type": "response.failed", "response": r})),
            1 => (name(), text()).prop_map(|(c, m)| json!({"type": "error", "code": c, "message": m})),
            1 => json_value(),
        ]
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(event(), 0..16),
            edits(),
            any::<bool>(),
        )
            .prop_map(|(events, e, mutated)| {
                let bytes = sse(&events, true);
                if mutated {
                    mutate(bytes, &e)
                } else {
                    bytes
                }
            })
    }

    fn translate(frames: Vec<Bytes>, include_usage: bool) -> (Vec<u8>, Option<String>) {
        let response = answer("text/event-stream", frames);
        drain(upstream::answer_to_openai(response, include_usage).into_body())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_stream_any_framing(input in stream(), cuts in cuts(), include_usage in any::<bool>()) {
            let (whole, err) = translate(vec![Bytes::from(input.clone())], include_usage);
            prop_assert!(err.is_none());
            assert_well_formed(&whole)?;
            assert_bounded(input.len(), whole.len(), 32)?;
            let (framed, err) = translate(split(&input, &cuts), include_usage);
            prop_assert!(err.is_none());
            prop_assert_eq!(normalized(&whole), normalized(&framed));
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
            let (out, _) = translate(split(&input, &cuts), true);
            assert_well_formed(&out)?;
            assert_bounded(input.len(), out.len(), 32)?;
        }

        #[test]
        fn any_pivot_translates_or_refuses(body in json_value()) {
            if let Value::Object(body) = body {
                let _ = upstream::request_from_openai(&body);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Token estimates of any request

mod token_estimates {
    use super::*;
    use llm_router::__private::tokens::{estimate, CountFormat};

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_body_is_counted(body in json_value()) {
            if let Value::Object(body) = body {
                let a = estimate(CountFormat::Anthropic, &body);
                let r = estimate(CountFormat::Responses, &body);
                // Never more tokens than bytes, plus fixed allowances.
                let len = Value::Object(body).to_string().len() as u64;
                prop_assert!(a <= 4 * len + 10_000 && r <= 4 * len + 10_000, "{a} {r} for {len} bytes");
            }
        }
    }
}
