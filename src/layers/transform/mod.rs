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
//!   to the text deltas (`choices[].delta.content` and `choices[].text`;
//!   Anthropic `text_delta`s), then the JSONPath rules to each event's JSON
//!   document (`[DONE]` excluded). A match may span events: each rule holds
//!   back the last [`TransformRule::DEFAULT_HOLDBACK`] bytes of a choice's text
//!   (configurable per rule, `holdback`) until the next event, and releases
//!   them when the choice finishes (its `finish_reason` event), at `[DONE]`,
//!   or at the end of the stream. A match that starts in the text already
//!   sent, or is longer than the holdback, is not found; events whose text is
//!   held back are sent with that text empty.
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
//! use llm_router::request::{Endpoint, LlmRequest};
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

mod body;
mod rule;
mod service;

pub use rule::{Direction, RegexFlags, TransformError, TransformRule};
pub use service::{ResponseFuture, Transform, TransformLayer};

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::{service_fn, Layer, ServiceExt};

    use super::*;
    use crate::body::ProxyBody;
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
