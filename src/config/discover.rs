//! Where `serve` and `check` find their config when `--config` names none.
//!
//! 1. `--config FILE`: that file.
//! 2. `config.toml` in the working directory.
//! 3. Otherwise a `.env` there is loaded first (its variables under the
//!    process environment: variables already set win; the process
//!    environment itself is never changed), then the first of
//!    `config.yaml`, `config.yml`, `llm_router_config.json` found there is
//!    the config file (read by content, see [`Config::load_with_env`]),
//! 4. or, with none of them, the config is built from the environment
//!    ([`zero`]).
//!
//! The choice is made once, at start-up ([`discover`]); a reload reads the
//! same files again ([`Source::load`]), the `.env` included.
//!
//! ```
//! use std::path::Path;
//! use llm_router::config::discover::{discover, Source};
//!
//! let dir = std::env::temp_dir().join(format!("discover-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join(".env"), "OPENAI_API_KEY=sk-from-dotenv\n").unwrap();
//! let source = discover(None, &dir);
//! assert_eq!(source, Source::Environment { dotenv: Some(dir.join(".env")) });
//! let loaded = source.load(&|_| None).unwrap();
//! assert_eq!(loaded.config.backends[0].name, "openai");
//! assert!(!loaded.mock_only);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::{Path, PathBuf};

use super::{dotenv, zero, Config, ConfigError};

/// The config file used when `--config` names none.
pub const DEFAULT_CONFIG: &str = "config.toml";
/// The `.env` file read without a config file.
pub const DOTENV: &str = ".env";
/// The other routers' files looked for without `config.toml`, in order.
pub const DISCOVERED: &[&str] = &["config.yaml", "config.yml", "llm_router_config.json"];

/// Where the config comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file named by `--config`, or `config.toml` (with the process
    /// environment only).
    File(PathBuf),
    /// A file found in the working directory without `config.toml`, and the
    /// `.env` beside it, if any.
    Discovered {
        /// The config file.
        file: PathBuf,
        /// The `.env` read first.
        dotenv: Option<PathBuf>,
    },
    /// No file: the environment (and the `.env`, if any).
    Environment {
        /// The `.env` read first.
        dotenv: Option<PathBuf>,
    },
}

/// A config read from a [`Source`], with what the start-up log tells.
#[derive(Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// How it was found, one line each (the `.env` read, the file found,
    /// the zero-config summary).
    pub notes: Vec<String>,
    /// Every backend is the local `mock`: no LLM is called.
    pub mock_only: bool,
}

/// Find the config: `explicit` (from `--config`) or the files in `dir` (the
/// working directory), as the [module docs](self) say.
pub fn discover(explicit: Option<&Path>, dir: &Path) -> Source {
    if let Some(path) = explicit {
        return Source::File(path.to_path_buf());
    }
    let default = dir.join(DEFAULT_CONFIG);
    if default.exists() {
        return Source::File(default);
    }
    let dotenv = Some(dir.join(DOTENV)).filter(|p| p.is_file());
    match DISCOVERED.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        Some(file) => Source::Discovered { file, dotenv },
        None => Source::Environment { dotenv },
    }
}

/// The variables of the `.env` at `path`.
fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        key: None,
        message: format!("cannot read the .env file: {e}"),
    })?;
    dotenv::parse(&text, &file)
}

impl Source {
    /// The files read, for `serve --reload` to watch.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Source::File(path) => vec![path],
            Source::Discovered { file, dotenv } => std::iter::once(file.as_path())
                .chain(dotenv.as_deref())
                .collect(),
            Source::Environment { dotenv } => dotenv.as_deref().into_iter().collect(),
        }
    }

    /// The config's path ([`zero::PATH`] for the environment).
    pub fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::Discovered { file: path, .. } => path,
            Source::Environment { .. } => Path::new(zero::PATH),
        }
    }

    /// Read the config, with `env` as the process environment.
    pub fn load(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
        let mut notes = Vec::new();
        let dotenv = match self {
            Source::File(_) => None,
            Source::Discovered { dotenv, .. } | Source::Environment { dotenv } => dotenv.as_ref(),
        };
        let vars = match dotenv {
            Some(path) => {
                let vars = read_dotenv(path)?;
                notes.push(format!(
                    "read {} ({} variables; variables already set in the environment win)",
                    path.display(),
                    vars.len()
                ));
                vars
            }
            None => Vec::new(),
        };
        let env = dotenv::overlay_on(env, vars);
        let config = match self {
            Source::File(path) => Config::load_with_env(path, &env)?,
            Source::Discovered { file, .. } => {
                notes.push(format!(
                    "no {DEFAULT_CONFIG}: using {} found in the working directory",
                    file.display()
                ));
                Config::load_with_env(file, &env)?
            }
            Source::Environment { dotenv } => {
                let mut zero = zero::from_environment(&env)?;
                notes.push(format!(
                    "no {DEFAULT_CONFIG}: the config is built from the environment"
                ));
                notes.extend(
                    zero.summary
                        .into_iter()
                        .map(|l| format!("environment: {l}")),
                );
                // A `.env` and nothing else is how the routers configured by
                // environment ran, on their address unless it says otherwise.
                if dotenv.is_some() && !LISTEN_VARIABLES.iter().any(|v| env(v).is_some()) {
                    let (host, port) = DOTENV_LISTEN;
                    zero.config.override_listen(Some(host.into()), Some(port));
                    notes.push(format!(
                        "listening on {host}:{port}, the address of routers configured by a .env (HOST and PORT change it)"
                    ));
                }
                zero.config
            }
        };
        let mock_only = config.backends.iter().all(|b| b.provider == "mock");
        Ok(Loaded {
            config,
            notes,
            mock_only,
        })
    }
}

