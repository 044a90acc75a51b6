//! [`env_name`]: how a backend's or model's name is written inside an
//! environment variable's name.

/// `LLM_ROUTER_BACKEND_<NAME>_API_KEY`'s (and `LLM_ROUTER_MODEL_<NAME>_API_KEY`'s) NAME: upper-cased, non-alphanumerics as `_`.
pub fn env_name(backend: &str) -> String {
    backend
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_name_rule() {
        assert_eq!(env_name("open-ai.eu"), "OPEN_AI_EU");
    }
}
