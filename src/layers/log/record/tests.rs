//! The record's line: its fields and bodies, and differential tests against
//! the rendering it replaced (kept in `reference`).

mod reference;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::super::capture::ToolCall;
use super::body::{append_body, body_value, error_of, Body};
use super::render::ipv4;
use super::{Client, LoggedRequest, Record, StackError};
use crate::classify::{AttemptRecord, Outcome};
use crate::layers::log::capture::{cut_at_boundary, Captured, StreamText};
use crate::layers::log::copier::Invalid;
use crate::layers::log::redact::Redactor;
use crate::layers::pii::{Detector, PiiAction, Scrubber};
use crate::request::{Endpoint, LlmRequest};
use reference::{old_append_field, old_render, OldBody};

#[test]
fn ipv4_addresses_as_display_writes_them() {
    for octets in [
        [0, 0, 0, 0],
        [255, 255, 255, 255],
        [127, 0, 0, 1],
        [10, 99, 100, 9],
    ] {
        let ip = Ipv4Addr::from(octets);
        assert_eq!(ipv4(ip, &mut [0; 15]), ip.to_string());
    }
    for n in (0..=u32::MAX).step_by(7_919_993) {
        let ip = Ipv4Addr::from(n);
        assert_eq!(ipv4(ip, &mut [0; 15]), ip.to_string());
    }
}

#[test]
fn errors_of_both_formats() {
    let openai = json!({"error": {"message": "bad", "type": "invalid_request_error", "code": "x"}});
    assert_eq!(error_of(&openai), json!({"code": "x", "message": "bad"}));
    let anthropic =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}});
    assert_eq!(
        error_of(&anthropic),
        json!({"code": "overloaded_error", "message": "busy"})
    );
    assert_eq!(
        error_of(&json!("upstream said no")),
        json!({"code": null, "message": "upstream said no"})
    );
}

fn render(body: &Value, cap: usize) -> (Value, bool) {
    let mut r = Redactor::new(true, None, None, Vec::new());
    let mut line = b"{\"a\":1".to_vec();
    let text = serde_json::to_vec(body).unwrap();
    let cut = append_body(&mut line, "body", Body::Json(&text), &mut r, cap);
    line.push(b'}');
    let v: Value = serde_json::from_slice(&line).unwrap();
    (v["body"].clone(), cut)
}

