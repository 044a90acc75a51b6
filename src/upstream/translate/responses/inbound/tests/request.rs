//! Request mappings: parameters, messages and parts, function calls and
//! their outputs, tools and `tool_choice`; refusals and malformed requests
//! name what is wrong.

use serde_json::json;

use super::*;

#[test]
fn parameters_map() {
    let out = chat(json!({
        "model": "m",
        "input": "Hi",
        "max_output_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_logprobs": 3,
        "safety_identifier": "u1",
        "service_tier": "flex",
        "prompt_cache_key": "k",
        "prompt_cache_retention": "24h",
        "reasoning": {"effort": "minimal", "summary": "auto", "generate_summary": "auto", "context": "auto", "mode": "standard"},
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "metadata": {"a": "b"}, "store": true, "include": ["reasoning.encrypted_content"],
        "client_metadata": {}, "truncation": "auto", "background": false,
        "stream_options": {"include_obfuscation": false}, "max_tool_calls": 3,
        "prompt_cache_options": {"mode": "implicit"},
        "previous_response_id": null, "conversation": null, "context_management": [],
        "stream": false,
    }));
    assert_eq!(
        Value::Object(out),
        json!({
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "logprobs": true,
            "top_logprobs": 3,
            "user": "u1",
            "service_tier": "flex",
            "prompt_cache_key": "k",
            "prompt_cache_retention": "24h",
            "response_format": {"type": "json_object"},
            "verbosity": "low",
            "reasoning_effort": "minimal",
        })
    );
    // `user` wins over `safety_identifier`; effort passes as given.
    let out = chat(json!({"input": "x", "user": "a", "safety_identifier": "b",
                          "reasoning": {"effort": "xhigh"}, "text": {"format": {"type": "text"}}}));
    assert_eq!(out["user"], "a");
    assert_eq!(out["reasoning_effort"], "xhigh");
    assert!(out.get("response_format").is_none());
}

#[test]
fn messages_and_parts() {
    let out = chat(json!({"model": "m", "instructions": "Sys", "input": [
        {"type": "message", "role": "developer", "content": "Dev"},
        {"role": "system", "content": [{"type": "input_text", "text": "S"}]},
        {"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x/i.png", "detail": "low"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
            {"type": "input_file", "file_id": "file-1"},
            {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
        ]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}], "encrypted_content": "<opaque>"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "phase": "final_answer", "content": [
            {"type": "output_text", "text": "Hel", "annotations": []},
            {"type": "output_text", "text": "lo", "annotations": []},
        ]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "Sys"},
            {"role": "system", "content": "Dev"},
            {"role": "system", "content": "S"},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
                {"type": "file", "file": {"file_id": "file-1"}},
                {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
            ]},
            {"role": "assistant", "content": "Hello"},
            {"role": "assistant", "content": "", "refusal": "No."},
        ])
    );
}

#[test]
fn function_calls_join_one_assistant_turn_and_outputs_become_tool_messages() {
    let out = chat(json!({"input": [
        {"role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "spawn", "namespace": "agents", "arguments": "{\"x\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [
            {"type": "input_text", "text": "two"},
            {"type": "input_image", "image_url": "https://x/i.png", "detail": "auto"},
            {"type": "input_text", "text": "three"},
        ]},
        {"type": "function_call", "call_id": "c3", "name": "a", "arguments": ""},
        {"type": "function_call_output", "call_id": "c3", "output": [
            {"type": "input_file", "file_data": "data:application/pdf;base64,JV", "filename": "f.pdf"},
        ]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "agents__spawn", "arguments": "{\"x\":1}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [
                {"type": "text", "text": "two"}, {"type": "text", "text": "three"},
            ]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "auto"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "a", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "c3", "content": ""},
            {"role": "user", "content": [
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JV", "filename": "f.pdf"}},
            ]},
        ])
    );
}

