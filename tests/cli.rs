//! Drives the real `llm-router` binary: `--version`, `--help`, `check`, `init`
//! and `serve`, each in an empty environment (only PATH), with config files
//! in a per-test temporary directory.
//!
//! Config errors must read `error: FILE:LINE: KEY: message`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// A valid config: a mock backend on lines 1-3, a model on lines 5-7.
const MIN: &str = r#"[[backends]]
name = "local"
provider = "mock"

[[models]]
name = "echo"
targets = [{ backend = "local" }]
"#;

// ---------------------------------------------------------------------------
// Helpers

mod support;

/// A per-test directory, removed on drop.
use support::binary::{llm_router, stderr, stdout, WorkDir as TempDir};

/// `llm-router check --config FILE` with `env`: asserts success, returns stdout.
fn check_ok(file: &Path, env: &[(&str, &str)]) -> String {
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "stdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    text
}

/// `llm-router check --config <text written to a temp file>` with `env` as
/// the whole environment (plus PATH). Returns the config's path too.
fn check_config(test: &str, text: &str, env: &[(&str, &str)]) -> (TempDir, PathBuf, Output) {
    let dir = TempDir::new(test);
    let path = dir.write("config.toml", text);
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run llm-router check");
    (dir, path, out)
}

/// Assert that `check` failed with exactly one line
/// `error: FILE:LINE: KEY: message` whose message contains every word of `words`.
/// Returns the message.
fn assert_config_error(
    out: &Output,
    file: &Path,
    line: usize,
    key: &str,
    words: &[&str],
) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "check should exit 1\nstdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(
        stdout(out).is_empty(),
        "nothing on stdout on error, got:\n{}",
        stdout(out)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected, got:\n{err}");
    let prefix = format!("error: {}:{line}: {key}: ", file.display());
    let message = lines[0]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected the error to start with\n  {prefix}\ngot\n  {err}"))
        .to_string();
    for word in words {
        assert!(
            message.contains(word),
            "the message should contain {word:?}: {message}"
        );
    }
    message
}

/// Check `text` and expect the error at `line`/`key` with `words`.
fn expect_error(test: &str, text: &str, line: usize, key: &str, words: &[&str]) -> String {
    let (_dir, path, out) = check_config(test, text, &[]);
    assert_config_error(&out, &path, line, key, words)
}

/// Check `text` (with `env`) and expect success; returns stdout.
fn expect_valid(test: &str, text: &str, env: &[(&str, &str)]) -> String {
    let (_dir, _path, out) = check_config(test, text, env);
    assert!(
        out.status.success(),
        "check should accept the config\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

// ---------------------------------------------------------------------------
// --version, --help

#[test]
fn version_prints_the_version() {
    let out = llm_router().arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("llm-router {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_subcommands() {
    let out = llm_router().arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    for sub in ["serve", "check", "init"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "--help should list `{sub}`:\n{help}"
        );
    }
    assert!(help.contains("--version"), "{help}");
}

#[test]
fn no_subcommand_is_serve() {
    // `llm-router --config X --port P` is `llm-router serve --config X --port P`.
    let dir = TempDir::new("no-subcommand");
    let config = dir.write("custom.toml", MIN);
    let port = free_port();
    let mut cmd = llm_router();
    cmd.arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string()]);
    let mut served = Served::start(cmd);
    let line = served.wait_listening();
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    assert_healthy(&http_get(port, "/health"));
    served.terminate();
    // Options and a subcommand do not mix, and a wrong option is still a usage error.
    for args in [&["--port", "1", "check"][..], &["--prot", "1"][..]] {
        let out = llm_router().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------
// check

#[test]
fn check_accepts_the_shipped_config_with_an_empty_environment() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let text = check_ok(&shipped, &[]);
    assert!(
        text.starts_with(&format!("config {} is valid\n", shipped.display())),
        "{text}"
    );
    assert!(
        text.contains("server: listen 127.0.0.1:8080 body_limit 10485760\n"),
        "{text}"
    );
    let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    // One line per backend, model and layer of the shipped config.
    assert_eq!(count("backend "), 1, "{text}");
    assert!(
        text.contains("backend local: provider mock (local) (no key)\n"),
        "{text}"
    );
    assert_eq!(count("model "), 1, "{text}");
    assert!(
        text.contains("model echo -> local/* (priority 1, weight 1)\n"),
        "{text}"
    );
    assert_eq!(count("layer "), 3, "{text}");
    assert!(
        text.contains(
            "layer failover (split point)\nlayer circuit_breaker (per target)\nlayer retry (per target)\n"
        ),
        "{text}"
    );
    assert_eq!(count("warning"), 0, "{text}");
}

#[test]
fn check_accepts_the_compose_replicas_config() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/replicas.toml");
    let text = check_ok(
        &file,
        &[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("PROXY_KEY", "sk-replicas-0123456789"),
        ],
    );
    assert!(
        text.contains("state: redis redis://127.0.0.1:6379"),
        "{text}"
    );
    assert!(text.contains("model gpt-* -> openai/*"), "{text}");
    assert!(text.contains("model claude-* -> anthropic/*"), "{text}");
}

