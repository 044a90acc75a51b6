//! `.env` files: `NAME=value` lines as python-dotenv reads them (comments,
//! `export NAME=...`, single- or double-quoted values that may span lines).
//!
//! The routers our users come from are configured this way; llm-router reads
//! a `.env` in the working directory at start-up when no `--config` names a
//! file and there is no `config.toml` (variables already set in the process
//! win), and `serve --config .env` builds its config from the file.
//!
//! ```
//! let vars = llm_router::config::dotenv::parse(
//!     "# keys\nOPENAI_API_KEY=sk-test\nROUTER_SERVICES='[\n  {\"name\": \"a\"}\n]'\n",
//!     ".env",
//! )
//! .unwrap();
//! assert_eq!(vars[0], ("OPENAI_API_KEY".to_string(), "sk-test".to_string()));
//! assert_eq!(vars[1].1, "[\n  {\"name\": \"a\"}\n]");
//! ```

use std::path::Path;

use super::ConfigError;

/// The variables of a `.env` file, in file order. A line that is not
/// `NAME=value` is an error naming its line.
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line_text, _)) => {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: line_of(text, &line_text),
                    key: None,
                    message: format!(
                        "not a NAME=value line: `{}`",
                        line_text.chars().take(80).collect::<String>()
                    ),
                })
            }
            Err(e) => {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: None,
                    key: None,
                    message: format!("cannot read the .env file: {e}"),
                })
            }
        }
    }
    Ok(vars)
}

/// Whether `text` read from `path` is a `.env` file: named `.env` (or
/// `*.env`, `.env.*`), or text that reads as one with at least a variable.
pub fn is_dotenv(path: &Path, text: &str) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == ".env" || name.ends_with(".env") || name.starts_with(".env.") {
        return true;
    }
    parse(text, name).is_ok_and(|vars| !vars.is_empty())
}

/// A lookup that reads the process environment first and the file's
/// variables second: variables already set win, as with python-dotenv.
pub fn overlay(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        std::env::var(name).ok().or_else(|| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// A lookup that reads `base` first and the file's variables second (as
/// [`overlay`] does, with any environment: the process's, or a test's).
pub fn overlay_on<'a>(
    base: &'a dyn Fn(&str) -> Option<String>,
    vars: Vec<(String, String)>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        base(name).or_else(|| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// The 1-based line where `line_text` (as dotenvy reports it) starts.
fn line_of(text: &str, line_text: &str) -> Option<usize> {
    let first = line_text.lines().next()?.trim();
    text.lines()
        .position(|l| l.trim() == first)
        .map(|i| i.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_003: &str = r#"# Router will automatically activate with multiple backends
CEREBRAS_API_KEY=your_cerebras_api_key_here
OPENAI_API_KEY=sk-your_openai_api_key_here
# Ollama works without API key
OLLAMA_BASE_URL=http://localhost:11434/v1
ROUTER_SERVICES='[
  {
    "name": "primary-cerebras",
    "backend_type": "cerebras",
    "priority": 0
  }
]'
AUTH_KEY=sk-your-secret-api-key
ENABLE_AUTH=false
"#;

    #[test]
    fn reads_the_003_router_env_file() {
        let vars = parse(SEED_003, ".env").unwrap();
        let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "CEREBRAS_API_KEY",
                "OPENAI_API_KEY",
                "OLLAMA_BASE_URL",
                "ROUTER_SERVICES",
                "AUTH_KEY",
                "ENABLE_AUTH"
            ]
        );
        let services: serde_json::Value = serde_json::from_str(&vars[3].1).unwrap();
        assert_eq!(services[0]["name"], "primary-cerebras");
        assert!(is_dotenv(Path::new("settings"), SEED_003));
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse("A=1\nnot a variable\n", "x.env").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("not a NAME=value"), "{e}");
    }

    #[test]
    fn detection_by_name_and_content() {
        assert!(is_dotenv(Path::new("/x/.env"), ""));
        assert!(is_dotenv(Path::new("prod.env"), ""));
        assert!(!is_dotenv(Path::new("config.yaml"), "models:\n  gpt-4:\n"));
        assert!(!is_dotenv(Path::new("c.json"), "{\"openai\": []}"));
        assert!(!is_dotenv(Path::new("empty"), "\n# only a comment\n"));
    }

    #[test]
    fn the_process_environment_wins() {
        let lookup = overlay(vec![
            ("PATH".into(), "from-file".into()),
            ("LLM_ROUTER_DOTENV_TEST_ONLY_IN_FILE".into(), "file".into()),
        ]);
        assert_ne!(lookup("PATH").as_deref(), Some("from-file"));
        assert_eq!(
            lookup("LLM_ROUTER_DOTENV_TEST_ONLY_IN_FILE").as_deref(),
            Some("file")
        );
    }
}
