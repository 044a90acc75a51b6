//! Streaming find-and-replace: [`Holdback`] and its [`Finder`]s, and
//! [`Prefixes`], which tells how much of a text must wait for more.
//!
//! A stream's text arrives in pieces. Text from which no match can begin any
//! more (no pattern can continue it, or every match attempt starting there
//! already ended) is sent at once; only the *shortest tail that could still
//! be the beginning of a match* waits for the next piece — at most `max`
//! bytes, the bound a finder that cannot tell holds back whole.
//!
//! [`Prefixes`] tells for regular expressions: a lazy DFA of the pattern is
//! run anchored at each candidate start in the last `max` bytes; a start
//! whose DFA dies before the end of the text is settled (its match, if any,
//! is known), one whose DFA is still alive at the end waits. Unicode word
//! boundaries (`\b` in Unicode mode), which lazy DFAs cannot run, are
//! dropped from the DFA's pattern: that DFA accepts more, so it says "wait"
//! at least wherever the real pattern would (never less). An attempt whose
//! DFA is still alive at the end of the text is settled anyway when no byte
//! and not the end of the text can lead anywhere (it only reports the match
//! that just ended). Finders that check the characters after a match (the
//! PII validators) wait instead until the DFA died: it reports a match one
//! byte late and dies at the earliest on the byte after that, so the text
//! then holds the character following the match and the one after.

use std::sync::Arc;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input, MatchKind, PatternID};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Finds what to replace in a text.
pub(crate) trait Finder: Send + Unpin + 'static {
    /// Replacements `(start, end, with)` in `hay[from..]`, in order and not
    /// overlapping; `hay[..from]` is already-sent text, there only as
    /// context (word boundaries, look-behind checks).
    fn find(&mut self, hay: &str, from: usize, out: &mut Vec<(usize, usize, String)>);

    /// The first char boundary at or after `from` where a match could begin
    /// whose outcome more text could still change: `hay` from there on must
    /// wait for more. By default `from` (all of it waits).
    fn pending_from(&mut self, _hay: &str, from: usize) -> usize {
        from
    }
}

/// Bytes of already-sent text kept as context for the next search.
const CONTEXT: usize = 16;

/// A streaming find-and-replace with bounded look-ahead.
///
/// Each push sends everything up to where a match could still begin and be
/// changed by more text ([`Finder::pending_from`]), but never holds back more
/// than the last `max` bytes. A match that starts before that point is
/// replaced whole (even when it reaches into the held part); a match longer
/// than `max` that is split across pieces may be missed.
/// [`finish`](Self::finish) sends the rest.
pub(crate) struct Holdback<F> {
    finder: F,
    max: usize,
    buf: String,
    ctx: usize,
    /// The last match ended where the sent text ends: an empty match right
    /// there is skipped, as `replace_all` does.
    skip_empty_at_ctx: bool,
    found: Vec<(usize, usize, String)>,
}

impl<F: Finder> Holdback<F> {
    pub(crate) fn new(finder: F, max: usize) -> Self {
        Holdback {
            finder,
            max,
            buf: String::new(),
            ctx: 0,
            skip_empty_at_ctx: false,
            found: Vec::new(),
        }
    }

    /// More text: what can be sent now.
    pub(crate) fn push(&mut self, text: &str) -> String {
        self.run(text, false)
    }

    /// The last text: everything left.
    pub(crate) fn finish(&mut self, text: &str) -> String {
        self.run(text, true)
    }

    /// Bytes waiting for more text.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len().saturating_sub(self.ctx)
    }

    fn run(&mut self, text: &str, end_of_text: bool) -> String {
        self.buf.push_str(text);
        let len = self.buf.len();
        let limit = if end_of_text {
            len
        } else {
            let floor = floor_char(&self.buf, len.saturating_sub(self.max)).max(self.ctx);
            let pending = self.finder.pending_from(&self.buf, floor);
            floor_char(&self.buf, pending.max(floor).min(len))
        };
        self.found.clear();
        self.finder.find(&self.buf, self.ctx, &mut self.found);
        let mut out = String::with_capacity(limit.saturating_sub(self.ctx));
        let mut pos = self.ctx;
        let mut last_end = None;
        for (start, end, with) in self.found.drain(..) {
            if start < pos || self.skip_empty_at_ctx && start == self.ctx && end == start {
                continue;
            }
            if !end_of_text && start >= limit {
                break;
            }
            out.push_str(self.buf.get(pos..start).unwrap_or_default());
            out.push_str(&with);
            pos = end;
            last_end = Some(end);
        }
        let sent = limit.max(pos);
        out.push_str(self.buf.get(pos..sent).unwrap_or_default());
        if end_of_text {
            self.buf.clear();
            self.ctx = 0;
            self.skip_empty_at_ctx = false;
        } else {
            let keep = floor_char(&self.buf, sent.saturating_sub(CONTEXT));
            self.buf.drain(..keep);
            self.ctx = sent.saturating_sub(keep);
            self.skip_empty_at_ctx = last_end == Some(sent);
        }
        out
    }
}