/// The variables that set the listening address.
const LISTEN_VARIABLES: &[&str] = &[
    "LLM_ROUTER_SERVER_HOST",
    "LLM_ROUTER_SERVER_PORT",
    "PROXY_API_HOST",
    "PROXY_API_PORT",
    "HOST",
    "PORT",
];

/// Where a config built from a `.env` (and the environment) listens when no
/// variable says: the `HOST`/`PORT` defaults of the routers configured that
/// way, so their clients keep their URL (`http://localhost:8000`).
pub const DOTENV_LISTEN: (&str, u16) = ("0.0.0.0", 8000);

/// The start-up warning of a config whose backends are all `mock`.
pub const MOCK_ONLY_WARNING: &str = "only the mock backend is configured: no LLM is called, every answer is a local echo of the last user message (marked with the header `x-llm-router-mock: true`); set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, ... or write a config (`llm-router init`)";

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("llm-router-discover-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const MOCK: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

    #[test]
    fn the_order() {
        let d = Dir::new("order");
        assert_eq!(discover(None, &d.0), Source::Environment { dotenv: None });
        let env_file = d.write(".env", "A=1\n");
        assert_eq!(
            discover(None, &d.0),
            Source::Environment {
                dotenv: Some(env_file.clone())
            }
        );
        let json = d.write("llm_router_config.json", "{}");
        assert_eq!(
            discover(None, &d.0),
            Source::Discovered {
                file: json,
                dotenv: Some(env_file.clone())
            }
        );
        let yml = d.write("config.yml", "x: 1\n");
        assert_eq!(
            discover(None, &d.0),
            Source::Discovered {
                file: yml,
                dotenv: Some(env_file.clone())
            }
        );
        let yaml = d.write("config.yaml", "x: 1\n");
        let found = discover(None, &d.0);
        assert_eq!(
            found,
            Source::Discovered {
                file: yaml.clone(),
                dotenv: Some(env_file.clone())
            }
        );
        assert_eq!(found.files(), [yaml.as_path(), env_file.as_path()]);
        let toml = d.write("config.toml", MOCK);
        assert_eq!(discover(None, &d.0), Source::File(toml));
        let other = d.0.join("other.toml");
        assert_eq!(discover(Some(&other), &d.0), Source::File(other));
    }

    #[test]
    fn a_dotenv_alone_listens_where_those_routers_did() {
        let d = Dir::new("dotenv-listen");
        d.write(".env", "OPENAI_API_KEY=sk-file\n");
        let none = |_: &str| None;
        let loaded = discover(None, &d.0).load(&none).unwrap();
        assert_eq!(loaded.config.server.listen(), "0.0.0.0:8000");
        assert!(loaded.notes.iter().any(|n| n.contains("0.0.0.0:8000")));
        // A variable that sets the address wins; without a .env, ours.
        let port = |name: &str| (name == "PORT").then(|| "9002".to_string());
        let loaded = discover(None, &d.0).load(&port).unwrap();
        assert_eq!(loaded.config.server.port, 9002);
        let bare = Dir::new("no-dotenv");
        let key = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk".to_string());
        let loaded = discover(None, &bare.0).load(&key).unwrap();
        assert_eq!(loaded.config.server.listen(), "127.0.0.1:8080");
    }

    #[test]
    fn the_dotenv_is_under_the_environment() {
        let d = Dir::new("dotenv");
        d.write(
            ".env",
            "OPENAI_API_KEY=sk-file\nANTHROPIC_API_KEY=sk-ant-file\nLLM_ROUTER_SERVER_PORT=9001\n",
        );
        let process = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-process".to_string());
        let loaded = discover(None, &d.0).load(&process).unwrap();
        let key = |name: &str| {
            loaded
                .config
                .backends
                .iter()
                .find(|b| b.name == name)
                .and_then(|b| b.api_key.clone())
        };
        use crate::config::ApiKeySetting::Key;
        assert_eq!(key("openai"), Some(Key("sk-process".into())));
        assert_eq!(key("anthropic"), Some(Key("sk-ant-file".into())));
        assert_eq!(loaded.config.server.port, 9001);
        assert!(
            loaded.notes[0].contains(".env (3 variables"),
            "{:?}",
            loaded.notes
        );
        assert!(!loaded.mock_only);
        // A bad line is named.
        d.write(".env", "A=1\nnot a variable\n");
        let e = discover(None, &d.0).load(&|_| None).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.file.ends_with(".env"), "{e}");
    }

    #[test]
    fn mock_only_is_told() {
        let d = Dir::new("mock");
        let loaded = discover(None, &d.0).load(&|_| None).unwrap();
        assert!(loaded.mock_only);
        let loaded = Source::File(d.write("c.toml", MOCK))
            .load(&|_| None)
            .unwrap();
        assert!(loaded.mock_only);
        assert!(loaded.notes.is_empty());
    }

    #[test]
    fn a_discovered_file_is_named_and_read_with_the_dotenv() {
        let d = Dir::new("found");
        d.write(".env", "LLM_ROUTER_SERVER_PORT=9002\n");
        // Any format Config::load reads; a LiteLLM config.yaml here.
        d.write(
            "config.yaml",
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: sk-x\n",
        );
        let loaded = discover(None, &d.0).load(&|_| None).unwrap();
        assert!(
            loaded.notes.iter().any(|n| n.contains("config.yaml found")),
            "{:?}",
            loaded.notes
        );
        assert_eq!(loaded.config.server.port, 9002);
        assert!(loaded.config.path.ends_with("config.yaml"));
    }
}
