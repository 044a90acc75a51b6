#!/usr/bin/env bash
# Soak benchmark: 10 minutes of mixed, partly hostile traffic against the
# release binary, with its RSS sampled every second (see benches/soak.rs for
# the mix: plain and streamed requests, client disconnects, a failing
# upstream, keyless floods of large bodies, odd model names).
#
#   bash benches/soak.sh                 # 600 s (the README's figures)
#   SOAK_SECS=60 bash benches/soak.sh    # quicker
#
# The proxy runs the full stack (log, metrics, auth, rate_limit, failover,
# circuit_breaker, retry) pinned to core 0; the upstreams and the driver run
# on core 1. It exits non-zero when a plain request failed, the proxy died,
# or its RSS at the end is more than 10% above its post-warm-up level.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECS=${SOAK_SECS:-600}
UP_PORT=${UP_PORT:-19201}
FAIL_PORT=${FAIL_PORT:-19202}
PX_PORT=${PX_PORT:-19203}
KEY=sk-soak-client-key-000000000001
WORK=$(mktemp -d /tmp/llm-router-soak.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet --bin llm-router --example fast_upstream
cargo bench --no-run --quiet --bench soak 2>/dev/null
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

taskset -c 1 target/release/examples/fast_upstream "127.0.0.1:$UP_PORT" >/dev/null & PIDS+=($!)
FAIL_STATUS=503 taskset -c 1 target/release/examples/fast_upstream "127.0.0.1:$FAIL_PORT" >/dev/null & PIDS+=($!)
wait_port "$UP_PORT"; wait_port "$FAIL_PORT"
ulimit -n 65536 2>/dev/null || true

cat > "$WORK/config.toml" <<TOML
[server]
listen = "127.0.0.1:$PX_PORT"
[stack]
order = ["log", "metrics", "auth", "rate_limit", "failover", "circuit_breaker", "retry"]
[auth]
keys = ["$KEY"]
[rate_limit]
requests = 1000000000
window = "60s"
[retry]
max_retries = 1
initial_delay = "10ms"
[circuit_breaker]
failure_threshold = 5
open_for = "2s"
[log]
dir = "$WORK/logs"
[[backends]]
name = "up"
provider = "openai"
base_url = "http://127.0.0.1:$UP_PORT/v1"
api_key = "sk-upstream-soak-key-00000000000"
[[backends]]
name = "down"
provider = "openai"
base_url = "http://127.0.0.1:$FAIL_PORT/v1"
api_key = "sk-upstream-soak-key-00000000001"
[[models]]
name = "soak"
targets = [{ backend = "up" }]
[[models]]
name = "flaky"
targets = [{ backend = "down", priority = 1 }, { backend = "up", model = "soak", priority = 2 }]
[[models]]
name = "wild-*"
targets = [{ backend = "up" }]
TOML
RUST_LOG=warn taskset -c 0 target/release/llm-router serve --config "$WORK/config.toml" 2>"$WORK/proxy.log" & PX=$!
PIDS+=($PX)
wait_port "$PX_PORT"

status=0
SOAK_PID=$PX SOAK_URL="http://127.0.0.1:$PX_PORT" SOAK_KEY=$KEY SOAK_SECS=$SOAK_SECS \
  taskset -c 1 cargo bench --quiet --bench soak || status=$?
echo "log files: $(du -sh "$WORK/logs" | cut -f1) in $(ls "$WORK/logs" | wc -l) files; proxy stderr: $(wc -l < "$WORK/proxy.log") lines"
if grep -q 'panicked' "$WORK/proxy.log"; then echo "soak: the proxy panicked:" >&2; grep -m5 panicked "$WORK/proxy.log" >&2; status=1; fi
if [ "$status" != 0 ]; then echo "soak: the proxy's last stderr lines:" >&2; tail -20 "$WORK/proxy.log" >&2; fi
exit $status
