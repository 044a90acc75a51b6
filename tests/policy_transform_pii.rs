//! End to end: the `transform` and `pii` layers between a real client, the
//! real proxy and a recording mock upstream — what the upstream received,
//! what the client got, streamed and not — plus their config errors and the
//! PII detectors' false-positive count on a corpus of ordinary text.

mod support;

use std::path::Path;

use http::StatusCode;
use llm_router::config::Config;
use llm_router::layers::pii::{Detector, PiiAction, Scrubber};
use serde_json::{json, Value};
use support::*;

/// A proxy with one OpenAI-compatible backend `up` serving model `m`, the
/// given `[stack]` order, and `extra` config sections.
async fn proxy(upstream: &MockUpstream, order: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "[stack]\norder = {order}\n\n{}{}{extra}\n",
        openai_backend("up", &upstream.base_url(), ""),
        model("m", "up", None),
    ))
    .await
}

/// A non-streamed chat answer whose content is `content`.
fn chat_answer(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })
}

/// A streamed answer of one chunk per piece of `pieces`, then stop and `[DONE]`.
fn script(pieces: &[&str]) -> Reply {
    let mut steps = vec![Step::Send(role_chunk("m"))];
    steps.extend(pieces.iter().map(|p| Step::Send(chunk("m", p, None))));
    steps.push(Step::Send(chunk("m", "", Some("stop"))));
    steps.push(Step::Send(DONE.to_string()));
    Reply::Script(steps)
}

/// POST a chat request; the status and the parsed JSON answer.
async fn post_json(proxy: &Proxy, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

/// POST a streamed chat request; the events' data and the concatenated text.
async fn post_stream(proxy: &Proxy, body: &Value) -> (Vec<String>, String) {
    let response = client()
        .post(proxy.at("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    let mut text = String::new();
    while let Some(event) = reader.next_event().await {
        let data = event
            .trim_end()
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"))
            .to_string();
        if data != "[DONE]" {
            let v: Value = serde_json::from_str(&data).unwrap();
            text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
        events.push(data);
    }
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    (events, text)
}

fn user(content: &str, stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": content},
    ]})
}

// ---------------------------------------------------------------------------
// pii

const PII_TEXT: &str = "I'm jane.doe@example.com, card 4111 1111 1111 1111, SSN 123-45-6789, \
     phone +44 20 7946 0958, from 203.0.113.7; again jane.doe@example.com";

#[tokio::test]
async fn pii_redacts_the_request_before_it_leaves() {
    let upstream = MockUpstream::start("up", Reply::Json(StatusCode::OK, chat_answer("ok"))).await;
    let proxy = proxy(&upstream, "[\"pii\"]", "[pii]\n").await;
    let (status, _) = post_json(&proxy, &user(PII_TEXT, false)).await;
    assert_eq!(status, 200);
    let sent = upstream.only_request().json();
    assert_eq!(
        sent["messages"][1]["content"],
        "I'm [EMAIL], card [CREDIT_CARD], SSN [SSN], phone [PHONE], from [IP_ADDRESS]; again [EMAIL]"
    );
    assert_eq!(sent["messages"][0]["content"], "You are helpful.");
    assert_eq!(sent["model"], "m");
}

#[tokio::test]
async fn pii_masks_keeping_the_ends() {
    let upstream = MockUpstream::start("up", Reply::Json(StatusCode::OK, chat_answer("ok"))).await;
    let proxy = proxy(
        &upstream,
        "[\"pii\"]",
        "[pii]\ndetect = [\"email\", \"ssn\"]\naction = \"mask\"\n",
    )
    .await;
    post_json(
        &proxy,
        &user(
            "mail jane@example.com, ssn 123-45-6789, ip 203.0.113.7",
            false,
        ),
    )
    .await;
    assert_eq!(
        upstream.only_request().json()["messages"][1]["content"],
        "mail ja************om, ssn 12*******89, ip 203.0.113.7"
    );
}

#[tokio::test]
async fn pii_reversible_json_answer_is_restored() {
    // The upstream repeats what it was told.
    let upstream = MockUpstream::with_handler("up", |r| {
        let said = r.json()["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Reply::Json(StatusCode::OK, chat_answer(&format!("You said: {said}")))
    })
    .await;
    let proxy = proxy(&upstream, "[\"pii\"]", "[pii]\naction = \"reversible\"\n").await;
    let (status, answer) = post_json(&proxy, &user(PII_TEXT, false)).await;
    assert_eq!(status, 200);
    let sent = upstream.only_request().json();
    assert_eq!(
        sent["messages"][1]["content"],
        "I'm <EMAIL_1>, card <CREDIT_CARD_1>, SSN <SSN_1>, phone <PHONE_1>, from <IP_ADDRESS_1>; again <EMAIL_1>"
    );
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        format!("You said: {PII_TEXT}")
    );
}

#[tokio::test]
async fn pii_reversible_stream_restores_a_placeholder_split_across_events() {
    let upstream = MockUpstream::start(
        "up",
        script(&[
            "Sure, I'll write to <EMA",
            "IL_1> and call <PHONE_",
            "1>",
            " today.",
        ]),
    )
    .await;
    let proxy = proxy(&upstream, "[\"pii\"]", "[pii]\naction = \"reversible\"\n").await;
    let (events, text) = post_stream(
        &proxy,
        &user("Email jo@example.com or call (202) 555-0143.", true),
    )
    .await;
    assert_eq!(
        upstream.only_request().json()["messages"][1]["content"],
        "Email <EMAIL_1> or call <PHONE_1>."
    );
    assert_eq!(
        text,
        "Sure, I'll write to jo@example.com and call (202) 555-0143 today."
    );
    assert!(
        events
            .iter()
            .all(|e| !e.contains("<EMA") && !e.contains("<PHONE")),
        "{events:?}"
    );
}

// ---------------------------------------------------------------------------
// transform

const TRANSFORMS: &str = r#"
[[transforms]]
name = "sanitize_emails"
type = "regex_replace"
pattern = '\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b'
replacement = "[EMAIL]"
flags = "IGNORECASE"
on = "request"

[[transforms]]
name = "remove_system_prompts"
type = "jsonpath_drop"
path = "$.messages[?(@.role='system')]"

[[transforms]]
name = "add_metadata"
type = "jsonpath_add"
path = "$.metadata"
value = { source = "llm-router" }

[[transforms]]
name = "off"
type = "regex_replace"
pattern = "helpful"
replacement = "HELPFUL"
enabled = false
"#;

#[tokio::test]
async fn request_transforms_drop_system_messages_add_metadata_and_replace() {
    let upstream = MockUpstream::start("up", Reply::Json(StatusCode::OK, chat_answer("ok"))).await;
    let proxy = proxy(&upstream, "[\"transform\"]", TRANSFORMS).await;
    let (status, answer) = post_json(&proxy, &user("Mail Bob@Example.com please", false)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["choices"][0]["message"]["content"], "ok");
    let sent = upstream.only_request().json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Mail [EMAIL] please"}])
    );
    assert_eq!(sent["metadata"], json!({"source": "llm-router"}));
}