/// The largest char boundary of `s` at or below `i` (`s.len()` at most).
pub(crate) fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i = i.saturating_sub(1);
    }
    i
}

/// [`Finder`] for a regular expression and a replacement template
/// (`$1`, `${name}`), with `replace_all`'s rules for empty matches.
#[derive(Clone, Debug)]
pub(crate) struct RegexFinder {
    regex: regex::Regex,
    replacement: String,
    prefixes: Option<Arc<Prefixes>>,
    cache: Option<Cache>,
}

impl RegexFinder {
    /// `prefixes` is the pattern's [`Prefixes`]; without it, the last `max`
    /// bytes always wait.
    pub(crate) fn new(
        regex: regex::Regex,
        replacement: String,
        prefixes: Option<Arc<Prefixes>>,
    ) -> Self {
        RegexFinder {
            regex,
            replacement,
            prefixes,
            cache: None,
        }
    }
}

impl Finder for RegexFinder {
    fn find(&mut self, hay: &str, from: usize, out: &mut Vec<(usize, usize, String)>) {
        let mut at = from;
        let mut last_end = None;
        while at <= hay.len() {
            let Some(caps) = self.regex.captures_at(hay, at) else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            if m.is_empty() && last_end == Some(m.start()) {
                at = next_char(hay, m.start());
                continue;
            }
            let mut with = String::new();
            caps.expand(&self.replacement, &mut with);
            out.push((m.start(), m.end(), with));
            last_end = Some(m.end());
            at = if m.is_empty() {
                next_char(hay, m.end())
            } else {
                m.end()
            };
        }
    }

    fn pending_from(&mut self, hay: &str, from: usize) -> usize {
        match &self.prefixes {
            Some(prefixes) => {
                let cache = self
                    .cache
                    .get_or_insert_with(|| prefixes.dfa.create_cache());
                prefixes.pending_from(cache, hay, from, None)
            }
            None => from,
        }
    }
}

fn next_char(s: &str, i: usize) -> usize {
    let width = s
        .get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8);
    i.saturating_add(width)
}

/// The most memory one stream's lazy DFA cache may take (per channel and
/// pattern); past it the cache is cleared and rebuilt as needed.
const CACHE_CAPACITY: usize = 256 << 10;

/// Where a match of some patterns could still begin in a growing text (see
/// the [module docs](self)). Built once per pattern (set); each stream keeps
/// its own [`Cache`] ([`Prefixes::cache`]).
#[derive(Debug)]
pub(crate) struct Prefixes {
    dfa: DFA,
    /// The finder looks at the character after a match too (validators):
    /// an attempt is settled only once its DFA died, which takes that
    /// character and the first byte of the next. Otherwise an attempt is
    /// settled as soon as no byte and not the end of the text can change it.
    lookahead: bool,
}