#[test]
fn bodies_are_redacted_and_capped() {
    assert_eq!(
        render(
            &json!({"sk-1234567890abcdef": ["key sk-abcdef0123456789"]}),
            100
        ),
        (json!({"sk-...def": ["key sk-...789"]}), false)
    );
    let (v, cut) = render(&json!({"a": "word ".repeat(100)}), 50);
    assert!(cut);
    let s = v.as_str().unwrap();
    assert!(s.len() <= 50 && s.starts_with(r#"{"a":"word word"#), "{s}");
    // A string over the cap is cut before anything else.
    let doc = json!({"a": ["x".repeat(10), format!("short {}", "y".repeat(300))]});
    assert_eq!(
        render(&doc, 100),
        (json!({"a": ["x".repeat(10), "short "]}), true)
    );
    assert_eq!(body_value(br#"{"a":"b"}"#, false, 100), json!({"a": "b"}));
    assert_eq!(body_value(b"plain text", false, 100), json!("plain text"));
    assert_eq!(body_value(b"plain text", true, 7), json!("plain "));
}

// ---- Differential tests against the reference. ----

fn redactors() -> Vec<Redactor> {
    let all = Scrubber::new(&Detector::ALL, PiiAction::Redact);
    let mask = Scrubber::new(&Detector::ALL, PiiAction::Mask);
    vec![
        Redactor::new(
            true,
            Some(all),
            None,
            vec!["backend-secret-xyz-0001".into()],
        ),
        Redactor::new(true, None, None, Vec::new()),
        Redactor::new(false, Some(mask), None, Vec::new()),
        Redactor::new(false, None, None, Vec::new()),
    ]
}

/// JSON bodies, in serde_json's own compact form (so the old path,
/// which parsed and serialized them again, wrote them byte for byte as
/// they are).
fn canonical_bodies() -> Vec<Value> {
    vec![
        json!({}),
        json!([]),
        json!("a top-level string with jo@example.com"),
        json!(42),
        json!(null),
        json!([1, -2.5, 1e300, true, false, null, "x", [], {}]),
        json!({"model": "m", "messages": [{"role": "user", "content": "my key is sk-abcdefgh12345678wxyz, mail jo@example.com, card 4111 1111 1111 1111"}]}),
        json!({"sk-1234567890abcdef": {"jo@example.com": ["192.168.1.20", "+44 20 7946 0958"]}}),
        json!({"quote\"back\\slash": "tab\there\nnew line \u{1} \u{1f} \u{7f} é 😀 \u{2028}", "Bearer": "Bearer abc.def-ghi_jkl012"}),
        json!({"\u{8}\u{c}\n\r\t\u{0}\u{1f}\"\\ sk-1234567890abcdef jo@example.com": "\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}\"\\/ é 😀 sk-1234567890abcdef jo@example.com"}),
        json!({"password": "hunter2hunter2", "api_key=plainsecretvalue99": "x-api-key: k-0123456789abcdefgh"}),
        json!({"backend-secret-xyz-0001": "uses backend-secret-xyz-0001 twice: backend-secret-xyz-0001"}),
        json!({"long": "word ".repeat(40), "longer": format!("{} sk-1234567890abcdef", "é".repeat(30)), "n": [[[[["deep"]]]]]}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Here you go."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        json!({"error": {"message": "bad key sk-abcdefgh12345678wxyz", "type": "invalid_request_error", "code": "x"}}),
    ]
}

/// The new and the old field text of `body`, and whether each cut.
fn both(src: &[u8], redactor: &Redactor, cap: usize) -> ((Vec<u8>, bool), (Vec<u8>, bool)) {
    let mut new_redactor = redactor.clone();
    let mut new = Vec::new();
    let new_cut = append_body(&mut new, "b", Body::Json(src), &mut new_redactor, cap);
    let value = body_value(src, false, cap);
    let mut old = Vec::new();
    let old_cut = old_append_field(&mut old, "b", OldBody::Value(&value), redactor, cap);
    ((new, new_cut), (old, old_cut))
}

#[test]
fn canonical_bodies_come_out_as_before_byte_for_byte() {
    for mut redactor in redactors() {
        redactor.refresh();
        for body in canonical_bodies() {
            let src = serde_json::to_vec(&body).unwrap();
            for cap in [1 << 20, 300, 64, 20, 5, 0] {
                let (new, old) = both(&src, &redactor, cap);
                assert_eq!(
                    String::from_utf8_lossy(&new.0),
                    String::from_utf8_lossy(&old.0),
                    "cap {cap}"
                );
                assert_eq!(new.1, old.1, "cut, cap {cap}: {body}");
            }
        }
    }
}

#[test]
fn text_and_invalid_bodies_come_out_as_before() {
    let texts: &[&[u8]] = &[
        b"plain text with sk-1234567890abcdef and jo@example.com",
        b"{\"a\":",
        b"{\"a\":1} trailing",
        b"\xff\xfe not utf-8 \"quoted\" \\ \n",
        b"",
        b"   ",
    ];
    for mut redactor in redactors() {
        redactor.refresh();
        for text in texts {
            for cap in [1 << 20, 30, 10, 0] {
                let (new, old) = both(text, &redactor, cap);
                assert_eq!(new, old, "{}", String::from_utf8_lossy(text));
            }
            // Truncated: the text cut, as a string.
            let lossy = String::from_utf8_lossy(text);
            let cut = cut_at_boundary(&lossy, 12);
            let mut new = Vec::new();
            let mut r = redactor.clone();
            let new_cut = append_body(&mut new, "b", Body::Text(cut), &mut r, 12);
            let value = body_value(text, true, 12);
            let mut old = Vec::new();
            let old_cut = old_append_field(&mut old, "b", OldBody::Value(&value), &redactor, 12);
            assert_eq!((new, new_cut), (old, old_cut));
        }
    }
}

/// Bodies as clients write them: whitespace, escapes the serializer
/// would not write, number forms, repeated keys. The line differs in
/// form, but reads back as the same document.
#[test]
fn written_bodies_read_back_the_same() {
    let bodies: &[&str] = &[
        " { \"model\" : \"m\" ,\n\t\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"h\\u00e9 \\ud83d\\ude00 \\/ \\\" \\\\ \\b\\f\\n\\r\\t\" } ] } ",
        r#"{"n":[1.50,1E2,-0,0.0e-5,12345678901234567890,1e308,-1.7976931348623157e308]}"#,
        r#"{"a":1,"a":{"b":2},"a":"sk-1234567890abcdef"}"#,
        r#"{"\u0073k-1234567890abcdef":"\u006ao@example.com"}"#,
        r#"["\u0000\u001F\u007f", "tab	inside? no: \t"]"#,
        r#"{"k":"key sk-\u0031234567890abcdef and more text to cut at some word boundary here"}"#,
    ];
    for mut redactor in redactors() {
        redactor.refresh();
        for body in bodies {
            let src = body.as_bytes();
            if serde_json::from_slice::<Value>(src).is_err() {
                // (The tab inside a string is a control character.)
                let mut r = redactor.clone();
                assert_eq!(
                    super::super::copier::copy(src, &mut Vec::new(), &mut r, 1 << 20),
                    Err(Invalid)
                );
                continue;
            }
            for cap in [1 << 20, 30, 10] {
                let (new, old) = both(src, &redactor, cap);
                let read =
                    |t: &[u8]| -> Value { serde_json::from_slice(&t[b",\"b\":".len()..]).unwrap() };
                // Compare where neither went over the whole-body cap.
                if new.0.len() - 5 <= cap && old.0.len() - 5 <= cap && !new.1 && !old.1 {
                    assert_eq!(read(&new.0), read(&old.0), "{body}");
                }
                if cap == 1 << 20 {
                    assert_eq!(read(&new.0), read(&old.0), "{body}");
                    assert_eq!(new.1, old.1, "{body}");
                }
            }
        }
    }
}

fn attempt(backend: &str, model: &str, status: Option<u16>, kind: &'static str) -> AttemptRecord {
    AttemptRecord {
        backend: backend.into(),
        model: model.into(),
        outcome: Outcome::Success,
        status,
        error_kind: kind,
        elapsed: Duration::from_micros(41_234),
        usage: None,
    }
}

fn record() -> Record {
    Record {
        time: UNIX_EPOCH + Duration::from_millis(1_798_761_599_123),
        request_id: Some("6ac1bf6ecaec27c30000000000000bb7".into()),
        client: Some(Client::Key("sk-client-0123456789abcdef".into())),
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        endpoint: Some("chat_completions"),
        model: Some("gpt-4".into()),
        stream: false,
        attempts: vec![
            attempt("openai", "gpt-4o", Some(503), "status_5xx"),
            attempt("anthropic", "claude-sonnet-4-0", Some(200), "none"),
        ],
        status: 200,
        latency: Duration::from_micros(1_204_700),
        ttfb: Duration::from_micros(431_000),
        overhead: Duration::from_nanos(640_500),
        usage: Some(crate::usage::Usage {
            prompt_tokens: 19,
            completion_tokens: 42,
            total_tokens: 61,
            ..Default::default()
        }),
        // claude-sonnet-4: 19 × $3 + 42 × $15 per million.
        cost: Some(crate::usage::Cost::from_nano_usd(687_000)),
        stack_error: None,
        body_error: None,
        complete: true,
        request: Some(LoggedRequest::of(
            &LlmRequest::parse(
                Endpoint::ChatCompletions,
                br#"{"model":"gpt-4","messages":[{"role":"user","content":"Mail jo@example.com the key sk-abc1234567890xyz"}]}"#,
            )
            .unwrap(),
            65536,
        )),
        log_response: true,
        response: Some(Captured::Bytes {
            bytes: bytes::Bytes::from_static(
                br#"{"choices":[{"message":{"content":"Done, jo@example.com."}}]}"#,
            ),
            truncated: false,
        }),
        max_body: 65536,
        weight: 0,
    }
}

fn stream(error: Option<Value>) -> Captured {
    let mut text = StreamText::default();
    text.texts = vec!["Hello jo@example.com".into(), "second choice".into()];
    text.tool_calls = vec![ToolCall {
        key: 0,
        id: Some("call_1".into()),
        name: Some("lookup".into()),
        arguments: r#"{"q":"sk-1234567890abcdef"}"#.into(),
    }];
    text.finish_reason = Some("stop".into());
    text.error = error;
    Captured::Stream(text)
}

/// Records of every shape.
fn records() -> Vec<Record> {
    let mut out = vec![record()];
    let mut r = record();
    r.client = Some(Client::Identity("jwt:jo@example.com".into()));
    r.client_ip = Some(IpAddr::V6(Ipv6Addr::new(
        0x2001, 0xdb8, 0, 0, 0, 0x8a2e, 0x370, 0x7334,
    )));
    r.request_id = None;
    r.attempts.clear();
    r.usage = None;
    r.endpoint = None;
    r.model = None;
    r.request = None;
    r.response = None;
    out.push(r);
    let mut r = record();
    r.client = None;
    r.client_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 100, 7)));
    r.status = 500;
    r.stack_error = Some(StackError {
        code: "internal_error",
        message: "it broke for jo@example.com with sk-1234567890abcdef".into(),
        internal: true,
    });
    r.response = None;
    out.push(r);
    let mut r = record();
    r.status = 429;
    r.response = Some(Captured::Bytes {
        bytes: bytes::Bytes::from_static(
            br#"{"error":{"message":"slow down jo@example.com","type":"rate_limit_error","code":"rate_limited"}}"#,
        ),
        truncated: false,
    });
    out.push(r);
    let mut r = record();
    r.status = 502;
    r.log_response = false;
    r.response = Some(Captured::Bytes {
        bytes: bytes::Bytes::from_static(b"upstream said no to 192.168.1.20"),
        truncated: false,
    });
    out.push(r);
    let mut r = record();
    r.status = 503;
    r.response = Some(Captured::Bytes {
        bytes: bytes::Bytes::from_static(br#"{"error":{"message":"cut in the midd"#),
        truncated: true,
    });
    out.push(r);
    let mut r = record();
    r.status = 400;
    r.response = Some(Captured::Bytes {
        bytes: bytes::Bytes::from_static(b"[1,2]"),
        truncated: false,
    });
    out.push(r);
    let mut r = record();
    r.stream = true;
    r.response = Some(stream(None));
    out.push(r);
    let mut r = record();
    r.stream = true;
    r.complete = false;
    r.body_error = Some("connection reset by 192.168.1.20".into());
    r.response = Some(stream(Some(
        json!({"type": "overloaded_error", "message": "busy, mail jo@example.com"}),
    )));
    out.push(r);
    let mut r = record();
    r.response = Some(stream(Some(
        json!({"type": "overloaded_error", "message": "busy"}),
    )));
    out.push(r);
    let mut r = record();
    r.max_body = 40;
    r.method = "PATCH".into();
    r.path = "/v1/jo@example.com/sk-1234567890abcdef".into();
    out.push(r);
    let mut r = record();
    r.request = Some(LoggedRequest::of(
        &LlmRequest::from_value(
            Endpoint::Messages,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "call +44 20 7946 0958"}]}),
        )
        .unwrap(),
        65536,
    ));
    r.request_id = Some("client id with jo@example.com \"quoted\"".into());
    out.push(r);
    out
}

