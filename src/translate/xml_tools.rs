//! XML tool emulation, for backends with `tools = "xml"`: models or servers
//! without native tool calling get the tools described in a system prompt,
//! and their text answers are read back into real `tool_calls`.
//!
//! **Request side** ([`rewrite_request`], on the pivot request): `tools`,
//! `tool_choice` (and the legacy `functions`, `function_call`) are removed
//! and described in a system prompt built from a template (built in:
//! [`DEFAULT_TEMPLATE`]; `[tools] xml_prompt_template` overrides it, with
//! `{tools}` where the tool list goes). Earlier assistant tool calls become
//! `<tool_call>` text in the assistant's message, and tool results become a
//! user message of `<tool_result>` elements: no `tool` role and no `tools`
//! go upstream.
//!
//! **Answer side** ([`answer`], on the pivot answer, streamed or not): the
//! text is scanned for
//! `<tool_call><name>NAME</name><arguments>{JSON}</arguments></tool_call>`
//! and the older `<use_mcp_tool><tool_name>NAME</tool_name><arguments>{JSON}</arguments></use_mcp_tool>`;
//! each well-formed element becomes a tool call (`finish_reason:
//! "tool_calls"`) and no markup of it reaches the client as text. Streamed,
//! text before a tag goes out at once; a `<` that may open a tag is held only
//! until it is known to be one or not, and a tag only until it closes
//! (bounded: [`MAX_TAG`]). Malformed XML (bad JSON arguments, no name, an
//! unclosed or oversized tag) degrades to plain text, never to an error.
//!
//! ```
//! use llm_router::translate::xml_tools::{parse_text, Piece};
//!
//! let pieces = parse_text(r#"Let me look. <tool_call><name>get_weather</name><arguments>{"city":"Paris"}</arguments></tool_call>"#);
//! assert_eq!(pieces[0], Piece::Text("Let me look. ".into()));
//! let Piece::Call(call) = &pieces[1] else { panic!() };
//! assert_eq!(call.name, "get_weather");
//! assert_eq!(call.arguments, r#"{"city":"Paris"}"#);
//! ```

// Untrusted bytes (clients, upstreams) pass through here: no unchecked
// indexing, slicing or arithmetic on them.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Response};
use serde_json::{json, Map, Value};

use super::convert::{self, CollectJson, Convert};
use crate::body::{BoxError, ProxyBody};
use crate::request::{Endpoint, LlmRequest};
use crate::sse::SseParser;
use crate::upstream::limits::check_index;

/// How a backend handles tools (`tools = "native" | "xml"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ToolMode {
    /// Tools go upstream as they are (the default).
    #[default]
    Native,
    /// Tool calls are emulated through an XML prompt built from `template`.
    Xml {
        /// The prompt template (`{tools}` marks where the tool list goes).
        template: Arc<str>,
    },
}

impl ToolMode {
    /// XML emulation with the built-in prompt.
    pub fn xml() -> Self {
        ToolMode::Xml {
            template: Arc::from(DEFAULT_TEMPLATE),
        }
    }

    /// XML emulation with a custom prompt template.
    pub fn xml_with_template(template: impl Into<Arc<str>>) -> Self {
        ToolMode::Xml {
            template: template.into(),
        }
    }

    /// Whether tool calls are emulated.
    pub fn is_xml(&self) -> bool {
        matches!(self, ToolMode::Xml { .. })
    }

    /// The prompt template, for XML emulation.
    pub fn template(&self) -> Option<&str> {
        match self {
            ToolMode::Native => None,
            ToolMode::Xml { template } => Some(template),
        }
    }
}

/// The built-in prompt; `{tools}` is replaced by the tool list.
pub const DEFAULT_TEMPLATE: &str = "You can call tools. To call a tool, write the call in exactly this form, with the arguments as one JSON object that matches the tool's parameters:

<tool_call><name>TOOL_NAME</name><arguments>{\"parameter\": \"value\"}</arguments></tool_call>

You may write several tool calls one after another. After your tool calls, stop: the results come back in the next message as <tool_result><name>TOOL_NAME</name><result>RESULT</result></tool_result>. Never write <tool_result> yourself. When no tool is needed, answer normally, without these tags.

The tools you can call:
{tools}";

/// Largest tag held back while waiting for its end; a longer one goes out
/// as plain text.
pub const MAX_TAG: usize = crate::upstream::limits::MAX_XML_TAG_BYTES;

// ---------------------------------------------------------------------------
// Request side

/// Whether a pivot request has anything XML emulation rewrites (tools, tool
/// settings, or tool calls and results in its history).
pub fn needs_rewrite(body: &Map<String, Value>) -> bool {
    const KEYS: &[&str] = &[
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
    ];
    if KEYS.iter().any(|k| body.contains_key(*k)) {
        return true;
    }
    body.get("messages")
        .and_then(Value::as_array)
        .is_some_and(|messages| {
            messages.iter().any(|m| {
                matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("tool" | "function")
                ) || m.get("tool_calls").is_some()
                    || m.get("function_call").is_some()
            })
        })
}

