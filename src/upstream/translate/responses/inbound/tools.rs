//! `tools` and `tool_choice` of a Responses request as the pivot's (see
//! [`super`] for the table).

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::request::{as_object, optional_str, present, required_str};
use super::{invalid, unsupported, HOSTED_TOOLS, NAMESPACE_SEPARATOR};
use crate::error::ProxyError;

/// The request's function tools in the pivot's form.
#[derive(Debug, Default)]
pub(super) struct Tools {
    /// (function name, chat tool), in order.
    pub(super) chat: Vec<(String, Value)>,
    /// (flattened name, namespace, name) of each function in a namespace.
    pub(super) namespaced: Vec<(String, String, String)>,
}

impl Tools {
    pub(super) fn from_request(body: &Map<String, Value>) -> Result<Tools, ProxyError> {
        let list = match present(body.get("tools")) {
            None => return Ok(Tools::default()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(invalid("`tools` must be an array")),
        };
        let mut tools = Tools::default();
        let mut seen = HashSet::new();
        for (i, tool) in list.iter().enumerate() {
            let here = format!("tools[{i}]");
            let obj = as_object(tool, &here)?;
            match required_str(obj, "type", &here)? {
                "function" => {
                    let (name, chat) = function_tool(obj, None, &here)?;
                    tools.push(name, chat, &mut seen, &here)?;
                }
                "namespace" => {
                    let ns = required_str(obj, "name", &here)?;
                    let ns_description = optional_str(obj, "description", &here)?;
                    let inner = obj
                        .get("tools")
                        .and_then(Value::as_array)
                        .ok_or_else(|| invalid(format!("{here}: `tools` must be an array")))?;
                    for (j, t) in inner.iter().enumerate() {
                        let here = format!("{here}.tools[{j}]");
                        let o = as_object(t, &here)?;
                        match required_str(o, "type", &here)? {
                            "function" => {
                                let (flat, chat) =
                                    function_tool(o, Some((ns, ns_description)), &here)?;
                                let name = required_str(o, "name", &here)?;
                                tools
                                    .namespaced
                                    .push((flat.clone(), ns.to_string(), name.to_string()));
                                tools.push(flat, chat, &mut seen, &here)?;
                            }
                            "custom" => return Err(custom_tool(&here)),
                            other => {
                                return Err(unsupported(format!(
                                    "{here}: the tool type `{other}` inside a namespace cannot be translated for this backend"
                                )))
                            }
                        }
                    }
                }
                "custom" => return Err(custom_tool(&here)),
                kind if HOSTED_TOOLS.contains(&kind) => {}
                other => {
                    return Err(unsupported(format!(
                        "{here}: the tool type `{other}` cannot be translated for this backend"
                    )))
                }
            }
        }
        Ok(tools)
    }

    fn push(
        &mut self,
        name: String,
        chat: Value,
        seen: &mut HashSet<String>,
        here: &str,
    ) -> Result<(), ProxyError> {
        if !seen.insert(name.clone()) {
            return Err(invalid(format!(
                "{here}: more than one tool is named `{name}` (namespaced functions are named <namespace>{NAMESPACE_SEPARATOR}<name>)"
            )));
        }
        self.chat.push((name, chat));
        Ok(())
    }

    /// The pivot name of the function `name` (in `namespace`, if given).
    fn resolve(&self, name: &str, namespace: Option<&str>) -> Option<String> {
        if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
            let flat = format!("{ns}{NAMESPACE_SEPARATOR}{name}");
            return self.has(&flat).then_some(flat);
        }
        if self.has(name) {
            return Some(name.to_string());
        }
        let mut found = self.namespaced.iter().filter(|(_, _, n)| n == name);
        match (found.next(), found.next()) {
            (Some((flat, _, _)), None) if self.has(flat) => Some(flat.clone()),
            _ => None,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.chat.iter().any(|(n, _)| n == name)
    }
}

fn custom_tool(here: &str) -> ProxyError {
    unsupported(format!(
        "{here}: `custom` (freeform) tools cannot be translated for this backend (use a `function` tool)"
    ))
}

/// A Responses function tool as a chat tool, with its (flattened) name.
fn function_tool(
    obj: &Map<String, Value>,
    namespace: Option<(&str, Option<&str>)>,
    here: &str,
) -> Result<(String, Value), ProxyError> {
    let name = required_str(obj, "name", here)?;
    let description = optional_str(obj, "description", here)?.filter(|d| !d.is_empty());
    let (name, description) = match namespace {
        None => (name.to_string(), description.map(str::to_string)),
        Some((ns, ns_description)) => {
            let description = match (ns_description.filter(|d| !d.is_empty()), description) {
                (Some(a), Some(b)) => Some(format!("{a}\n\n{b}")),
                (a, b) => a.or(b).map(str::to_string),
            };
            (format!("{ns}{NAMESPACE_SEPARATOR}{name}"), description)
        }
    };
    let mut function = Map::new();
    function.insert("name".into(), Value::from(name.as_str()));
    if let Some(d) = description {
        function.insert("description".into(), Value::from(d));
    }
    match present(obj.get("parameters")) {
        None => {}
        Some(p @ Value::Object(_)) => {
            function.insert("parameters".into(), p.clone());
        }
        Some(_) => return Err(invalid(format!("{here}: `parameters` must be an object"))),
    }
    match present(obj.get("strict")) {
        None => {}
        Some(Value::Bool(b)) => {
            function.insert("strict".into(), Value::Bool(*b));
        }
        Some(_) => return Err(invalid(format!("{here}: `strict` must be a boolean"))),
    }
    Ok((name, json!({"type": "function", "function": function})))
}

/// The chat `tool_choice`; `allowed_tools` narrows `tools`.
pub(super) fn tool_choice(
    choice: Option<&Value>,
    tools: &mut Tools,
) -> Result<Option<Value>, ProxyError> {
    let choice = match choice {
        None => return Ok(None),
        Some(Value::String(s)) => {
            return match s.as_str() {
                "auto" | "none" | "required" => Ok(Some(Value::from(s.as_str()))),
                other => Err(invalid(format!(
                    "unknown `tool_choice` \"{other}\" (expected auto, none, required or an object)"
                ))),
            }
        }
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("`tool_choice` must be a string or an object")),
    };
    let here = "`tool_choice`";
    let unknown_function = |name: &str| {
        invalid(format!(
            "`tool_choice` names `{name}`, which is not a function tool of this request"
        ))
    };
    match required_str(choice, "type", here)? {
        "function" => {
            let name = required_str(choice, "name", here)?;
            let namespace = optional_str(choice, "namespace", here)?;
            let flat = tools
                .resolve(name, namespace)
                .ok_or_else(|| unknown_function(name))?;
            Ok(Some(
                json!({"type": "function", "function": {"name": flat}}),
            ))
        }
        "allowed_tools" => {
            let mode = required_str(choice, "mode", here)?;
            if mode != "auto" && mode != "required" {
                return Err(invalid(format!(
                    "`tool_choice.mode` \"{mode}\" (expected auto or required)"
                )));
            }
            let list = choice
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("`tool_choice.tools` must be an array"))?;
            let mut allowed = Vec::new();
            for (i, t) in list.iter().enumerate() {
                let here = format!("`tool_choice.tools[{i}]`");
                let t = as_object(t, &here)?;
                match required_str(t, "type", &here)? {
                    "function" => {
                        let name = required_str(t, "name", &here)?;
                        let namespace = optional_str(t, "namespace", &here)?;
                        allowed.push(
                            tools
                                .resolve(name, namespace)
                                .ok_or_else(|| unknown_function(name))?,
                        );
                    }
                    // Removed from the request: nothing left to allow.
                    kind if HOSTED_TOOLS.contains(&kind) => {}
                    other => {
                        return Err(unsupported(format!(
                            "{here}: the tool type `{other}` cannot be translated for this backend"
                        )))
                    }
                }
            }
            tools.chat.retain(|(name, _)| allowed.contains(name));
            Ok(Some(Value::from(mode)))
        }
        "custom" => Err(unsupported(
            "`tool_choice` names a `custom` tool, which cannot be translated for this backend",
        )),
        other => Err(unsupported(format!(
            "`tool_choice` asks for the tool type `{other}`, which this backend cannot run (hosted tools are removed)"
        ))),
    }
}