#[test]
fn check_prints_one_line_per_backend_model_and_layer() {
    let text = r#"[server]
listen = "0.0.0.0:9000"

[stack]
order = ["rate_limit"]

[[backends]]
name = "local"
provider = "mock"

[[backends]]
name = "vllm"
provider = "openai"
base_url = "http://127.0.0.1:8000/v1"
api_key = "passthrough"

[[models]]
name = "echo"
targets = [{ backend = "local" }]

[[models]]
name = "*"
targets = [
  { backend = "vllm", model = "*", priority = 1, weight = 3 },
  { backend = "local", priority = 2 },
]
"#;
    let out = expect_valid("check-lines", text, &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"server: listen 0.0.0.0:9000 body_limit 10485760"));
    assert!(lines.contains(&"backend local: provider mock (local) (no key)"));
    assert!(lines.contains(
        &"backend vllm: provider openai at http://127.0.0.1:8000/v1 (client's key (passthrough))"
    ));
    assert!(lines.contains(&"model echo -> local/* (priority 1, weight 1)"));
    assert!(
        lines.contains(&"model * -> vllm/* (priority 1, weight 3), local/* (priority 2, weight 1)")
    );
    assert!(lines.contains(&"layer rate_limit (whole request)"));
    assert!(lines.contains(&"layer route: first target (split point)"));
    // Several targets without failover: `check` warns.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("warning: model `*` has 2 targets") && l.contains("failover")),
        "{out}"
    );
}

#[test]
fn check_on_a_bad_config_exits_1_naming_file_line_and_key() {
    let text = MIN.replace(
        "provider = \"mock\"",
        "provider = \"mock\"\ntimeout = \"5x\"",
    );
    let (_dir, path, out) = check_config("check-bad", &text, &[]);
    assert_config_error(&out, &path, 4, "backends[0].timeout", &["5x"]);
}

#[test]
fn check_lists_virtual_keys_masked_and_names_a_bad_one() {
    let text = format!(
        "{MIN}\n[[keys]]\nname = \"team-a\"\nkey = \"${{TEAM_KEY}}\"\nmodels = [\"echo\", \"claude-*\"]\nbudget = {{ usd = 10, period = \"week\" }}\n"
    );
    let out = expect_valid(
        "check-keys",
        &text,
        &[("TEAM_KEY", "sk-team-key-0123456789abcd")],
    );
    assert!(
        out.lines().any(|l| l
            == "virtual key team-a: key sk-t...abcd; models echo, claude-*; budget $10 per week"),
        "{out}"
    );
    assert!(!out.contains("0123456789"), "{out}");
    let bad = text.replace("period = \"week\"", "period = \"fortnight\"");
    let (_dir, path, out) = check_config(
        "check-keys-bad",
        &bad,
        &[("TEAM_KEY", "sk-team-key-0123456789abcd")],
    );
    let line = bad.lines().position(|l| l.starts_with("budget")).unwrap() + 1;
    assert_config_error(
        &out,
        &path,
        line,
        "keys[0].budget.period",
        &["fortnight", "30d"],
    );
}

#[test]
fn check_on_a_missing_file_exits_1() {
    let dir = TempDir::new("check-missing");
    let path = dir.path().join("nope.toml");
    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: ", path.display())),
        "{err}"
    );
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("llm-router init"), "{err}");
}

// ---------------------------------------------------------------------------
// Config errors: unknown keys

