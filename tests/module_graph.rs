//! The crate's module graph may not grow a new cycle.
//!
//! Units are the top-level modules of `src/` (`config`, `routing`, ...) and,
//! under `src/layers/`, each layer (`layers::retry`); a file's unit depends on
//! every unit it names as `crate::unit` outside its `#[cfg(test)]` part. The
//! strongly connected components of more than one unit are the cycles.
//! There are none ([`KNOWN`] is empty): any cycle fails this test, naming
//! its units, so a change that adds a back-edge is caught at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The cycles that exist today, each a set of units: none (the structure
/// redesign removed the last one); keep it empty.
const KNOWN: &[&[&str]] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The unit of a file under `src/`, `None` for the crate roots.
fn unit_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [root] if root == "lib" || root == "main" => None,
        [layers, layer, ..] if layers == "layers" && layer != "mod" => {
            Some(format!("layers::{layer}"))
        }
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// The units named as `crate::a`, `crate::layers::b` or in a group
/// (`crate::{a, layers::{b, c}}`) in `text`.
fn named_units(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        for path in paths(rest) {
            let mut segments = path.split("::").map(str::trim);
            match (segments.next(), segments.next()) {
                (Some("layers"), Some(layer)) if !layer.is_empty() => {
                    out.insert(format!("layers::{layer}"));
                }
                (Some(first), _) if !first.is_empty() && first != "layers" => {
                    out.insert(first.to_string());
                }
                _ => {}
            }
        }
    }
    out
}

/// The paths a `use` tree starting at `text` names, groups expanded
/// (`{a, layers::{b, c}}` -> `a`, `layers::b`, `layers::c`).
fn paths(text: &str) -> Vec<String> {
    let ident: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after = &text[ident.len()..];
    if ident.is_empty() {
        let Some(group) = after.strip_prefix('{') else {
            return Vec::new();
        };
        // The items of the group, split at its own commas.
        let mut items = Vec::new();
        let (mut depth, mut from) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[from..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .flat_map(|item| paths(item.trim_start()))
            .collect();
    }
    match after.strip_prefix("::") {
        Some(tail) => {
            let inner = paths(tail);
            if inner.is_empty() {
                vec![ident]
            } else {
                inner.into_iter().map(|p| format!("{ident}::{p}")).collect()
            }
        }
        None => vec![ident],
    }
}

/// Tarjan's strongly connected components of `graph`.
fn components(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges {
                let w = w.as_str();
                if !s.graph.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[w].min(s.low[v]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.index[w].min(s.low[v]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_new_module_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(unit) = file.strip_prefix(&src).ok().and_then(unit_of) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // The unit tests at the end of a file do not make a dependency.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        // Comments (doc links included) do not make a dependency either.
        let code: String = code
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let entry = graph.entry(unit.clone()).or_default();
        entry.extend(named_units(&code).into_iter().filter(|u| *u != unit));
    }
    assert!(graph.len() > 10, "the source tree was not read: {graph:?}");
    let known: Vec<BTreeSet<&str>> = KNOWN.iter().map(|c| c.iter().copied().collect()).collect();
    let mut new = Vec::new();
    for component in components(&graph).into_iter().filter(|c| c.len() > 1) {
        let inside_known = known
            .iter()
            .any(|k| component.iter().all(|u| k.contains(u.as_str())));
        if !inside_known {
            new.push(component);
        }
    }
    assert!(
        new.is_empty(),
        "new module cycle(s) — a unit depends back on one that depends on it: {new:?}"
    );
}

#[test]
fn units_and_names_are_read_as_meant() {
    assert_eq!(unit_of(Path::new("routing.rs")).as_deref(), Some("routing"));
    assert_eq!(
        unit_of(Path::new("config/import/yaml.rs")).as_deref(),
        Some("config")
    );
    assert_eq!(
        unit_of(Path::new("layers/auth/keys.rs")).as_deref(),
        Some("layers::auth")
    );
    assert_eq!(
        unit_of(Path::new("layers/mod.rs")).as_deref(),
        Some("layers")
    );
    assert_eq!(unit_of(Path::new("lib.rs")), None);
    let names = named_units(
        "use crate::layers::retry::X; use crate::{body::B, layers::{auth, cors::C}};\n crate::routing::Target",
    );
    let expected = [
        "body",
        "layers::auth",
        "layers::cors",
        "layers::retry",
        "routing",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    let cycles: Vec<_> = components(&g).into_iter().filter(|c| c.len() > 1).collect();
    assert_eq!(cycles, [BTreeSet::from(["a".to_string(), "b".to_string()])]);
}