#[test]
fn tools_and_tool_choice() {
    let tools = json!([
        {"type": "function", "name": "f", "description": "F", "parameters": {"type": "object"}, "strict": null,
         "defer_loading": false, "allowed_callers": ["direct"]},
        {"type": "namespace", "name": "ns", "description": "", "tools": [
            {"type": "function", "name": "g", "description": "G", "parameters": null, "strict": true},
            {"type": "function", "name": "h"},
        ]},
        {"type": "web_search"}, {"type": "file_search", "vector_store_ids": []}, {"type": "web_search"},
        {"type": "mcp", "server_label": "x"}, {"type": "local_shell"}, {"type": "image_generation"},
    ]);
    let out = chat(json!({"input": "x", "tools": tools, "parallel_tool_calls": false}));
    assert_eq!(
        out["tools"],
        json!([
            {"type": "function", "function": {"name": "f", "description": "F", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "ns__g", "description": "G", "strict": true}},
            {"type": "function", "function": {"name": "ns__h"}},
        ])
    );
    assert_eq!(out["parallel_tool_calls"], false);
    assert!(out.get("tool_choice").is_none());
    assert_eq!(
        dropped_tools(&obj(json!({"tools": tools}))),
        [
            "web_search",
            "file_search",
            "mcp",
            "local_shell",
            "image_generation"
        ]
    );
    assert!(dropped_tools(&obj(json!({"input": "x"}))).is_empty());

    let choice = |c: Value| chat(json!({"input": "x", "tools": tools, "tool_choice": c}));
    for s in ["auto", "none", "required"] {
        assert_eq!(choice(json!(s))["tool_choice"], s);
    }
    let named = |n: &str| json!({"type": "function", "function": {"name": n}});
    assert_eq!(
        choice(json!({"type": "function", "name": "f"}))["tool_choice"],
        named("f")
    );
    assert_eq!(
        choice(json!({"type": "function", "name": "g"}))["tool_choice"],
        named("ns__g")
    );
    assert_eq!(
        choice(json!({"type": "function", "name": "ns__h"}))["tool_choice"],
        named("ns__h")
    );
    assert_eq!(
        choice(json!({"type": "function", "name": "h", "namespace": "ns"}))["tool_choice"],
        named("ns__h")
    );
    let allowed = choice(
        json!({"type": "allowed_tools", "mode": "required", "tools": [
            {"type": "function", "name": "g"}, {"type": "web_search"},
        ]}),
    );
    assert_eq!(allowed["tool_choice"], "required");
    assert_eq!(names(&allowed), ["ns__g"]);

    // Only hosted tools: no tools, no tool_choice, no parallel_tool_calls.
    let out = chat(
        json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto",
                          "parallel_tool_calls": true}),
    );
    assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
    assert!(out.get("parallel_tool_calls").is_none());
}

#[test]
fn refusals_name_the_parameter() {
    let cases = [
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "`previous_response_id`",
        ),
        (
            json!({"input": "x", "conversation": "conv_1"}),
            "`conversation`",
        ),
        (json!({"input": "x", "prompt": {"id": "p"}}), "`prompt`"),
        (
            json!({"input": "x", "background": true}),
            "`background: true`",
        ),
        (
            json!({"input": "x", "context_management": [{"type": "compaction"}]}),
            "`context_management`",
        ),
    ];
    for (body, name) in cases {
        let (code, message) = refused(body);
        assert_eq!(code, "unsupported_feature");
        assert!(message.contains(name), "{message}");
        assert!(
            message.contains("it needs the Responses API of a backend with api = \"responses\""),
            "{message}"
        );
    }
    let (code, message) = refused(json!({"input": "x", "seed": 1, "n": 2}));
    assert_eq!(code, "unknown_parameter");
    assert!(
        message.contains("`seed`") && message.contains("`n`"),
        "{message}"
    );

    let unsupported = [
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]: an `item_reference`",
        ),
        (
            json!({"input": [{"type": "compaction", "encrypted_content": "x"}]}),
            "input[0]: the item type `compaction`",
        ),
        (
            json!({"input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}),
            "tools[0]: `custom`",
        ),
        (
            json!({"input": "x", "tools": [{"type": "namespace", "name": "n", "description": "", "tools": [{"type": "custom", "name": "c"}]}]}),
            "tools[0].tools[0]: `custom`",
        ),
        (
            json!({"input": "x", "tools": [{"type": "new_tool"}]}),
            "tools[0]: the tool type `new_tool`",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]}),
            "input[0].content[0]: an `input_image` with a `file_id`",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/f.pdf"}]}]}),
            "input[0].content[0]: an `input_file` with a `file_url`",
        ),
        (
            json!({"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x"}]}]}),
            "input[0].content[0]: a `input_image` part in a system message",
        ),
        (
            json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search_preview"}}),
            "`tool_choice` asks for the tool type `web_search_preview`",
        ),
        (
            json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"}),
            "`tool_choice` \"required\" needs a tool",
        ),
        (
            json!({"input": "x", "tool_choice": {"type": "custom", "name": "c"}}),
            "`tool_choice` names a `custom` tool",
        ),
        (
            json!({"input": "x", "reasoning": {"mode": "pro"}}),
            "`reasoning.mode` \"pro\"",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "grammar"}}}),
            "`text.format` of type `grammar`",
        ),
    ];
    for (body, expected) in unsupported {
        let (code, message) = refused(body);
        assert_eq!(code, "unsupported_feature", "{message}");
        assert!(message.contains(expected), "{message} / {expected}");
    }
}

