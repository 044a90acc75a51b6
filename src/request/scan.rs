//! The lazy parse's one pass over a JSON body: validate it and read the
//! top-level `model` and `stream` without building the document.

/// Deeper than this, a body takes the full parse at once (which enforces
/// serde_json's own recursion limit), so a lazily parsed body can never
/// fail to parse later.
const LAZY_MAX_DEPTH: usize = 64;

/// What the lazy parse reads of the top level.
pub(super) struct Top {
    pub(super) model: Option<(std::ops::Range<usize>, Box<str>)>,
    pub(super) stream: bool,
}

/// Validate `bytes` as one JSON object and read its `model` and `stream`
/// without building the document: one pass over the bytes (RFC 8259
/// syntax, strings checked a word at a time, UTF-8 checked only when a
/// non-ASCII byte was seen). `None` when the body needs the full parse:
/// invalid JSON (to word the error), a non-object, a non-string or empty
/// model, a non-boolean stream, duplicate `model`/`stream` keys, an escaped
/// top-level key or model, a `\u` surrogate escape, or nesting deeper than
/// [`LAZY_MAX_DEPTH`].
pub(super) fn scan(bytes: &[u8]) -> Option<Top> {
    let mut s = Scanner::new(bytes);
    s.ws();
    if s.peek()? != b'{' {
        return None;
    }
    s.i += 1;
    let mut top = Top {
        model: None,
        stream: false,
    };
    let mut seen_stream = false;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key_start = s.i + 1;
            if s.peek()? != b'"' || s.string()? {
                // Not a key, or an escaped one (it may spell `model`).
                return None;
            }
            let key = &bytes[key_start..s.i - 1];
            s.ws();
            if s.next()? != b':' {
                return None;
            }
            s.ws();
            match key {
                b"model" => {
                    let start = s.i;
                    if top.model.is_some() || s.peek()? != b'"' || s.string()? {
                        return None;
                    }
                    let model = std::str::from_utf8(&bytes[start + 1..s.i - 1]).ok()?;
                    if model.is_empty() {
                        return None;
                    }
                    top.model = Some((start..s.i, model.into()));
                }
                b"stream" => {
                    if seen_stream {
                        return None;
                    }
                    seen_stream = true;
                    if s.literal(b"true") {
                        top.stream = true;
                    } else if !s.literal(b"false") && !s.literal(b"null") {
                        return None;
                    }
                }
                _ => s.value(1)?,
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i != bytes.len() || (s.non_ascii && std::str::from_utf8(bytes).is_err()) {
        return None;
    }
    Some(top)
}

/// The cursor of [`scan`], and of the stream guard's read of a committed
/// chunk: a validating walk over JSON text that builds nothing.
pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// A byte ≥ 0x80 was seen in a string: UTF-8 is checked at the end.
    non_ascii: bool,
}

impl<'a> Scanner<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            b: bytes,
            i: 0,
            non_ascii: false,
        }
    }

    /// Whether the cursor is past the end of the text (after [`ws`](Self::ws))
    /// and the text is valid UTF-8.
    pub(crate) fn at_valid_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len() && (!self.non_ascii || std::str::from_utf8(self.b).is_ok())
    }

    /// The bytes from `start` to the cursor.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.b.get(start..self.i).unwrap_or_default()
    }

    /// The cursor's position.
    pub(crate) fn position(&self) -> usize {
        self.i
    }
}

impl Scanner<'_> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(crate) fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.b.get(self.i..self.i + word.len()) == Some(word);
        if found {
            self.i += word.len();
        }
        found
    }

    /// One value; containers at `depth` (1 for a top-level value's own).
    pub(crate) fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                if depth > LAZY_MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    if self.next()? != b':' {
                        return None;
                    }
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth > LAZY_MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, refusing numbers that
    /// might not fit an f64 (over 300 integer digits, a 3-digit exponent).
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match *b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                let end = digits(i + 1);
                // Too large for an f64 perhaps: the full parse decides.
                if end - i > 300 {
                    return None;
                }
                i = end;
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            // A three-digit exponent may be out of range: the full parse decides.
            if end == i || end - i > 2 {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }

    /// At an opening quote: skip the string, leaving the cursor after the
    /// closing quote. `Some(true)` when it held escapes.
    pub(crate) fn string(&mut self) -> Option<bool> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            // The next quote or backslash (SIMD); what lies before it may
            // hold no control character, and non-ASCII bytes send the whole
            // document through UTF-8 validation at the end.
            let end = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            let (control, high) = control_and_high(&b[i..end]);
            if control {
                return None;
            }
            self.non_ascii |= high;
            if b[end] == b'"' {
                self.i = end + 1;
                return Some(escaped);
            }
            escaped = true;
            i = end;
            match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    // Surrogates (pairs or lone): left to the full parse.
                    if matches!(hex[0], b'd' | b'D')
                        && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                    {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            }
        }
    }
}

/// Whether `bytes` hold a control character (below 0x20), and whether they
/// hold a non-ASCII byte: eight bytes at a time.
fn control_and_high(bytes: &[u8]) -> (bool, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let (mut control, mut high) = (0u64, 0u64);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        high |= w;
        // A byte below 0x20 (of those without the high bit) borrows into its
        // high bit; bytes with the high bit are masked out by `!w`.
        control |= w.wrapping_sub(ONES * 0x20) & !w;
    }
    let mut tail_control = false;
    for &byte in chunks.remainder() {
        tail_control |= byte < 0x20;
        high |= u64::from(byte);
    }
    (tail_control || control & HIGHS != 0, high & HIGHS != 0)
}

