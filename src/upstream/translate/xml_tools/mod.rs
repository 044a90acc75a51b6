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
//! **Answer side** (`answer`, on the pivot answer, streamed or not): the
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
//! use llm_router::__private::translate::xml_tools::{parse_text, Piece};
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

mod answer;
mod request;
mod scanner;
mod stream;

use std::sync::Arc;

pub use answer::{answer, rewrite_answer};
pub use request::{call_xml, needs_rewrite, rewrite_request};
pub use scanner::{parse_text, Piece, XmlCall, XmlScanner};

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

#[cfg(test)]
mod tests;
