#!/usr/bin/env bash
# Load benchmark: the proxy's cost per request against a fast local upstream,
# compared in the same run with the upstream alone and (when installed) nginx
# as a plain reverse proxy.
#
#   bash benches/load.sh              # 10 s per scenario
#   DURATION=3s bash benches/load.sh  # quicker
#
# The proxy (and nginx) are pinned to core 0, the load generator (oha,
# installed with `cargo install oha` if missing) and the upstream to core 1.
# For each scenario: requests per second at full load, p50/p99 latency at a
# fixed rate (RATE, default 500 req/s), CPU microseconds per request (the
# proxy's utime+stime over the requests served) and peak RSS. A plain hyper
# reverse proxy (examples/bare_proxy.rs: the same server, client and
# allocator, nothing else) is measured too: the floor under llm-router.
# Last, the peak RSS of llm-router holding STREAMS (default 1,000)
# concurrent slow streams (one event a second from the upstream).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-500}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-1000}
UP_PORT=${UP_PORT:-19101}
SLOW_PORT=${SLOW_PORT:-19104}
BARE_PORT=${BARE_PORT:-19105}
PX_PORT=${PX_PORT:-19102}
NGINX_PORT=${NGINX_PORT:-19103}
WORK=$(mktemp -d /tmp/llm-router-load.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v oha >/dev/null || cargo install oha --locked --quiet
cargo build --release --quiet --bin llm-router --example fast_upstream --example bare_proxy
BIN=${BIN:-target/release/llm-router}
UPSTREAM=target/release/examples/fast_upstream

CHAT='{"model":"bench","messages":[{"role":"system","content":"You are a concise assistant for a finance team."},{"role":"user","content":"Summarize the main points of the quarterly report in three short bullet points, please. Revenue was up 12 percent, costs were down 3 percent, and guidance was unchanged."}],"temperature":0.2}'
STREAM='{"model":"bench","stream":true,"messages":[{"role":"user","content":"Summarize the quarterly report in three short points."}]}'
RESPONSES_STREAM='{"model":"bench","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"Summarize the quarterly report in three short points."}]}]}'

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
# utime+stime of a process and its children (nginx works in a child process).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '{print $14+$15}' "/proc/$p/stat") ))
  done
  echo "$total"
}
hwm_total_kib() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '/VmHWM/{print $2}' "/proc/$p/status") ))
  done
  echo "$total"
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)

taskset -c 1 "$UPSTREAM" "127.0.0.1:$UP_PORT" >/dev/null & PIDS+=($!)
wait_port "$UP_PORT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_proxy() { # $1 = [stack] order, $2 = extra config, $3 = upstream port
  local up=${3:-$UP_PORT}
  cat > "$WORK/config.toml" <<TOML
[server]
listen = "127.0.0.1:$PX_PORT"
[stack]
order = $1
$2
[[backends]]
name = "up"
provider = "openai"
base_url = "http://127.0.0.1:$up/v1"
api_key = "sk-upstream-benchmark-key-0000"
[[backends]]
name = "up-anthropic"
provider = "anthropic"
base_url = "http://127.0.0.1:$up"
api_key = "sk-ant-upstream-benchmark-key-0000"
[[models]]
name = "bench"
targets = [{ backend = "up" }]
[[models]]
name = "bench-anthropic"
targets = [{ backend = "up-anthropic", model = "bench" }]
TOML
  RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/config.toml" 2>"$WORK/proxy.log" & PX=$!
  PIDS+=($PX)
  wait_port "$PX_PORT"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# oha JSON -> "rps p50_ms p99_ms"
oha_run() { # $1 url, $2 body, $3 extra args...
  local url=$1 body=$2; shift 2
  taskset -c 1 oha --no-tui --output-format json -m POST -H 'content-type: application/json' \
    -H 'authorization: Bearer sk-client-benchmark-key-0001' -d "$body" "$@" "$url" > "$WORK/oha.json"
  python3 - "$WORK/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]; p = d.get("latencyPercentiles", {})
ok = sum(v for k, v in d.get("statusCodeDistribution", {}).items() if k.startswith("2"))
print(f'{s["requestsPerSec"]:.0f} {p.get("p50", 0)*1e3:.3f} {p.get("p99", 0)*1e3:.3f} {ok}')
PY
}

ROWS=()
measure() { # $1 label, $2 pid (or ""), $3 url, $4 body
  local label=$1 pid=$2 url=$3 body=$4 t0 t1 full fixed cpu_us=- hwm=-
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  full=$(oha_run "$url" "$body" -z "$DURATION" -c "$CONNS")
  if [ -n "$pid" ]; then
    t1=$(cpu_ticks "$pid")
    cpu_us=$(python3 -c 'import sys; t0, t1, tick, n = map(int, sys.argv[1:]); print(f"{(t1 - t0) / tick * 1e6 / max(1, n):.1f}")' "$t0" "$t1" "$TICK" "${full##* }")
    hwm=$(( $(hwm_total_kib "$pid") / 1024 ))
  fi
  fixed=$(oha_run "$url" "$body" -z "$DURATION" -c "$CONNS" -q "$RATE")
  read -r rps _ _ _ <<<"$full"; read -r _ p50 p99 _ <<<"$fixed"
  ROWS+=("| $label | $rps | $p50 | $p99 | $cpu_us | $hwm |")
  echo "  $label: $rps req/s; at $RATE req/s p50 $p50 ms p99 $p99 ms; $cpu_us µs CPU/request; peak RSS $hwm MiB" >&2
}

