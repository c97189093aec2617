#!/usr/bin/env bash
# /health under wrk for two builds, alternating, on loopback only:
#   bench/health-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
# Each round starts `serve --demo` of each binary on a free 127.0.0.1 port,
# runs wrk -t2 -c64 -d10s --latency against /health, prints req/s and the
# p50/p90/p99 latency, and stops that server by its PID. Needs wrk and curl.
# To build an older commit beside the work tree:
#   mkdir -p /tmp/old-src && git archive COMMIT | tar -x -C /tmp/old-src
#   (cd /tmp/old-src && CARGO_TARGET_DIR=/tmp/old-target cargo build --release --locked)
set -euo pipefail
old=${1:?old binary} new=${2:?new binary} rounds=${3:-3}
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
for round in $(seq "$rounds"); do
  for label in old new; do
    bin=$old; [ "$label" = new ] && bin=$new
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env -i PATH=/usr/bin:/bin DSPM_LISTEN="127.0.0.1:$port" RUST_LOG=warn "$bin" serve --demo >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.05; done
    load=$(cut -d' ' -f1 /proc/loadavg)
    out=$(wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$port/health")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    pct() { awk -v p="$1%" '$1 == p {print $2}' <<<"$out"; }
    echo "round $round $label load $load req/s $rps p50 $(pct 50) p90 $(pct 90) p99 $(pct 99)"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
