//! A plain YAML tree that keeps every node's line, shared by the importers of
//! YAML configs (LiteLLM's, the `models:`-map and `providers:` ones) and of
//! the JSON one (JSON is YAML 1.2, so the same parser gives its lines too).
//! The importers depend on this tree, not on the parser.
//!
//! (The module is private to the crate; its unit tests run this.)
//!
//! ```text
//! let doc = yaml::parse("a:\n  b: 1\n", "c.yaml")?;
//! assert_eq!(doc.root.get("a").unwrap().node.get("b").unwrap().line, 2);
//! ```

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use crate::config::ConfigError;

/// A node and the (1-based) line it starts on.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// A node's value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping, in the file's order.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// The key's line.
    pub(crate) line: usize,
    pub(crate) node: Node,
}

impl Node {
    pub(crate) fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// A scalar as text (strings, numbers, booleans).
    pub(crate) fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A number, or a string holding one.
    pub(crate) fn number(&self) -> Option<f64> {
        match &self.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean, or a string holding one (`"true"`, `"false"`).
    pub(crate) fn boolean(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// What the value is, for messages ("a list", "a string").
    pub(crate) fn what(&self) -> &'static str {
        match &self.value {
            Value::Null => "empty",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A parsed file: its first document, and the line of a second one if any
/// (only the first is read).
#[derive(Debug)]
pub(crate) struct Doc {
    pub(crate) root: Node,
    pub(crate) extra_document: Option<usize>,
}

/// Parse YAML (or JSON) text; a syntax error names `file` and its line.
pub(crate) fn parse(text: &str, file: &str, empty_message: &str) -> Result<Doc, ConfigError> {
    let syntax = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        key: None,
        message,
    };
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| {
        syntax(
            Some(e.marker().line().max(1)),
            format!("invalid YAML: {}", e.info()),
        )
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(syntax(None, empty_message.to_string()));
    };
    let extra_document = docs.next().map(|d| d.span.start.line());
    let root =
        convert(doc).map_err(|(line, m)| syntax(Some(line), format!("invalid YAML: {m}")))?;
    Ok(Doc {
        root,
        extra_document,
    })
}

fn convert(y: MarkedYamlOwned) -> Result<Node, (usize, String)> {
    let line = y.span.start.line();
    let value = match y.data {
        YamlDataOwned::Value(s) => match s {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(b),
            ScalarOwned::Integer(i) => Value::Int(i),
            ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
            ScalarOwned::String(s) => Value::Str(s),
        },
        YamlDataOwned::Representation(s, _, _) => Value::Str(s),
        YamlDataOwned::Tagged(_, inner) => return convert(*inner),
        YamlDataOwned::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(convert)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        YamlDataOwned::Mapping(map) => {
            let mut entries: Vec<Entry> = Vec::new();
            let mut merged: Vec<Entry> = Vec::new();
            for (k, v) in map {
                let key_line = k.span.start.line();
                let key = convert(k)?
                    .text()
                    .ok_or((key_line, "a mapping key must be a plain value".to_string()))?;
                let node = convert(v)?;
                if key == "<<" {
                    // YAML merge keys: `<<: *defaults` (explicit keys win).
                    let sources = match node.value {
                        Value::Map(m) => vec![m],
                        Value::Seq(items) => items
                            .into_iter()
                            .filter_map(|n| match n.value {
                                Value::Map(m) => Some(m),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            return Err((key_line, "`<<` must merge a mapping".to_string()));
                        }
                    };
                    merged.extend(sources.into_iter().flatten());
                } else {
                    entries.push(Entry {
                        key,
                        line: key_line,
                        node,
                    });
                }
            }
            for m in merged {
                if !entries.iter().any(|e| e.key == m.key) {
                    entries.push(m);
                }
            }
            Value::Map(entries)
        }
        YamlDataOwned::Alias(_) => {
            return Err((line, "an alias to an unknown anchor".to_string()));
        }
        YamlDataOwned::BadValue => return Err((line, "an invalid value".to_string())),
    };
    Ok(Node { line, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_yaml_and_json() {
        let doc = parse("a:\n  b: 1\n  c: [x, y]\n", "c.yaml", "empty").unwrap();
        let a = doc.root.get("a").unwrap();
        assert_eq!(a.line, 1);
        assert_eq!(a.node.get("b").unwrap().line, 2);
        assert!(matches!(a.node.get("b").unwrap().node.value, Value::Int(1)));
        let json = parse(
            "{\n  \"openai\": [\n    {\"priority\": 1}\n  ]\n}\n",
            "c.json",
            "empty",
        )
        .unwrap();
        let list = json.root.get("openai").unwrap();
        assert_eq!(list.line, 2);
        let Value::Seq(items) = &list.node.value else {
            panic!("not a list")
        };
        assert_eq!(items[0].get("priority").unwrap().line, 3);
    }

    #[test]
    fn merge_keys_and_errors() {
        let doc = parse("d: &d {x: 1}\ne:\n  <<: *d\n  y: 2\n", "c.yaml", "empty").unwrap();
        let e = &doc.root.get("e").unwrap().node;
        assert_eq!(e.get("x").unwrap().node.number(), Some(1.0));
        let err = parse("a: [\n", "c.yaml", "empty").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert_eq!(parse("", "c.yaml", "empty!").unwrap_err().message, "empty!");
        assert_eq!(
            parse("a: 1\n---\nb: 2\n", "c.yaml", "e")
                .unwrap()
                .extra_document,
            Some(3)
        );
    }
}