/// Deterministic mutations of JSON texts, for the differential tests of the
/// hand-written JSON passes (here and in the log's copier): each is a seed
/// with one to three bytes removed, replaced or inserted from `alphabet`.
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
pub(crate) fn json_mutations<'a>(
    seeds: &'a [&'a [u8]],
    alphabet: &'a [u8],
    count: usize,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count).map(move |_| {
        let mut body = seeds[rand(seeds.len())].to_vec();
        for _ in 0..1 + rand(3) {
            let at = rand(body.len() + 1);
            match rand(3) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 if at < body.len() => body[at] = alphabet[rand(alphabet.len())],
                _ => body.insert(at, alphabet[rand(alphabet.len())]),
            }
        }
        body
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// `scan` against serde_json on hand-picked and mutated bodies: what
    /// the scan accepts, serde_json accepts with the same model and stream;
    /// plain valid bodies are never sent to the slow path.
    #[test]
    fn the_scan_agrees_with_serde_json() {
        fn check(body: &[u8]) {
            let full = serde_json::from_slice::<Value>(body);
            match scan(body) {
                Some(top) => {
                    let Ok(Value::Object(map)) = &full else {
                        panic!(
                            "scan accepted what serde_json refuses: {:?}",
                            String::from_utf8_lossy(body)
                        );
                    };
                    match top.model {
                        Some((span, model)) => {
                            assert_eq!(map["model"], Value::String(model.to_string()));
                            assert_eq!(&body[span.start + 1..span.end - 1], model.as_bytes());
                        }
                        None => assert!(!map.contains_key("model")),
                    }
                    assert_eq!(map.get("stream") == Some(&Value::Bool(true)), top.stream);
                }
                None => {
                    // Refused: fine when serde_json refuses too, or for the
                    // documented reasons (escapes, duplicates, a bad model or
                    // stream, deep nesting).
                    if let Ok(Value::Object(map)) = &full {
                        let text = String::from_utf8_lossy(body);
                        let plain = !text.contains('\\')
                            && text.matches("\"model\"").count() == 1
                            && text.matches("\"stream\"").count() <= 1
                            && !text.contains("[[[[[[[[[[")
                            && !regex::Regex::new(r"[eE][+-]?[0-9]{3}|[0-9]{300}")
                                .unwrap()
                                .is_match(&text)
                            && matches!(map.get("model"), Some(Value::String(m)) if !m.is_empty())
                            && matches!(
                                map.get("stream"),
                                None | Some(Value::Bool(_)) | Some(Value::Null)
                            );
                        assert!(!plain, "scan refused a plain valid body: {text:?}");
                    }
                }
            }
        }
        let seeds: &[&[u8]] = &[
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#,
            br#" { "model" : "m" , "stream" : true , "n" : -0.5e+10 , "x" : [ 1 , 2.0 , -3E2 , null , false ] } "#,
            "{\"model\":\"m\",\"messages\":[{\"content\":\"caf\u{e9} \u{1f600} \\u00e9 \\\" \\\\ \\n\"}],\"o\":{}}".as_bytes(),
            br#"{"stream":false,"model":"m","a":{"b":{"c":[[],[{}]]}},"e":"","z":0}"#,
        ];
        for seed in seeds {
            check(seed);
        }
        let fixed: &[&[u8]] = &[
            b"",
            b"{",
            b"}",
            b"[]",
            b"{}",
            br#"{"model":"m"}x"#,
            br#"{"model":"m",}"#,
            br#"{"model":"m" "a":1}"#,
            br#"{"model":"m","a":01}"#,
            br#"{"model":"m","a":1.}"#,
            br#"{"model":"m","a":.5}"#,
            br#"{"model":"m","a":1e}"#,
            br#"{"model":"m","a":-}"#,
            br#"{"model":"m","a":tru}"#,
            br#"{"model":"m","a":"\x"}"#,
            br#"{"model":"m","a":"\u12"}"#,
            br#"{"model":"m","a":"\ud83d\ude00"}"#,
            br#"{"model":"m","a":"\ud800"}"#,
            b"{\"model\":\"m\",\"a\":\"\x01\"}",
            b"{\"model\":\"m\",\"a\":\"\xff\"}",
            b"{\"model\":\"m\xc3\"}",
            br#"{"model":"","a":1}"#,
            br#"{"model":5}"#,
            br#"{"model":"m","model":"n"}"#,
            br#"{"model":"m","stream":1}"#,
            br#"{"model":"m","stream":true,"stream":false}"#,
            br#"{"mod\u0065l":"m"}"#,
            br#"{"model":"a\"b"}"#,
            br#"{"model":"m","a":[1,]}"#,
            br#"{"model":"m","a":{"b"}}"#,
            br#"{"model":"m","a":{"b":1,}}"#,
            br#"{"model":"m"} {}"#,
            b"\xef\xbb\xbf{\"model\":\"m\"}",
        ];
        for body in fixed {
            check(body);
        }
        let deep = |n: usize| format!(r#"{{"model":"m","a":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(scan(deep(64).as_bytes()).is_some());
        assert!(scan(deep(65).as_bytes()).is_none());
        // Mutations: deterministic, bytes JSON cares about.
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnulrsaemod\x01\xc3\xa9";
        for body in crate::request::json_mutations(seeds, alphabet, 20_000) {
            check(&body);
        }
    }
}