/// Rewrite a pivot request for XML emulation with `template` (see the
/// [module docs](self)).
pub fn rewrite_request(body: &mut Map<String, Value>, template: &str) {
    let tools = body.remove("tools");
    let functions = body.remove("functions");
    let tool_choice = body.remove("tool_choice");
    let function_call = body.remove("function_call");
    body.remove("parallel_tool_calls");

    // The tools offered: name, description, parameters.
    let mut offered: Vec<(String, Option<String>, Option<Value>)> = Vec::new();
    for tool in tools.iter().chain(functions.iter()).flat_map(|t| match t {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        _ => Vec::new(),
    }) {
        let f = tool.get("function").unwrap_or(tool);
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            offered.push((
                name.to_string(),
                f.get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                f.get("parameters").cloned(),
            ));
        }
    }

    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        *messages = rewrite_history(std::mem::take(messages));
        let choice = tool_choice.or(function_call);
        if !offered.is_empty() && !is_none_choice(choice.as_ref()) {
            let prompt = build_prompt(template, &offered, choice.as_ref());
            add_system_prompt(messages, prompt);
        }
    }
}

fn is_none_choice(choice: Option<&Value>) -> bool {
    choice.and_then(Value::as_str) == Some("none")
}

/// The system prompt: the template with the tool list, plus what `tool_choice` asks for.
fn build_prompt(
    template: &str,
    offered: &[(String, Option<String>, Option<Value>)],
    choice: Option<&Value>,
) -> String {
    let mut list = String::from("<tools>\n");
    for (name, description, parameters) in offered {
        list.push_str("<tool><name>");
        list.push_str(name);
        list.push_str("</name>");
        if let Some(d) = description.as_deref().filter(|d| !d.is_empty()) {
            list.push_str("<description>");
            list.push_str(d);
            list.push_str("</description>");
        }
        list.push_str("<parameters>");
        match parameters {
            Some(p) => list.push_str(&p.to_string()),
            None => list.push_str(r#"{"type":"object","properties":{}}"#),
        }
        list.push_str("</parameters></tool>\n");
    }
    list.push_str("</tools>");
    let mut prompt = if template.contains("{tools}") {
        template.replace("{tools}", &list)
    } else {
        format!("{template}\n\n{list}")
    };
    match choice {
        Some(Value::String(s)) if s == "required" => {
            prompt.push_str("\n\nYou must call at least one tool in this answer.");
        }
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            if let Some(name) = name {
                prompt.push_str(&format!(
                    "\n\nYou must call the tool `{name}` in this answer."
                ));
            }
        }
        _ => {}
    }
    prompt
}

/// Put the prompt into the leading system message (appended), or a new one.
fn add_system_prompt(messages: &mut Vec<Value>, prompt: String) {
    if let Some(first) = messages.first_mut() {
        let role = first.get("role").and_then(Value::as_str);
        if matches!(role, Some("system" | "developer")) {
            match first.get_mut("content") {
                Some(Value::String(s)) => {
                    if !s.is_empty() {
                        s.push_str("\n\n");
                    }
                    s.push_str(&prompt);
                    return;
                }
                Some(Value::Array(parts)) => {
                    parts.push(json!({"type": "text", "text": prompt}));
                    return;
                }
                _ => {}
            }
        }
    }
    messages.insert(0, json!({"role": "system", "content": prompt}));
}

/// The XML text of one call.
pub fn call_xml(name: &str, arguments: &str) -> String {
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    format!("<tool_call><name>{name}</name><arguments>{arguments}</arguments></tool_call>")
}