echo "== upstream alone" >&2
measure "upstream alone" "" "http://127.0.0.1:$UP_PORT/v1/chat/completions" "$CHAT"
measure "upstream alone, streamed" "" "http://127.0.0.1:$UP_PORT/v1/chat/completions" "$STREAM"

if command -v nginx >/dev/null; then
  echo "== nginx reverse proxy" >&2
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGINX
  taskset -c 0 nginx -c "$WORK/nginx.conf" -g 'daemon off;' & NG=$!; PIDS+=($NG)
  wait_port "$NGINX_PORT"
  measure "nginx" "$NG" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "$CHAT"
  measure "nginx, streamed" "$NG" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "$STREAM"
  stop "$NG"
else
  echo "== nginx not installed (apt-get install nginx) — no reference row" >&2
fi

echo "== plain hyper proxy (the floor)" >&2
taskset -c 0 target/release/examples/bare_proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UP_PORT/" & BP=$!; PIDS+=($BP)
wait_port "$BARE_PORT"
measure "hyper proxy, no layers (floor)" "$BP" "http://127.0.0.1:$BARE_PORT/v1/chat/completions" "$CHAT"
stop "$BP"

echo "== llm-router, shipped default stack" >&2
start_proxy '["failover", "circuit_breaker", "retry"]' ""
IDLE=$(( $(rss_kib "$PX") / 1024 ))
measure "llm-router, default stack" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT"
measure "llm-router, default stack, streamed" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$STREAM"
measure "llm-router, OpenAI client -> Anthropic, streamed" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "${STREAM/\"bench\"/\"bench-anthropic\"}"
# A Responses client (Codex, the Agents SDK) served by a Chat Completions
# upstream: every chunk translated into the Responses event sequence.
measure "llm-router, Responses client -> Chat Completions, streamed" "$PX" "http://127.0.0.1:$PX_PORT/v1/responses" "$RESPONSES_STREAM"
stop "$PX"

# The stack a platform team runs: metrics, client keys, failover, circuit
# breaker, retry.
echo "== llm-router, production stack" >&2
start_proxy '["metrics", "auth", "failover", "circuit_breaker", "retry"]' "
[auth]
keys = [\"sk-client-benchmark-key-0001\"]
"
measure "llm-router, production stack" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT"
measure "llm-router, production stack, streamed" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$STREAM"
stop "$PX"

echo "== llm-router, every layer on" >&2
start_proxy '["log", "metrics", "auth", "rate_limit", "pii", "transform", "headers", "failover", "circuit_breaker", "retry"]' "
[auth]
keys = [\"sk-client-benchmark-key-0001\"]
[rate_limit]
requests = 1000000000
window = \"60s\"
[pii]
action = \"redact\"
[headers]
add = { \"user-agent\" = \"llm-router\" }
[[transforms]]
name = \"tag\"
type = \"jsonpath_add\"
path = \"\$.metadata\"
value = { source = \"llm-router\" }
[log]
dir = \"$WORK/logs\"
"
measure "llm-router, every layer" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT"
stop "$PX"

# Spend control: auth alone, then auth with a [[keys]] budget on the same
# client key (a reservation at admission, a settlement at the end of each
# answer). Skipped for a binary that predates [[keys]] (BIN=an older build).
BUDGET_KEY='
[[keys]]
name = "bench"
key = "sk-client-benchmark-key-0001"
budget = { tokens = 1000000000000, period = "month" }
'
printf '[[backends]]\nname = "m"\nprovider = "mock"\n[[models]]\nname = "m"\ntargets = [{ backend = "m" }]\n%s' "$BUDGET_KEY" > "$WORK/keys-check.toml"
if "$BIN" check --config "$WORK/keys-check.toml" >/dev/null 2>&1; then
  echo "== llm-router, auth / auth + budget" >&2
  start_proxy '["auth", "failover", "circuit_breaker", "retry"]' "
[auth]
keys = [\"sk-client-benchmark-key-0001\"]
"
  measure "llm-router, auth" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT"
  stop "$PX"
  start_proxy '["auth", "budget", "failover", "circuit_breaker", "retry"]' "
[auth]
$BUDGET_KEY
[state]
spend_file = \"$WORK/spend.json\"
"
  measure "llm-router, auth + budget ([[keys]] budget)" "$PX" "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT"
  stop "$PX"
fi

echo "== $STREAMS concurrent slow streams" >&2
SLOW_STREAM_MS=1000 taskset -c 1 "$UPSTREAM" "127.0.0.1:$SLOW_PORT" >/dev/null & PIDS+=($!)
wait_port "$SLOW_PORT"
start_proxy '["failover", "circuit_breaker", "retry"]' "" "$SLOW_PORT"
streams=$(oha_run "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$STREAM" -n "$STREAMS" -c "$STREAMS")
STREAMS_OK=${streams##* }
STREAMS_HWM=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$PX/status")
echo "  $STREAMS_OK of $STREAMS slow streams completed; peak RSS $STREAMS_HWM MiB" >&2
stop "$PX"

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); proxy on core 0, load and upstream on core 1; $DURATION per run, $CONNS connections."
echo "Idle RSS of the proxy: $IDLE MiB. Holding $STREAMS concurrent slow streams ($STREAMS_OK completed): peak RSS $STREAMS_HWM MiB."
echo
echo "| scenario | req/s (full load) | p50 ms at $RATE req/s | p99 ms at $RATE req/s | CPU µs/request | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