#[tokio::test]
async fn response_regex_matches_across_two_streamed_events() {
    let upstream = MockUpstream::start(
        "up",
        script(&[
            "The launch code is 12",
            "34-ABCD; the secr",
            "et word is swordfish.",
        ]),
    )
    .await;
    let config = r#"
[[transforms]]
type = "regex_replace"
pattern = '\d{2}\d{2}-[A-Z]{4}'
replacement = "[CODE]"
on = "response"

[[transforms]]
type = "regex_replace"
pattern = "secret (word) is (\\w+)"
replacement = "secret \\1 is [hidden]"
on = "response"
"#;
    let proxy = proxy(&upstream, "[\"transform\"]", config).await;
    let (_, text) = post_stream(&proxy, &user("hi", true)).await;
    assert_eq!(
        text,
        "The launch code is [CODE]; the secret word is [hidden]."
    );
}

#[tokio::test]
async fn response_transforms_on_a_json_answer() {
    let upstream = MockUpstream::start(
        "up",
        Reply::Json(
            StatusCode::OK,
            chat_answer("Contact bob@example.com for details"),
        ),
    )
    .await;
    let config = r#"
[[transforms]]
type = "regex_replace"
pattern = '[\w.]+@[\w.]+'
replacement = "[EMAIL]"
on = "response"

[[transforms]]
type = "jsonpath_drop"
path = "$.usage"
on = "response"

[[transforms]]
type = "jsonpath_add"
path = "$.x_proxy.name"
value = "llm-router"
on = "response"
"#;
    let proxy = proxy(&upstream, "[\"transform\"]", config).await;
    // reqwest checks the body against any Content-Length it got.
    let (status, answer) = post_json(&proxy, &user("hi", false)).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Contact [EMAIL] for details"
    );
    assert!(answer.get("usage").is_none(), "{answer}");
    assert_eq!(answer["x_proxy"], json!({"name": "llm-router"}));
}

#[tokio::test]
async fn pii_runs_before_transform_in_the_default_order() {
    // pii scrubs first, so a transform matching the placeholder sees it.
    let upstream = MockUpstream::start("up", Reply::Json(StatusCode::OK, chat_answer("ok"))).await;
    let proxy = Proxy::start(&format!(
        "{}{}[pii]\ndetect = [\"email\"]\n\n[[transforms]]\ntype = \"regex_replace\"\npattern = '\\[EMAIL\\]'\nreplacement = \"(an address)\"\n",
        openai_backend("up", &upstream.base_url(), ""),
        model("m", "up", None),
    ))
    .await;
    post_json(&proxy, &user("write to a@b.io", false)).await;
    assert_eq!(
        upstream.only_request().json()["messages"][1]["content"],
        "write to (an address)"
    );
}

