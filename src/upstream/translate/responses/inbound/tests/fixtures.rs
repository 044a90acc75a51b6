//! The agent fixtures of `tests/fixtures/agent-requests/` (Codex, the
//! Agents SDK, the AI SDK): each translates, and the first turns and tool
//! result turns say what they should.

use serde_json::{Map, Value};

use super::*;

const FIXTURES: &[(&str, &str)] = &[
    (
        "codex-responses-first-turn.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/codex-responses-first-turn.json"
        ),
    ),
    (
        "codex-responses-tool-result-turn.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/codex-responses-tool-result-turn.json"
        ),
    ),
    (
        "agents-sdk-responses.json",
        include_str!("../../../../../../tests/fixtures/agent-requests/agents-sdk-responses.json"),
    ),
    (
        "agents-sdk-responses-tool-output.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/agents-sdk-responses-tool-output.json"
        ),
    ),
    (
        "ai-sdk-responses.json",
        include_str!("../../../../../../tests/fixtures/agent-requests/ai-sdk-responses.json"),
    ),
    (
        "ai-sdk-responses-stream-tools.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/ai-sdk-responses-stream-tools.json"
        ),
    ),
    (
        "ai-sdk-responses-json-schema.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/ai-sdk-responses-json-schema.json"
        ),
    ),
    (
        "ai-sdk-responses-tool-result.json",
        include_str!(
            "../../../../../../tests/fixtures/agent-requests/ai-sdk-responses-tool-result.json"
        ),
    ),
];

/// The `body` of a fixture.
fn fixture(name: &str) -> Map<String, Value> {
    let (_, text) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
    let v: Value = serde_json::from_str(text).unwrap();
    v["body"].as_object().unwrap().clone()
}

#[test]
fn every_agent_fixture_translates() {
    for (name, _) in FIXTURES {
        let body = fixture(name);
        let out = request_to_openai(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out["model"], body["model"], "{name}");
        assert!(!out["messages"].as_array().unwrap().is_empty(), "{name}");
        // Every message is one the pivot knows.
        for m in out["messages"].as_array().unwrap() {
            let role = m["role"].as_str().unwrap();
            assert!(
                ["system", "user", "assistant", "tool"].contains(&role),
                "{name}: {m}"
            );
        }
    }
}

#[test]
fn codex_first_turn() {
    let body = fixture("codex-responses-first-turn.json");
    let out = request_to_openai(&body).unwrap();
    let roles: Vec<&str> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "system", "user", "user"]);
    // The second developer message has two text parts.
    assert_eq!(out["messages"][1]["content"].as_array().unwrap().len(), 2);
    assert_eq!(out["messages"][1]["content"][0]["type"], "text");
    assert_eq!(
        names(&out),
        [
            "exec_command",
            "write_stdin",
            "request_user_input",
            "view_image",
            "multi_agent_v1__close_agent",
            "multi_agent_v1__resume_agent",
            "multi_agent_v1__send_input",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait_agent",
            "get_goal",
            "create_goal",
            "update_goal",
        ]
    );
    let ns = &body["tools"][4];
    let spawn = &out["tools"][7]["function"];
    assert_eq!(
        spawn["description"],
        format!(
            "{}\n\n{}",
            ns["description"].as_str().unwrap(),
            ns["tools"][3]["description"].as_str().unwrap()
        )
    );
    assert_eq!(spawn["parameters"], ns["tools"][3]["parameters"]);
    assert_eq!(out["tools"][0]["function"]["strict"], false);
    assert_eq!(dropped_tools(&body), ["web_search"]);
    assert_eq!(out["tool_choice"], "auto");
    assert_eq!(out["parallel_tool_calls"], true);
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert_eq!(out["prompt_cache_key"], body["prompt_cache_key"]);
    // Hints gone, nothing else added.
    for key in [
        "store",
        "include",
        "client_metadata",
        "reasoning",
        "reasoning_effort",
    ] {
        assert!(out.get(key).is_none(), "{key}");
    }
}

#[test]
fn codex_tool_result_turn() {
    let body = fixture("codex-responses-tool-result-turn.json");
    let out = request_to_openai(&body).unwrap();
    let messages = out["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(
        messages[n - 2],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_11e70d1c47224694b9ddd1af",
            "type": "function",
            "function": {"name": "exec_command", "arguments": "{\"cmd\": \"echo hello-from-fake-provider\"}"},
        }]})
    );
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(
        messages[n - 1]["tool_call_id"],
        "call_11e70d1c47224694b9ddd1af"
    );
    assert_eq!(
        messages[n - 1]["content"],
        body["input"].as_array().unwrap().last().unwrap()["output"]
    );
}

#[test]
fn agents_sdk_and_ai_sdk() {
    let out = request_to_openai(&fixture("agents-sdk-responses.json")).unwrap();
    assert_eq!(out["messages"][0]["role"], "system");
    assert_eq!(out["messages"][1]["role"], "user");
    assert!(out["messages"][1]["content"].is_string());
    assert_eq!(out["tools"][0]["function"]["strict"], true);
    assert!(out.get("tool_choice").is_none());

    let out = request_to_openai(&fixture("agents-sdk-responses-tool-output.json")).unwrap();
    assert_eq!(
        out["messages"][2]["tool_calls"][0]["id"],
        "call_297fae61a1964581b9a488f8"
    );
    assert_eq!(
        out["messages"][3]["tool_call_id"],
        "call_297fae61a1964581b9a488f8"
    );

    let out = request_to_openai(&fixture("ai-sdk-responses.json")).unwrap();
    assert_eq!(out["messages"][0]["content"][0]["type"], "text");
    assert_eq!(out.len(), 2, "{out:?}");

    let body = fixture("ai-sdk-responses-json-schema.json");
    let out = request_to_openai(&body).unwrap();
    assert_eq!(
        out["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "response",
            "schema": body["text"]["format"]["schema"],
            "strict": true,
        }})
    );

    let out = request_to_openai(&fixture("ai-sdk-responses-tool-result.json")).unwrap();
    assert_eq!(out["messages"][1]["role"], "assistant");
    assert_eq!(out["messages"][2]["role"], "tool");
}