#[test]
fn malformed_requests_name_the_path() {
    let cases = [
        (json!({"model": "m"}), "`input` is required"),
        (json!({"input": 3}), "`input` must be a string or an array"),
        (json!({"input": ["x"]}), "input[0]: must be an object"),
        (
            json!({"input": [{"content": "x"}]}),
            "input[0]: `type` is required",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
            "input[0].content[0]: `text` is required",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": 1}]}]}),
            "input[0].content[1]: `text` must be a string",
        ),
        (
            json!({"input": [{"role": "robot", "content": "x"}]}),
            "input[0]: unknown role `robot`",
        ),
        (
            json!({"input": [{"role": "user", "content": 5}]}),
            "input[0]: `content` must be",
        ),
        (
            json!({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
            "input[0]: `arguments` is required",
        ),
        (
            json!({"input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0]: `call_id` is required",
        ),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}),
            "input[0]: `output` must be",
        ),
        (
            json!({"input": "x", "instructions": 3}),
            "`instructions` must be a string",
        ),
        (
            json!({"input": "x", "tools": {}}),
            "`tools` must be an array",
        ),
        (
            json!({"input": "x", "tools": [{"type": "function"}]}),
            "tools[0]: `name` is required",
        ),
        (
            json!({"input": "x", "tools": [{"type": "function", "name": "f", "parameters": "x"}]}),
            "tools[0]: `parameters` must be an object",
        ),
        (
            json!({"input": "x", "tools": [{"type": "function", "name": "a__b"}, {"type": "namespace", "name": "a", "description": "", "tools": [{"type": "function", "name": "b"}]}]}),
            "tools[1].tools[0]: more than one tool is named `a__b`",
        ),
        (
            json!({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "nope"}}),
            "`tool_choice` names `nope`",
        ),
        (
            json!({"input": "x", "tool_choice": "sometimes"}),
            "unknown `tool_choice`",
        ),
        (
            json!({"input": "x", "max_output_tokens": -1}),
            "`max_output_tokens` must be",
        ),
        (
            json!({"input": "x", "temperature": "hot"}),
            "`temperature` must be a number",
        ),
        (
            json!({"input": "x", "stream": "yes"}),
            "`stream` must be a boolean",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
            "`schema` must be an object",
        ),
        (
            json!({"input": "x", "background": "no"}),
            "`background` must be a boolean",
        ),
        (
            json!({"input": "x", "metadata": "m"}),
            "`metadata` must be an object",
        ),
        (
            json!({"input": "x", "truncation": "sometimes"}),
            "`truncation` must be \"auto\" or \"disabled\"",
        ),
        (
            json!({"input": "x", "max_tool_calls": 1.5}),
            "`max_tool_calls` must be a non-negative integer",
        ),
        (
            json!({"input": "x", "include": "all"}),
            "`include` must be an array",
        ),
    ];
    for (body, expected) in cases {
        let (code, message) = refused(body);
        assert_eq!(code, "invalid_request", "{message}");
        assert!(message.contains(expected), "{message} / {expected}");
    }
}