/// Assistant tool calls as text; tool results as user messages.
fn rewrite_history(messages: Vec<Value>) -> Vec<Value> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    // Whether the last message out is a user message made of tool results.
    let mut results_open = false;
    for mut message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match role.as_str() {
            "assistant" => {
                let calls = message.as_object_mut().and_then(|m| m.remove("tool_calls"));
                let legacy = message
                    .as_object_mut()
                    .and_then(|m| m.remove("function_call"));
                let mut xml = Vec::new();
                for call in calls
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .chain(legacy.iter())
                {
                    let f = call.get("function").unwrap_or(call);
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    let arguments = match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v @ Value::Object(_)) => v.to_string(),
                        _ => String::new(),
                    };
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    xml.push(call_xml(name, &arguments));
                }
                if !xml.is_empty() {
                    let text = convert::content_text(message.get("content"));
                    let mut content = text.trim_end().to_string();
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str(&xml.join("\n"));
                    if let Some(m) = message.as_object_mut() {
                        m.insert("content".into(), Value::String(content));
                    }
                }
                results_open = false;
                out.push(message);
            }
            "tool" | "function" => {
                let name = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .and_then(|id| names.get(id))
                    .map(String::as_str)
                    .or_else(|| message.get("name").and_then(Value::as_str))
                    .unwrap_or("tool")
                    .to_string();
                let result = convert::content_text(message.get("content"));
                let text = format!(
                    "<tool_result><name>{name}</name><result>{result}</result></tool_result>"
                );
                match out.last_mut() {
                    Some(last) if results_open => {
                        if let Some(Value::String(s)) = last.get_mut("content") {
                            s.push('\n');
                            s.push_str(&text);
                        }
                    }
                    _ => {
                        out.push(json!({"role": "user", "content": text}));
                        results_open = true;
                    }
                }
            }
            _ => {
                results_open = false;
                out.push(message);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Answer side: the scanner

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

fn push_text(out: &mut Vec<Piece>, text: String) {
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

fn tool_call_json(index: usize, call: &XmlCall, with_index: bool) -> Value {
    let mut v = json!({
        "id": convert::call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    });
    if let (true, Some(m)) = (with_index, v.as_object_mut()) {
        m.insert("index".into(), json!(index));
    }
    v
}

// ---------------------------------------------------------------------------
// Answer side: responses

/// Read tool calls out of the pivot answer to `request` (see the
/// [module docs](self)): `chat.completion` JSON, or a
/// `chat.completion.chunk` stream. Error answers, and answers to other
/// endpoints than chat, pass unchanged.
pub fn answer(response: Response<ProxyBody>, request: &LlmRequest) -> Response<ProxyBody> {
    let chat = matches!(
        request.endpoint(),
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses
    );
    if !response.status().is_success() || !chat {
        return response;
    }
    let stream = request.is_stream();
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && event_stream {
        convert::convert_response(response, "text/event-stream", XmlStream::default())
    } else if !stream {
        convert::convert_response(
            response,
            "application/json",
            CollectJson::new(|body: &[u8]| Ok(rewrite_answer(body))).or_pass_through(),
        )
    } else {
        response
    }
}

/// A `chat.completion` with tool calls read out of its text; unchanged
/// when it is not one or has none.
pub fn rewrite_answer(body: &[u8]) -> Bytes {
    let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let mut changed = false;
    if let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            let Some(text) = choice
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let pieces = parse_text(text);
            if !pieces.iter().any(|p| matches!(p, Piece::Call(_))) {
                continue;
            }
            changed = true;
            let mut rest = String::new();
            let mut calls = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => rest.push_str(&t),
                    Piece::Call(c) => calls.push(c),
                }
            }
            let message = &mut choice["message"];
            let rest = rest.trim();
            message["content"] = if rest.is_empty() {
                Value::Null
            } else {
                Value::String(rest.to_string())
            };
            let mut list = match message.get_mut("tool_calls").map(Value::take) {
                Some(Value::Array(existing)) => existing,
                _ => Vec::new(),
            };
            list.extend(calls.iter().map(|c| tool_call_json(0, c, false)));
            message["tool_calls"] = Value::Array(list);
            if matches!(
                choice.get("finish_reason").and_then(Value::as_str),
                Some("stop") | None
            ) {
                choice["finish_reason"] = json!("tool_calls");
            }
        }
    }
    if !changed {
        return Bytes::copy_from_slice(body);
    }
    Bytes::from(serde_json::to_vec(&answer).unwrap_or_else(|_| body.to_vec()))
}

#[derive(Default)]
struct ChoiceState {
    scanner: XmlScanner,
    /// Tool calls sent for this choice (the next call's `index`).
    calls: usize,
    finished: bool,
}

