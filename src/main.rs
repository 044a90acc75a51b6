//! The `llm-router` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use llm_router::config::discover::{discover, Loaded, Source, MOCK_ONLY_WARNING};
use llm_router::config::ConfigError;
use llm_router::server::{shutdown_signal, Server};

#[derive(Parser)]
#[command(
    name = "llm-router",
    version,
    about = "One OpenAI-compatible endpoint in front of many LLM providers.",
    // `llm-router [OPTIONS]` without a subcommand is `serve [OPTIONS]`.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// `serve`'s options (also taken without a subcommand).
#[derive(clap::Args)]
struct ServeArgs {
    /// Config file: config.toml, or another router's config.yaml / JSON [default: config.toml;
    /// when there is none, a .env is read, then config.yaml, config.yml or llm_router_config.json
    /// is used, else the config is built from the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY,
    /// GEMINI_API_KEY, CEREBRAS_API_KEY, DEEPINFRA_TOKEN, OLLAMA_BASE_URL, ROUTER_SERVICES)]
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Host to listen on (overrides [server] listen and LLM_ROUTER_SERVER_HOST).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (overrides [server] listen and LLM_ROUTER_SERVER_PORT).
    #[arg(long)]
    port: Option<u16>,
    /// Watch the config file (and the .env read with it) and reload it when it changes, as
    /// POST /admin/reload does; an invalid edit is logged and the config in force keeps serving.
    #[arg(long)]
    reload: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy (the default without a subcommand).
    Serve(ServeArgs),
    /// Validate a config file and print what it would build.
    Check {
        /// Config file: config.toml or another router's (see `import`), told by its content
        /// [default: config.toml; when there is none, the config built from the environment is
        /// checked]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the config.toml equivalent to another router's config file (a LiteLLM config.yaml,
    /// the `models:` or `providers:` YAML, the `openai`/`anthropic` JSON, a .env), told by its
    /// content (warnings go to stderr).
    Import {
        /// The file to import.
        path: PathBuf,
    },
    /// Print the config.toml equivalent to a LiteLLM proxy config (warnings go to stderr).
    ImportLitellm {
        /// The LiteLLM config (config.yaml).
        path: PathBuf,
    },
    /// Write an example config file (refuses to overwrite).
    Init {
        /// Where to write it.
        #[arg(default_value = "config.toml")]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Check { config }) => check(config.as_deref()),
        Some(Command::Init { path }) => init(&path),
        Some(Command::ImportLitellm { path }) => import_litellm(&path),
        Some(Command::Import { path }) => import(&path),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A stderr that cannot be written (a full disk under a redirect) loses
        // lines; reporting that with `eprintln!` would panic in whatever task
        // was logging.
        .log_internal_errors(false)
        .init();
}

/// The default config file.
const DEFAULT_CONFIG: &str = llm_router::config::discover::DEFAULT_CONFIG;

/// The config named by `--config`; else `config.toml`; else the files found
/// in the working directory, or the environment (see
/// [`llm_router::config::discover`]).
fn load(path: Option<&Path>) -> Result<(Source, Loaded), ConfigError> {
    let source = discover(path, Path::new(""));
    let loaded = source.load(&|name| std::env::var(name).ok())?;
    Ok((source, loaded))
}

/// The async runtime: one worker thread per CPU this process may run on.
/// With a single CPU (pinned with `taskset`, or a container limited to one
/// core) the runtime is single-threaded, as an nginx worker is: a
/// work-stealing scheduler with one worker only adds cross-thread wake-ups
/// (the README's performance section has the measurement).
fn runtime_builder() -> tokio::runtime::Builder {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() == 1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs {
        config: path,
        host,
        port,
        reload,
    } = args;
    let (source, loaded) = match load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Loaded {
        mut config,
        notes,
        mock_only,
    } = loaded;
    for line in &notes {
        tracing::info!("{line}");
    }
    if mock_only {
        tracing::warn!("{MOCK_ONLY_WARNING}");
    }
    // A reload (SIGHUP, POST /admin/reload, --reload) reads the same source
    // and applies the same overrides.
    let source =
        llm_router::server::ConfigSource::new(source).with_listen_overrides(host.clone(), port);
    let watched: Vec<PathBuf> = source.files().iter().map(|p| p.to_path_buf()).collect();
    if reload && watched.is_empty() {
        tracing::warn!(
            "--reload: the config is built from the environment alone, there is no file to watch"
        );
    }
    config.override_listen(host, port);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match runtime_builder().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        server.app().set_config_source(source);
        // Panics go to the `exceptions.json` of each live `log` layer of the
        // app (those of the stacks its reloads build included).
        #[cfg(feature = "observability")]
        llm_router::layers::log::install_panic_hook(&server.app().log_flush());
        if reload && !watched.is_empty() {
            let shown = watched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            // The files are looked at before the line that says they are
            // watched: an edit made after it is seen.
            let watch = llm_router::server::watching(
                server.app().clone(),
                watched,
                llm_router::server::POLL_INTERVAL,
            )
            .await;
            tokio::spawn(watch);
            tracing::info!(
                "--reload: watching {shown} (every {:?})",
                llm_router::server::POLL_INTERVAL
            );
        }
        // The signal handlers are installed here, before the address is
        // announced: a supervisor may signal as soon as it sees it.
        let shutdown = shutdown_signal();
        let scheme = if server.is_tls() { "https" } else { "http" };
        tracing::info!(
            "llm-router {} listening on {scheme}://{} (config {}, models: {})",
            env!("CARGO_PKG_VERSION"),
            server.local_addr(),
            config.path.display(),
            config
                .models
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        match server.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn check(path: Option<&Path>) -> ExitCode {
    let (_, loaded) = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // (A mock-only config is told by the zero-config summary; `serve` warns.)
    let Loaded { config, notes, .. } = loaded;
    for line in &notes {
        println!("{line}");
    }
    let built = match llm_router::stack::build(&config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config {} is valid", config.path.display());
    println!(
        "server: listen {} body_limit {}{}",
        config.server.listen(),
        config.server.body_limit,
        if config.server.tls_cert.is_some() {
            " tls"
        } else {
            ""
        }
    );
    for b in &config.backends {
        let url = b.base_url.clone().or_else(|| {
            llm_router::upstream::provider::by_name(&b.provider)
                .and_then(|p| p.default_base_url())
                .map(str::to_string)
        });
        let key = match &b.api_key {
            None => "no key".to_string(),
            Some(llm_router::config::ApiKeySetting::Passthrough) => {
                "client's key (passthrough)".to_string()
            }
            Some(llm_router::config::ApiKeySetting::Key(k)) => {
                format!("key {}", llm_router::config::mask_key(k))
            }
        };
        println!(
            "backend {}: provider {}{} ({key}){}",
            b.name,
            b.provider,
            url.map(|u| format!(" at {u}"))
                .unwrap_or_else(|| " (local)".into()),
            if b.tools == llm_router::config::BackendTools::Xml {
                ", tools emulated through XML"
            } else {
                ""
            }
        );
    }
    for m in &config.models {
        let targets: Vec<String> = m
            .targets
            .iter()
            .map(|t| {
                format!(
                    "{}/{} (priority {}, weight {})",
                    t.backend,
                    t.model.as_deref().unwrap_or("*"),
                    t.priority,
                    t.weight
                )
            })
            .collect();
        println!(
            "model {}{} -> {}",
            m.name,
            if m.strip_prefix {
                " (prefix removed upstream)"
            } else {
                ""
            },
            targets.join(", ")
        );
    }
    for k in config
        .auth
        .keys
        .iter()
        .filter_map(|k| k.virtual_key.as_deref())
    {
        let mut parts = vec![format!("key {}", k.key().masked())];
        if let Some(models) = k.models() {
            parts.push(format!(
                "models {}",
                models.patterns().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(e) = k.expires() {
            parts.push(format!("expires {}", e.as_str()));
        }
        if k.rate_limit().is_some() {
            parts.push("own rate_limit".into());
        }
        if let Some(b) = k.budget() {
            parts.push(format!("budget {b}"));
        }
        println!("virtual key {}: {}", k.name(), parts.join("; "));
    }
    let names =
        |v: &[llm_router::stack::LayerName]| v.iter().map(|l| l.as_str()).collect::<Vec<_>>();
    for l in names(&built.outer) {
        println!("layer {l} (whole request)");
    }
    println!(
        "layer {} (split point)",
        if config
            .stack
            .contains(&llm_router::stack::LayerName::Failover)
        {
            "failover"
        } else {
            "route: first target"
        }
    );
    for l in names(&built.inner) {
        println!("layer {l} (per target)");
    }
    if config.state.store == llm_router::config::StoreKind::Redis {
        println!(
            "state: redis {} (prefix {}, timeout {:?}): limits, cooldowns and circuits shared",
            config.state.redis_url_for_logs(),
            config.state.prefix,
            config.state.timeout
        );
    }
    for w in config.warnings() {
        println!("warning: {w}");
    }
    ExitCode::SUCCESS
}

fn import_litellm(path: &Path) -> ExitCode {
    // Validated as the config.toml it is meant to become, next to the YAML.
    let target = path.with_file_name(DEFAULT_CONFIG);
    print_import(path, &target, llm_router::config::litellm::import)
}

fn import(path: &Path) -> ExitCode {
    // Validated next to the source, where its relative paths resolve.
    print_import(path, path, llm_router::config::import::import)
}

/// Read `path`, turn it into config.toml text with `convert`, validate that
/// as if it were at `validate_as`, and print it (warnings on stderr).
fn print_import(
    path: &Path,
    validate_as: &Path,
    convert: fn(&str, &Path) -> Result<llm_router::config::import::Imported, ConfigError>,
) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: cannot read the file: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let imported = match convert(&text, path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = imported.validate(validate_as) {
        eprintln!("error: the imported config is not valid: {e}");
        return ExitCode::FAILURE;
    }
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", imported.toml);
    ExitCode::SUCCESS
}

fn init(path: &Path) -> ExitCode {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    match file {
        Ok(mut f) => {
            use std::io::Write;
            if let Err(e) = f.write_all(llm_router::EXAMPLE_CONFIG.as_bytes()) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!(
                "wrote {}; start the proxy with: llm-router serve --config {}",
                path.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "error: {} already exists; not overwriting it",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