#[test]
fn typo_in_server() {
    let m = expect_error(
        "typo-server",
        &format!("[server]\nlisten = \"127.0.0.1:9000\"\nlisen = \"127.0.0.1:1\"\n\n{MIN}"),
        3,
        "server.lisen",
        &["unknown key `lisen`", "did you mean `listen`", "body_limit"],
    );
    assert!(!m.contains('\n'));
}

#[test]
fn typo_in_backends() {
    // The second backend, so the index in the key path matters.
    let text = r#"[[backends]]
name = "local"
provider = "mock"

[[backends]]
name = "other"
provider = "mock"
timout = "5s"

[[models]]
name = "echo"
targets = [{ backend = "local" }]
"#;
    expect_error(
        "typo-backends",
        text,
        8,
        "backends[1].timout",
        &["unknown key `timout`", "did you mean `timeout`?"],
    );
}

#[test]
fn typo_in_target_inline_table() {
    let text = r#"[[backends]]
name = "local"
provider = "mock"

[[models]]
name = "echo"
targets = [
  { backend = "local" },
  { backend = "local", wieght = 2 },
]
"#;
    let m = expect_error(
        "typo-target",
        text,
        9,
        "models[0].targets[1].wieght",
        &["unknown key `wieght`", "did you mean `weight`?", "priority"],
    );
    assert!(!m.contains("serde"), "serde internals leak: {m}");
}

#[test]
fn unknown_top_level_section() {
    expect_error(
        "unknown-section",
        &format!("{MIN}\n[serevr]\nlisten = \"127.0.0.1:1\"\n"),
        9,
        "serevr",
        &[
            "unknown section or key `serevr`",
            "did you mean `server`?",
            "`models`",
        ],
    );
}

#[test]
fn unknown_top_level_key() {
    expect_error(
        "unknown-top-key",
        &format!("listen = \"127.0.0.1:1\"\n{MIN}"),
        1,
        "listen",
        &["unknown section or key `listen`"],
    );
}

#[test]
fn missing_required_key() {
    expect_error(
        "missing-key",
        "[[backends]]\nname = \"local\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"local\" }]\n",
        1,
        "backends[0]",
        &["missing field `provider`"],
    );
}

#[test]
fn wrong_value_types() {
    expect_error(
        "type-duration",
        &MIN.replace("provider = \"mock\"", "provider = \"mock\"\ntimeout = 5"),
        4,
        "backends[0].timeout",
        &["expected a string", "\"30s\""],
    );
    expect_error(
        "type-body-limit",
        &format!("[server]\nbody_limit = \"big\"\n{MIN}"),
        2,
        "server.body_limit",
        &["invalid type"],
    );
    // [models] instead of [[models]].
    expect_error(
        "type-models",
        "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n[models]\nname = \"echo\"\n",
        5,
        "models",
        &["expected a sequence", "[[models]]"],
    );
}

// ---------------------------------------------------------------------------
// Config errors: references between sections

#[test]
fn target_naming_an_unknown_backend() {
    expect_error(
        "unknown-backend",
        &MIN.replace("{ backend = \"local\" }", "{ backend = \"locl\" }"),
        7,
        "models[0].targets[0].backend",
        &["backend `locl` is not defined", "defined: local"],
    );
}

#[test]
fn duplicate_backend_name_mentions_the_first_definition() {
    let text = format!("{MIN}\n[[backends]]\nname = \"local\"\nprovider = \"mock\"\n");
    expect_error(
        "dup-backend",
        &text,
        10,
        "backends[1].name",
        &["duplicate backend name `local`", "first defined at line 2"],
    );
}

#[test]
fn duplicate_model_name_mentions_the_first_definition() {
    let text =
        format!("{MIN}\n[[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n");
    expect_error(
        "dup-model",
        &text,
        10,
        "models[1].name",
        &["duplicate model name `echo`", "first defined at line 6"],
    );
}

#[test]
fn context_fallback_naming_an_unknown_model() {
    let text = format!("{MIN}context_fallback = \"echo-long\"\n");
    expect_error(
        "fallback-unknown",
        &text,
        8,
        "models[0].context_fallback",
        &["model `echo-long` is not defined"],
    );
}

#[test]
fn context_fallback_to_itself() {
    let text = format!("{MIN}context_fallback = \"echo\"\n");
    expect_error(
        "fallback-self",
        &text,
        8,
        "models[0].context_fallback",
        &["own context fallback"],
    );
}

