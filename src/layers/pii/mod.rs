//! `pii`: finds personal data and secrets and redacts, masks or reversibly
//! replaces them (`[pii]`).
//!
//! The detectors ([`Detector`]: e-mail, phone, credit card, US SSN, IPv4,
//! IPv6, IBAN, API keys) and the actions live in the pure [`scrubber`]
//! module; this layer applies them:
//!
//! - **`redact`** — `[EMAIL]`, `[PHONE]`, `[CREDIT_CARD]`, `[SSN]`,
//!   `[IP_ADDRESS]`, `[IBAN]`, `[API_KEY]`.
//! - **`mask`** — the first two and last two characters are kept, the rest
//!   starred (`ja************om`).
//! - **`reversible`** — each distinct value becomes a numbered placeholder
//!   upstream (`<EMAIL_1>`, `<EMAIL_2>`, `<PHONE_1>`; the same value always
//!   the same placeholder within a request), and the originals are put back
//!   in the answer: in every string of a JSON answer, and in the text,
//!   reasoning summaries and tool-call arguments of a streamed one (OpenAI,
//!   Anthropic and Responses streams; the full texts a Responses stream
//!   repeats too), where a placeholder split across two events is still
//!   restored: only a trailing `<…` that could still become one of the
//!   request's placeholders (`<`, `<EM`, `<EMAIL_1`) is held back until the
//!   next event, everything else is sent as it arrives.
//!
//! `on` chooses the side: `request` (the default) scrubs every string value
//! of the request (in the client's format, before translation; the top-level
//! `model` and inline `data:` images excepted), `response` scrubs answers (every
//! string of a JSON answer; a stream's text deltas and tool-call arguments,
//! each holding back the tail where a detector could still match — at most
//! [`PiiPolicy::DEFAULT_HOLDBACK`] bytes, `holdback` — so PII split across
//! events is still found), `both` does both.
//! `reversible` always works on the request and restores the answer.
//!
//! [`Scrubber::scrub_text`] is the same detection for one-way uses such as
//! logs ("logs are always scrubbed when `[pii]` is on"): get it from
//! [`PiiLayer::scrubber`].
//!
//! **Needs:** [`LlmRequest`](crate::request::LlmRequest) (without it,
//! requests pass unchanged). **Provides:** nothing.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use llm_router::layers::pii::{PiiAction, PiiLayer, PiiPolicy};
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // An "upstream" that answers with the user's message.
//! let upstream = service_fn(|req: Request<ProxyBody>| async move {
//!     let llm = req.extensions().get::<LlmRequest>().unwrap();
//!     let said = llm.body()["messages"][0]["content"].as_str().unwrap().to_string();
//!     assert_eq!(said, "I am <EMAIL_1>, call <PHONE_1>");
//!     let answer = serde_json::json!({"choices": [{"message": {"content": said}}]});
//!     let response = Response::builder().header("content-type", "application/json");
//!     Ok::<_, Infallible>(response.body(ProxyBody::full(answer.to_string())).unwrap())
//! });
//! let policy = PiiPolicy { action: PiiAction::Reversible, ..PiiPolicy::default() };
//! let service = ServiceBuilder::new().layer(PiiLayer::new(policy)).service(upstream);
//!
//! let llm = LlmRequest::parse(Endpoint::ChatCompletions,
//!     br#"{"model":"m","messages":[{"role":"user","content":"I am jo@example.com, call 202-555-0143"}]}"#)
//!     .unwrap();
//! let mut req = Request::new(ProxyBody::empty());
//! req.extensions_mut().insert(llm);
//! let answer = service.oneshot(req).await.unwrap();
//! let body = answer.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..],
//!     br#"{"choices":[{"message":{"content":"I am jo@example.com, call 202-555-0143"}}]}"#);
//! # }
//! ```

// Parts of this file are the `content` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "content"), allow(unused_imports, dead_code))]

#[cfg(feature = "content")]
mod body;
pub mod scrubber;
mod service;

