//! Claude Code's real requests (`tests/fixtures/agent-requests/claude-code-*`)
//! through the pivot to every backend format, and the Anthropic-only request
//! fields they carry: mid-conversation system messages, adaptive thinking
//! with an effort, `output_config`, `context_management`.

use serde_json::{json, Map, Value};

use super::{request_from_openai, request_to_openai};
use crate::upstream::translate::gemini::request_to_gemini;
use crate::upstream::translate::ollama::request_to_ollama;

const FIRST_TURN: &str =
    include_str!("../../../../tests/fixtures/agent-requests/claude-code-messages-first-turn.json");
const TOOL_RESULT: &str =
    include_str!("../../../../tests/fixtures/agent-requests/claude-code-messages-tool-result.json");
const BACKGROUND_TASK: &str = include_str!(
    "../../../../tests/fixtures/agent-requests/claude-code-messages-background-task-system.json"
);

/// The request body of a captured request.
fn body(fixture: &str) -> Map<String, Value> {
    let v: Value = serde_json::from_str(fixture).unwrap();
    v["body"].as_object().unwrap().clone()
}

fn pivot(fixture: &str) -> Map<String, Value> {
    request_to_openai(&body(fixture)).unwrap()
}

fn roles(messages: &Value) -> Vec<&str> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect()
}

/// The text of the fixture's mid-conversation system message.
fn mid_system_text(fixture: &str) -> String {
    let b = body(fixture);
    let m = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "system")
        .unwrap();
    m["content"].as_str().unwrap().to_string()
}

const ALL: [(&str, &str); 3] = [
    ("first-turn", FIRST_TURN),
    ("tool-result", TOOL_RESULT),
    ("background-task", BACKGROUND_TASK),
];

#[test]
fn claude_code_requests_become_pivot_requests() {
    for (name, fixture) in ALL {
        let b = body(fixture);
        let p = pivot(fixture);
        assert_eq!(p["model"], b["model"], "{name}");
        // Adaptive thinking with `output_config.effort: high`.
        assert_eq!(p["reasoning_effort"], "high", "{name}");
        // max_tokens stays max_tokens (the OpenAI provider renames it for
        // reasoning models).
        assert_eq!(p["max_tokens"], 64000, "{name}");
        assert!(p.get("max_completion_tokens").is_none(), "{name}");
        assert_eq!(p["user"], b["metadata"]["user_id"], "{name}");
        assert_eq!(p["stream"], true, "{name}");
        assert_eq!(
            p["stream_options"],
            json!({"include_usage": true}),
            "{name}"
        );
        assert_eq!(
            p["tools"].as_array().unwrap().len(),
            b["tools"].as_array().unwrap().len(),
            "{name}"
        );
        // Anthropic-only fields leave nothing behind.
        for key in [
            "thinking",
            "output_config",
            "context_management",
            "metadata",
            "system",
        ] {
            assert!(p.get(key).is_none(), "{name}: {key}");
        }
        // The top-level system prompt: its 3 text blocks, cache_control left
        // behind.
        let messages = p["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        let parts = messages[0]["content"].as_array().unwrap();
        assert_eq!(parts.len(), 3, "{name}");
        for (part, block) in parts.iter().zip(b["system"].as_array().unwrap()) {
            assert_eq!(part, &json!({"type": "text", "text": block["text"]}));
        }
        // Only pivot roles, and the mid-conversation system message is
        // there once, as a system message.
        let mid = mid_system_text(fixture);
        let systems: Vec<&Value> = messages.iter().filter(|m| m["role"] == "system").collect();
        assert_eq!(systems.len(), 2, "{name}");
        assert_eq!(systems[1]["content"], mid.as_str(), "{name}");
        assert!(serde_json::to_string(&p)
            .unwrap()
            .find("cache_control")
            .is_none());
        assert!(serde_json::to_string(&p)
            .unwrap()
            .find("<signature>")
            .is_none());
    }
}

#[test]
fn the_mid_conversation_system_message_keeps_its_position() {
    let p = pivot(FIRST_TURN);
    assert_eq!(roles(&p["messages"]), ["system", "user", "system"]);
    // The user turn's two text blocks (one with cache_control) as parts.
    assert_eq!(p["messages"][1]["content"].as_array().unwrap().len(), 2);

    let p = pivot(TOOL_RESULT);
    assert_eq!(
        roles(&p["messages"]),
        ["system", "user", "system", "assistant", "tool"]
    );

    // The background-task notice comes right after a tool result and before
    // more assistant turns.
    let b = body(BACKGROUND_TASK);
    let p = pivot(BACKGROUND_TASK);
    let messages = p["messages"].as_array().unwrap();
    let at = messages
        .iter()
        .rposition(|m| m["role"] == "system")
        .unwrap();
    assert_eq!(messages[at - 1]["role"], "tool");
    assert_eq!(
        messages[at - 1]["tool_call_id"],
        "toolu_1be8f0a00fce454e83fd9816"
    );
    assert_eq!(messages[at + 1]["role"], "assistant");
    assert_eq!(
        messages[at + 1]["tool_calls"][0]["id"],
        "toolu_bcd4b79992ff43e7a28009fb"
    );
    assert_eq!(messages.len(), at + 3);
    // Every Anthropic turn is there: plain user texts stay user messages.
    let users = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" && m["content"].is_string())
        .count();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["role"] == "user" && m["content"].is_string())
            .count(),
        users
    );
}

