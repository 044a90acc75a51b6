//! The `llm-router` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llm_router::config::Config;
use llm_router::server::{shutdown_signal, Server};

#[derive(Parser)]
#[command(
    name = "llm-router",
    version,
    about = "One OpenAI-compatible endpoint in front of many LLM providers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy.
    Serve {
        /// Config file.
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
        /// Host to listen on (overrides [server] listen and LLM_ROUTER_SERVER_HOST).
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on (overrides [server] listen and LLM_ROUTER_SERVER_PORT).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Validate a config file and print what it would build.
    Check {
        /// Config file.
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
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
        Command::Serve { config, host, port } => serve(&config, host, port),
        Command::Check { config } => check(&config),
        Command::Init { path } => init(&path),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(path: &Path, host: Option<String>, port: Option<u16>) -> ExitCode {
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    config.override_listen(host, port);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
            llm_router::provider::by_name(&b.provider)
                .and_then(|p| p.default_base_url())
                .map(str::to_string)
        });
        let key = match &b.api_key {
            None => "no key".to_string(),
            Some(llm_router::config::ApiKeySetting::Passthrough) => {
                "client's key (passthrough)".to_string()
            }
            Some(llm_router::config::ApiKeySetting::Key(k)) => {
                format!("key {}", llm_router::secret::mask_key(k))
            }
        };
        println!(
            "backend {}: provider {}{} ({key})",
            b.name,
            b.provider,
            url.map(|u| format!(" at {u}"))
                .unwrap_or_else(|| " (local)".into())
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
        println!("model {} -> {}", m.name, targets.join(", "));
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
    for w in config.warnings() {
        println!("warning: {w}");
    }
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