#[test]
fn context_fallback_to_a_defined_model_is_valid() {
    let text = format!(
        "{MIN}context_fallback = \"echo-long\"\n\n[[models]]\nname = \"echo-long\"\ntargets = [{{ backend = \"local\" }}]\n"
    );
    expect_valid("fallback-ok", &text, &[]);
}

#[test]
fn empty_targets() {
    expect_error(
        "empty-targets",
        &MIN.replace("[{ backend = \"local\" }]", "[]"),
        7,
        "models[0].targets",
        &["model `echo` needs at least one target"],
    );
}

#[test]
fn zero_weight_and_negative_priority() {
    expect_error(
        "weight-zero",
        &MIN.replace(
            "{ backend = \"local\" }",
            "{ backend = \"local\", weight = 0 }",
        ),
        7,
        "models[0].targets[0].weight",
        &["from 1 upward"],
    );
    expect_error(
        "priority-negative",
        &MIN.replace(
            "{ backend = \"local\" }",
            "{ backend = \"local\", priority = -1 }",
        ),
        7,
        "models[0].targets[0].priority",
        &["from 0 upward"],
    );
}

#[test]
fn no_models() {
    let (_dir, path, out) = check_config(
        "no-models",
        "[[backends]]\nname = \"local\"\nprovider = \"mock\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: models: ", path.display())),
        "{err}"
    );
    assert!(err.contains("no [[models]]"), "{err}");
}

// ---------------------------------------------------------------------------
// Config errors: ${VAR}

#[test]
fn unset_variable_names_the_variable_line_and_key() {
    let text = r#"[[backends]]
name = "local"
provider = "mock"

[[backends]]
name = "vllm"
provider = "openai"
base_url = "http://127.0.0.1:8000/v1"
api_key = "${VLLM_KEY}"

[[models]]
name = "echo"
targets = [{ backend = "local" }, { backend = "vllm" }]
"#;
    expect_error(
        "var-unset",
        text,
        9,
        "backends[1].api_key",
        &["environment variable VLLM_KEY is not set", "${VLLM_KEY:-"],
    );
}

#[test]
fn unset_variable_in_server_listen() {
    expect_error(
        "var-unset-listen",
        &format!("[server]\nbody_limit = 100\nlisten = \"${{HOST}}:8080\"\n\n{MIN}"),
        3,
        "server.listen",
        &["HOST is not set"],
    );
}

#[test]
fn variable_default_is_used_when_unset() {
    let text =
        format!("[server]\nlisten = \"${{LISTEN_HOST:-0.0.0.0}}:${{LISTEN_PORT:-9123}}\"\n\n{MIN}");
    let out = expect_valid("var-default", &text, &[]);
    assert!(out.contains("server: listen 0.0.0.0:9123 "), "{out}");
    // Set, the variable wins over the default.
    let out = expect_valid("var-default-set", &text, &[("LISTEN_PORT", "9555")]);
    assert!(out.contains("server: listen 0.0.0.0:9555 "), "{out}");
}

#[test]
fn variable_inside_a_comment_is_ignored() {
    let text = format!(
        "# api_key = \"${{NOT_SET_ANYWHERE}}\"\n[server]\nlisten = \"127.0.0.1:8080\" # or \"${{ALSO_NOT_SET}}\"\n{MIN}"
    );
    expect_valid("var-comment", &text, &[]);
}

#[test]
fn variable_value_is_substituted() {
    let text = MIN.replace(
        "provider = \"mock\"",
        "provider = \"mock\"\napi_key = \"${MY_MOCK_KEY}\"",
    );
    let out = expect_valid(
        "var-set",
        &text,
        &[("MY_MOCK_KEY", "sk-abcdefghij0123456789wxyz")],
    );
    assert!(out.contains("(key sk-a...wxyz)"), "{out}");
    assert!(
        !out.contains("sk-abcdefghij0123456789wxyz"),
        "raw key printed: {out}"
    );
}

// ---------------------------------------------------------------------------
// Config errors: values

fn listen_error(test: &str, listen: &str, words: &[&str]) {
    expect_error(
        test,
        &format!("[server]\nlisten = \"{listen}\"\n\n{MIN}"),
        2,
        "server.listen",
        words,
    );
}