impl Prefixes {
    /// For one regular expression with the given flags, as `regex` reads it.
    pub(crate) fn regex(
        pattern: &str,
        ignore_case: bool,
        multi_line: bool,
        dot_all: bool,
    ) -> Option<Self> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(ignore_case)
            .multi_line(multi_line)
            .dot_matches_new_line(dot_all)
            .build()
            .parse(pattern)
            .ok()?;
        Self::build(
            &[without_unicode_words(hir)],
            MatchKind::LeftmostFirst,
            false,
        )
    }

    /// For several patterns (flags inline), a match of any of them counting,
    /// for a finder that checks the characters around a match as well:
    /// [`pending_from`](Self::pending_from) may then ask about some of them
    /// only.
    pub(crate) fn any_of(patterns: &[&str]) -> Option<Self> {
        let hirs = patterns
            .iter()
            .map(|p| regex_syntax::parse(p).ok().map(without_unicode_words))
            .collect::<Option<Vec<_>>>()?;
        Self::build(&hirs, MatchKind::All, true)
    }

    fn build(hirs: &[Hir], kind: MatchKind, lookahead: bool) -> Option<Self> {
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().which_captures(thompson::WhichCaptures::None))
            .build_many_from_hir(hirs)
            .ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(kind)
                    .starts_for_each_pattern(hirs.len() > 1)
                    .cache_capacity(CACHE_CAPACITY),
            )
            .build_from_nfa(nfa)
            .ok()?;
        Some(Prefixes { dfa, lookahead })
    }

    /// A cache for one stream.
    pub(crate) fn cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// The first char boundary `p` at or after `from` such that a match of
    /// the patterns (of `only`, if given: pattern indices) could begin at
    /// `p` and be changed by more text; `hay.len()` if there is none.
    pub(crate) fn pending_from(
        &self,
        cache: &mut Cache,
        hay: &str,
        from: usize,
        only: Option<&[usize]>,
    ) -> usize {
        let mut p = from;
        while p < hay.len() {
            if hay.is_char_boundary(p) {
                let live = match only {
                    None => self.live_at(cache, hay, p, Anchored::Yes),
                    Some(ids) => ids.iter().any(|&id| match PatternID::new(id) {
                        Ok(id) => self.live_at(cache, hay, p, Anchored::Pattern(id)),
                        Err(_) => true,
                    }),
                };
                if live {
                    return p;
                }
            }
            p = p.saturating_add(1);
        }
        hay.len()
    }

    /// Whether a match attempt at `at` is still unsettled at the end of
    /// `hay`. Whenever the DFA cannot tell (a quit byte, a failure), yes.
    fn live_at(&self, cache: &mut Cache, hay: &str, at: usize, anchored: Anchored) -> bool {
        let input = Input::new(hay).range(at..).anchored(anchored);
        let Ok(mut sid) = self.dfa.start_state_forward(cache, &input) else {
            return true;
        };
        if sid.is_dead() {
            return false;
        }
        let rest = hay.as_bytes().get(at..).unwrap_or_default();
        for &byte in rest {
            match self.dfa.next_state(cache, sid, byte) {
                Ok(next) => sid = next,
                Err(_) => return true,
            }
            if sid.is_dead() {
                return false;
            }
            if sid.is_quit() {
                return true;
            }
        }
        self.lookahead || self.can_go_on(cache, sid)
    }

    /// Whether more text or its end can still change anything from state
    /// `sid`: some byte or the end of the text leads somewhere. (A state
    /// that only reports the match that ended one byte ago leads nowhere.)
    fn can_go_on(&self, cache: &mut Cache, sid: regex_automata::hybrid::LazyStateID) -> bool {
        match self.dfa.next_eoi_state(cache, sid) {
            Ok(eoi) if eoi.is_match() => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
        let classes = self.dfa.byte_classes().representatives(0..=255);
        for byte in classes.filter_map(|unit| unit.as_u8()) {
            match self.dfa.next_state(cache, sid, byte) {
                Ok(next) if next.is_dead() => {}
                _ => return true,
            }
        }
        false
    }
}

