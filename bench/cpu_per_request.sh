#!/usr/bin/env bash
# CPU per request, server and client apart: where the verify / ceiling ratio of bench/run.sh
# goes (BENCHMARKS.md, "What limits the misses"). Seeds KEYS keys in a temporary database,
# starts the release server on 127.0.0.1 (RUST_LOG=warn), and for each wrk script in KINDS runs
# a 2 s warm-up, then a DURATION s run, reading the server's utime+stime from /proc around it
# and wrk's from `time`. Prints requests/s, server and client microseconds per request, p50 and
# p99. Stops the server by PID.
#   bash bench/cpu_per_request.sh
#   KINDS="health verify" DURATION=10 KEYS=100000 bash bench/cpu_per_request.sh
# Env: KINDS (health verify auth), DURATION (6), KEYS (10000), APIKEYD_BIN, SERVE_ARGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KINDS=${KINDS:-health verify auth}
DURATION=${DURATION:-6}
KEYS=${KEYS:-10000}
command -v wrk >/dev/null || { echo "needs wrk (bench/run.sh installs it)" >&2; exit 2; }
if [[ -z ${APIKEYD_BIN:-} ]]; then
    cargo build --release --quiet
    APIKEYD_BIN=target/release/apikeyd
fi
D=$(mktemp -d)
PID=""
cleanup() { [[ -n $PID ]] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; rm -rf "$D"; }
trap cleanup EXIT
"$APIKEYD_BIN" keys seed --db "$D/k.db" --count "$KEYS" --grant read:/bench >"$D/keys.txt"
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
RUST_LOG=warn "$APIKEYD_BIN" serve --db "$D/k.db" --bind 127.0.0.1:0 ${SERVE_ARGS:-} 2>"$D/err" &
PID=$!
for _ in $(seq 100); do grep -q '^listening on' "$D/err" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$D/err" | head -1)
[[ -n $ADDR ]] || { cat "$D/err" >&2; exit 1; }
export BENCH_LUA=$PWD/bench/lua BENCH_KEYS=$D/keys.txt BENCH_PATH=/bench/items
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
echo "2 cores shared by client and server, nothing pinned; $KEYS keys; ${DURATION} s per run"
for kind in $KINDS; do
    wrk -t2 -c32 -d2s -s "bench/lua/$kind.lua" "http://$ADDR" >/dev/null 2>&1
    s0=$(ticks)
    t0=$(date +%s%N)
    out=$({ /usr/bin/time -f "WRKCPU %U %S" wrk -t2 -c32 -d"${DURATION}s" --latency -s "bench/lua/$kind.lua" "http://$ADDR"; } 2>&1)
    t1=$(date +%s%N)
    s1=$(ticks)
    req=$(sed -n 's/^BENCH requests=\([0-9]*\).*/\1/p' <<<"$out")
    p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$out")
    wcpu=$(awk '/^WRKCPU/ { print $2 + $3 }' <<<"$out")
    awk -v k="$kind" -v r="$req" -v ns=$((t1 - t0)) -v s=$((s1 - s0)) -v hz="$HZ" -v c="$wcpu" -v a="$p50" -v b="$p99" \
        'BEGIN { printf "%-8s %8.0f req/s  server %6.2f us/req  wrk %6.2f us/req  p50 %.2f ms  p99 %.2f ms\n",
                 k, r / (ns / 1e9), s / hz * 1e6 / r, c * 1e6 / r, a / 1000, b / 1000 }'
done
