//! What a request may cost at most, before it is sent ([`Estimate`]), and
//! what an answer is charged once it ends ([`charged_usage`]).

use serde_json::{Map, Value};

use crate::request::{Endpoint, LlmRequest};
use crate::tokens::{self, CountFormat};
use crate::usage::Usage;

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

/// How an answer ended, for [`charged_usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// All of it went out.
    Complete,
    /// It failed or was dropped before its end (the client went away).
    Cut,
}

/// The usage an answer is charged.
///
/// - It went out whole and the upstream reported its usage: that usage.
/// - Otherwise (a cut or cancelled stream, an answer without usage): the
///   input the upstream reported, else the reservation's input estimate;
///   and the larger of the output the upstream reported and the output
///   *delivered*, estimated as one token per 4 bytes sent to the client
///   (framing included, so never less than what was delivered), capped at
///   the reservation's output.
///
/// A budget is never charged less than what the upstream reported, and for
/// a cancelled answer never more than its reservation unless the upstream
/// reported more.
///
/// ```
/// use llm_router::layers::budget::{charged_usage, Ended, Estimate, Usage};
///
/// let estimate = Estimate { input: 100, output: 1_000 };
/// let reported = Usage { prompt_tokens: 90, completion_tokens: 40, total_tokens: 130, ..Usage::default() };
/// assert_eq!(charged_usage(Ended::Complete, Some(reported), 9_999, estimate), reported);
/// // Cancelled after 400 bytes, nothing reported: 100 in, 100 out.
/// let cut = charged_usage(Ended::Cut, None, 400, estimate);
/// assert_eq!((cut.prompt_tokens, cut.completion_tokens), (100, 100));
/// ```
pub fn charged_usage(
    ended: Ended,
    reported: Option<Usage>,
    delivered_bytes: u64,
    estimate: Estimate,
) -> Usage {
    if let (Ended::Complete, Some(usage)) = (ended, reported) {
        return usage;
    }
    let reported = reported.unwrap_or_default();
    let prompt = if reported.prompt_tokens > 0 {
        reported.prompt_tokens
    } else {
        estimate.input
    };
    let delivered = delivered_bytes.div_ceil(4).min(estimate.output);
    let completion = reported.completion_tokens.max(delivered);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt.saturating_add(completion),
        cached_tokens: reported.cached_tokens.min(prompt),
        cache_write_tokens: reported.cache_write_tokens.min(prompt),
        reasoning_tokens: reported.reasoning_tokens.min(completion),
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

    #[test]
    fn charges() {
        let e = Estimate {
            input: 100,
            output: 50,
        };
        let u = |p, c| Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
            ..Usage::default()
        };
        // Complete with usage: the usage, even above the estimate.
        assert_eq!(
            charged_usage(Ended::Complete, Some(u(5, 500)), 0, e),
            u(5, 500)
        );
        // Complete without usage: the input estimate and what was delivered.
        assert_eq!(charged_usage(Ended::Complete, None, 40, e), u(100, 10));
        // Cut with the input reported (Anthropic's message_start): that input.
        assert_eq!(charged_usage(Ended::Cut, Some(u(80, 1)), 8, e), u(80, 2));
        // Delivered more than the reservation's output: capped.
        assert_eq!(charged_usage(Ended::Cut, None, 1 << 20, e), u(100, 50));
        // Reported more than that: the reported output.
        assert_eq!(charged_usage(Ended::Cut, Some(u(0, 70)), 0, e), u(100, 70));
        // Nothing delivered: the input.
        assert_eq!(charged_usage(Ended::Cut, None, 0, e), u(100, 0));
    }
}
