//! The Response object of a stream in its current state, and the lifecycle
//! events that carry it: `response.created`, `response.in_progress`, and
//! the terminal `response.completed`, `response.incomplete` or
//! `response.failed`.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::super::answer::{status_of, Parts};
use super::item::Body;
use super::{Failure, ResponsesStream};

impl ResponsesStream {
    /// What the Response object says in this state.
    fn parts(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Parts<'_> {
        let in_progress = status == "in_progress";
        Parts {
            id: &self.id,
            created_at: self.created_at,
            status,
            model: self.model.as_deref().unwrap_or(&self.echo.model),
            output: if in_progress {
                Vec::new()
            } else {
                self.items.iter().map(|i| self.item_json(i)).collect()
            },
            usage: if in_progress {
                Value::Null
            } else {
                self.usage.clone()
            },
            incomplete,
            error,
            service_tier: self.service_tier.as_deref(),
        }
    }

    /// The Response object as JSON text (see [`Echo::write_response`]).
    fn response_json(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Vec<u8> {
        let mut json = Vec::with_capacity(1024);
        self.echo
            .write_response(&self.parts(status, incomplete, error), &mut json);
        json
    }

    /// A lifecycle event carrying the Response object (JSON text).
    fn emit_response(&mut self, out: &mut BytesMut, kind: &str, json: &[u8]) {
        // `kind` is one of the proxy's own `response.*` names: nothing in
        // it to escape.
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"response\":");
        out.extend_from_slice(json);
        out.extend_from_slice(b",\"sequence_number\":");
        out.extend_from_slice(self.sequence.to_string().as_bytes());
        out.extend_from_slice(b"}\n\n");
        self.sequence = self.sequence.saturating_add(1);
    }

    #[cfg(test)]
    fn response(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Value,
    ) -> Value {
        self.echo.response(self.parts(status, incomplete, error))
    }

    pub(super) fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        // The same object twice: written once.
        let json = self.response_json("in_progress", None, Value::Null);
        self.emit_response(out, "response.created", &json);
        self.emit_response(out, "response.in_progress", &json);
    }

    /// The terminal `response.completed` / `response.incomplete`.
    pub(super) fn complete(&mut self, out: &mut BytesMut) {
        self.start(out);
        self.close(out);
        let (status, incomplete) = status_of(self.finish);
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let json = self.response_json(status, incomplete, Value::Null);
        self.emit_response(out, kind, &json);
        self.done = true;
    }

    /// `error` then `response.failed`.
    pub(super) fn fail(&mut self, out: &mut BytesMut, failure: Failure) {
        self.start(out);
        if self.open {
            self.open = false;
            if let Some(item) = self.items.last_mut() {
                if !matches!(item.body, Body::Call { .. }) {
                    item.status = "incomplete";
                }
            }
        }
        // The SDKs' models read the top-level fields, the API (and the AI SDK)
        // the nested `error`: both.
        self.emit(
            out,
            "error",
            json!({"code": failure.code, "message": failure.message, "param": failure.param,
                   "error": {"type": failure.kind, "code": failure.code, "message": failure.message,
                             "param": failure.param}}),
        );
        let json = self.response_json(
            "failed",
            None,
            // The upstream's code, as the API passes it (Codex acts on
            // `context_length_exceeded`, `insufficient_quota`, `rate_limit_exceeded`).
            json!({"code": failure.code, "message": failure.message}),
        );
        self.emit_response(out, "response.failed", &json);
        self.done = true;
    }
}

#[cfg(test)]
mod written_response {
    use super::*;

    /// The Response object a stream writes as text is the one built as a
    /// document, field for field, in every state.
    #[test]
    fn written_like_built() {
        let request = json!({"model": "m", "instructions": "Be brief.", "temperature": 0.2,
            "service_tier": "flex", "tools": [{"type": "function", "name": "f", "parameters": {}}]});
        let mut stream = ResponsesStream::new(request.as_object().unwrap());
        let mut out = BytesMut::new();
        stream.start(&mut out);
        for (status, incomplete, error) in [
            ("in_progress", None, Value::Null),
            ("completed", None, Value::Null),
            ("incomplete", Some("max_output_tokens"), Value::Null),
            (
                "failed",
                None,
                json!({"code": "server_error", "message": "x"}),
            ),
        ] {
            let written: Value =
                serde_json::from_slice(&stream.response_json(status, incomplete, error.clone()))
                    .unwrap();
            let mut built = stream.response(status, incomplete, error);
            // Read at different instants.
            if let (Some(w), Some(b)) = (written.get("completed_at"), built.get_mut("completed_at"))
            {
                *b = w.clone();
            }
            assert_eq!(written, built, "{status}");
        }
    }
}
