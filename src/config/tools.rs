//! `[tools]` and a backend's `tools = "native" | "xml"`: raw serde structs
//! and their conversion into the [`ToolMode`] a backend carries.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loader};
use crate::upstream::translate::xml_tools::ToolMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTools {
    xml_prompt_template: Option<Spanned<String>>,
}

/// `[tools]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolsConfig {
    /// The prompt template of XML tool emulation (`None`: the built-in one,
    /// [`crate::upstream::translate::xml_tools::DEFAULT_TEMPLATE`]).
    pub xml_prompt_template: Option<String>,
}

impl ToolsConfig {
    /// The [`ToolMode`] of a backend with this `tools` setting.
    pub fn mode(&self, tools: BackendTools) -> ToolMode {
        match (tools, &self.xml_prompt_template) {
            (BackendTools::Native, _) => ToolMode::Native,
            (BackendTools::Xml, None) => ToolMode::xml(),
            (BackendTools::Xml, Some(t)) => ToolMode::xml_with_template(t.as_str()),
        }
    }
}

/// A backend's `tools` key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendTools {
    /// `"native"` (the default): tools go upstream as they are.
    #[default]
    Native,
    /// `"xml"`: tool calls emulated through an XML prompt.
    Xml,
}

impl Loader<'_> {
    pub(super) fn tools(&self, raw: Option<&RawTools>) -> Result<ToolsConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(ToolsConfig::default());
        };
        let template = match &raw.xml_prompt_template {
            None => None,
            Some(t) if t.get_ref().trim().is_empty() => {
                return Err(self.err(
                    Some(t.span()),
                    "tools.xml_prompt_template",
                    "must not be empty; remove it to use the built-in prompt",
                ))
            }
            Some(t) => Some(t.get_ref().clone()),
        };
        Ok(ToolsConfig {
            xml_prompt_template: template,
        })
    }

    pub(super) fn backend_tools(
        &self,
        i: usize,
        raw: &Option<Spanned<String>>,
    ) -> Result<BackendTools, ConfigError> {
        let Some(tools) = raw else {
            return Ok(BackendTools::Native);
        };
        match tools.get_ref().as_str() {
            "native" => Ok(BackendTools::Native),
            "xml" => Ok(BackendTools::Xml),
            other => Err(self.err(
                Some(tools.span()),
                format!("backends[{i}].tools"),
                format!("must be \"native\" or \"xml\", not \"{other}\""),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::upstream::translate::xml_tools::{ToolMode, DEFAULT_TEMPLATE};

    use super::BackendTools;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("c.toml"), &|_| None)
    }

    const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\ntools = \"xml\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    #[test]
    fn xml_backend_with_the_built_in_prompt() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.backends[0].tools, BackendTools::Xml);
        match c.tools.mode(c.backends[0].tools) {
            ToolMode::Xml { template } => assert_eq!(&*template, DEFAULT_TEMPLATE),
            other => panic!("{other:?}"),
        }
        let native = parse(&MIN.replace("tools = \"xml\"\n", "")).unwrap();
        assert_eq!(native.backends[0].tools, BackendTools::Native);
        assert_eq!(native.tools.mode(BackendTools::Native), ToolMode::Native);
    }

    #[test]
    fn template_override() {
        let c = parse(&format!(
            "{MIN}\n[tools]\nxml_prompt_template = \"Tools: {{tools}}\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.tools.mode(BackendTools::Xml).template(),
            Some("Tools: {tools}")
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse(&MIN.replace("\"xml\"", "\"json\"")).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("backends[0].tools"));
        assert!(e.message.contains("\"native\" or \"xml\""), "{e}");

        let e = parse(&format!("{MIN}\n[tools]\nxml_prompt_template = \" \"\n")).unwrap_err();
        assert_eq!(e.line, Some(11));
        assert_eq!(e.key.as_deref(), Some("tools.xml_prompt_template"));

        let e = parse(&format!("{MIN}\n[tools]\nprompt = \"x\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("tools.prompt"), "{e}");
        assert!(e.message.contains("xml_prompt_template"), "{e}");
    }
}
