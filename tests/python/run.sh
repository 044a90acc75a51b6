#!/usr/bin/env bash
# Drive llm-router with the official OpenAI Python SDK.
#
#   bash tests/python/run.sh [pytest args...]
#
# Builds the debug binary, starts `llm-router serve` on the shipped config.toml
# (model `echo` answered by the built-in mock provider, no keys) on a free port,
# waits for /health, runs pytest on tests/python against it from a venv at .venv,
# stops the proxy and exits with pytest's code. Safe to run again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
REQS="$ROOT/tests/python/requirements.txt"

echo "== building llm-router (debug)" >&2
cargo build --quiet --bin llm-router
BIN="$ROOT/target/debug/llm-router"

echo "== python venv at .venv" >&2
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when requirements.txt changed since the last successful install.
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    echo "$WANT" > "$STAMP"
fi

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
LOG="$(mktemp -t llm-router-pytest.XXXXXX.log)"
PROXY_PID=""
cleanup() {
    if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    rm -f "$LOG"
}
trap cleanup EXIT

echo "== starting llm-router on 127.0.0.1:$PORT" >&2
"$BIN" serve --config "$ROOT/config.toml" --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
PROXY_PID=$!

HEALTH_URL="http://127.0.0.1:$PORT/health"
ready=0
for _ in $(seq 1 200); do   # 200 x 0.1 s = 20 s
    if ! kill -0 "$PROXY_PID" 2>/dev/null; then
        echo "llm-router exited before becoming healthy:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if "$VENV/bin/python" - "$HEALTH_URL" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if json.load(r).get("status") == "healthy" else 1)
PY
    then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "llm-router did not answer $HEALTH_URL within 20 s:" >&2
    cat "$LOG" >&2
    exit 1
fi

export LLM_ROUTER_URL="http://127.0.0.1:$PORT/v1"
# The binary itself, for tests that start a proxy of their own (with [auth], ...).
export LLM_ROUTER_BIN="$BIN"
echo "== pytest against $LLM_ROUTER_URL" >&2
set +e
# No .pytest_cache in the work tree.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/python" "$@"
status=$?
set -e
if [ "$status" != 0 ]; then
    echo "== llm-router log" >&2
    cat "$LOG" >&2
fi
exit "$status"
