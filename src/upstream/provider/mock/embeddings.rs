//! Embeddings: one deterministic unit vector per input, as floats or base64.

use base64::Engine as _;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::words::count_tokens;
use super::DEFAULT_EMBEDDING_DIMENSIONS;
use crate::body::ProxyBody;
use crate::error::{json_response, ProxyError};
use crate::request::LlmRequest;

pub(super) fn embeddings(
    request: &LlmRequest,
    model: &str,
) -> Result<Response<ProxyBody>, ProxyError> {
    let body = request.body();
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        // Token arrays: one input of integers, or many.
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
            items.iter().map(Value::to_string).collect()
        }
        _ => {
            return Err(ProxyError::bad_request(
                "invalid_input",
                "`input` must be a string, an array of strings, or token arrays",
            ))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_EMBEDDING_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=8192).contains(&n) => n as usize,
            _ => {
                return Err(ProxyError::bad_request(
                    "invalid_dimensions",
                    "`dimensions` must be an integer from 1 to 8192",
                ))
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ProxyError::bad_request(
                "invalid_encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\", not \"{other}\""),
            ))
        }
    };
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            tokens += count_tokens(text).max(1);
            let vector = embed(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::Array(vector.iter().map(|f| json!(f)).collect())
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    ))
}

/// A deterministic unit vector for `text`.
pub(super) fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a seed, then xorshift64*.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