#[test]
fn records_render_as_before() {
    for mut redactor in redactors() {
        let mut old_redactor = redactor.clone();
        for r in records() {
            // Twice: the second time through the memo.
            for _ in 0..2 {
                let new = r.render(&mut redactor);
                let old = old_render(&r, &mut old_redactor);
                assert_eq!(
                    String::from_utf8_lossy(&new.line),
                    String::from_utf8_lossy(&old.line)
                );
                assert_eq!(new.error, old.error);
                assert_eq!(new.exception, old.exception);
                assert_eq!(new.head, old.head);
                let line: Value = serde_json::from_slice(&new.line).unwrap();
                assert!(line.is_object());
            }
        }
    }
}

#[test]
fn a_record_reads_as_documented() {
    let mut redactor = redactors().remove(0);
    let rendered = record().render(&mut redactor);
    let line = String::from_utf8(rendered.line).unwrap();
    assert_eq!(
        line,
        concat!(
            r#"{"time":"2026-12-31T23:59:59.123Z","request_id":"6ac1bf6ecaec27c30000000000000bb7","#,
            r#""client":"sk-c...cdef","client_ip":"[IP_ADDRESS]","method":"POST","#,
            r#""path":"/v1/chat/completions","endpoint":"chat_completions","model":"gpt-4","stream":false,"#,
            r#""backend":"anthropic","target_model":"claude-sonnet-4-0","attempts":2,"upstream":["#,
            r#"{"backend":"openai","model":"gpt-4o","status":503,"error":"status_5xx","ms":41.234},"#,
            r#"{"backend":"anthropic","model":"claude-sonnet-4-0","status":200,"error":null,"ms":41.234}],"#,
            r#""status":200,"latency_ms":1204.7,"ttfb_ms":431.0,"overhead_ms":0.641,"#,
            r#""tokens_in":19,"tokens_out":42,"cost_usd":0.000687,"complete":true,"error":null,"#,
            r#""request":{"model":"gpt-4","messages":[{"role":"user","content":"Mail [EMAIL] the key sk-...xyz"}]},"#,
            r#""response":{"choices":[{"message":{"content":"Done, [EMAIL]."}}]}}"#,
        )
    );
    assert!(!rendered.error);
    // Without `ipv4`, the address stays.
    let mut keys_only = redactors().remove(1);
    let line = String::from_utf8(record().render(&mut keys_only).line).unwrap();
    assert!(line.contains(r#""client_ip":"192.168.1.20""#), "{line}");
}