// ---------------------------------------------------------------------------
// Config errors

const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

fn config_error(extra: &str) -> String {
    Config::parse(
        &format!("{MIN}\n{extra}"),
        Path::new("router.toml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn a_bad_regex_is_a_config_error_with_line_and_key() {
    let e = config_error(
        "[[transforms]]\nname = \"x\"\ntype = \"regex_replace\"\npattern = \"(unclosed\"\n",
    );
    assert!(
        e.starts_with("router.toml:12: transforms[0].pattern: invalid regular expression: "),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn a_bad_jsonpath_is_a_config_error_with_line_and_key() {
    let e = config_error(
        "[[transforms]]\ntype = \"jsonpath_add\"\npath = \"$.a\"\nvalue = 1\n\n[[transforms]]\ntype = \"jsonpath_drop\"\npath = \"$.messages[?(@.role=='system'\"\n",
    );
    assert!(
        e.starts_with("router.toml:16: transforms[1].path: invalid JSONPath `$.messages[?(@.role=='system'`: at character "),
        "{e}"
    );
}

#[test]
fn pii_config_errors_name_line_and_key() {
    let e = config_error("[pii]\ndetect = [\"email\", \"passport\"]\n");
    assert!(
        e.starts_with("router.toml:10: pii.detect[1]: unknown detector `passport`"),
        "{e}"
    );
    let e = config_error("[pii]\naction = \"reversible\"\non = \"response\"\n");
    assert!(e.starts_with("router.toml:11: pii.on: "), "{e}");
}

// ---------------------------------------------------------------------------
// Detection quality

/// The number of detections in `tests/fixtures/pii_corpus.txt` (ordinary
/// prose, code, JSON, logs, order numbers, dates, times, versions, prices —
/// no personal data). Reported in middleware.md; lower it when the detectors
/// improve.
const CORPUS_FALSE_POSITIVES: usize = 2;

#[test]
fn false_positives_on_ordinary_text() {
    let scrubber = Scrubber::new(&Detector::ALL, PiiAction::Redact);
    let corpus = include_str!("fixtures/pii_corpus.txt");
    let samples: Vec<&str> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let mut hits = Vec::new();
    for line in &samples {
        for f in scrubber.find(line) {
            hits.push(format!("{:?} {:?} in {line:?}", f.detector, f.text(line)));
        }
    }
    println!(
        "{} false positives in {} samples:\n{}",
        hits.len(),
        samples.len(),
        hits.join("\n")
    );
    assert!(samples.len() >= 140, "{}", samples.len());
    assert!(
        hits.len() <= CORPUS_FALSE_POSITIVES,
        "{} false positives (documented: {CORPUS_FALSE_POSITIVES}):\n{}",
        hits.len(),
        hits.join("\n")
    );
}

#[test]
fn every_detector_finds_its_examples() {
    let scrubber = Scrubber::new(&Detector::ALL, PiiAction::Redact);
    let cases: &[(Detector, &str)] = &[
        (Detector::Email, "Write to jane.doe@example.com today"),
        (Detector::Email, "cc: J.Smith+billing@mail.example.co.uk"),
        (Detector::Phone, "call +44 20 7946 0958 now"),
        (Detector::Phone, "call +1-202-555-0143 now"),
        (Detector::Phone, "office (202) 555-0143"),
        (Detector::Phone, "cell 202-555-0143."),
        (Detector::Phone, "Tel: +49 30 901820"),
        (Detector::CreditCard, "card 4111 1111 1111 1111 exp 12/25"),
        (Detector::CreditCard, "amex 3782-822463-10005"),
        (Detector::CreditCard, "mc 5555555555554444"),
        (Detector::Ssn, "SSN: 123-45-6789"),
        (Detector::Ipv4, "client 203.0.113.7 connected"),
        (Detector::Ipv4, "gateway 192.168.1.1, port 22"),
        (Detector::Ipv6, "from 2001:db8:85a3::8a2e:370:7334"),
        (Detector::Ipv6, "peer fe80::1ff:fe23:4567:890a%eth0"),
        (Detector::Iban, "IBAN GB82 WEST 1234 5698 7654 32"),
        (Detector::Iban, "pay to DE89370400440532013000 by Friday"),
        (Detector::Iban, "NL91ABNA0417164300"),
        (Detector::ApiKey, "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWx"),
        (Detector::ApiKey, "x-api-key: sk-ant-api03-AbCdEfGh1234567890-ijklMNOP"),
        (Detector::ApiKey, "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
        (Detector::ApiKey, "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
        (
            Detector::ApiKey,
            "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ),
    ];
    for (detector, text) in cases {
        let found = scrubber.find(text);
        assert!(
            found.iter().any(|f| f.detector == *detector),
            "{detector} not found in {text:?}: {found:?}"
        );
    }
}
