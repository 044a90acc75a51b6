//! The answer-side scanner of XML tool emulation: text in, plain text and
//! tool calls out, streamed ([`XmlScanner`]) or whole ([`parse_text`]).

use serde_json::{json, Value};

use super::MAX_TAG;

/// One tool call read from text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlCall {
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object as compact text.
    pub arguments: String,
}

/// A piece of an answer's text: plain text, or a tool call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Text for the client.
    Text(String),
    /// A tool call.
    Call(XmlCall),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    ToolCall,
    Mcp,
}

impl Tag {
    const ALL: [Tag; 2] = [Tag::ToolCall, Tag::Mcp];

    fn open(self) -> &'static str {
        match self {
            Tag::ToolCall => "<tool_call>",
            Tag::Mcp => "<use_mcp_tool>",
        }
    }

    fn close(self) -> &'static str {
        match self {
            Tag::ToolCall => "</tool_call>",
            Tag::Mcp => "</use_mcp_tool>",
        }
    }

    fn name_element(self) -> &'static str {
        match self {
            Tag::ToolCall => "name",
            Tag::Mcp => "tool_name",
        }
    }
}

/// The incremental scanner: feed text as it streams, get back text that is
/// safe to send and the tool calls found. Bounded: at most one possible
/// opening tag, or one tag up to [`MAX_TAG`] bytes, is held.
#[derive(Debug, Default)]
pub struct XmlScanner {
    buf: String,
    tag: Option<Tag>,
    /// Bytes of `buf` already searched for the closing tag.
    scanned: usize,
    /// Just after a tool call: leading whitespace is dropped.
    after_call: bool,
    calls: usize,
}

impl XmlScanner {
    /// A new scanner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tool calls found so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Feed streamed text.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.buf.push_str(text);
        self.drain(false)
    }

    /// The text ended: whatever is held comes out (an unclosed tag as a call
    /// when it parses, else as text).
    pub fn finish(&mut self) -> Vec<Piece> {
        self.drain(true)
    }

    fn drain(&mut self, end: bool) -> Vec<Piece> {
        let mut out = Vec::new();
        loop {
            let Some(tag) = self.tag else {
                if self.after_call {
                    let trimmed = self.buf.len().saturating_sub(self.buf.trim_start().len());
                    self.buf.drain(..trimmed);
                    if self.buf.is_empty() {
                        break;
                    }
                    self.after_call = false;
                }
                let Some(lt) = self.buf.find('<') else {
                    push_text(&mut out, std::mem::take(&mut self.buf));
                    break;
                };
                if lt > 0 {
                    let text: String = self.buf.drain(..lt).collect();
                    push_text(&mut out, text);
                }
                if let Some(t) = Tag::ALL
                    .into_iter()
                    .find(|t| self.buf.starts_with(t.open()))
                {
                    self.tag = Some(t);
                    self.scanned = t.open().len();
                    continue;
                }
                let maybe = Tag::ALL.iter().any(|t| t.open().starts_with(&self.buf));
                if maybe && !end {
                    break; // hold: it may still become a tag
                }
                self.buf.drain(..1);
                push_text(&mut out, "<".to_string());
                continue;
            };
            let close = tag.close();
            // Searched as bytes: resuming a little before the end may land
            // inside a character, and the tag is ASCII, so a match starts
            // and ends on character boundaries.
            let from = self
                .scanned
                .saturating_sub(close.len().saturating_sub(1))
                .min(self.buf.len());
            let found = self
                .buf
                .as_bytes()
                .get(from..)
                .and_then(|rest| memchr::memmem::find(rest, close.as_bytes()))
                .and_then(|i| i.checked_add(from));
            if let Some(at) = found {
                let end_at = at.saturating_add(close.len()).min(self.buf.len());
                let raw: String = self.buf.drain(..end_at).collect();
                self.tag = None;
                self.scanned = 0;
                let inner = raw.get(tag.open().len()..at).unwrap_or_default();
                match parse_element(tag, inner) {
                    Some(call) => {
                        self.calls = self.calls.saturating_add(1);
                        self.after_call = true;
                        out.push(Piece::Call(call));
                    }
                    None => push_text(&mut out, raw),
                }
                continue;
            }
            self.scanned = self.buf.len();
            if end {
                let raw = std::mem::take(&mut self.buf);
                self.tag = None;
                self.scanned = 0;
                let inner = raw.get(tag.open().len()..).unwrap_or_default();
                match parse_element(tag, inner) {
                    Some(call) => {
                        self.calls = self.calls.saturating_add(1);
                        out.push(Piece::Call(call));
                    }
                    None => push_text(&mut out, raw),
                }
                break;
            }
            if self.buf.len() > MAX_TAG {
                // Too long to be a tool call: plain text.
                push_text(&mut out, std::mem::take(&mut self.buf));
                self.tag = None;
                self.scanned = 0;
            }
            break;
        }
        out
    }
}

pub(super) fn push_text(out: &mut Vec<Piece>, text: String) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text(last)) = out.last_mut() {
        last.push_str(&text);
    } else {
        out.push(Piece::Text(text));
    }
}

/// The text between `<name>` and `</name>` in `inner` (the last `</name>`
/// for arguments, whose JSON may hold anything).
fn element<'a>(inner: &'a str, name: &str, last_close: bool) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, rest) = inner.split_once(&open)?;
    let (found, _) = if last_close {
        rest.rsplit_once(&close)
    } else {
        rest.split_once(&close)
    }?;
    Some(found)
}

fn parse_element(tag: Tag, inner: &str) -> Option<XmlCall> {
    let name = element(inner, tag.name_element(), false)?.trim();
    if name.is_empty() || name.contains(['<', '>']) {
        return None;
    }
    let arguments = match element(inner, "arguments", true) {
        Some(a) => a.trim(),
        None if inner.contains("<arguments>") => return None,
        None => "",
    };
    let arguments = arguments
        .strip_prefix("<![CDATA[")
        .and_then(|a| a.strip_suffix("]]>"))
        .unwrap_or(arguments)
        .trim();
    let value = if arguments.is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(arguments) {
            Ok(v) => v,
            Err(_) => serde_json::from_str::<Value>(&unescape_xml(arguments)).ok()?,
        }
    };
    if !value.is_object() {
        return None;
    }
    Some(XmlCall {
        name: unescape_xml(name),
        arguments: value.to_string(),
    })
}

fn unescape_xml(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Scan a whole text (a non-streamed answer).
pub fn parse_text(text: &str) -> Vec<Piece> {
    let mut scanner = XmlScanner::new();
    let mut pieces = scanner.push(text);
    for piece in scanner.finish() {
        match piece {
            Piece::Text(t) => push_text(&mut pieces, t),
            call => pieces.push(call),
        }
    }
    pieces
}
