//! Tells the Redis state store tests whether `redis-server` is on PATH, and
//! the browser tests of `/docs` and `/redoc` whether `chromium` is.
//!
//! Rust tests cannot skip themselves at run time, so the decision is made
//! here: with `redis-server` found, `cfg(redis_server)` is set and the tests
//! of `tests/redis_state.rs` run; without it they are compiled with
//! `#[ignore = "needs redis-server ..."]` and `cargo test` reports them as
//! ignored, with the reason. `LLM_ROUTER_REQUIRE_REDIS=1` (set by CI) makes a
//! missing `redis-server` a build error instead, so CI can never skip them.
//!
//! Chromium likewise: found, `cfg(chromium)` is set and its path is given to
//! the tests as the compile-time variable `LLM_ROUTER_CHROMIUM`
//! (`tests/docs_browser.rs`); missing, those tests are ignored, unless
//! `LLM_ROUTER_REQUIRE_CHROMIUM=1`, which makes it a build error.

use std::env;
use std::path::{Path, PathBuf};

fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
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
    println!("cargo:rustc-check-cfg=cfg(chromium)");
    println!("cargo:rerun-if-env-changed=LLM_ROUTER_REQUIRE_CHROMIUM");
    match find_on_path("chromium").or_else(|| find_on_path("chromium-browser")) {
        Some(chromium) => {
            println!("cargo:rustc-cfg=chromium");
            println!("cargo:rustc-env=LLM_ROUTER_CHROMIUM={}", chromium.display());
        }
        None if env::var("LLM_ROUTER_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") => panic!(
            "LLM_ROUTER_REQUIRE_CHROMIUM=1 but chromium is not on PATH: the browser tests of \
             /docs and /redoc must run here (apt-get install -y chromium)"
        ),
        None => {}
    }
}
