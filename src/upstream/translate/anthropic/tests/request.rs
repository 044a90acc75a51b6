//! Requests both ways: the golden fixtures, the mappings of each field,
//! and the features that cannot be expressed (400s naming them).

use super::*;

#[test]
fn golden_openai_request_to_anthropic() {
    let got = request_from_openai(obj(&json_fixture("openai_request_tools.json"))).unwrap();
    assert_eq!(
        Value::Object(got),
        json_fixture("anthropic_request_from_openai.json")
    );
}

#[test]
fn golden_anthropic_request_to_openai() {
    let got = request_to_openai(obj(&json_fixture("anthropic_request_tools.json"))).unwrap();
    assert_eq!(
        Value::Object(got),
        json_fixture("openai_request_from_anthropic.json")
    );
}

fn openai(v: Value) -> Result<Map<String, Value>, ProxyError> {
    request_from_openai(obj(&v))
}

#[test]
fn defaults_and_simple_mappings() {
    let a = openai(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 77, "stop": "STOP", "temperature": 1.7, "n": 1, "logprobs": false,
        "presence_penalty": 0, "seed": 3, "store": false}),
    )
    .unwrap();
    assert_eq!(a["max_tokens"], 77);
    assert_eq!(a["stop_sequences"], json!(["STOP"]));
    assert_eq!(a["temperature"], 1.0, "clamped to Anthropic's range");
    assert!(a.get("system").is_none());
    assert!(a.get("tools").is_none() && a.get("tool_choice").is_none());
    for key in ["seed", "store", "n", "logprobs", "presence_penalty"] {
        assert!(a.get(key).is_none(), "{key}");
    }

    let a = openai(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert_eq!(a["max_tokens"], DEFAULT_MAX_TOKENS);
    assert!(a.get("stream").is_none());
}

#[test]
fn tool_choice_forms() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let a =
            openai(json!({"model": "m", "messages": [], "tools": tools, "tool_choice": choice}))
                .unwrap();
        assert_eq!(a["tool_choice"], want);
        assert_eq!(
            a["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
        // And back.
        let back = request_to_openai(&a).unwrap();
        assert_eq!(back["tool_choice"], choice);
    }
}

#[test]
fn system_and_developer_messages_join_the_system_prompt() {
    let a = openai(json!({"model": "m", "messages": [
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "again"},
    ]}))
    .unwrap();
    assert_eq!(
        a["system"],
        json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    );
    // Consecutive user turns are merged.
    assert_eq!(a["messages"].as_array().unwrap().len(), 1);
    assert_eq!(a["messages"][0]["content"][1]["text"], "again");
}

#[test]
fn response_format_becomes_a_system_instruction() {
    let a = openai(
        json!({"model": "m", "messages": [{"role": "system", "content": "Be terse."}],
        "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    let system = a["system"].as_array().unwrap();
    assert_eq!(system[0]["text"], "Be terse.");
    assert!(system[1]["text"].as_str().unwrap().contains("JSON object"));

    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    let a = openai(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "num", "schema": schema}}}))
    .unwrap();
    let text = a["system"].as_str().unwrap();
    assert!(
        text.contains("\"num\"") && text.contains(&schema.to_string()),
        "{text}"
    );

    let a =
        openai(json!({"model": "m", "messages": [], "response_format": {"type": "text"}})).unwrap();
    assert!(a.get("system").is_none());
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget() {
    let a = openai(
        json!({"model": "m", "messages": [], "reasoning_effort": "medium", "max_tokens": 2048}),
    )
    .unwrap();
    assert_eq!(
        a["thinking"],
        json!({"type": "enabled", "budget_tokens": 2047})
    );
    let a = openai(json!({"model": "m", "messages": [], "reasoning_effort": "low"})).unwrap();
    assert_eq!(a["thinking"]["budget_tokens"], 1024);
    let e = openai(
        json!({"model": "m", "messages": [], "reasoning_effort": "high", "max_tokens": 500}),
    )
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // Back: a thinking budget becomes an effort.
    let o = request_to_openai(obj(
        &json!({"model": "m", "max_tokens": 9000, "messages": [],
        "thinking": {"type": "enabled", "budget_tokens": 4096}}),
    ))
    .unwrap();
    assert_eq!(o["reasoning_effort"], "medium");
}

#[test]
fn inexpressible_features_are_400s_naming_them() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
            "input_audio",
        ),
        (
            json!({"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "custom",
        ),
        (json!({"messages": [], "n": 2}), "`n`"),
        (json!({"messages": [], "logprobs": true}), "logprobs"),
        (
            json!({"messages": [], "logit_bias": {"1": 5}}),
            "logit_bias",
        ),
        (
            json!({"messages": [], "frequency_penalty": 0.5}),
            "frequency_penalty",
        ),
        (
            json!({"messages": [], "modalities": ["text", "audio"]}),
            "audio",
        ),
        (
            json!({"messages": [], "functions": [{"name": "f"}]}),
            "functions",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            "file",
        ),
        (
            json!({"messages": [], "response_format": {"type": "grammar"}}),
            "grammar",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}),
            "not a JSON object",
        ),
    ];
    for (mut body, name) in cases {
        body["model"] = json!("m");
        let e = request_from_openai(obj(&body)).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert!(e.to_string().contains(name), "{e} should name {name}");
    }
    let anthropic_cases = [
        (
            json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "web_search_20250305",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}]}]}]}),
            "image",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            "url",
        ),
        (
            json!({"messages": [], "mcp_servers": [{"type": "url"}]}),
            "mcp_servers",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]}]}),
            "server_tool_use",
        ),
    ];
    for (mut body, name) in anthropic_cases {
        body["model"] = json!("m");
        let e = request_to_openai(obj(&body)).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert!(e.to_string().contains(name), "{e} should name {name}");
    }
}

#[test]
fn documents_and_errors_in_tool_results() {
    let o = request_to_openai(obj(&json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true},
        ]}]})))
    .unwrap();
    let messages = o["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "tool", "tool_call_id": "t1", "content": "Error: boom"})
    );
    assert_eq!(
        messages[1]["content"][0]["file"]["file_data"],
        "data:application/pdf;base64,JVBER"
    );
    // And the PDF back to Anthropic.
    let a = request_from_openai(&o).unwrap();
    assert_eq!(a["messages"][0]["content"][1]["type"], "document");
    assert_eq!(a["messages"][0]["content"][1]["source"]["data"], "JVBER");
}
