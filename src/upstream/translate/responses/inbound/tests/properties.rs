//! Arbitrary JSON shaped like requests and completions: a result or a
//! 400, never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::super::answer::Echo;
use super::super::{dropped_tools, request_to_openai};

#[rustfmt::skip]
const KEYS: &[&str] = &[
    "type", "role", "content", "text", "input", "tools", "tool_choice", "name", "namespace",
    "call_id", "arguments", "output", "image_url", "file_id", "file_data", "format",
    "schema", "instructions", "reasoning", "effort", "mode", "choices", "message",
    "tool_calls", "function", "usage", "prompt_tokens", "finish_reason", "index", "id",
    "model", "strict", "parameters", "description", "stream", "logprobs",
    "reasoning_content", "refusal", "metadata", "store", "max_tool_calls", "truncation",
    "max_output_tokens", "temperature",
];
#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "message", "user", "assistant", "developer", "system", "function", "namespace",
    "function_call", "function_call_output", "input_text", "input_image", "input_file",
    "output_text", "refusal", "reasoning", "web_search", "custom", "auto", "required",
    "allowed_tools", "json_schema", "length", "ns__g", "x", "",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..8)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn requests_and_answers_never_panic(request in object(), completion in value()) {
        let accepted = request_to_openai(&request).is_ok();
        let _ = dropped_tools(&request);
        let response = Echo::new(&request).response_of_completion(&completion);
        // A refused request is never answered; an accepted one always
        // gets a Response the SDKs parse, whatever the upstream said.
        if accepted {
            super::sdk::check_response(&response);
        }
    }
}