#[test]
fn listen_without_a_port() {
    listen_error("listen-no-port", "127.0.0.1", &["has no port", "host:port"]);
    listen_error("listen-v6-no-port", "[::1]", &["has no port"]);
}

#[test]
fn listen_with_a_bad_port() {
    listen_error(
        "listen-big-port",
        "127.0.0.1:99999",
        &["`99999` is not a port number", "host:port"],
    );
    listen_error(
        "listen-word-port",
        "127.0.0.1:http",
        &["`http` is not a port number"],
    );
}

#[test]
fn listen_with_a_bad_host() {
    listen_error(
        "listen-bad-host",
        "my host:8080",
        &["`my host` is not an IP address or host name"],
    );
    listen_error("listen-no-host", ":8080", &["has no host"]);
}

#[test]
fn listen_forms_that_are_valid() {
    for (listen, shown) in [
        ("[::1]:8081", "[::1]:8081"),
        ("localhost:0", "localhost:0"),
        ("0.0.0.0:65535", "0.0.0.0:65535"),
    ] {
        let out = expect_valid(
            "listen-ok",
            &format!("[server]\nlisten = \"{listen}\"\n\n{MIN}"),
            &[],
        );
        assert!(
            out.contains(&format!("server: listen {shown} ")),
            "{listen}: {out}"
        );
    }
}

fn timeout_error(test: &str, value: &str, words: &[&str]) {
    expect_error(
        test,
        &MIN.replace(
            "provider = \"mock\"",
            &format!("provider = \"mock\"\nconnect_timeout = \"1s\"\nidle_timeout = \"{value}\""),
        ),
        5,
        "backends[0].idle_timeout",
        words,
    );
}

#[test]
fn duration_with_an_unknown_unit() {
    timeout_error("duration-unit", "5x", &["unknown unit `x`", "\"250ms\""]);
}

#[test]
fn duration_without_a_unit() {
    timeout_error("duration-no-unit", "10", &["`10` has no unit", "\"1s\""]);
}

#[test]
fn duration_zero() {
    timeout_error("duration-zero", "0s", &["`0s`", "greater than 0"]);
    expect_error(
        "duration-zero-server",
        &format!("[server]\nshutdown_timeout = \"0ms\"\n{MIN}"),
        2,
        "server.shutdown_timeout",
        &["greater than 0"],
    );
}

#[test]
fn durations_that_are_valid() {
    let text = MIN.replace(
        "provider = \"mock\"",
        "provider = \"mock\"\ntimeout = \"1.5s\"\nconnect_timeout = \"250ms\"\nfirst_byte_timeout = \"2m\"\nidle_timeout = \"1h\"",
    );
    expect_valid("duration-ok", &text, &[]);
}

#[test]
fn unknown_provider() {
    expect_error(
        "provider-unknown",
        &MIN.replace("\"mock\"", "\"openia\""),
        3,
        "backends[0].provider",
        &[
            "unknown provider `openia`",
            "openai",
            "mock",
            "OpenAI-compatible",
        ],
    );
}

#[test]
fn provider_anthropic_is_available() {
    // Every provider the config names is built now; `anthropic` needs no key
    // to pass `check` (its base URL has a default).
    let out = expect_valid(
        "provider-anthropic",
        &MIN.replace("\"mock\"", "\"anthropic\""),
        &[],
    );
    assert!(out.contains("anthropic"), "{out}");
}