/// The streamed side: a `chat.completion.chunk` stream in, the same with
/// tool calls out.
struct XmlStream {
    parser: SseParser,
    /// By choice index, each below [`MAX_INDEX`].
    choices: BTreeMap<usize, ChoiceState>,
    /// The last chunk seen, minus its choices: the envelope of flushed text.
    envelope: Option<Map<String, Value>>,
}

impl Default for XmlStream {
    fn default() -> Self {
        XmlStream {
            parser: SseParser::new(convert::MAX_EVENT),
            choices: BTreeMap::new(),
            envelope: None,
        }
    }
}

impl XmlStream {
    /// The state of choice `index` (checked below
    /// [`MAX_INDEX`](crate::upstream::limits::MAX_INDEX)).
    fn state(&mut self, index: usize) -> &mut ChoiceState {
        self.choices.entry(index).or_default()
    }

    fn event(
        &mut self,
        event: crate::sse::SseEvent,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), BoxError> {
        if event.data.is_empty() {
            out.push_back(event.raw);
            return Ok(());
        }
        if event.is_done() {
            self.flush(out);
            out.push_back(event.raw);
            return Ok(());
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(&event.data) else {
            out.push_back(event.raw);
            return Ok(());
        };
        let choices = match chunk.remove("choices") {
            Some(Value::Array(c)) if !c.is_empty() => c,
            other => {
                if let Some(c) = other {
                    chunk.insert("choices".into(), c);
                }
                out.push_back(event.raw);
                return Ok(());
            }
        };
        // Fields other than the choices (usage, ...) ride on the last event;
        // the envelope, repeated on every event, only when small.
        let mut envelope = Map::new();
        let mut extra = Map::new();
        for (k, v) in chunk {
            let small = match &v {
                Value::String(_) => convert::upstream_name(Some(&v)).is_some(),
                Value::Number(_) | Value::Bool(_) | Value::Null => true,
                Value::Array(_) | Value::Object(_) => false,
            };
            if small
                && matches!(
                    k.as_str(),
                    "id" | "object" | "created" | "model" | "system_fingerprint"
                )
            {
                envelope.insert(k, v);
            } else {
                extra.insert(k, v);
            }
        }
        let mut events: Vec<Value> = Vec::new();
        for (position, mut choice) in choices.into_iter().enumerate() {
            let index = match choice.get("index").and_then(Value::as_u64) {
                Some(i) => check_index(i, "choice")?,
                None => check_index(u64::try_from(position).unwrap_or(u64::MAX), "choice")?,
            };
            let mut delta = match choice.get_mut("delta").map(Value::take) {
                Some(Value::Object(d)) => d,
                _ => Map::new(),
            };
            let content = match delta.remove("content") {
                Some(Value::String(s)) => Some(s),
                Some(Value::Null) | None => None,
                Some(other) => {
                    delta.insert("content".into(), other);
                    None
                }
            };
            let finish = choice
                .get("finish_reason")
                .filter(|f| !f.is_null())
                .cloned();
            let state = self.state(index);
            let mut pieces = match &content {
                Some(text) if !text.is_empty() => state.scanner.push(text),
                _ => Vec::new(),
            };
            if finish.is_some() {
                for piece in state.scanner.finish() {
                    match piece {
                        Piece::Text(t) => push_text(&mut pieces, t),
                        call => pieces.push(call),
                    }
                }
                state.finished = true;
            }
            let mut deltas: Vec<Map<String, Value>> = Vec::new();
            for piece in pieces {
                let mut d = Map::new();
                match piece {
                    Piece::Text(t) => {
                        d.insert("content".into(), Value::String(t));
                    }
                    Piece::Call(call) => {
                        d.insert(
                            "tool_calls".into(),
                            json!([tool_call_json(state.calls, &call, true)]),
                        );
                        state.calls = state.calls.saturating_add(1);
                    }
                }
                deltas.push(d);
            }
            // Other delta fields (role, refusal, ...) go with the first piece.
            if !delta.is_empty() || (deltas.is_empty() && content.as_deref() == Some("")) {
                if content.as_deref() == Some("") && deltas.is_empty() {
                    delta.insert("content".into(), json!(""));
                }
                match deltas.first_mut() {
                    Some(first) => {
                        for (k, v) in delta {
                            first.entry(k).or_insert(v);
                        }
                    }
                    None => deltas.push(delta),
                }
            }
            let finish = finish.map(|f| {
                if state.calls > 0 && f.as_str() == Some("stop") {
                    json!("tool_calls")
                } else {
                    f
                }
            });
            if finish.is_some() && deltas.is_empty() {
                deltas.push(Map::new());
            }
            let last = deltas.len().saturating_sub(1);
            for (i, d) in deltas.into_iter().enumerate() {
                // The choice's other fields (logprobs, ...) go with its
                // first event only: not copied once per tool call.
                let mut c = match std::mem::take(&mut choice) {
                    Value::Object(c) => c,
                    _ => Map::new(),
                };
                c.insert("index".into(), json!(index));
                c.insert("delta".into(), Value::Object(d));
                let finish_reason = if i == last {
                    finish.clone().unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                c.insert("finish_reason".into(), finish_reason);
                let mut e = envelope.clone();
                e.insert("choices".into(), json!([c]));
                events.push(Value::Object(e));
            }
        }
        if let Some(last) = events.last_mut().and_then(Value::as_object_mut) {
            last.extend(extra);
        } else if !extra.is_empty() {
            let mut e = envelope.clone();
            e.insert("choices".into(), json!([]));
            e.extend(extra);
            events.push(Value::Object(e));
        }
        self.envelope = Some(envelope);
        for e in events {
            out.push_back(convert::sse_data(&e));
        }
        Ok(())
    }

    /// Held text of unfinished choices goes out (the stream ends).
    fn flush(&mut self, out: &mut VecDeque<Bytes>) {
        let Some(envelope) = self.envelope.clone() else {
            return;
        };
        for (&index, state) in self.choices.iter_mut() {
            if state.finished {
                continue;
            }
            state.finished = true;
            for piece in state.scanner.finish() {
                let delta = match piece {
                    Piece::Text(t) => json!({"content": t}),
                    Piece::Call(call) => {
                        let d = json!({"tool_calls": [tool_call_json(state.calls, &call, true)]});
                        state.calls = state.calls.saturating_add(1);
                        d
                    }
                };
                let mut e = envelope.clone();
                e.insert(
                    "choices".into(),
                    json!([{"index": index, "delta": delta, "finish_reason": null}]),
                );
                out.push_back(convert::sse_data(&Value::Object(e)));
            }
        }
    }
}

impl Convert for XmlStream {
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        self.parser.push(chunk);
        while let Some(event) = self.parser.next_event()? {
            self.event(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), BoxError> {
        if let Some(event) = self.parser.finish() {
            self.event(event, out)?;
        }
        self.flush(out);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> Piece {
        Piece::Call(XmlCall {
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    fn text(t: &str) -> Piece {
        Piece::Text(t.into())
    }

    /// Feed `input` in pieces of `size` bytes (at char boundaries), merge the output.
    fn scan_in_chunks(input: &str, cuts: &[usize]) -> Vec<Piece> {
        let mut scanner = XmlScanner::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            if cut < start || !input.is_char_boundary(cut) {
                continue;
            }
            for p in scanner.push(&input[start..cut]) {
                match p {
                    Piece::Text(t) => push_text(&mut out, t),
                    c => out.push(c),
                }
            }
            start = cut;
        }
        for p in scanner.finish() {
            match p {
                Piece::Text(t) => push_text(&mut out, t),
                c => out.push(c),
            }
        }
        out
    }

    const BOTH: &str = "Checking é. <tool_call><name>get_weather</name><arguments>{\"city\": \"Paris\"}</arguments></tool_call>\n<use_mcp_tool><server_name>s</server_name><tool_name>search</tool_name><arguments>{\"q\":\"a<b\"}</arguments></use_mcp_tool> done";

    #[test]
    fn both_forms_with_text_around() {
        assert_eq!(
            parse_text(BOTH),
            vec![
                text("Checking é. "),
                call("get_weather", r#"{"city":"Paris"}"#),
                call("search", r#"{"q":"a<b"}"#),
                text("done"),
            ]
        );
    }

    #[test]
    fn a_tag_split_at_every_position() {
        let whole = parse_text(BOTH);
        for cut in 0..=BOTH.len() {
            assert_eq!(scan_in_chunks(BOTH, &[cut]), whole, "cut at {cut}");
        }
        for a in 0..BOTH.len() {
            for b in (a..BOTH.len()).step_by(7) {
                assert_eq!(scan_in_chunks(BOTH, &[a, b]), whole, "cuts at {a}, {b}");
            }
        }
        // One byte (char) at a time.
        let cuts: Vec<usize> = (0..BOTH.len()).collect();
        assert_eq!(scan_in_chunks(BOTH, &cuts), whole);
    }

    #[test]
    fn text_streams_before_a_possible_tag() {
        let mut s = XmlScanner::new();
        assert_eq!(s.push("Hello <"), vec![text("Hello ")]);
        assert_eq!(s.push("tool"), vec![]);
        assert_eq!(s.push("box> a < b"), vec![text("<toolbox> a < b")]);
        assert_eq!(s.push(" x<"), vec![text(" x")]);
        assert_eq!(s.finish(), vec![text("<")]);
    }

    #[test]
    fn malformed_degrades_to_text() {
        for bad in [
            "<tool_call><name>f</name><arguments>{not json}</arguments></tool_call>",
            "<tool_call><arguments>{}</arguments></tool_call>",
            "<tool_call><name></name></tool_call>",
            "<tool_call><name>f</name><arguments>[1,2]</arguments></tool_call>",
            "<tool_call><name>f</name><arguments>{\"a\":1}</tool_call>",
            "<use_mcp_tool><name>f</name></use_mcp_tool>",
        ] {
            assert_eq!(parse_text(bad), vec![text(bad)], "{bad}");
            let input = format!("a {bad} b");
            assert_eq!(parse_text(&input), vec![text(&input)], "{input}");
        }
        // Unclosed and unparseable: plain text at the end.
        assert_eq!(
            parse_text("x <tool_call><name>f"),
            vec![text("x <tool_call><name>f")]
        );
    }

    #[test]
    fn lenient_forms() {
        assert_eq!(
            parse_text("<tool_call>\n  <name> f </name>\n  <arguments>\n{\"a\": [1, 2]}\n  </arguments>\n</tool_call>"),
            vec![call("f", r#"{"a":[1,2]}"#)]
        );
        assert_eq!(
            parse_text("<tool_call><name>f</name></tool_call>"),
            vec![call("f", "{}")]
        );
        assert_eq!(
            parse_text(
                "<tool_call><name>f</name><arguments><![CDATA[{\"a\":1}]]></arguments></tool_call>"
            ),
            vec![call("f", r#"{"a":1}"#)]
        );
        assert_eq!(
            parse_text("<tool_call><name>f</name><arguments>{&quot;a&quot;:&quot;&lt;&quot;}</arguments></tool_call>"),
            vec![call("f", r#"{"a":"<"}"#)]
        );
        // Unclosed at the end but complete inside: a call.
        assert_eq!(
            parse_text("<tool_call><name>f</name><arguments>{\"a\":1}</arguments>"),
            vec![call("f", r#"{"a":1}"#)]
        );
        // Arguments whose JSON holds a closing tag of their own.
        assert_eq!(
            parse_text("<tool_call><name>f</name><arguments>{\"h\":\"</arguments>\"}</arguments></tool_call>"),
            vec![call("f", r#"{"h":"</arguments>"}"#)]
        );
    }

    #[test]
    fn held_tag_is_bounded() {
        let mut s = XmlScanner::new();
        assert!(s
            .push("<tool_call><name>f</name><arguments>{\"a\":\"")
            .is_empty());
        let big = "x".repeat(MAX_TAG);
        let out = s.push(&big);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Piece::Text(t) if t.starts_with("<tool_call>")));
        assert_eq!(
            s.push("\"}</arguments></tool_call>"),
            vec![text("\"}</arguments></tool_call>")]
        );
    }

    fn openai_body(messages: Value, extra: Value) -> Map<String, Value> {
        let mut body = json!({"model": "m", "messages": messages});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.as_object().unwrap().clone()
    }

    #[test]
    fn request_rewrite() {
        let mut body = openai_body(
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "21C"},
                {"role": "tool", "tool_call_id": "c2", "content": "25C"},
                {"role": "user", "content": "Thanks"}
            ]),
            json!({
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "tool_choice": "required",
                "parallel_tool_calls": true
            }),
        );
        assert!(needs_rewrite(&body));
        rewrite_request(&mut body, DEFAULT_TEMPLATE);
        assert!(!body.contains_key("tools"));
        assert!(!body.contains_key("tool_choice"));
        assert!(!body.contains_key("parallel_tool_calls"));
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5);
        let system = messages[0]["content"].as_str().unwrap();
        assert!(system.starts_with("Be brief.\n\nYou can call tools."));
        assert!(system.contains("<tool><name>get_weather</name><description>Current weather</description><parameters>{\"type\":\"object\""));
        assert!(system.contains("<tool_call><name>TOOL_NAME</name>"));
        assert!(system.ends_with("You must call at least one tool in this answer."));
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(
            messages[2]["content"],
            "<tool_call><name>get_weather</name><arguments>{\"city\":\"Paris\"}</arguments></tool_call>\n<tool_call><name>get_weather</name><arguments>{\"city\":\"Rome\"}</arguments></tool_call>"
        );
        assert!(messages[2].get("tool_calls").is_none());
        assert_eq!(messages[3]["role"], "user");
        assert_eq!(
            messages[3]["content"],
            "<tool_result><name>get_weather</name><result>21C</result></tool_result>\n<tool_result><name>get_weather</name><result>25C</result></tool_result>"
        );
        assert!(messages.iter().all(|m| m["role"] != "tool"));
        assert_eq!(messages[4]["content"], "Thanks");
        // The history parses back into the same calls.
        let parsed = parse_text(messages[2]["content"].as_str().unwrap());
        assert_eq!(
            parsed,
            vec![
                call("get_weather", r#"{"city":"Paris"}"#),
                call("get_weather", r#"{"city":"Rome"}"#)
            ]
        );
    }

    #[test]
    fn request_rewrite_template_and_choices() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let mut body = openai_body(
            json!([{"role": "user", "content": "hi"}]),
            json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}}}),
        );
        rewrite_request(&mut body, "Custom tools: {tools} -- end");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        let system = messages[0]["content"].as_str().unwrap();
        assert!(system.starts_with("Custom tools: <tools>\n<tool><name>f</name><parameters>"));
        assert!(system.contains("</tools> -- end"));
        assert!(system.ends_with("You must call the tool `f` in this answer."));

        // tool_choice none: no prompt, but the tools still go.
        let mut body = openai_body(
            json!([{"role": "user", "content": "hi"}]),
            json!({"tools": tools, "tool_choice": "none"}),
        );
        rewrite_request(&mut body, DEFAULT_TEMPLATE);
        assert!(!body.contains_key("tools"));
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);

        // A template without the placeholder gets the list appended.
        let mut body = openai_body(json!([]), json!({"tools": tools}));
        rewrite_request(&mut body, "Use tools.");
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("Use tools.\n\n<tools>"));

        let plain = openai_body(json!([{"role": "user", "content": "hi"}]), json!({}));
        assert!(!needs_rewrite(&plain));
    }

    #[test]
    fn json_answer_rewrite() {
        let body = json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "On it.\n<tool_call><name>f</name><arguments>{\"a\":1}</arguments></tool_call>"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        });
        let out: Value =
            serde_json::from_slice(&rewrite_answer(body.to_string().as_bytes())).unwrap();
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "On it.");
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1);
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "f");
        assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out["usage"]["total_tokens"], 3);

        let plain =
            br#"{"choices":[{"message":{"content":"no <b>tags</b>"},"finish_reason":"stop"}]}"#;
        assert_eq!(&rewrite_answer(plain)[..], &plain[..]);
        assert_eq!(&rewrite_answer(b"not json")[..], b"not json");
    }

    fn run_stream(input: &[u8], size: usize) -> Vec<Value> {
        let mut conv = XmlStream::default();
        let mut out = VecDeque::new();
        for piece in input.chunks(size) {
            conv.push(piece, &mut out).unwrap();
        }
        conv.finish(&mut out).unwrap();
        let text: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        let text = String::from_utf8(text).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let d = e.strip_prefix("data: ").unwrap();
                if d == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(d).unwrap()
                }
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> String {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    }

    /// Text, and tool calls with their names and arguments joined.
    fn summarize(events: &[Value]) -> (String, Vec<(u64, String, String)>, Option<String>) {
        let mut text = String::new();
        let mut calls: Vec<(u64, String, String)> = Vec::new();
        let mut finish = None;
        for e in events {
            let Some(choice) = e.get("choices").and_then(|c| c.get(0)) else {
                continue;
            };
            if let Some(t) = choice["delta"]["content"].as_str() {
                text.push_str(t);
            }
            for c in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert!(c["id"].as_str().unwrap().starts_with("call_"));
                calls.push((
                    c["index"].as_u64().unwrap(),
                    c["function"]["name"].as_str().unwrap().to_string(),
                    c["function"]["arguments"].as_str().unwrap().to_string(),
                ));
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        (text, calls, finish)
    }

    #[test]
    fn stream_rewrite_any_chunking() {
        let mut input = chunk(json!({"role": "assistant", "content": ""}), None);
        // The model's text, cut into awkward deltas.
        let said = "Sure. <tool_call><name>f</name><arguments>{\"a\":1}</arguments></tool_call><use_mcp_tool><tool_name>g</tool_name><arguments>{}</arguments></use_mcp_tool>";
        for piece in said.as_bytes().chunks(5) {
            input.push_str(&chunk(
                json!({"content": std::str::from_utf8(piece).unwrap()}),
                None,
            ));
        }
        input.push_str(&chunk(json!({}), Some("stop")));
        input.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n");
        input.push_str("data: [DONE]\n\n");
        let whole = run_stream(input.as_bytes(), input.len());
        let (text, calls, finish) = summarize(&whole);
        assert_eq!(text, "Sure. ");
        assert_eq!(
            calls,
            vec![
                (0, "f".to_string(), "{\"a\":1}".to_string()),
                (1, "g".to_string(), "{}".to_string())
            ]
        );
        assert_eq!(finish.as_deref(), Some("tool_calls"));
        assert_eq!(whole[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(whole[whole.len() - 2]["usage"]["total_tokens"], 3);
        assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
        // No markup reaches the client as text.
        assert!(!text.contains('<'));
        for size in 1..16 {
            let events = run_stream(input.as_bytes(), size);
            assert_eq!(
                summarize(&events),
                (text.clone(), calls.clone(), finish.clone()),
                "size {size}"
            );
        }
    }

    #[test]
    fn stream_without_tags_passes_text() {
        let mut input = chunk(json!({"role": "assistant", "content": ""}), None);
        input.push_str(&chunk(json!({"content": "a <b> c <"}), None));
        input.push_str(&chunk(json!({"content": "tool"}), None));
        input.push_str(&chunk(json!({}), Some("stop")));
        input.push_str("data: [DONE]\n\n");
        let events = run_stream(input.as_bytes(), 3);
        let (text, calls, finish) = summarize(&events);
        assert_eq!(text, "a <b> c <tool");
        assert!(calls.is_empty());
        assert_eq!(finish.as_deref(), Some("stop"));
    }

    #[test]
    fn stream_ended_without_finish_flushes_text() {
        let input = chunk(json!({"content": "x <tool_ca"}), None) + "data: [DONE]\n\n";
        let events = run_stream(input.as_bytes(), 4);
        let (text, _, _) = summarize(&events);
        assert_eq!(text, "x <tool_ca");
        assert_eq!(events.last().unwrap(), &json!("[DONE]"));
    }

    /// Regression: resuming the search for the closing tag a few bytes
    /// before the end sliced the text inside a multi-byte character (a model
    /// repeating `<tool_call>€aaaa` panicked the connection).
    #[test]
    fn a_held_tag_with_multibyte_text_never_panics() {
        for run in 0..12 {
            let piece = format!("€{}", "a".repeat(run));
            let mut scanner = XmlScanner::new();
            let mut text = String::new();
            let mut take = |pieces: Vec<Piece>| {
                for p in pieces {
                    match p {
                        Piece::Text(t) => text.push_str(&t),
                        Piece::Call(c) => panic!("no call expected: {c:?}"),
                    }
                }
            };
            take(scanner.push("<tool_call>"));
            for _ in 0..40 {
                take(scanner.push(&piece));
            }
            take(scanner.finish());
            assert_eq!(
                text,
                format!("<tool_call>{}", piece.repeat(40)),
                "run {run}"
            );
        }
        // And a call after such text is still found.
        let pieces = parse_text("<tool_call>€€<name>f</name><arguments>{}</arguments></tool_call>");
        assert!(matches!(&pieces[..], [Piece::Call(c)] if c.name == "f"));
    }

    /// Regression: a choice `index` of u64::MAX overflowed and one of 10^12
    /// sized a table by it; both end the stream with an error now.
    #[test]
    fn an_out_of_range_choice_index_is_an_error_not_a_table() {
        for index in ["128", "1000000000000", "18446744073709551615"] {
            let mut conv = XmlStream::default();
            let mut out = VecDeque::new();
            let event = format!(
                "data: {{\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":\"hi\"}}}}]}}\n\n"
            );
            let err = conv.push(event.as_bytes(), &mut out).unwrap_err();
            assert!(err.to_string().contains("beyond the limit"), "{err}");
            assert!(conv.choices.is_empty());
        }
        let mut conv = XmlStream::default();
        let mut out = VecDeque::new();
        let event = "data: {\"choices\":[{\"index\":127,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        conv.push(event.as_bytes(), &mut out).unwrap();
        assert_eq!(conv.choices.len(), 1);
    }
}