#[test]
fn the_tool_result_turn_drops_signed_thinking_and_keeps_the_call() {
    let p = pivot(TOOL_RESULT);
    let b = body(TOOL_RESULT);
    let assistant = &p["messages"][3];
    // The thinking block (with its signature) is Anthropic's alone.
    assert_eq!(assistant["content"], Value::Null);
    assert!(assistant.get("reasoning_content").is_none());
    let call = &assistant["tool_calls"][0];
    let tool_use = &b["messages"][2]["content"][1];
    assert_eq!(call["id"], tool_use["id"]);
    assert_eq!(call["function"]["name"], "Agent");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, tool_use["input"]);
    // The tool result (is_error: true) answers it.
    let tool = &p["messages"][4];
    assert_eq!(tool["tool_call_id"], tool_use["id"]);
    let text = b["messages"][3]["content"][0]["content"].as_str().unwrap();
    assert_eq!(tool["content"], format!("Error: {text}"));
}

#[test]
fn claude_code_requests_reach_gemini() {
    for (name, fixture) in ALL {
        let b = body(fixture);
        let g = request_to_gemini(&pivot(fixture), "gemini-2.5-pro").unwrap();
        // The leading system prompt: one part per block.
        let system: Vec<&Value> = b["system"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["text"])
            .collect();
        let parts: Vec<&Value> = g["systemInstruction"]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["text"])
            .collect();
        assert_eq!(parts, system, "{name}");
        // The later system message is user text at its position, never in
        // a turn of function responses.
        let wrapped = format!("<system>\n{}\n</system>", mid_system_text(fixture));
        let contents = g["contents"].as_array().unwrap();
        let holders: Vec<usize> = contents
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["text"] == wrapped.as_str())
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(holders.len(), 1, "{name}");
        assert_eq!(contents[holders[0]]["role"], "user", "{name}");
        for c in contents {
            let parts = c["parts"].as_array().unwrap();
            let responses = parts
                .iter()
                .filter(|p| p.get("functionResponse").is_some())
                .count();
            assert!(responses == 0 || responses == parts.len(), "{name}: {c}");
        }
        // Gemini picks its own thinking (see the gemini module).
        assert!(g["generationConfig"].get("thinkingConfig").is_none());
    }
    // First turn: one user turn — the user's two texts, then the system text.
    let g = request_to_gemini(&pivot(FIRST_TURN), "gemini-2.5-pro").unwrap();
    let contents = g["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 1);
    let parts = contents[0]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts[2]["text"].as_str().unwrap().starts_with("<system>\n"));
    // Tool-result turn: user (with the system text), model call, response.
    let g = request_to_gemini(&pivot(TOOL_RESULT), "gemini-3-pro-preview").unwrap();
    let contents = &g["contents"];
    assert_eq!(roles(contents), ["user", "model", "user"]);
    assert_eq!(contents[0]["parts"].as_array().unwrap().len(), 3);
    assert_eq!(contents[1]["parts"][0]["functionCall"]["name"], "Agent");
    assert_eq!(contents[2]["parts"][0]["functionResponse"]["name"], "Agent");
    // Background task: after the function responses, a user turn of the
    // system text alone, then the model's next call.
    let g = request_to_gemini(&pivot(BACKGROUND_TASK), "gemini-2.5-flash").unwrap();
    let contents = g["contents"].as_array().unwrap();
    let at = contents
        .iter()
        .position(|c| {
            c["parts"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("<system>"))
        })
        .unwrap();
    assert_eq!(contents[at]["parts"].as_array().unwrap().len(), 1);
    assert!(contents[at - 1]["parts"][0]
        .get("functionResponse")
        .is_some());
    assert_eq!(contents[at + 1]["role"], "model");
    assert!(contents[at + 1]["parts"][0].get("functionCall").is_some());
}