#[test]
fn base_url_that_is_not_http() {
    let text = |url: &str| {
        format!("[[backends]]\nname = \"o\"\nprovider = \"openai\"\nbase_url = \"{url}\"\n\n[[models]]\nname = \"m\"\ntargets = [{{ backend = \"o\" }}]\n")
    };
    expect_error(
        "base-url-ftp",
        &text("ftp://example.com/v1"),
        4,
        "backends[0].base_url",
        &[
            "`ftp://example.com/v1`",
            "scheme `ftp`",
            "http:// or https://",
        ],
    );
    expect_error(
        "base-url-no-scheme",
        &text("api.openai.com/v1"),
        4,
        "backends[0].base_url",
        &["`api.openai.com/v1`", "http:// or https://"],
    );
    expect_error(
        "base-url-no-host",
        &text("http://"),
        4,
        "backends[0].base_url",
        &["http:// or https://"],
    );
    let out = expect_valid("base-url-ok", &text("https://api.openai.com/v1"), &[]);
    assert!(
        out.contains("backend o: provider openai at https://api.openai.com/v1 (no key)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// Config errors: [stack] and sections of later layers

fn stack_error(test: &str, order: &str, key: &str, words: &[&str]) -> String {
    expect_error(
        test,
        &format!("[stack]\norder = {order}\n\n{MIN}"),
        2,
        key,
        words,
    )
}

#[test]
fn unknown_layer_in_stack_order() {
    stack_error(
        "layer-unknown",
        "[\"retries\"]",
        "stack.order[0]",
        &["unknown layer `retries`", "known layers:", "retry"],
    );
}

#[test]
fn duplicated_layer_in_stack_order() {
    stack_error(
        "layer-dup",
        "[\"retry\", \"log\", \"retry\"]",
        "stack.order[2]",
        &["layer `retry` is listed twice", "stack.order[0]"],
    );
}

#[test]
fn log_layer_in_stack_order() {
    // `check` builds the stack but writes no log file.
    let (dir, _path, out) = check_config(
        "layer-log",
        &format!("[stack]\norder = [\"log\", \"failover\"]\n\n{MIN}\n[log]\ndir = \"logs\"\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("layer log (whole request)"),
        "{}",
        stdout(&out)
    );
    assert!(!dir.path().join("logs").exists());
}

#[test]
fn stack_order_of_the_wrong_type() {
    stack_error(
        "layer-type",
        "\"log\"",
        "stack.order",
        &["expected a sequence"],
    );
}

#[test]
fn log_section_errors() {
    let m = expect_error(
        "section-log",
        &format!("{MIN}\n[log]\ndir = \"logs\"\nqueue = 0\n"),
        11,
        "log.queue",
        &["must be a whole number from 1"],
    );
    assert!(!m.contains("unknown"), "{m}");
}

#[test]
fn backend_tools_setting() {
    let out = expect_valid(
        "backend-tools-xml",
        &format!(
            "{}\n[tools]\nxml_prompt_template = \"Tools: {{tools}}\"\n",
            MIN.replace(
                "provider = \"mock\"",
                "provider = \"mock\"\ntools = \"xml\"",
            )
        ),
        &[],
    );
    assert!(out.contains(", tools emulated through XML"), "{out}");
    expect_error(
        "backend-tools",
        &MIN.replace(
            "provider = \"mock\"",
            "provider = \"mock\"\ntools = \"json\"",
        ),
        4,
        "backends[0].tools",
        &["must be \"native\" or \"xml\"", "\"json\""],
    );
}

// ---------------------------------------------------------------------------
// Config errors: TOML syntax

#[test]
fn invalid_toml_reports_the_line() {
    let text = format!("{MIN}\n[server]\nlisten = \"127.0.0.1:8080\nbody_limit = 10\n");
    let (_dir, path, out) = check_config("toml-syntax", &text, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let prefix = format!("error: {}:10: invalid TOML: ", path.display());
    assert!(err.starts_with(&prefix), "expected {prefix}..., got {err}");
}

#[test]
fn invalid_toml_missing_value_and_duplicate_key() {
    let (_dir, path, out) = check_config(
        "toml-missing-value",
        &format!("{MIN}\n[server]\nlisten =\n"),
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: {}:10: invalid TOML: ", path.display())),
        "{err}"
    );

    let (_dir, path, out) = check_config(
        "toml-duplicate-key",
        &format!("[server]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n{MIN}"),
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: {}:3: invalid TOML: ", path.display())),
        "{err}"
    );
    assert!(err.contains("duplicate key"), "{err}");
}

// ---------------------------------------------------------------------------
// Environment overrides

#[test]
fn server_port_override_that_is_not_a_port() {
    let (_dir, _path, out) = check_config(
        "env-port-bad",
        MIN,
        &[("LLM_ROUTER_SERVER_PORT", "notaport")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.trim_end(),
        "error: environment: LLM_ROUTER_SERVER_PORT: `notaport` is not a port number (0-65535)"
    );
}

#[test]
fn server_host_and_port_overrides() {
    let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\n\n{MIN}");
    let out = expect_valid(
        "env-listen",
        &text,
        &[
            ("LLM_ROUTER_SERVER_HOST", "0.0.0.0"),
            ("LLM_ROUTER_SERVER_PORT", "9001"),
        ],
    );
    assert!(out.contains("server: listen 0.0.0.0:9001 "), "{out}");
    // Empty variables are ignored.
    let out = expect_valid(
        "env-listen-empty",
        &text,
        &[
            ("LLM_ROUTER_SERVER_HOST", ""),
            ("LLM_ROUTER_SERVER_PORT", ""),
        ],
    );
    assert!(out.contains("server: listen 127.0.0.1:8080 "), "{out}");
}

#[test]
fn backend_api_key_override_is_shown_masked() {
    let text = r#"[[backends]]
name = "my-openai"
provider = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-fromthefile000000000000wxyz"

[[backends]]
name = "local"
provider = "mock"

[[models]]
name = "gpt-4"
targets = [{ backend = "my-openai", model = "gpt-4o" }]

[[models]]
name = "echo"
targets = [{ backend = "local" }]
"#;
    let raw = "sk-1234567890abcdefghijklmnopcdef";
    let out = expect_valid(
        "env-api-key",
        text,
        &[("LLM_ROUTER_BACKEND_MY_OPENAI_API_KEY", raw)],
    );
    assert!(
        out.contains(
            "backend my-openai: provider openai at https://api.openai.com/v1 (key sk-1...cdef)"
        ),
        "{out}"
    );
    assert!(!out.contains(raw), "raw key printed: {out}");
    assert!(!out.contains("abcdefghijklmnop"), "key body printed: {out}");
    assert!(
        !out.contains("sk-fromt"),
        "the file's key should be overridden: {out}"
    );
    assert!(
        out.contains("backend local: provider mock (local) (no key)"),
        "{out}"
    );

    // Without the override, the file's key (masked too).
    let out = expect_valid("env-api-key-file", text, &[]);
    assert!(out.contains("(key sk-f...wxyz)"), "{out}");
    assert!(!out.contains("sk-fromthefile"), "raw key printed: {out}");

    // An empty override is ignored, like the server overrides.
    let out = expect_valid(
        "env-api-key-empty",
        text,
        &[("LLM_ROUTER_BACKEND_MY_OPENAI_API_KEY", "")],
    );
    assert!(out.contains("(key sk-f...wxyz)"), "{out}");
}

// ---------------------------------------------------------------------------
// init

#[test]
fn init_writes_a_config_that_check_accepts_and_refuses_to_overwrite() {
    let dir = TempDir::new("init");
    let path = dir.path().join("new-config.toml");
    let out = llm_router().arg("init").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&path.display().to_string()));
    let written = std::fs::read_to_string(&path).unwrap();
    // The same config that ships as config.toml.
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")).unwrap();
    assert_eq!(written, shipped);

    let out = llm_router()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check rejects what init wrote: {}",
        stderr(&out)
    );

    // Again: refused, file unchanged.
    std::fs::write(&path, "# edited by the user\n").unwrap();
    let out = llm_router().arg("init").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# edited by the user\n"
    );
}

#[test]
fn init_defaults_to_config_toml_in_the_current_directory() {
    let dir = TempDir::new("init-default");
    let out = llm_router()
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("config.toml").is_file());
    // `check` defaults to ./config.toml too.
    let out = llm_router()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// serve

/// Kills and reaps the child when dropped (a failing test leaves no process).
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already reaped")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// A running `llm-router serve`, with its stderr lines arriving on a channel.
struct Served {
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn llm-router serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served {
            child: ChildGuard(Some(child)),
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait (bounded) for the "listening on" log line and return it.
    fn wait_listening(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains("listening on");
                    self.seen.push(line.clone());
                    if found {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no \"listening on\" line within {WAIT:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.child().wait();
                    panic!(
                        "serve exited ({status:?}) before listening; stderr:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// SIGTERM, then wait (bounded) for the exit; asserts success.
    fn terminate(mut self) {
        let pid = self.child.child().id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.child().try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child.0 = None;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        assert!(
            status.success(),
            "serve exited with {status} after SIGTERM; stderr:\n{}",
            self.seen.join("\n")
        );
    }
}

/// One HTTP/1.1 request over a plain TcpStream; returns the whole answer.
fn http_get(port: u16, path: &str) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    answer
}

fn assert_healthy(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"healthy\""), "{answer}");
    assert!(answer.contains("\"service\":\"llm-router\""), "{answer}");
    assert!(answer.contains("\"echo\""), "{answer}");
}

#[test]
fn serve_answers_health_and_exits_cleanly_on_sigterm() {
    let dir = TempDir::new("serve");
    let config = dir.write(
        "config.toml",
        &format!("[server]\nlisten = \"127.0.0.1:1\"\n\n{MIN}"),
    );
    let port = free_port();
    let mut cmd = llm_router();
    cmd.arg("serve").arg("--config").arg(&config).args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    let mut served = Served::start(cmd);
    let line = served.wait_listening();
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    assert!(line.contains("models: echo"), "{line}");
    assert_healthy(&http_get(port, "/health"));
    served.terminate();
}

#[test]
fn serve_honours_the_port_environment_override() {
    let dir = TempDir::new("serve-env");
    let config = dir.write(
        "config.toml",
        &format!("[server]\nlisten = \"127.0.0.1:1\"\n\n{MIN}"),
    );
    let port = free_port();
    let mut cmd = llm_router();
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("LLM_ROUTER_SERVER_PORT", port.to_string())
        .env("LLM_ROUTER_SERVER_HOST", "127.0.0.1");
    let mut served = Served::start(cmd);
    let line = served.wait_listening();
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    assert_healthy(&http_get(port, "/health"));
    served.terminate();
}

#[test]
fn serve_port_flag_wins_over_the_environment() {
    let dir = TempDir::new("serve-flag");
    let config = dir.write("config.toml", MIN);
    let port = free_port();
    let mut cmd = llm_router();
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string()])
        .env("LLM_ROUTER_SERVER_PORT", "1");
    let mut served = Served::start(cmd);
    let line = served.wait_listening();
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    served.terminate();
}

#[test]
fn serve_with_a_missing_config_exits_1() {
    let dir = TempDir::new("serve-missing");
    let path = dir.path().join("missing.toml");
    let out = llm_router()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: ", path.display())),
        "{err}"
    );
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn serve_with_a_bad_config_exits_1_with_the_check_message() {
    let text = MIN.replace("\"local\" }", "\"locl\" }");
    let (dir, path, out) = check_config("serve-bad", &text, &[]);
    let message = assert_config_error(&out, &path, 7, "models[0].targets[0].backend", &["locl"]);
    let out = llm_router()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&message), "{}", stderr(&out));
    drop(dir);
}

