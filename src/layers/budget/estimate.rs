//! What a request may cost at most, before it is sent ([`Estimate`]). What
//! an answer is charged once it ends is its
//! [`UsageSlot`](crate::usage::UsageSlot)'s rule.

use serde_json::{Map, Value};

use crate::request::{Endpoint, LlmRequest};
use crate::tokens::{self, CountFormat};

/// A request's reservation in tokens: its input, counted with the
/// tokenizer, and the most output it asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Input tokens (see [`input_tokens`]).
    pub input: u64,
    /// Output tokens: the request's `max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens`, else the configured default; 0 for embeddings.
    pub output: u64,
}

impl Estimate {
    /// Input and output together.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// The estimate of `llm`, counted inline when cheap, else on tokio's
    /// blocking threads (a large request's count takes milliseconds).
    pub(crate) async fn of(llm: &LlmRequest, default_max_tokens: u64) -> Estimate {
        let output = max_output_tokens(llm.endpoint(), llm.body(), default_max_tokens);
        let input = if tokens::counts_inline(llm.body()) {
            input_tokens(llm.endpoint(), llm.body())
        } else {
            let endpoint = llm.endpoint();
            let request = llm.clone();
            let counted = match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || input_tokens(endpoint, request.body()))
                    .await
                    .ok(),
                Err(_) => None,
            };
            counted.unwrap_or_else(|| input_tokens(llm.endpoint(), llm.body()))
        };
        Estimate { input, output }
    }
}

/// The most output tokens a request asked for (`max_tokens`,
/// `max_completion_tokens`, `max_output_tokens`: the largest given), or
/// `default` when it names none; 0 for an endpoint that generates nothing
/// (embeddings, token counts).
pub fn max_output_tokens(endpoint: Endpoint, body: &Map<String, Value>, default: u64) -> u64 {
    if matches!(
        endpoint,
        Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::InputTokens
    ) {
        return 0;
    }
    ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_u64))
        .max()
        .unwrap_or(default)
}

/// The input tokens of a request body (the tokenizer of `tokens`): chat and
/// Messages bodies by their messages, system prompt and tools; Responses
/// bodies by their input, instructions and tools; completions and
/// embeddings by their `prompt` / `input` texts.
pub fn input_tokens(endpoint: Endpoint, body: &Map<String, Value>) -> u64 {
    match endpoint {
        Endpoint::Messages | Endpoint::ChatCompletions | Endpoint::CountTokens => {
            tokens::estimate(CountFormat::Anthropic, body)
        }
        Endpoint::Responses | Endpoint::InputTokens => {
            tokens::estimate(CountFormat::Responses, body)
        }
        Endpoint::Completions => body.get("prompt").map_or(0, texts),
        Endpoint::Embeddings => body.get("input").map_or(0, texts),
    }
}

/// The tokens of a `prompt` / `input`: a string, an array of strings, or
/// token ids (one each); anything else by its JSON text.
fn texts(value: &Value) -> u64 {
    match value {
        Value::String(s) => tokens::count_text(s),
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().fold(0u64, |n, item| {
            n.saturating_add(match item {
                Value::String(s) => tokens::count_text(s),
                Value::Number(_) => 1,
                // An array of token ids (one prompt of several).
                Value::Array(ids) => u64::try_from(ids.len()).unwrap_or(u64::MAX),
                other => tokens::bytes_estimate(other.to_string().len()),
            })
        }),
        other => tokens::bytes_estimate(other.to_string().len()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn output_is_the_largest_max_or_the_default() {
        let chat = Endpoint::ChatCompletions;
        assert_eq!(max_output_tokens(chat, &map(json!({})), 4096), 4096);
        assert_eq!(
            max_output_tokens(chat, &map(json!({"max_tokens": 10})), 4096),
            10
        );
        assert_eq!(
            max_output_tokens(
                chat,
                &map(json!({"max_tokens": 10, "max_completion_tokens": 30})),
                4096
            ),
            30
        );
        assert_eq!(
            max_output_tokens(
                Endpoint::Responses,
                &map(json!({"max_output_tokens": 7})),
                4096
            ),
            7
        );
        // Not a whole number: the default.
        assert_eq!(
            max_output_tokens(chat, &map(json!({"max_tokens": -1})), 4096),
            4096
        );
        assert_eq!(
            max_output_tokens(Endpoint::Embeddings, &map(json!({"max_tokens": 9})), 4096),
            0
        );
    }

    #[test]
    fn inputs_per_endpoint() {
        let chat =
            map(json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]}));
        // "hello world": 2 tokens + 4 for the message + 3 for the reply.
        assert_eq!(input_tokens(Endpoint::ChatCompletions, &chat), 9);
        assert_eq!(input_tokens(Endpoint::Messages, &chat), 9);
        let responses = map(json!({"model": "m", "input": "hello world"}));
        assert_eq!(input_tokens(Endpoint::Responses, &responses), 9);
        let embed = map(json!({"model": "m", "input": ["hello world", "hello"]}));
        assert_eq!(input_tokens(Endpoint::Embeddings, &embed), 3);
        let ids = map(json!({"model": "m", "prompt": [[1, 2, 3], [4]]}));
        assert_eq!(input_tokens(Endpoint::Completions, &ids), 4);
        assert_eq!(
            input_tokens(Endpoint::Completions, &map(json!({"model": "m"}))),
            0
        );
    }
}
