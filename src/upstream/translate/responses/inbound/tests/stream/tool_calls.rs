//! Tool calls in a stream: namespaces, ids and indexes.

use super::*;

#[test]
fn tool_calls_namespaces_ids_and_indexes() {
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let input = [
        call(0, Some("call_a"), Some("ns__g"), "{\"x\""),
        // The id repeated on every delta: the same call.
        call(0, Some("call_a"), None, ":1}"),
        // Reused index, new id: a new call. Two calls in one delta.
        chunk(json!({"tool_calls": [
            {"index": 0, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"index": 1, "function": {"name": "get_weather", "arguments": "{\"c\":2}"}},
        ]}), None),
        chunk(json!({}), Some("tool_calls")),
        DONE.into(),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    let r = &out.last().unwrap()["response"];
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "{r}");
    assert_eq!(output[0]["name"], "g");
    assert_eq!(output[0]["namespace"], "ns");
    assert_eq!(output[0]["call_id"], "call_a");
    assert_eq!(output[0]["arguments"], "{\"x\":1}");
    assert_eq!(output[1]["call_id"], "call_b");
    assert_eq!(output[1]["arguments"], "{}");
    assert!(output[2]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(output[2]["arguments"], "{\"c\":2}");
    let done = out
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["name"], "g");
    let added = out
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["namespace"], "ns");

    // A delta for a call already closed: failed, not a silently cut call.
    let input = [
        call(0, Some("a"), Some("f"), "{"),
        call(1, Some("b"), Some("f"), "{}"),
        call(0, None, None, "}"),
    ]
    .concat();
    let out = events(&transcode(&request(), &input, &[]));
    assert_eq!(out[out.len() - 2]["type"], "error");
    assert!(out[out.len() - 2]["message"]
        .as_str()
        .unwrap()
        .contains("interleaved"));
    assert_eq!(out.last().unwrap()["type"], "response.failed");

    // An index beyond the limit.
    let out = events(&transcode(
        &request(),
        &call(500, Some("a"), Some("f"), "{}"),
        &[],
    ));
    assert_eq!(
        types(&out),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert!(out[2]["message"].as_str().unwrap().contains("500"));
}
