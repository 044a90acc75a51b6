//! Tells the Redis state store tests whether `redis-server` is on PATH.
//!
//! Rust tests cannot skip themselves at run time, so the decision is made
//! here: with `redis-server` found, `cfg(redis_server)` is set and the tests
//! of `tests/redis_state.rs` run; without it they are compiled with
//! `#[ignore = "needs redis-server ..."]` and `cargo test` reports them as
//! ignored, with the reason. `LLM_ROUTER_REQUIRE_REDIS=1` (set by CI) makes a
//! missing `redis-server` a build error instead, so CI can never skip them.

use std::env;
use std::path::Path;

fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| {
        env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            is_executable(&candidate)
        })
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.with_extension("exe").is_file() || path.is_file()
}

fn main() {
    println!("cargo:rustc-check-cfg=cfg(redis_server)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=LLM_ROUTER_REQUIRE_REDIS");
    println!("cargo:rerun-if-changed=build.rs");
    let found = on_path("redis-server");
    if found {
        println!("cargo:rustc-cfg=redis_server");
    } else if env::var("LLM_ROUTER_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!(
            "LLM_ROUTER_REQUIRE_REDIS=1 but redis-server is not on PATH: the Redis state store \
             tests must run here (apt-get install -y redis-server)"
        );
    }
}