#[test]
fn claude_code_requests_reach_ollama() {
    for (name, fixture) in ALL {
        let p = pivot(fixture);
        let o = request_to_ollama(&p, "llama3.2", true).unwrap();
        // Ollama takes system messages anywhere: same roles, same places.
        assert_eq!(roles(&o["messages"]), roles(&p["messages"]), "{name}");
        let mid = mid_system_text(fixture);
        let at = roles(&p["messages"])
            .iter()
            .rposition(|r| *r == "system")
            .unwrap();
        assert_eq!(o["messages"][at]["content"], mid.as_str(), "{name}");
        // The top-level system blocks as paragraphs.
        let b = body(fixture);
        let joined: Vec<&str> = b["system"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap())
            .collect();
        assert_eq!(o["messages"][0]["content"], joined.join("\n\n"), "{name}");
        // Adaptive thinking leaves `think` to the model: `true` would be a
        // 400 from a model that cannot think.
        assert!(o.get("think").is_none(), "{name}");
        assert_eq!(o["options"]["num_predict"], 64000, "{name}");
        assert_eq!(
            o["tools"].as_array().unwrap().len(),
            b["tools"].as_array().unwrap().len()
        );
    }
}

#[test]
fn claude_code_pivots_go_back_to_anthropic() {
    for (name, fixture) in ALL {
        let b = body(fixture);
        let a = request_from_openai(&pivot(fixture)).unwrap();
        // A later system message joins the system prompt (Anthropic's
        // stable API has no system turn), after the leading blocks.
        let system = a["system"].as_array().unwrap();
        assert_eq!(system.len(), 4, "{name}");
        for (got, sent) in system.iter().zip(b["system"].as_array().unwrap()) {
            assert_eq!(got["text"], sent["text"], "{name}");
        }
        assert_eq!(
            system[3]["text"],
            mid_system_text(fixture).as_str(),
            "{name}"
        );
        // Only user and assistant turns, alternating.
        let turns = roles(&a["messages"]);
        assert!(
            turns.iter().all(|r| *r == "user" || *r == "assistant"),
            "{name}"
        );
        assert!(turns.windows(2).all(|w| w[0] != w[1]), "{name}: {turns:?}");
        assert_eq!(a["max_tokens"], 64000);
        assert_eq!(
            a["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(a["metadata"]["user_id"], b["metadata"]["user_id"]);
        assert_eq!(
            a["tools"].as_array().unwrap().len(),
            b["tools"].as_array().unwrap().len()
        );
    }
}

fn effort_of(extra: Value) -> Result<Option<String>, u16> {
    let mut b =
        json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    request_to_openai(b.as_object().unwrap())
        .map(|p| {
            p.get("reasoning_effort")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map_err(|e| e.status().as_u16())
}

#[test]
fn thinking_and_effort_become_reasoning_effort() {
    let adaptive = json!({"type": "adaptive"});
    for (effort, expected) in [
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "high"),
        ("max", "high"),
    ] {
        let got = effort_of(json!({"thinking": adaptive, "output_config": {"effort": effort}}));
        assert_eq!(got, Ok(Some(expected.to_string())), "{effort}");
    }
    let cases = [
        // Adaptive alone: the model's default.
        (json!({"thinking": adaptive}), None),
        (
            json!({"thinking": {"type": "adaptive", "display": "omitted"}}),
            None,
        ),
        // Disabled: nothing, whatever the effort.
        (
            json!({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}),
            None,
        ),
        // A budget, banded.
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            Some("low"),
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 5000}}),
            Some("medium"),
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 32000}}),
            Some("high"),
        ),
        // An effort says more than a budget.
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 32000}, "output_config": {"effort": "low"}}),
            Some("low"),
        ),
        // An effort without thinking.
        (
            json!({"output_config": {"effort": "medium"}}),
            Some("medium"),
        ),
        (
            json!({"thinking": null, "output_config": {"effort": null}}),
            None,
        ),
        (json!({}), None),
    ];
    for (extra, expected) in cases {
        assert_eq!(
            effort_of(extra.clone()),
            Ok(expected.map(str::to_string)),
            "{extra}"
        );
    }
    for extra in [
        json!({"output_config": {"effort": "extreme"}}),
        json!({"output_config": {"effort": 3}}),
        json!({"thinking": {"type": "sometimes"}}),
        json!({"thinking": {}}),
    ] {
        assert_eq!(effort_of(extra.clone()), Err(400), "{extra}");
    }
}

