#!/usr/bin/env bash
# Load on `aifactory serve` from a second process on loopback (wrk), while its live twin runs
# and writes events and telemetry through the ingest path: the read endpoints the issue names
# (latest telemetry, KPIs, the schedule), one after the other.
#
# usage: bench/serve_load.sh [BINARY] [SECONDS] [CONNECTIONS] [SPEED]
# needs: wrk (Debian package `wrk`). Prints one line per endpoint: requests/s, p50, p99, errors.
set -euo pipefail
bin="${1:-${CARGO_TARGET_DIR:-target}/release/aifactory}"
seconds="${2:-15}"
connections="${3:-32}"
speed="${4:-60}"
port=18090
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
password="bench-$(date +%s)"
"$bin" serve --listen "127.0.0.1:$port" --admin-password "$password" --db "$work/serve.sqlite" --speed "$speed" \
    >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.5
done
token=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
# Wait for the plan: the schedule answers 404 until the scheduling skill has planned once.
for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/api/v1/schedule" -H "Authorization: Bearer $token" >/dev/null && break
    sleep 0.5
done
echo "wrk: 2 threads, $connections connections, ${seconds}s per endpoint; the twin runs at ${speed}x"
# /health (no token, no store, a fixed body) is the same server's ceiling, run side by side.
for path in /api/v1/telemetry/latest /api/v1/kpis /api/v1/schedule /health; do
    bytes=$(curl -sf "http://127.0.0.1:$port$path" -H "Authorization: Bearer $token" | wc -c)
    out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port$path")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    printf '%-26s %6s bytes  %10s req/s  p50 %-9s p99 %-9s non-2xx %s\n' \
        "$path" "$bytes" "$rps" "$p50" "$p99" "${errors:-0}"
done
