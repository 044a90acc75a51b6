//! Unit tests of the Ollama translation.

use super::*;
use crate::upstream::translate::convert::testing::{
    assert_stream, canonical_ids, fixture, json_fixture, normalize,
};

#[test]
fn golden_request() {
    let pivot = json_fixture("ollama/request_tools.openai.json");
    let got = request_to_ollama(pivot.as_object().unwrap(), "llama3.2", false).unwrap();
    assert_eq!(got, json_fixture("ollama/request_tools.ollama.json"));
}

#[test]
fn golden_answers() {
    for name in ["answer_text", "answer_tools"] {
        let upstream = json_fixture(&format!("ollama/{name}.ollama.json"));
        let mut got = answer_to_openai(&upstream, "llama3.2");
        normalize(&mut got);
        assert_eq!(
            got,
            json_fixture(&format!("ollama/{name}.openai.json")),
            "{name}"
        );
    }
    let got = error_to_openai(
        StatusCode::NOT_FOUND,
        &fixture("ollama/error_not_found.ollama.json"),
    );
    assert_eq!(got, json_fixture("ollama/error_not_found.openai.json"));
}

#[test]
fn golden_streams_whole_and_byte_by_byte() {
    for name in ["stream_text", "stream_tools"] {
        assert_stream(
            || OllamaStream::new("llama3.2", true),
            &format!("ollama/{name}.ollama.ndjson"),
            &format!("ollama/{name}.openai.json"),
        );
    }
}

#[test]
fn stream_cut_before_done_gets_no_done() {
    let input = b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n{\"model\":\"m\",\"mess";
    let events =
        crate::upstream::translate::convert::testing::run(OllamaStream::new("m", true), input, 1);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e != "[DONE]"));
}

#[test]
fn round_trip_keeps_messages_and_tools() {
    let pivot = json_fixture("ollama/request_tools.openai.json");
    let ollama = request_to_ollama(pivot.as_object().unwrap(), "local-llama", false).unwrap();
    let back = request_from_ollama(&ollama);
    assert_eq!(
        canonical_ids(&back["messages"]),
        canonical_ids(&pivot["messages"])
    );
    assert_eq!(back["tools"], pivot["tools"]);
    for key in [
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "stream",
    ] {
        assert_eq!(back[key], pivot[key], "{key}");
    }
    assert_eq!(
        back["response_format"]["json_schema"]["schema"],
        pivot["response_format"]["json_schema"]["schema"]
    );
}

#[test]
fn system_messages_stay_where_they_are() {
    let pivot = json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": "now brief"},
        {"role": "user", "content": "next"},
    ]});
    let o = request_to_ollama(pivot.as_object().unwrap(), "m", false).unwrap();
    assert_eq!(
        o["messages"],
        json!([
            {"role": "system", "content": "a\n\nb"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "now brief"},
            {"role": "user", "content": "next"},
        ])
    );
}

#[test]
fn only_no_reasoning_sets_think() {
    let think = |effort: &str| {
        let pivot = json!({"messages": [], "reasoning_effort": effort});
        request_to_ollama(pivot.as_object().unwrap(), "m", false).unwrap()["think"].clone()
    };
    assert_eq!(think("none"), json!(false));
    for effort in ["minimal", "low", "medium", "high"] {
        assert_eq!(think(effort), Value::Null, "{effort}");
    }
}

#[test]
fn finish_reasons() {
    assert_eq!(finish_reason(Some("stop"), false), "stop");
    assert_eq!(finish_reason(Some("stop"), true), "tool_calls");
    assert_eq!(finish_reason(Some("length"), true), "length");
    assert_eq!(finish_reason(Some("load"), false), "stop");
}

#[test]
fn image_urls_are_refused() {
    let pivot = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
    let e = request_to_ollama(pivot.as_object().unwrap(), "m", false).unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn errors() {
    let v = error_to_openai(
        StatusCode::NOT_FOUND,
        br#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
    );
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("llama9"));
}

#[test]
fn error_line_mid_stream() {
    let mut s = OllamaStream::new("m", false);
    let mut out = VecDeque::new();
    s.push(
        b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\n{\"error\":\"boom\"}\n",
        &mut out,
    )
    .unwrap();
    s.finish(&mut out).unwrap();
    let text: String = out
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.contains("\"error\""));
    assert!(text.contains("boom"));
    assert!(!text.contains("[DONE]"));
}
