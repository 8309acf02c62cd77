#!/usr/bin/env bash
# Slow and greedy clients against the release binary (docs/RELIABILITY.md, sections 15 and 16):
# stalled request bodies up to the connection limit beside a legitimate client, a stalled
# second head, and pipelining clients that never read (or read slowly), with the server's
# resident memory. Loopback only; every server is stopped by its PID. About 3 minutes.
#   bash scripts/flood/slow_clients.sh                      # 8,400 stalled connections
#   STALL=3000 bash scripts/flood/slow_clients.sh           # fewer, where descriptors are short
#   APIKEYD_BIN=path/to/apikeyd bash scripts/flood/slow_clients.sh --only pipeline
# Needs two descriptors per stalled connection (client and server each hold one): the open
# files limit is raised to its hard limit, and STALL lowered to fit it if needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${APIKEYD_BIN:-target/release/apikeyd}
[ -x "$BIN" ] || cargo build --release
ulimit -n "$(ulimit -Hn)"
STALL=${STALL:-8400}
room=$(( $(ulimit -n) - 200 ))
if [ "$STALL" -gt "$room" ]; then
    echo "open files limit $(ulimit -n): stalling $room connections instead of $STALL"
    STALL=$room
fi
exec python3 scripts/flood/slow_clients.py --binary "$BIN" --stall "$STALL" "$@"
