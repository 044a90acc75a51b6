//! A real `redis-server` process on 127.0.0.1, one per test, that a test
//! can kill and restart on the same port. Used by `tests/redis_state.rs` and
//! `benches/state_store.rs` (included with `#[path]`).
//!
//! `redis-server` must be on PATH (`.ci/run` installs Debian's package):
//! without it the tests that use this are compiled as ignored (see
//! `build.rs`), and one started anyway fails with a clear message.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process without persistence.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// With TLS: the TLS port and the PEM files (certificate, key).
    tls: Option<(u16, String, String)>,
}

impl RedisServer {
    /// Start one on a free loopback port; panics (with how to fix it) when
    /// `redis-server` is not installed.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                port,
                child: None,
                tls: None,
            };
            if server.try_spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port (5 tries)");
    }

    /// A port where no Redis listens yet (for "Redis down at start"); call
    /// [`RedisServer::restart`] to start one there.
    pub fn not_started() -> RedisServer {
        RedisServer {
            port: free_port(),
            child: None,
            tls: None,
        }
    }

    /// Start one that also serves TLS on another port, with the certificate
    /// and key of these PEM files (clients are not asked for certificates).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> RedisServer {
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
                tls: Some((free_port(), cert_pem.to_string(), key_pem.to_string())),
            };
            if server.try_spawn() {
                return server;
            }
        }
        panic!("redis-server with TLS did not start on free ports (5 tries)");
    }

    /// `rediss://localhost:TLS_PORT` (a server started with
    /// [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        let (port, _, _) = self.tls.as_ref().expect("started with start_tls");
        format!("rediss://localhost:{port}")
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill it (SIGKILL: connections drop at once, nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze it (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a frozen server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Start it again on the same port (empty: there is no persistence).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.try_spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come back on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some((port, cert, key)) = &self.tls {
            command.args([
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                cert,
                "--tls-auth-clients",
                "no",
            ]);
        }
        let spawned = command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &std::env::temp_dir().display().to_string(),
                "--loglevel",
                "warning",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH: the Redis state store tests need it \
                 (apt-get install -y redis-server; .ci/run installs it)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        // Ready when it answers PING; gone when the port was taken.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    self.child = Some(child);
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
