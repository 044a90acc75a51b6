#!/usr/bin/env python3
"""Hostile floods against the release binary: the measurements of issue 15
("Safe to expose"), rerun.

    cargo build --release --bin llm-router && python3 benches/flood.py

Starts target/release/llm-router on a loopback port with `auth` on and the
built-in `mock` backend (no upstream needed), then, one after the other:

1. 2,000 keyless requests with unique 20 KB model names (with a line break),
   then the size of one `/metrics` answer and the proxy's RSS;
2. 8 keyless senders of 10 MiB bodies for 9 s: peak RSS, answers seen;
3. 50 keyless uploads that announce 10 MiB and stall: RSS while they hang;
4. 300 silent TCP connections with the proxy limited to 256 open files:
   a real request made meanwhile, and after `header_read_timeout` (2 s here).

After each step a keyed request must still be answered 200. Prints one line
per step and exits non-zero when a step fails its bound (RSS over 300 MiB,
`/metrics` over 64 KiB, a keyed request not answered, stderr lines showing a
client's model name unescaped, or a panic).
"""

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "llm-router")
KEY = "sk-flood-client-key-0000000000001"
RSS_BOUND_MIB = 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(port, body, key=None, path="/v1/chat/completions", timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def chat(model):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})


def keyed_ok(port):
    try:
        status, _ = request(port, chat("echo"), KEY, timeout=5)
        return status == 200
    except OSError:
        return False


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release --bin llm-router")
    work = tempfile.mkdtemp(prefix="llm-router-flood.")
    port = free_port()
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
header_read_timeout = "2s"
[stack]
order = ["log", "metrics", "auth", "rate_limit", "failover", "circuit_breaker", "retry"]
[auth]
keys = ["{KEY}"]
[rate_limit]
requests = 1000000000
window = "60s"
[log]
dir = "{work}/logs"
[[backends]]
name = "local"
provider = "mock"
[[models]]
name = "echo"
targets = [{{ backend = "local" }}]
[[models]]
name = "*"
targets = [{{ backend = "local" }}]
""")

    def limit_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    stderr = open(os.path.join(work, "stderr.log"), "w+")
    proxy = subprocess.Popen(
        [BIN, "serve", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "RUST_LOG": "info"},
        preexec_fn=limit_files,
    )
    failed = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        idle = rss_mib(proxy.pid)
        print(f"idle RSS {idle:.1f} MiB (the proxy may open 256 files)")

        # 1. Unique 20 KB model names, keyless.
        for n in range(2000):
            model = f"m{n}-\n" + "z" * 20000
            request(port, chat(model))
        status, metrics = request(port, None, path="/metrics")
        rss = rss_mib(proxy.pid)
        ok = status == 200 and len(metrics) < 64 * 1024 and b"zzzz" not in metrics and keyed_ok(port)
        print(f"1. 2,000 keyless 20 KB model names: /metrics {len(metrics)} bytes, RSS {rss:.1f} MiB -> {'ok' if ok else 'FAILED'}")
        if not ok or rss > RSS_BOUND_MIB:
            failed.append(1)

        # 2. 8 keyless senders of 10 MiB bodies for 9 s.
        body = b"x" * (10 << 20)
        stop = time.monotonic() + 9
        answers = {"401": 0, "reset": 0}
        lock = threading.Lock()

        def sender():
            while time.monotonic() < stop:
                try:
                    status, _ = request(port, body, timeout=10)
                    kind = str(status)
                except OSError:
                    kind = "reset"
                with lock:
                    answers[kind] = answers.get(kind, 0) + 1

        threads = [threading.Thread(target=sender) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = hwm_mib(proxy.pid)
        ok = peak < RSS_BOUND_MIB and keyed_ok(port)
        print(f"2. 8 keyless senders of 10 MiB bodies for 9 s: answers {answers}, peak RSS {peak:.1f} MiB -> {'ok' if ok else 'FAILED'}")
        if not ok:
            failed.append(2)

        # 3. 50 keyless uploads that stall after their head.
        stalled = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 10485760\r\n\r\n" + b"x" * 65536
            )
            stalled.append(s)
        refused = 0
        for s in stalled:
            s.settimeout(5)
            try:
                if s.recv(64).startswith(b"HTTP/1.1 401"):
                    refused += 1
            except OSError:
                pass
        rss = rss_mib(proxy.pid)
        ok = refused == 50 and rss < RSS_BOUND_MIB and keyed_ok(port)
        print(f"3. 50 stalled keyless 10 MiB uploads: {refused} answered 401 at once, RSS {rss:.1f} MiB -> {'ok' if ok else 'FAILED'}")
        for s in stalled:
            s.close()
        if not ok:
            failed.append(3)

        # 4. 300 silent connections against 256 open files.
        silent = []
        for _ in range(300):
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break
        start = time.monotonic()
        served = None
        while time.monotonic() - start < 15:
            if keyed_ok(port):
                served = time.monotonic() - start
                break
        closed = 0
        for s in silent:
            s.settimeout(0.1)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except OSError:
                pass
            s.close()
        accept_lines = sum(1 for line in open(stderr.name) if "accept" in line or "connection limit" in line)
        ok = served is not None and accept_lines < 10
        served_text = f"{served:.1f} s" if served is not None else "never"
        print(f"4. 300 silent connections, 256 files: a keyed request answered after {served_text}; {closed} silent ones closed by the proxy; {accept_lines} accept/limit log lines -> {'ok' if ok else 'FAILED'}")
        if not ok:
            failed.append(4)

        log = open(stderr.name).read()
        if "panicked" in log:
            print("the proxy panicked")
            failed.append("panic")
        if any(line.startswith("z") for line in log.splitlines()):
            print("a client's model name forged a line of the proxy's stderr")
            failed.append("log")
        if proxy.poll() is not None:
            print("the proxy died")
            failed.append("died")
    finally:
        proxy.terminate()
        proxy.wait()
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