#[test]
fn serve_on_a_port_in_use_exits_1() {
    let dir = TempDir::new("serve-in-use");
    let config = dir.write("config.toml", MIN);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = ChildGuard(Some(
        llm_router()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.child().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not give up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .child()
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    drop(taken);
}

/// A stderr that cannot be written (a redirect to a full disk; `/dev/full`
/// here) loses log lines and nothing else: the process neither panics nor
/// aborts, and answers every request (a panic in tracing's error report,
/// then a second one in the log layer's panic hook, used to abort it).
#[cfg(target_os = "linux")]
#[test]
fn a_stderr_on_a_full_disk_does_not_stop_the_proxy() {
    let dir = TempDir::new("full-stderr");
    let port = free_port();
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [stack]\norder = [\"log\", \"failover\"]\n\n\
             [log]\ndir = \"logs\"\n\n\
             [[backends]]\nname = \"gone\"\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"sk-unused-0000000000000000\"\n\n\
             [[models]]\nname = \"gone\"\ntargets = [{{ backend = \"gone\" }}]\n"
        ),
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let child = llm_router()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .expect("spawn llm-router serve");
    let mut child = ChildGuard(Some(child));
    // No "listening" line to wait for: wait (bounded) until the port answers.
    let deadline = Instant::now() + WAIT;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            child.child().try_wait().unwrap().is_none(),
            "serve exited before listening"
        );
        assert!(Instant::now() < deadline, "serve did not listen");
        // Polling a condition, bounded by the deadline above.
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        // A connection error upstream: logged at warn level, to /dev/full.
        let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let body = r#"{"model":"gone","messages":[{"role":"user","content":"hi"}]}"#;
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
    let health = http_get(port, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(child.child().try_wait().unwrap().is_none(), "serve died");
}
