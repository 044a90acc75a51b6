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
# crabllm (another Rust LLM gateway) gets the same two rows, and a time to
# first content row below, when `crabllm` is on PATH (`cargo install
# crabllm`), else it is skipped with a message.
#
# Then three more measurements:
#
# - Slow streams: the peak RSS (VmHWM) of llm-router holding STREAMS
#   (default 10,000) concurrent streams, one event a second from the upstream
#   (fast_upstream with SLOW_STREAM_MS=1000: 8 events, ~8 s a stream), each on
#   its own client connection, through the stack of the repo's config.toml
#   (its `[stack] order`, with an openai backend at the slow upstream instead
#   of its mock), and how many completed (status 200 and `data: [DONE]`;
#   examples/stream_client.rs). Reported also as MiB per 1,000 streams above
#   the idle RSS. Each stream holds two sockets in the proxy, so the proxy
#   needs 2 x STREAMS + 64 open files: the script raises its limit as far as
#   the hard limit allows and lowers STREAMS (saying so) when even that is
#   too few.
# - Time to first content: for a streamed answer, the time from the upstream
#   making its first content event to the client holding it, through each
#   proxy. fast_upstream with STAMP_CONTENT=1 writes the wall-clock time
#   (ns) into that event's text when it makes it; examples/stream_client.rs
#   subtracts it from the time it holds the event (same machine, same
#   clock): TTFC_N streams (default 1,000, after 10% not counted) one after
#   another at TTFC_RATE a second (default 200) on one kept-alive
#   connection; p50 and p99. Not the time to first byte: llm-router holds
#   the stream's preamble (the role event) until the first content event on
#   purpose (the commit point, before which a failed attempt can still go
#   to another target). "Added" is the proxy's p50 minus the upstream
#   alone's (which counts the upstream's write and the client's read).
# - Two cores: llm-router's default stack at full load with the proxy on
#   core 0 only (as in the rows above; a single-threaded runtime, as the
#   binary picks with one CPU) and then allowed on both cores (the default
#   multi-threaded runtime with two workers). With two cores the load
#   generator and the upstream are unpinned too and share both cores with
#   the proxy, so on a 2-core machine the ratio is what the proxy gains
#   when it may use the second core while oha and the upstream also need
#   CPU: it cannot reach 2x here, and it says little about a machine with
#   cores to spare.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-500}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-10000}
TTFC_N=${TTFC_N:-1000}
TTFC_RATE=${TTFC_RATE:-200}
UP_PORT=${UP_PORT:-19101}
SLOW_PORT=${SLOW_PORT:-19104}
BARE_PORT=${BARE_PORT:-19105}
STAMP_PORT=${STAMP_PORT:-19106}
CRAB_PORT=${CRAB_PORT:-19107}
PX_PORT=${PX_PORT:-19102}
NGINX_PORT=${NGINX_PORT:-19103}
WORK=$(mktemp -d /tmp/llm-router-load.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v oha >/dev/null || cargo install oha --locked --quiet
cargo build --release --quiet --bin llm-router --example fast_upstream --example bare_proxy --example stream_client
BIN=${BIN:-target/release/llm-router}
UPSTREAM=target/release/examples/fast_upstream
CLIENT=target/release/examples/stream_client
# Where the proxy and the load (oha, stream_client, the upstream) run.
PX_CPUS=0
LOAD_CPUS=1

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

taskset -c 1 "$UPSTREAM" "127.0.0.1:$UP_PORT" >/dev/null & UP=$!; PIDS+=($UP)
wait_port "$UP_PORT"
# Slow streams need two sockets each in the proxy (raising the hard limit
# needs CAP_SYS_RESOURCE, which a container may not have).
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_proxy() { # $1 = [stack] order, $2 = extra config, $3 = upstream port, $4 = extra [server] keys
  local up=${3:-$UP_PORT}
  cat > "$WORK/config.toml" <<TOML
[server]
listen = "127.0.0.1:$PX_PORT"
${4:-}
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
  RUST_LOG=warn taskset -c "$PX_CPUS" "$BIN" serve --config "$WORK/config.toml" 2>"$WORK/proxy.log" & PX=$!
  PIDS+=($PX)
  wait_port "$PX_PORT"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# oha JSON -> "rps p50_ms p99_ms"
oha_run() { # $1 url, $2 body, $3 extra args...
  local url=$1 body=$2; shift 2
  taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -m POST -H 'content-type: application/json' \
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

# crabllm as an OpenAI-compatible proxy to the same upstream (its config
# format read from the crabllm 0.0.25 sources: an `openai` provider with a
# base_url, one client key; checked with 0.0.25: answers and streams pass).
crabllm_config() { # $1 = upstream port
  cat > "$WORK/crabllm.toml" <<TOML
listen = "127.0.0.1:$CRAB_PORT"
openapi = false
[[keys]]
name = "bench"
key = "sk-client-benchmark-key-0001"
models = ["*"]
[providers.up]
kind = "openai"
api_key = "sk-upstream-benchmark-key-0000"
base_url = "http://127.0.0.1:$1/v1"
models = ["bench"]
TOML
}
if command -v crabllm >/dev/null; then
  echo "== crabllm" >&2
  crabllm_config "$UP_PORT"
  RUST_LOG=warn taskset -c 0 crabllm serve --config "$WORK/crabllm.toml" 2>"$WORK/crabllm.log" & CB=$!; PIDS+=($CB)
  if wait_port "$CRAB_PORT"; then
    measure "crabllm" "$CB" "http://127.0.0.1:$CRAB_PORT/v1/chat/completions" "$CHAT"
    measure "crabllm, streamed" "$CB" "http://127.0.0.1:$CRAB_PORT/v1/chat/completions" "$STREAM"
  else
    echo "  crabllm did not start; its log: $WORK/crabllm.log" >&2
    cat "$WORK/crabllm.log" >&2 || true
  fi
  stop "$CB"
else
  echo "== crabllm not installed (cargo install crabllm) — no crabllm row" >&2
fi

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

# The shipped stack: the `[stack] order` of the repo's config.toml.
SHIPPED=$(sed -n 's/^order = \(\[.*\]\).*/\1/p' config.toml | head -1)
SHIPPED=${SHIPPED:-'["failover", "circuit_breaker", "retry"]'}

echo "== time to first content ($TTFC_N streams at $TTFC_RATE/s)" >&2
STAMP_CONTENT=1 taskset -c 1 "$UPSTREAM" "127.0.0.1:$STAMP_PORT" >/dev/null & SU=$!; PIDS+=($SU)
wait_port "$STAMP_PORT"
TTFC_ROWS=()
TTFC_BASE=
ttfc() { # $1 label, $2 url
  local out p50 p99
  if ! out=$(taskset -c "$LOAD_CPUS" "$CLIENT" ttfc "$2" "$TTFC_N" "$TTFC_RATE" 2>"$WORK/ttfc.err"); then
    echo "  $1: failed: $(cat "$WORK/ttfc.err")" >&2
    return 0
  fi
  read -r p50 p99 _ <<<"$out"
  local added=-
  if [ -z "$TTFC_BASE" ]; then TTFC_BASE=$p50; else added=$(( p50 - TTFC_BASE )); fi
  TTFC_ROWS+=("| $1 | $p50 | $p99 | $added |")
  echo "  $1: p50 $p50 µs, p99 $p99 µs, added (p50) $added µs" >&2
}
ttfc "upstream alone" "http://127.0.0.1:$STAMP_PORT/v1/chat/completions"
taskset -c 0 target/release/examples/bare_proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$STAMP_PORT/" & BP=$!; PIDS+=($BP)
wait_port "$BARE_PORT"
ttfc "hyper proxy, no layers (floor)" "http://127.0.0.1:$BARE_PORT/v1/chat/completions"
stop "$BP"
if command -v nginx >/dev/null; then
  sed "s/server 127.0.0.1:$UP_PORT;/server 127.0.0.1:$STAMP_PORT;/" "$WORK/nginx.conf" > "$WORK/nginx-stamp.conf"
  taskset -c 0 nginx -c "$WORK/nginx-stamp.conf" -g 'daemon off;' & NG=$!; PIDS+=($NG)
  wait_port "$NGINX_PORT"
  ttfc "nginx" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
  stop "$NG"
fi
if command -v crabllm >/dev/null; then
  crabllm_config "$STAMP_PORT"
  RUST_LOG=warn taskset -c 0 crabllm serve --config "$WORK/crabllm.toml" 2>"$WORK/crabllm.log" & CB=$!; PIDS+=($CB)
  wait_port "$CRAB_PORT" && ttfc "crabllm" "http://127.0.0.1:$CRAB_PORT/v1/chat/completions"
  stop "$CB"
fi
start_proxy '["failover", "circuit_breaker", "retry"]' "" "$STAMP_PORT"
ttfc "llm-router, default stack" "http://127.0.0.1:$PX_PORT/v1/chat/completions"
stop "$PX"
start_proxy '["metrics", "auth", "failover", "circuit_breaker", "retry"]' "
[auth]
keys = [\"sk-client-benchmark-key-0001\"]
" "$STAMP_PORT"
ttfc "llm-router, production stack" "http://127.0.0.1:$PX_PORT/v1/chat/completions"
stop "$PX"
stop "$SU"

echo "== llm-router, default stack: one core, then two" >&2
start_proxy '["failover", "circuit_breaker", "retry"]' ""
ONE=$(oha_run "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT" -z "$DURATION" -c "$CONNS")
ONE=${ONE%% *}
stop "$PX"
PX_CPUS=0-1 LOAD_CPUS=0-1
taskset -p -c 0-1 "$UP" >/dev/null
start_proxy '["failover", "circuit_breaker", "retry"]' ""
TWO=$(oha_run "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$CHAT" -z "$DURATION" -c "$CONNS")
TWO=${TWO%% *}
stop "$PX"
PX_CPUS=0 LOAD_CPUS=1
taskset -p -c 1 "$UP" >/dev/null
CORES_RATIO=$(python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print(f"{b / a:.2f}" if a else "-")' "$ONE" "$TWO")
echo "  one core: $ONE req/s; two cores (load and upstream sharing them): $TWO req/s; ratio ${CORES_RATIO}x" >&2

NOFILE=$(ulimit -n)
FIT=$(( (NOFILE - 64) / 2 - 16 ))
if [ "$STREAMS" -gt "$FIT" ]; then
  echo "== open-files limit $NOFILE (hard $(ulimit -Hn)) holds $FIT streams in the proxy, not $STREAMS: running $FIT" >&2
  STREAMS=$FIT
fi
echo "== $STREAMS concurrent slow streams through the shipped stack $SHIPPED" >&2
SLOW_STREAM_MS=1000 taskset -c 1 "$UPSTREAM" "127.0.0.1:$SLOW_PORT" >/dev/null & SLOW=$!; PIDS+=($SLOW)
wait_port "$SLOW_PORT"
start_proxy "$SHIPPED" "" "$SLOW_PORT" "max_connections = $(( STREAMS + 16 ))"
sleep 0.5
SLOW_IDLE=$(rss_kib "$PX")
read -r STREAMS_OK STREAMS_PEAK <<<"$(taskset -c "$LOAD_CPUS" "$CLIENT" streams "http://127.0.0.1:$PX_PORT/v1/chat/completions" "$STREAMS" 2>"$WORK/streams.err" || echo "0 0")"
STREAMS_HWM_KIB=$(hwm_kib "$PX")
STREAMS_HWM=$(awk -v k="$STREAMS_HWM_KIB" 'BEGIN{printf "%.1f", k/1024}')
PER_1000=$(awk -v h="$STREAMS_HWM_KIB" -v i="$SLOW_IDLE" -v n="$STREAMS" 'BEGIN{printf "%.1f", (h-i)/1024*1000/n}')
[ -s "$WORK/streams.err" ] && cat "$WORK/streams.err" >&2
echo "  $STREAMS_OK of $STREAMS slow streams completed ($STREAMS_PEAK open at once); peak RSS $STREAMS_HWM MiB, $PER_1000 MiB per 1,000 streams" >&2
stop "$PX"
stop "$SLOW"

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); proxy on core 0, load and upstream on core 1; $DURATION per run, $CONNS connections."
echo "Idle RSS of the proxy: $IDLE MiB. Holding $STREAMS concurrent slow streams through the shipped stack ($STREAMS_OK completed, $STREAMS_PEAK open at once): peak RSS $STREAMS_HWM MiB, $PER_1000 MiB per 1,000 streams above idle."
echo "Default stack at full load: $ONE req/s on one core, $TWO req/s allowed on both (load generator and upstream unpinned, sharing them): ${CORES_RATIO}x."
echo
echo "| scenario | req/s (full load) | p50 ms at $RATE req/s | p99 ms at $RATE req/s | CPU µs/request | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Time to first content ($TTFC_N streams at $TTFC_RATE/s; the upstream's stamp in its first content event to the client holding it):"
echo
echo "| path | p50 µs | p99 µs | added p50 µs |"
echo "|---|---|---|---|"
printf '%s\n' "${TTFC_ROWS[@]}"
