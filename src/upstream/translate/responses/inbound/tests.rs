//! Unit tests of the Responses inbound translation: the agent fixtures of
//! `tests/fixtures/agent-requests/` in [`fixtures`], every request mapping
//! and refusal in [`request`], arbitrary requests and completions in
//! [`properties`]; whole answers in [`answer`], streamed answers in
//! [`stream`], and the fields the official SDKs require of every object
//! emitted in [`sdk`]. The helpers the request tests share are here.

mod answer;
mod fixtures;
mod properties;
mod request;
mod sdk;
mod stream;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::*;

/// Proptest cases: `PROPTEST_CASES` when set, else `default`; failures are
/// not persisted (each one found becomes a plain regression test).
pub(super) fn config(default: u32) -> proptest::prelude::ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    proptest::prelude::ProptestConfig {
        cases,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn chat(v: Value) -> Map<String, Value> {
    request_to_openai(&obj(v)).unwrap_or_else(|e| panic!("{e}"))
}

/// The 400's (code, message).
fn refused(v: Value) -> (&'static str, String) {
    match request_to_openai(&obj(v)) {
        Ok(out) => panic!("accepted: {}", Value::Object(out)),
        Err(e) => {
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
            (e.code(), e.to_string())
        }
    }
}

fn names(chat: &Map<String, Value>) -> Vec<String> {
    chat.get("tools")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}
