//! [`ClientFormat`]: the API dialect a client speaks.
//!
//! Shared vocabulary of the `request` module (which re-exports it) and the
//! `error` module (which renders errors in it); it depends on neither.

/// The API dialect a client speaks; errors and answers are rendered in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientFormat {
    /// OpenAI's Chat Completions / Completions / Embeddings API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Responses API (`/v1/responses`); its errors are OpenAI's.
    Responses,
}

impl ClientFormat {
    /// The format errors are rendered in: Responses clients read OpenAI's.
    pub fn error_format(self) -> ClientFormat {
        match self {
            ClientFormat::Responses => ClientFormat::OpenAi,
            other => other,
        }
    }
}
