//! `transform`: regex and JSONPath edits of requests and answers
//! (`[[transforms]]`).
//!
//! A [`TransformRule`] is one of:
//!
//! - **`regex_replace`** — every match of a pattern in every string value of
//!   the JSON body is replaced (keys are left alone). Flags `IGNORECASE`,
//!   `MULTILINE`, `DOTALL` ([`RegexFlags`]); the replacement refers to groups
//!   as `$1`/`${name}` or `\1`/`\g<name>`.
//! - **`jsonpath_drop`** — every node a JSONPath finds is removed, e.g.
//!   `$.messages[?(@.role=='system')]` (a single `=` is accepted too).
//! - **`jsonpath_add`** — a value is set at a path ending in a key, creating
//!   missing objects along a plain chain of keys (`$.metadata`, `$.a.b`).
//!
//! Patterns, paths and replacement group references are checked when the rule
//! is built; nothing fails at request time.
//!
//! **Requests** ([`Direction::Request`]) are edited in the
//! [`LlmRequest`](crate::request::LlmRequest) in the request's extensions — in
//! the client's format, before translation — rules in the order given.
//!
//! **Answers** ([`Direction::Response`], successful ones only) are edited in
//! the client's format, without buffering a stream:
//!
//! - a JSON answer is collected (at most 8 MiB; a larger one passes
//!   unchanged) and every rule is applied to it in order;
//! - a streamed (SSE) answer is edited event by event: `regex_replace` applies
//!   to the text deltas (OpenAI `choices[].delta.content` and
//!   `choices[].text`; Anthropic `text_delta`s; Responses
//!   `response.output_text.delta` and `response.reasoning_summary_text.delta`
//!   — tool-call arguments are left alone), then the JSONPath rules to each
//!   event's JSON document (`[DONE]` excluded). A match may span events: the
//!   tail of a text from which the pattern could still match (`sec` of
//!   `secret`; a word that could become an address) is held back until the
//!   next event of that text, at most [`TransformRule::DEFAULT_HOLDBACK`]
//!   bytes (configurable per rule, `holdback`); text from which no match can
//!   begin is sent at once. Held text is released when its text ends (a
//!   choice's `finish_reason`, a content block's stop, a Responses `.done`
//!   event), at `[DONE]`, or at the end of the stream. A match that starts in
//!   the text already sent, or is longer than the holdback, is not found;
//!   events whose text is held back are sent with that text empty. The full
//!   texts a Responses stream repeats (`.done` events, `output_item.done`,
//!   the `response` of `response.completed`) get the same rules, so they
//!   equal the edited deltas. Text a Responses channel still holds when it
//!   ends goes out in a `.delta` event added before its `.done` event; every
//!   later event's `sequence_number` is raised by one per added event, so
//!   the numbers stay consecutive.
//!
//! Edited answers lose their `Content-Length`.
//!
//! **Needs:** [`LlmRequest`](crate::request::LlmRequest) (without it, requests
//! pass unchanged and answers are read as OpenAI's format). **Provides:**
//! nothing.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use serde_json::json;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use llm_router::layers::transform::{Direction, RegexFlags, TransformLayer, TransformRule};
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rules = vec![
//!     TransformRule::jsonpath_drop("no_system", "$.messages[?(@.role=='system')]").unwrap(),
//!     TransformRule::jsonpath_add("tag", "$.metadata", json!({"source": "llm-router"})).unwrap(),
//!     TransformRule::regex_replace("shout", "hello", "HELLO", RegexFlags::default())
//!         .unwrap()
//!         .on(Direction::Response),
//! ];
//! // An "upstream" that answers with the body it was sent.
//! let upstream = service_fn(|req: Request<ProxyBody>| async move {
//!     let sent = req.extensions().get::<LlmRequest>().unwrap().to_bytes(None).unwrap();
//!     let answer = Response::builder().header("content-type", "application/json");
//!     Ok::<_, Infallible>(answer.body(ProxyBody::full(sent)).unwrap())
//! });
//! let service = ServiceBuilder::new()
//!     .layer(TransformLayer::new(rules))
//!     .service(upstream);
//!
//! let llm = LlmRequest::parse(Endpoint::ChatCompletions, br#"{"model":"m","messages":[
//!     {"role":"system","content":"be terse"},{"role":"user","content":"hello"}]}"#).unwrap();
//! let mut req = Request::new(ProxyBody::empty());
//! req.extensions_mut().insert(llm);
//! let answer = service.oneshot(req).await.unwrap();
//! let body = answer.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     &body[..],
//!     br#"{"model":"m","messages":[{"role":"user","content":"HELLO"}],"metadata":{"source":"llm-router"}}"#
//! );
//! # }
//! ```
//!
//! A streamed Responses answer: text that cannot begin a match goes out as
//! it arrives, `s` waits (it could begin `secret`) and goes out in a delta
//! added before `response.output_text.done`, which is numbered on.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use llm_router::layers::transform::{Direction, RegexFlags, TransformLayer, TransformRule};
//! use llm_router::{Endpoint, LlmRequest};
//! use llm_router::ProxyBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rule = TransformRule::regex_replace("s", "secret", "[hidden]", RegexFlags::default())
//!     .unwrap()
//!     .on(Direction::Response);
//! let upstream = service_fn(|_req: Request<ProxyBody>| async move {
//!     let sse = concat!(
//!         "event: response.output_text.delta\n",
//!         r#"data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"the secret is s","sequence_number":0}"#, "\n\n",
//!         "event: response.output_text.done\n",
//!         r#"data: {"type":"response.output_text.done","item_id":"msg_1","output_index":0,"content_index":0,"text":"the secret is s","sequence_number":1}"#, "\n\n",
//!     );
//!     let answer = Response::builder().header("content-type", "text/event-stream");
//!     Ok::<_, Infallible>(answer.body(ProxyBody::full(sse)).unwrap())
//! });
//! let service = ServiceBuilder::new().layer(TransformLayer::new([rule])).service(upstream);
//! let llm = LlmRequest::parse(Endpoint::Responses, br#"{"model":"m","input":"hi","stream":true}"#)
//!     .unwrap();
//! let mut req = Request::new(ProxyBody::empty());
//! req.extensions_mut().insert(llm);
//! let answer = service.oneshot(req).await.unwrap();
//! let body = answer.into_body().collect().await.unwrap().to_bytes();
//! let events: Vec<serde_json::Value> = std::str::from_utf8(&body).unwrap()
//!     .split("\n\n")
//!     .filter_map(|e| e.split_once("data: "))
//!     .map(|(_, data)| serde_json::from_str(data).unwrap())
//!     .collect();
//! assert_eq!(events[0]["delta"], "the [hidden] is ");
//! assert_eq!((&events[1]["delta"], &events[1]["sequence_number"]), (&"s".into(), &1.into()));
//! assert_eq!((&events[2]["text"], &events[2]["sequence_number"]), (&"the [hidden] is s".into(), &2.into()));
//! # }
//! ```

// Parts of this file are the `content` feature's layer; without it, what only they use is unused.
#![cfg_attr(not(feature = "content"), allow(unused_imports, dead_code))]

#[cfg(feature = "content")]
mod body;
mod rule;
#[cfg(feature = "content")]
mod service;

pub use rule::{Direction, RegexFlags, TransformError, TransformRule};
#[cfg(feature = "content")]
pub use service::{ResponseFuture, Transform, TransformEdit, TransformLayer};

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::{service_fn, Layer, Service, ServiceExt};

    use super::*;
    use crate::body::ProxyBody;
    use crate::layers::edit::tests::{
        check_responses_stream, event_data, responses_stream, responses_texts,
    };
    use crate::layers::edit::Channel;
    use crate::request::{Endpoint, LlmRequest};

    fn request(body: &str) -> Request<ProxyBody> {
        let llm = LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes()).unwrap();
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(llm);
        req
    }

    async fn answer(
        layer: TransformLayer,
        status: StatusCode,
        content_type: &'static str,
        body: &'static str,
    ) -> (http::HeaderMap, String) {
        let upstream = service_fn(move |_req: Request<ProxyBody>| async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .header("content-length", body.len())
                    .body(ProxyBody::full(body))
                    .unwrap(),
            )
        });
        let response = layer
            .layer(upstream)
            .oneshot(request(r#"{"model":"m","stream":true}"#))
            .await
            .unwrap();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn secret_rule() -> TransformRule {
        TransformRule::regex_replace("s", "secret", "[hidden]", RegexFlags::default())
            .unwrap()
            .on(Direction::Response)
    }

    #[tokio::test]
    async fn request_rules_edit_the_parsed_request() {
        let layer = TransformLayer::new([
            TransformRule::regex_replace("r", "(?i)bob", "B.", RegexFlags::default()).unwrap(),
            secret_rule(),
        ]);
        assert_eq!(layer.request_rules().len(), 1);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let upstream = service_fn(move |req: Request<ProxyBody>| {
            let seen = seen2.clone();
            async move {
                *seen.lock().unwrap() = req.extensions().get::<LlmRequest>().cloned();
                Ok::<_, Infallible>(Response::new(ProxyBody::empty()))
            }
        });
        layer
            .layer(upstream)
            .oneshot(request(
                r#"{"model":"m","messages":[{"role":"user","content":"Bob and secret"}]}"#,
            ))
            .await
            .unwrap();
        let llm = seen.lock().unwrap().take().unwrap();
        assert_eq!(llm.body()["messages"][0]["content"], "B. and secret");
    }

    #[tokio::test]
    async fn streamed_answer_matches_across_events_and_drops_length() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"my sec\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ret!\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (headers, out) = answer(
            TransformLayer::new([secret_rule()]),
            StatusCode::OK,
            "text/event-stream",
            sse,
        )
        .await;
        assert!(headers.get("content-length").is_none());
        let text: String = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(text, "my [hidden]!");
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    /// An upstream that answers once, with `body` as an event stream.
    fn streaming(
        body: ProxyBody,
    ) -> impl Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible> {
        let body = std::sync::Mutex::new(Some(body));
        service_fn(move |_req: Request<ProxyBody>| {
            let body = body.lock().unwrap().take().unwrap();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap(),
                )
            }
        })
    }

    /// `body` answered to a streamed request at `endpoint`, through `layer`.
    async fn stream_through(layer: &TransformLayer, endpoint: Endpoint, body: ProxyBody) -> String {
        let upstream = streaming(body);
        let llm =
            LlmRequest::parse(endpoint, br#"{"model":"m","stream":true,"input":"hi"}"#).unwrap();
        let mut req = Request::new(ProxyBody::empty());
        req.extensions_mut().insert(llm);
        let response = layer.layer(upstream).oneshot(req).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn chat_stream(deltas: &[&str]) -> String {
        let mut out = String::new();
        for d in deltas {
            let chunk = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": d}}]});
            out += &format!("data: {chunk}\n\n");
        }
        out + "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
    }

    /// The text deltas of a chat stream, one per event.
    fn chat_deltas(out: &str) -> Vec<String> {
        event_data(out)
            .into_iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    fn email_rule() -> TransformRule {
        TransformRule::regex_replace(
            "email",
            r"\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b",
            "[EMAIL]",
            RegexFlags::parse("IGNORECASE").unwrap(),
        )
        .unwrap()
        .on(Direction::Response)
    }

    const FIVE: [&str; 5] = ["Hello", " ther", "e, ho", "w are", " you?"];

    #[tokio::test]
    async fn text_that_cannot_match_is_not_held() {
        let layer = TransformLayer::new([secret_rule()]);
        // Each delta reaches the client whole, in its own event.
        let out = stream_through(
            &layer,
            Endpoint::ChatCompletions,
            ProxyBody::full(chat_stream(&FIVE)),
        )
        .await;
        assert_eq!(chat_deltas(&out)[..5], FIVE);
        let input = responses_stream(&[], &FIVE, &[]);
        let out = stream_through(&layer, Endpoint::Responses, ProxyBody::full(input.clone())).await;
        assert_eq!(out, input, "nothing to change, nothing held, nothing added");

        // ... as soon as it arrives: each event is out before the next is sent.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let frames = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|e| {
                e.map(|e| {
                    Ok::<_, crate::body::BoxError>(http_body::Frame::data(bytes::Bytes::from(e)))
                })
            })
        });
        let upstream = streaming(ProxyBody::new(http_body_util::StreamBody::new(frames)));
        let response = layer
            .layer(upstream)
            .oneshot(request(r#"{"model":"m","stream":true}"#))
            .await
            .unwrap();
        let mut body = response.into_body();
        for (event, delta) in chat_stream(&FIVE).split_inclusive("\n\n").zip(FIVE) {
            tx.send(event.to_string()).unwrap();
            let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(chat_deltas(std::str::from_utf8(&frame).unwrap()), [delta]);
        }
    }

    #[tokio::test]
    async fn an_email_split_anywhere_is_still_redacted() {
        let layer = TransformLayer::new([email_rule()]);
        let text = "Mail jo.doe@example.com or bob@x.io now.";
        let expected = "Mail [EMAIL] or [EMAIL] now.";
        for cut in 0..=text.len() {
            let deltas = [&text[..cut], &text[cut..]];
            let out = stream_through(
                &layer,
                Endpoint::ChatCompletions,
                ProxyBody::full(chat_stream(&deltas)),
            )
            .await;
            assert_eq!(chat_deltas(&out).concat(), expected, "cut at {cut}");
            let input = responses_stream(&[], &deltas, &[]);
            let out = stream_through(&layer, Endpoint::Responses, ProxyBody::full(input)).await;
            assert_eq!(
                responses_texts(&out)[&Channel::OutputText(1, 0)],
                expected,
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn responses_streams_are_transformed_consistently_in_any_chunking() {
        let layer = TransformLayer::new([
            email_rule(),
            TransformRule::regex_replace("s", "secret", "[hidden]", RegexFlags::default())
                .unwrap()
                .on(Direction::Response),
        ]);
        let input = responses_stream(
            &["User jo@ex", "ample.com wants the sec", "ret"],
            &["Sent to jo", "@example.", "com: the se", "cret is safe"],
            &["{\"to\":\"jo@", "example.com\"}"],
        );
        let through = |body| stream_through(&layer, Endpoint::Responses, body);
        check_responses_stream(
            &input,
            through,
            [
                "User [EMAIL] wants the [hidden]",
                "Sent to [EMAIL]: the [hidden] is safe",
                // Tool-call arguments are not prose.
                "{\"to\":\"jo@example.com\"}",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn json_answers_and_jsonpath_on_response() {
        let layer = TransformLayer::new([
            secret_rule(),
            TransformRule::jsonpath_drop("d", "$.system_fingerprint")
                .unwrap()
                .on(Direction::Response),
            TransformRule::jsonpath_add("a", "$.proxy", json!("llm-router"))
                .unwrap()
                .on(Direction::Response),
        ]);
        let (headers, out) = answer(
            layer.clone(),
            StatusCode::OK,
            "application/json",
            r#"{"id":"x","system_fingerprint":"fp","choices":[{"message":{"content":"a secret"}}]}"#,
        )
        .await;
        assert!(headers.get("content-length").is_none());
        assert_eq!(
            out,
            r#"{"id":"x","choices":[{"message":{"content":"a [hidden]"}}],"proxy":"llm-router"}"#
        );
        // Per event on streams too.
        let (_, out) = answer(
            layer.clone(),
            StatusCode::OK,
            "text/event-stream",
            "data: {\"system_fingerprint\":\"fp\",\"choices\":[]}\n\ndata: [DONE]\n\n",
        )
        .await;
        assert_eq!(
            out,
            "data: {\"choices\":[],\"proxy\":\"llm-router\"}\n\ndata: [DONE]\n\n"
        );
        // Errors pass as they are.
        let (headers, out) = answer(
            layer,
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"error":{"message":"secret"}}"#,
        )
        .await;
        assert_eq!(out, r#"{"error":{"message":"secret"}}"#);
        assert!(headers.get("content-length").is_some());
    }
}
