//! Building and applying each kind of rule; the JSONPath helpers.

use super::*;
use serde_json::json;

fn chat() -> Value {
    json!({"model": "m", "messages": [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "mail bob@example.com"},
        {"role": "system", "content": "again"},
        {"role": "assistant", "content": "ok"},
    ]})
}

#[test]
fn regex_on_every_string_value_not_keys() {
    let r = TransformRule::regex_replace(
        "e",
        r"\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b",
        "[EMAIL]",
        RegexFlags::parse("IGNORECASE").unwrap(),
    )
    .unwrap();
    let mut doc = json!({"a@b.io": "x a@b.io", "list": ["c@d.io", 1, null]});
    assert!(r.apply(&mut doc));
    assert_eq!(
        doc,
        json!({"a@b.io": "x [EMAIL]", "list": ["[EMAIL]", 1, null]})
    );
    assert!(!r.apply(&mut doc));
}

#[test]
fn replacement_syntaxes() {
    let flags = RegexFlags::default();
    let r = |rep: &str| TransformRule::regex_replace("r", r"(?P<user>\w+)@(\w+)", rep, flags);
    for (rep, want) in [
        ("$2:$1", "ex:jo"),
        (r"\2:\1", "ex:jo"),
        (r"\g<user>!", "jo!"),
        ("${user}x", "jox"),
        ("$$1", "$1"),
        ("cost $ 5", "cost $ 5"),
        (r"a\\b", r"a\b"),
    ] {
        let mut doc = json!("jo@ex");
        r(rep).unwrap().apply(&mut doc);
        assert_eq!(doc, json!(want), "{rep}");
    }
    assert!(r("$3").unwrap_err().to_string().contains("group `3`"));
    assert!(r(r"\g<nope>").is_err());
    assert!(r("${user").is_err());
}

#[test]
fn flags() {
    let f = RegexFlags::parse("IGNORECASE,re.MULTILINE|s").unwrap();
    assert_eq!(
        f,
        RegexFlags {
            ignore_case: true,
            multi_line: true,
            dot_all: true
        }
    );
    let r = TransformRule::regex_replace("r", "^a.b$", "X", f).unwrap();
    let mut doc = json!("q\nA\nB\nz");
    r.apply(&mut doc);
    assert_eq!(doc, json!("q\nX\nz"));
    assert!(RegexFlags::parse("IGNORECASE|VERBOSE").is_err());
}

#[test]
fn bad_regex_is_an_error() {
    let e = TransformRule::regex_replace("r", "a(b", "", RegexFlags::default()).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid regular expression"),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn drop_system_messages_both_forms() {
    for path in [
        "$.messages[?(@.role=='system')]",
        "$.messages[?(@.role='system')]",
        "$.messages[?(@.role == \"system\")]",
    ] {
        let r = TransformRule::jsonpath_drop("d", path).unwrap();
        let mut doc = chat();
        assert!(r.apply(&mut doc), "{path}");
        let roles: Vec<&str> = doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant"], "{path}");
        assert!(!r.apply(&mut doc));
    }
}

#[test]
fn drop_keys_and_descendants() {
    let r = TransformRule::jsonpath_drop("d", "$..content").unwrap();
    let mut doc = chat();
    r.apply(&mut doc);
    assert!(doc["messages"][0].get("content").is_none());
    let r = TransformRule::jsonpath_drop("d", "$['model']").unwrap();
    r.apply(&mut doc);
    assert!(doc.get("model").is_none());
    // A key with a quote and a bracket in it.
    let r = TransformRule::jsonpath_drop("d", "$.*").unwrap();
    let mut doc = json!({"a']b": 1, "c": [1]});
    assert!(r.apply(&mut doc));
    assert_eq!(doc, json!({}));
}

#[test]
fn bad_jsonpath_is_an_error() {
    for bad in [
        "$.messages[?(@.role=='system'",
        "messages[",
        "$.a[?(@.b ==)]",
    ] {
        let e = TransformRule::jsonpath_drop("d", bad).unwrap_err();
        assert!(e.to_string().contains("invalid JSONPath"), "{bad}: {e}");
    }
    assert!(TransformRule::jsonpath_drop("d", "$").is_err());
    assert!(TransformRule::jsonpath_add("a", "$.messages[0]", json!(1)).is_err());
    assert!(TransformRule::jsonpath_add("a", "$..x", json!(1)).is_err());
}

#[test]
fn add_creates_the_path() {
    let r =
        TransformRule::jsonpath_add("a", "$.metadata", json!({"source": "llm-router"})).unwrap();
    let mut doc = json!({"model": "m"});
    assert!(r.apply(&mut doc));
    assert_eq!(
        doc,
        json!({"model": "m", "metadata": {"source": "llm-router"}})
    );
    assert!(!r.apply(&mut doc));

    let r = TransformRule::jsonpath_add("a", "$.a.b['c d']", json!(1)).unwrap();
    let mut doc = json!({"a": {"x": 0}});
    r.apply(&mut doc);
    assert_eq!(doc, json!({"a": {"x": 0, "b": {"c d": 1}}}));

    // Not an object on the way: nothing is set.
    let mut doc = json!({"a": "text"});
    assert!(!r.apply(&mut doc));
}

#[test]
fn add_into_every_found_object() {
    let r =
        TransformRule::jsonpath_add("a", "$.messages[?(@.role=='user')].name", json!("u")).unwrap();
    let mut doc = chat();
    assert!(r.apply(&mut doc));
    assert_eq!(doc["messages"][1]["name"], "u");
    assert!(doc["messages"][0].get("name").is_none());
}

#[test]
fn normalize() {
    assert_eq!(normalize_jsonpath("$[?(@.a='x=y')]"), "$[?(@.a=='x=y')]");
    assert_eq!(
        normalize_jsonpath("$[?(@.a!=1 && @.b>=2)]"),
        "$[?(@.a!=1 && @.b>=2)]"
    );
    assert_eq!(normalize_jsonpath("$[?(@.a == 1)]"), "$[?(@.a == 1)]");
}

#[test]
fn found_paths() {
    assert_eq!(
        parse_found("$.['a'][0].['b']").unwrap(),
        vec![Step::Key("a".into()), Step::Index(0), Step::Key("b".into())]
    );
    assert_eq!(parse_found("$").unwrap(), vec![]);
    assert_eq!(split_last_key("$.a.b"), Some(("$.a", "b".into())));
    assert_eq!(split_last_key("$.metadata"), Some(("$", "metadata".into())));
    assert_eq!(split_last_key("$['x y']"), Some(("$", "x y".into())));
    assert_eq!(
        plain_keys("$.a['b'].c"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(plain_keys("$.a[0]"), None);
}
