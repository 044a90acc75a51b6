//! Unit tests of the Anthropic translation: golden fixtures from
//! `tests/fixtures/anthropic/` (written from the providers' API references),
//! requests with their mappings and rejections in [`request`], whole answers
//! and errors in [`answer`], streams fed whole and one byte per chunk in
//! [`stream`], round trips in [`round_trip`]. The fixture helpers are here.

mod answer;
mod request;
mod round_trip;
mod stream;

use super::*;
use crate::sse::SseEvent;
use crate::sse::SseParser;
use serde_json::Map;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("a JSON object")
}

/// Set every `created` to 0 (it is the translation's clock).
fn zero_created(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("created") {
            o.insert("created".into(), Value::from(0));
        }
    }
}

/// A stream as `[{"event": NAME?, "data": JSON | "[DONE]"}]`.
fn events_of(text: &[u8]) -> Value {
    let mut parser = SseParser::new(1 << 20);
    parser.push(text);
    let mut out = Vec::new();
    let mut take = |e: SseEvent| {
        if e.data.is_empty() {
            return;
        }
        let mut data = if e.is_done() {
            Value::from("[DONE]")
        } else {
            serde_json::from_slice(&e.data).unwrap_or_else(|err| {
                panic!(
                    "bad event data ({err}): {}",
                    String::from_utf8_lossy(&e.data)
                )
            })
        };
        zero_created(&mut data);
        let mut item = json!({"data": data});
        if let Some(name) = e.event {
            item["event"] = Value::from(name);
        }
        out.push(item);
    };
    while let Some(e) = parser.next_event().unwrap() {
        take(e);
    }
    if let Some(e) = parser.finish() {
        take(e);
    }
    Value::Array(out)
}