/// `hir` with its Unicode word-boundary assertions replaced by the empty
/// pattern (which lazy DFAs cannot run): it matches at least what `hir` does.
fn without_unicode_words(hir: Hir) -> Hir {
    if !hir.properties().look_set().contains_word_unicode() {
        return hir;
    }
    match hir.into_kind() {
        HirKind::Look(
            Look::WordUnicode
            | Look::WordUnicodeNegate
            | Look::WordStartUnicode
            | Look::WordEndUnicode
            | Look::WordStartHalfUnicode
            | Look::WordEndHalfUnicode,
        ) => Hir::empty(),
        HirKind::Look(look) => Hir::look(look),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
        HirKind::Repetition(mut rep) => {
            rep.sub = Box::new(without_unicode_words(*rep.sub));
            Hir::repetition(rep)
        }
        HirKind::Capture(cap) => without_unicode_words(*cap.sub),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(without_unicode_words).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.into_iter().map(without_unicode_words).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finder(pattern: &str, with: &str) -> RegexFinder {
        RegexFinder::new(
            regex::Regex::new(pattern).unwrap(),
            with.into(),
            Prefixes::regex(pattern, false, false, false).map(Arc::new),
        )
    }

    /// Feed `pieces` through a holdback stage; the concatenated output.
    fn stream(pattern: &str, with: &str, max: usize, pieces: &[&str]) -> String {
        stream_with(finder(pattern, with), max, pieces)
    }

    fn stream_with(finder: RegexFinder, max: usize, pieces: &[&str]) -> String {
        let mut h = Holdback::new(finder, max);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&h.push(p));
        }
        out.push_str(&h.finish(""));
        out
    }

    const CASES: &[(&str, &str, &[&str])] = &[
        (r"secret", "[X]", &["my sec", "ret is", " secret"]),
        (r"\bfoo\b", "F", &["xfo", "o foo", " fo", "o"]),
        (r"a+", "A", &["baaa", "aac", "a"]),
        (r"x*", "-", &["abc", "d"]),
        (r"a*", "-", &["baa", "aac", "dddddddddddddd", "ddddddddd"]),
        (
            r"(\w+)@(\w+)\.com",
            "$2 at $1",
            &["mail jo", "e@exam", "ple.com now"],
        ),
        (r"é+", "E", &["café", "éé!"]),
        (r"$", "!", &["end", "s"]),
        (r"(?m)^x$", "Y", &["a\nx", "\nx", "y\nx"]),
        (r"\bcat\b", "dog", &["le chat écat cat", "é cat"]),
        (r"ab|b", "_", &["xa", "b ab", "a", "b"]),
    ];

    #[test]
    fn holdback_matches_across_pieces_like_replace_all() {
        for (pattern, with, pieces) in CASES {
            let whole: String = pieces.concat();
            let expected = regex::Regex::new(pattern)
                .unwrap()
                .replace_all(&whole, *with)
                .into_owned();
            for max in [8, 64] {
                assert_eq!(
                    stream(pattern, with, max, pieces),
                    expected,
                    "{pattern} {max}"
                );
            }
        }
    }

    #[test]
    fn holdback_matches_at_every_split_like_replace_all() {
        for (pattern, with, pieces) in CASES {
            let whole: String = pieces.concat();
            let expected = regex::Regex::new(pattern)
                .unwrap()
                .replace_all(&whole, *with)
                .into_owned();
            let finder = finder(pattern, with);
            let cuts: Vec<usize> = (0..=whole.len())
                .filter(|&i| whole.is_char_boundary(i))
                .collect();
            for &a in &cuts {
                for &b in cuts.iter().filter(|&&b| b >= a) {
                    let pieces = [&whole[..a], &whole[a..b], &whole[b..]];
                    assert_eq!(
                        stream_with(finder.clone(), 64, &pieces),
                        expected,
                        "{pattern} {pieces:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_a_possible_match_start_waits() {
        let mut h = Holdback::new(finder("secret", "[X]"), 64);
        assert_eq!(h.push("hello world"), "hello world");
        assert_eq!(h.push(" it is se"), " it is ");
        assert_eq!(h.held(), 2);
        assert_eq!(h.push("cr"), "");
        assert_eq!(h.push("et!"), "[X]!");
        assert_eq!(h.push("ss"), "s");
        assert_eq!(h.finish(""), "s");
        // A match that could still grow waits until it cannot.
        let mut h = Holdback::new(finder(r"\d+", "N"), 64);
        assert_eq!(h.push("call 555"), "call ");
        assert_eq!(h.push("12 now"), "N now");
        // `max` still bounds what waits.
        let mut h = Holdback::new(finder(r"x.*y", "Z"), 4);
        assert_eq!(h.push("ab x12"), "ab ");
        assert_eq!(h.push("3456"), "x123456");
        assert_eq!(h.finish("y"), "y", "a match longer than max is missed");
        // Unicode word boundaries: dropped from the DFA, which waits more.
        let mut h = Holdback::new(finder(r"\bfoo\b", "F"), 64);
        assert_eq!(h.push("été fo"), "été ");
        assert_eq!(h.push("o"), "");
        assert_eq!(h.push("d fo"), "food ");
        assert_eq!(h.finish("o"), "F");
    }

    #[test]
    fn without_prefixes_the_last_max_bytes_wait() {
        let regex = regex::Regex::new("zzz").unwrap();
        let mut h = Holdback::new(RegexFinder::new(regex, "Z".into(), None), 4);
        assert_eq!(h.push("hello world"), "hello w");
        assert_eq!(h.push("!"), "o");
        assert_eq!(h.finish(""), "rld!");
    }

    #[test]
    fn many_patterns_some_asked() {
        let p = Prefixes::any_of(&["abc", r"\d{3}\b"]).unwrap();
        let mut cache = p.cache();
        assert_eq!(p.pending_from(&mut cache, "xx ab", 0, None), 3);
        assert_eq!(p.pending_from(&mut cache, "xx ab", 0, Some(&[1])), 5);
        assert_eq!(p.pending_from(&mut cache, "xx 12", 0, Some(&[1])), 3);
        // With look-ahead, an attempt is settled once it died: the byte after
        // the character following a match.
        assert_eq!(p.pending_from(&mut cache, "x 123", 0, Some(&[1])), 2);
        assert_eq!(p.pending_from(&mut cache, "x 123 ", 0, Some(&[1])), 2);
        assert_eq!(p.pending_from(&mut cache, "x 123 y", 0, Some(&[1])), 7);
        assert_eq!(p.pending_from(&mut cache, "x 123 y", 0, Some(&[0, 1])), 7);
    }
}
