//! Round trips: varied requests survive OpenAI -> Anthropic -> OpenAI
//! and the other way, with their messages and tools.

use super::*;

/// Normalize an OpenAI request's messages for comparison: a string content
/// and one text part are the same thing; consecutive user texts are one turn.
fn normalized_messages(body: &Map<String, Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in body["messages"].as_array().unwrap() {
        let mut m = m.clone();
        if let Some(parts) = m["content"].as_array() {
            if parts.len() == 1 && parts[0]["type"] == "text" {
                m["content"] = parts[0]["text"].clone();
            }
        }
        if m["content"] == "" && m.get("tool_calls").is_some() {
            m["content"] = Value::Null;
        }
        out.push(m);
    }
    out
}

/// Varied OpenAI requests survive OpenAI -> Anthropic -> OpenAI with their
/// messages and tools; varied Anthropic requests survive the other way.
#[test]
fn round_trips_keep_messages_and_tools() {
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "description": format!("tool {name}"),
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}})
    };
    let call = |id: &str, name: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
    let image = |url: &str| json!({"type": "image_url", "image_url": {"url": url}});
    let conversations = vec![
        vec![json!({"role": "user", "content": "hello"})],
        vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": "q1"}),
            json!({"role": "assistant", "content": "a1"}),
            json!({"role": "user", "content": "q2"}),
        ],
        vec![
            json!({"role": "user", "content": [{"type": "text", "text": "look"}, image("data:image/gif;base64,R0lGOD"), image("https://e.x/i.png")]}),
        ],
        vec![
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [call("c1", "get", json!({"a": "x"}))]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
            json!({"role": "assistant", "content": "It is sunny."}),
        ],
        vec![
            json!({"role": "system", "content": "s"}),
            json!({"role": "user", "content": "two at once"}),
            json!({"role": "assistant", "content": "ok", "tool_calls": [
                call("c1", "get", json!({"a": "1"})), call("c2", "put", json!({"a": "2", "nested": {"k": [1, 2]}}))]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "r1"}),
            json!({"role": "tool", "tool_call_id": "c2", "content": "r2"}),
            json!({"role": "user", "content": "thanks – ünïcödé ✓"}),
        ],
    ];
    let tool_sets = [vec![], vec![tool("get")], vec![tool("get"), tool("put")]];
    let mut checked = 0;
    for messages in &conversations {
        for tools in &tool_sets {
            for stream in [false, true] {
                let mut body = json!({"model": "m", "messages": messages, "max_tokens": 100, "stream": stream});
                if !tools.is_empty() {
                    body["tools"] = Value::Array(tools.clone());
                    body["tool_choice"] = json!("auto");
                }
                let original = obj(&body).clone();
                let there = request_from_openai(&original).unwrap();
                let back = request_to_openai(&there).unwrap();
                assert_eq!(
                    normalized_messages(&back),
                    normalized_messages(&original),
                    "messages of {body}"
                );
                assert_eq!(back.get("tools"), original.get("tools"), "tools of {body}");
                assert_eq!(back.get("tool_choice"), original.get("tool_choice"));
                assert_eq!(back["max_tokens"], 100);
                assert_eq!(back.get("stream").is_some(), stream);

                // And the Anthropic form survives the other way round.
                let again = request_from_openai(&back).unwrap();
                assert_eq!(
                    again["messages"], there["messages"],
                    "anthropic side of {body}"
                );
                assert_eq!(again.get("tools"), there.get("tools"));
                assert_eq!(again.get("system"), there.get("system"));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, conversations.len() * tool_sets.len() * 2);
}
