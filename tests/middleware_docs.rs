//! middleware.md describes the design once; what each layer does lives in
//! its module's docs and is included in middleware.md, not restated.
//!
//! Each layer section of middleware.md holds a block between
//! `<!-- module docs: src/... -->` and `<!-- end of module docs -->`: the
//! prose of that module's `//!` docs up to its first example, with rustdoc
//! link syntax turned into plain code spans. This test fails when a block
//! and its module disagree; `UPDATE_MIDDLEWARE_DOCS=1 cargo test --test
//! middleware_docs` rewrites the blocks from the modules.

use std::path::Path;

const BEGIN: &str = "<!-- module docs: ";
const END: &str = "<!-- end of module docs -->";

/// The prose of a module's `//!` docs, up to its first code block.
fn module_prose(source: &str) -> String {
    let mut lines = Vec::new();
    for line in source.lines() {
        let Some(text) = line.strip_prefix("//!") else {
            break;
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        if text.starts_with("```") {
            break;
        }
        // Reference-link definitions (`[`X`]: crate::x::X`) are rustdoc's.
        if text.starts_with('[') && text.contains("]: ") {
            continue;
        }
        lines.push(text.to_string());
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    plain_links(&lines.join("\n"))
}

/// `[`X`](path)` and `[`X`]` become `` `X` ``; `[text](path)` becomes `text`
/// (rustdoc paths mean nothing in a markdown file); web links and code spans
/// stay as they are.
fn plain_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let Some(at) = rest.find(['`', '[']) else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('`') {
            // A code span, copied as it is.
            let len = rest[1..].find('`').map_or(rest.len(), |i| i + 2);
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        let Some(close) = label_end(rest) else {
            out.push_str(rest);
            return out;
        };
        let label = &rest[1..close];
        let tail = &rest[close + 1..];
        if tail.starts_with("(http") {
            out.push_str(&rest[..=close]);
            rest = tail;
        } else if let Some(target) = tail.strip_prefix('(') {
            out.push_str(label);
            rest = target.find(')').map_or(tail, |end| &target[end + 1..]);
        } else {
            out.push_str(label);
            rest = tail;
        }
    }
}

/// Where the `]` closing the `[` at the start of `text` is (code spans inside
/// skipped).
fn label_end(text: &str) -> Option<usize> {
    let mut in_code = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '`' => in_code = !in_code,
            ']' if !in_code => return Some(i),
            _ => {}
        }
    }
    None
}

/// middleware.md with every block made from its module.
fn with_blocks(doc: &str, root: &Path) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(start) = rest.find(BEGIN) {
        let header_end = start + rest[start..].find("-->").expect("unclosed marker") + 3;
        let path = rest[start + BEGIN.len()..header_end - 3].trim();
        let source = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("middleware.md names {path}: {e}"));
        let end = rest[header_end..]
            .find(END)
            .map(|i| header_end + i)
            .unwrap_or_else(|| panic!("block of {path} has no end marker"));
        out.push_str(&rest[..header_end]);
        out.push('\n');
        out.push_str(&module_prose(&source));
        out.push('\n');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn middleware_md_includes_each_layers_module_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("middleware.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    assert!(
        doc.matches(BEGIN).count() >= 11,
        "every layer section includes its module docs"
    );
    let expected = with_blocks(&doc, root);
    if std::env::var_os("UPDATE_MIDDLEWARE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    if doc != expected {
        let first = doc
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "middleware.md differs from the module docs it includes (line {}); run \
             UPDATE_MIDDLEWARE_DOCS=1 cargo test --test middleware_docs",
            first + 1
        );
    }
}

#[test]
fn links_become_plain_text() {
    assert_eq!(
        plain_links("see [`Retry`](crate::layers::retry::Retry) and [`Target`]."),
        "see `Retry` and `Target`."
    );
    assert_eq!(
        plain_links("[the spec](https://example.com/x)"),
        "[the spec](https://example.com/x)"
    );
    assert_eq!(
        plain_links("`allow_origins = [\"*\"]`"),
        "`allow_origins = [\"*\"]`"
    );
    let source = "//! `x`: one line.\n//!\n//! More.\n//!\n//! ```\n//! code\n//! ```\nuse a;\n";
    assert_eq!(module_prose(source), "`x`: one line.\n\nMore.");
}