#[test]
fn a_system_message_of_the_current_turn_sets_its_effort() {
    let b = |messages: Value| {
        let b = json!({"model": "m", "max_tokens": 100, "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"}, "messages": messages});
        request_to_openai(b.as_object().unwrap()).unwrap()
    };
    let p = b(json!([
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Be quick now.", "output_config": {"effort": "low"}},
    ]));
    assert_eq!(p["reasoning_effort"], "low");
    assert_eq!(roles(&p["messages"]), ["user", "system"]);
    // An earlier turn's: the request's own effort again.
    let p = b(json!([
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Be quick now.", "output_config": {"effort": "low"}},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"},
    ]));
    assert_eq!(p["reasoning_effort"], "high");
    // Only an effort there.
    let e = request_to_openai(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
            {"role": "system", "content": "x", "output_config": {"format": {"type": "json_schema", "schema": {}}}}]})
        .as_object()
        .unwrap(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("messages[1].output_config.format"),
        "{e}"
    );
}

#[test]
fn system_messages_in_messages_take_strings_and_text_blocks() {
    let p = request_to_openai(
        json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok"},
        ]})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        p["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "one"},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok"},
        ])
    );
    for (content, name) in [
        (
            json!([{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]),
            "non-text",
        ),
        (json!(42), "string or text blocks"),
    ] {
        let e = request_to_openai(
            json!({"model": "m", "messages": [{"role": "system", "content": content}]})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains(name), "{e}");
        assert!(e.to_string().contains("messages[0].content"), "{e}");
    }
    let e = request_to_openai(
        json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})
            .as_object()
            .unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown role `tool`"), "{e}");
}

#[test]
fn a_mid_conv_system_block_is_a_system_message_after_the_tool_results() {
    let p = request_to_openai(
        json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "before"},
                {"type": "mid_conv_system", "content": [{"type": "text", "text": "new rule"}], "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "t1", "content": "done"},
                {"type": "text", "text": "after"},
            ]},
        ]})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        roles(&p["messages"]),
        ["user", "assistant", "tool", "user", "system", "user"]
    );
    assert_eq!(p["messages"][3]["content"], "before");
    assert_eq!(p["messages"][4]["content"], "new rule");
    assert_eq!(p["messages"][5]["content"], "after");
}

#[test]
fn output_config_format_is_a_json_schema_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
    let request = |extra: Value| {
        let mut b = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        request_to_openai(b.as_object().unwrap())
    };
    let expected =
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}});
    let p = request(json!({"output_config": {"effort": "low", "format": {"type": "json_schema", "schema": schema}}})).unwrap();
    assert_eq!(p["response_format"], expected);
    assert_eq!(p["reasoning_effort"], "low");
    // The structured-outputs beta's top-level `output_format`.
    let p = request(json!({"output_format": {"type": "json_schema", "schema": schema}})).unwrap();
    assert_eq!(p["response_format"], expected);
    // And on to Gemini and Ollama, which enforce the schema.
    let g = request_to_gemini(&p, "gemini-2.5-flash").unwrap();
    assert_eq!(
        g["generationConfig"]["responseMimeType"],
        "application/json"
    );
    let o = request_to_ollama(&p, "llama3.2", false).unwrap();
    assert_eq!(o["format"], schema);
    for (extra, name) in [
        (
            json!({"output_config": {"verbosity": "low"}}),
            "`output_config.verbosity`",
        ),
        (
            json!({"output_config": {"format": {"type": "regex", "pattern": "a+"}}}),
            "`regex`",
        ),
        (
            json!({"output_config": {"format": {"type": "json_schema"}}}),
            "schema",
        ),
        (json!({"output_config": "high"}), "`output_config`"),
    ] {
        let e = request(extra.clone()).unwrap_err();
        assert_eq!(e.status(), 400, "{extra}");
        assert!(e.to_string().contains(name), "{e} should name {name}");
    }
    // A task budget is advisory: the model paces itself on a countdown
    // only Anthropic keeps.
    let p = request(json!({"output_config": {"effort": "medium",
        "task_budget": {"type": "tokens", "total": 100000}}}))
    .unwrap();
    assert_eq!(p["reasoning_effort"], "medium");
    assert!(!serde_json::to_string(&p).unwrap().contains("task_budget"));
    // Null keys are no keys.
    let p = request(json!({"output_config": {"task_budget": null, "format": null}})).unwrap();
    assert!(p.get("response_format").is_none());
    // context_management (server-side context editing) is a pure hint.
    let p =
        request(json!({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}))
            .unwrap();
    assert!(p.get("context_management").is_none());
}
