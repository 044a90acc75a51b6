#!/usr/bin/env bash
# Instructions per request: the proxy's user-space instructions per request
# under callgrind (valgrind), for scenarios of benches/load.sh (default and
# production stacks, plain and streamed; auth alone and with a budget). CPU time on a
# shared (virtual) machine moves by ±10% and more between runs; an
# instruction count moves by well under 1%, so a change of a few percent
# shows. It leaves out the kernel's share (the sockets), which is the same
# for any two builds of the proxy.
#
#   bash benches/instructions.sh                       # this tree's release build
#   BIN=/path/to/older/llm-router bash benches/instructions.sh
#   N=5000 bash benches/instructions.sh                # requests per scenario
#
# Needs valgrind (apt-get install valgrind) and oha (cargo install oha).
# For each scenario: the proxy starts under callgrind, takes 500 requests to
# warm up, its counters are zeroed, then it serves N requests (8 at a time)
# and the instructions counted are divided by N.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-3000}
UP_PORT=${UP_PORT:-19201}
PX_PORT=${PX_PORT:-19202}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v oha >/dev/null || cargo install oha --locked --quiet
cargo build --release --quiet --bin llm-router --example fast_upstream
BIN=${BIN:-target/release/llm-router}
WORK=$(mktemp -d /tmp/llm-router-instructions.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

CHAT='{"model":"bench","messages":[{"role":"system","content":"You are a concise assistant for a finance team."},{"role":"user","content":"Summarize the main points of the quarterly report in three short bullet points, please. Revenue was up 12 percent, costs were down 3 percent, and guidance was unchanged."}],"temperature":0.2}'
STREAM='{"model":"bench","stream":true,"messages":[{"role":"user","content":"Summarize the quarterly report in three short points."}]}'
KEY='sk-client-benchmark-key-0001'

target/release/examples/fast_upstream "127.0.0.1:$UP_PORT" >/dev/null & PIDS+=($!)

wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

# $1 label, $2 [stack] order, $3 extra config, $4 body
measure() {
  local label=$1 order=$2 extra=$3 body=$4 dir
  dir=$(mktemp -d "$WORK/run.XXXX")
  cat > "$dir/config.toml" <<TOML
[server]
listen = "127.0.0.1:$PX_PORT"
[stack]
order = $order
$extra
[[backends]]
name = "up"
provider = "openai"
base_url = "http://127.0.0.1:$UP_PORT/v1"
api_key = "sk-upstream-benchmark-key-0000"
[[models]]
name = "bench"
targets = [{ backend = "up" }]
TOML
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
    "$BIN" serve --config "$dir/config.toml" 2>"$dir/log" & local px=$!
  wait_port "$PX_PORT"
  local oha=(oha --no-tui -c 8 -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d "$body")
  "${oha[@]}" -n 500 "http://127.0.0.1:$PX_PORT/v1/chat/completions" >/dev/null
  callgrind_control -z "$px" >/dev/null 2>&1
  "${oha[@]}" -n "$N" --output-format json "http://127.0.0.1:$PX_PORT/v1/chat/completions" > "$dir/oha.json"
  callgrind_control -d "$px" >/dev/null 2>&1
  kill "$px"; wait "$px" 2>/dev/null || true
  python3 - "$label" "$N" "$dir" <<'PY'
import glob, json, sys
label, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok = sum(v for k, v in json.load(open(f"{d}/oha.json"))["statusCodeDistribution"].items() if k.startswith("2"))
total = 0
for f in glob.glob(f"{d}/cg.*.1"):
    for line in open(f):
        if line.startswith("totals:"):
            total += int(line.split()[1])
print(f"| {label} | {total / n / 1000:.1f} | {ok}/{n} |")
PY
}

echo "| scenario | thousand instructions per request | answered 2xx |"
echo "|---|---|---|"
DEFAULT='["failover", "circuit_breaker", "retry"]'
measure "default stack" "$DEFAULT" "" "$CHAT"
measure "default stack, streamed" "$DEFAULT" "" "$STREAM"
PRODUCTION='["metrics", "auth", "failover", "circuit_breaker", "retry"]'
measure "production stack" "$PRODUCTION" "[auth]
keys = [\"$KEY\"]" "$CHAT"
measure "production stack, streamed" "$PRODUCTION" "[auth]
keys = [\"$KEY\"]" "$STREAM"
if [ -z "${SKIP_BUDGET:-}" ]; then
  measure "auth" '["auth", "failover", "circuit_breaker", "retry"]' "[auth]
keys = [\"$KEY\"]" "$CHAT"
  measure "auth + budget ([[keys]] budget)" '["auth", "budget", "failover", "circuit_breaker", "retry"]' "[auth]
[[keys]]
name = \"bench\"
key = \"$KEY\"
budget = { tokens = 1000000000000, period = \"month\" }
[state]
spend_file = \"$WORK/spend.json\"" "$CHAT"
fi