pub use scrubber::{mask, Detector, Finding, PiiAction, Scrubber, Vault};
#[cfg(feature = "content")]
pub use service::{Pii, PiiEdit, PiiLayer, ResponseFuture};
pub use service::{PiiPolicy, PiiScope};

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use http_body_util::BodyExt;
    use tower::{service_fn, Layer, ServiceExt};

    use super::*;
    use crate::body::ProxyBody;
    use crate::layers::edit::tests::{
        check_responses_stream, event_data, responses_stream, responses_texts,
    };
    use crate::layers::edit::Channel;
    use crate::request::{Endpoint, LlmRequest};

    /// `answer` as `content_type`, answered to a request `request` at
    /// `endpoint`, through the layer: what the upstream got and what the
    /// client gets.
    async fn through(
        policy: PiiPolicy,
        endpoint: Endpoint,
        request: &str,
        content_type: &'static str,
        answer: ProxyBody,
    ) -> (serde_json::Value, String) {
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        let answer = Mutex::new(Some(answer));
        let upstream = service_fn(move |req: Request<ProxyBody>| {
            let llm = req.extensions().get::<LlmRequest>().unwrap();
            *seen2.lock().unwrap() = Some(serde_json::Value::Object(llm.body().clone()));
            let body = answer.lock().unwrap().take().unwrap();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", content_type)
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let llm = LlmRequest::parse(endpoint, request.as_bytes()).unwrap();
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(llm);
        let response = PiiLayer::new(policy)
            .layer(upstream)
            .oneshot(req)
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let sent = seen.lock().unwrap().take().unwrap();
        (sent, String::from_utf8(body.to_vec()).unwrap())
    }

    /// One request through the layer, answered `answer` as `content_type`.
    async fn run(
        policy: PiiPolicy,
        endpoint: Endpoint,
        request: &str,
        content_type: &'static str,
        answer: &'static str,
    ) -> (serde_json::Value, String) {
        let answer = ProxyBody::full(answer);
        through(policy, endpoint, request, content_type, answer).await
    }

    /// `answer` streamed to a request `request` at `endpoint`.
    async fn stream_through(
        policy: PiiPolicy,
        endpoint: Endpoint,
        request: &str,
        answer: ProxyBody,
    ) -> (serde_json::Value, String) {
        through(policy, endpoint, request, "text/event-stream", answer).await
    }

    const RESPONSES_REQ: &str =
        r#"{"model":"m","stream":true,"input":"me: jo@example.com at 10.1.2.3"}"#;

    fn reversible() -> PiiPolicy {
        PiiPolicy {
            action: PiiAction::Reversible,
            ..PiiPolicy::default()
        }
    }

    #[tokio::test]
    async fn reversible_restores_responses_streams_in_any_chunking() {
        let input = responses_stream(
            &["The user <EMA", "IL_1> is at <IP_ADDRESS_1", ">."],
            &[
                "Hi <",
                "EMAIL_1>, your host <IP_",
                "ADDRESS_1> is up; a < b <EMAIL_9>",
            ],
            &["{\"to\":\"<EMAIL_", "1>\",\"ip\":\"<IP_ADDRESS_1>\"}"],
        );
        let (sent, _) = stream_through(
            reversible(),
            Endpoint::Responses,
            RESPONSES_REQ,
            ProxyBody::full(input.clone()),
        )
        .await;
        assert_eq!(sent["input"], "me: <EMAIL_1> at <IP_ADDRESS_1>");
        let through = |body| async move {
            let (_, out) =
                stream_through(reversible(), Endpoint::Responses, RESPONSES_REQ, body).await;
            out
        };
        check_responses_stream(
            &input,
            through,
            [
                "The user jo@example.com is at 10.1.2.3.",
                "Hi jo@example.com, your host 10.1.2.3 is up; a < b <EMAIL_9>",
                r#"{"to":"jo@example.com","ip":"10.1.2.3"}"#,
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn only_a_placeholder_prefix_waits_and_any_split_is_restored() {
        // Text that cannot begin a placeholder goes out as it arrives.
        let deltas = ["a < b", " and <", "b>", " <EMAIL_2", "> <"];
        let input = responses_stream(&[], &deltas, &[]);
        let (_, out) = stream_through(
            reversible(),
            Endpoint::Responses,
            RESPONSES_REQ,
            ProxyBody::full(input),
        )
        .await;
        let sent: Vec<String> = event_data(&out)
            .iter()
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .filter(|v| v["type"] == "response.output_text.delta")
            .map(|v| v["delta"].as_str().unwrap().to_string())
            .collect();
        // (The final `<` waits to the end and goes out in a delta added
        // before `response.output_text.done`.)
        assert_eq!(sent, ["a < b", " and ", "<b>", " <EMAIL_2", "> ", "<"]);
        // A placeholder split anywhere is restored.
        let text = "to <EMAIL_1>!";
        for cut in 0..=text.len() {
            let input = responses_stream(&[], &[&text[..cut], &text[cut..]], &[]);
            let (_, out) = stream_through(
                reversible(),
                Endpoint::Responses,
                RESPONSES_REQ,
                ProxyBody::full(input),
            )
            .await;
            assert_eq!(
                responses_texts(&out)[&Channel::OutputText(1, 0)],
                "to jo@example.com!",
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn responses_answers_are_scrubbed_consistently() {
        let policy = PiiPolicy {
            on: PiiScope::Response,
            ..PiiPolicy::default()
        };
        let text = "Write to bob@example.org or call 202-555-0143 today.";
        let expected = "Write to [EMAIL] or call [PHONE] today.";
        for cut in 0..=text.len() {
            let input = responses_stream(
                &[],
                &[&text[..cut], &text[cut..]],
                &["{\"n\":\"202-55", "5-0143\"}"],
            );
            let (_, out) = stream_through(
                policy.clone(),
                Endpoint::Responses,
                RESPONSES_REQ,
                ProxyBody::full(input),
            )
            .await;
            let texts = responses_texts(&out);
            assert_eq!(texts[&Channel::OutputText(1, 0)], expected, "cut at {cut}");
            assert_eq!(texts[&Channel::CallArgs(2)], r#"{"n":"[PHONE]"}"#);
        }
        // Words that cannot be PII go out at once; the last word waits (it
        // could still become an address), and a complete address once the
        // text after it settles it.
        let input = responses_stream(
            &[],
            &["Hello there ", "my friend", " it is a@b.io", " ok"],
            &[],
        );
        let (_, out) = stream_through(
            policy,
            Endpoint::Responses,
            RESPONSES_REQ,
            ProxyBody::full(input),
        )
        .await;
        let sent: Vec<String> = event_data(&out)
            .iter()
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .filter(|v| v["type"] == "response.output_text.delta")
            .map(|v| v["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            sent,
            ["Hello there ", "my ", "friend it is ", "[EMAIL] ", "ok"]
        );
    }

    const REQ: &str = r#"{"model":"a@b.io","stream":true,"messages":[{"role":"user","content":"me: jo@example.com, 10.1.2.3, jo@example.com"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AKIAIOSFODNN7EXAMPLE"}}]}]}"#;
    const IMAGE: &str = "data:image/png;base64,AKIAIOSFODNN7EXAMPLE";

    #[tokio::test]
    async fn redact_request_by_default() {
        let (sent, _) = run(
            PiiPolicy::default(),
            Endpoint::ChatCompletions,
            REQ,
            "text/plain",
            "ok",
        )
        .await;
        assert_eq!(sent["model"], "a@b.io");
        assert_eq!(sent["messages"][1]["content"][0]["image_url"]["url"], IMAGE);
        assert_eq!(
            sent["messages"][0]["content"],
            "me: [EMAIL], [IP_ADDRESS], [EMAIL]"
        );
    }

    #[tokio::test]
    async fn reversible_restores_streams_with_split_placeholders() {
        let policy = PiiPolicy {
            action: PiiAction::Reversible,
            ..PiiPolicy::default()
        };
        let answer = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi <EMA\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"IL_1> at <IP_ADD\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"RESS_1>!\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"to\\\":\\\"<EMAIL_\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1>\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (sent, out) = run(
            policy,
            Endpoint::ChatCompletions,
            REQ,
            "text/event-stream",
            answer,
        )
        .await;
        assert_eq!(
            sent["messages"][0]["content"],
            "me: <EMAIL_1>, <IP_ADDRESS_1>, <EMAIL_1>"
        );
        let mut text = String::new();
        let mut args = String::new();
        for data in out.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            let delta = &v["choices"][0]["delta"];
            text.push_str(delta["content"].as_str().unwrap_or(""));
            args.push_str(
                delta["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap_or(""),
            );
        }
        assert_eq!(text, "Hi jo@example.com at 10.1.2.3!");
        assert_eq!(args, r#"{"to":"jo@example.com"}"#);
    }

    #[tokio::test]
    async fn mask_both_sides() {
        let policy = PiiPolicy {
            action: PiiAction::Mask,
            on: PiiScope::Both,
            ..PiiPolicy::default()
        };
        let answer = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"reach me at bo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b@example.org today\"}}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (sent, out) = run(
            policy,
            Endpoint::ChatCompletions,
            REQ,
            "text/event-stream",
            answer,
        )
        .await;
        assert_eq!(
            sent["messages"][0]["content"],
            "me: jo**********om, 10****.3, jo**********om"
        );
        assert!(out.contains("bo***********rg"), "{out}");
        assert!(!out.contains("example.org"), "{out}");
    }

    #[tokio::test]
    async fn response_only_leaves_the_request() {
        let policy = PiiPolicy {
            on: PiiScope::Response,
            detect: vec![Detector::Email],
            ..PiiPolicy::default()
        };
        let (sent, out) = run(
            policy,
            Endpoint::ChatCompletions,
            REQ,
            "application/json",
            r#"{"choices":[{"message":{"content":"write x@y.io"}}]}"#,
        )
        .await;
        assert!(sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("jo@example.com"));
        assert_eq!(
            out,
            r#"{"choices":[{"message":{"content":"write [EMAIL]"}}]}"#
        );
    }

    #[tokio::test]
    async fn anthropic_streams_are_restored() {
        let policy = PiiPolicy {
            action: PiiAction::Reversible,
            ..PiiPolicy::default()
        };
        let answer = concat!(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"to <EMAIL\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"_1>\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        );
        let request = r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"jo@example.com"}]}"#;
        let (_, out) = run(
            policy,
            Endpoint::Messages,
            request,
            "text/event-stream",
            answer,
        )
        .await;
        assert!(out.contains("\"text\":\"to \""), "{out}");
        assert!(out.contains("\"text\":\"jo@example.com\""), "{out}");
    }
}
