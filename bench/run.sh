#!/usr/bin/env bash
# apikeyd benchmark: throughput and latency of key verification against the /healthz
# ceiling, at 10,000 and 1,000,000 keys, under concurrent writes, durable write rates,
# scale figures, and a peer (djangorestframework-api-key). See bench/README.md.
#
#   bash bench/run.sh            full run (about 6 minutes on 2 cores; up to 9 if runs are repeated)
#   QUICK=1 bash bench/run.sh    smoke run: 3 s per load run, 100,000 keys for the big DB
#
# Everything it makes goes under bench/out/ (wiped at start); the report is printed and
# written to bench/out/results.md. Exits non-zero if a correctness check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
BENCH=$REPO/bench
OUT=$BENCH/out
LOGS=$OUT/logs
VENV=$BENCH/.venv

# The exact command, with every knob that was set in the environment, for the report.
COMMAND=""
for knob in QUICK DURATION WARMUP SMALL_KEYS BIG_KEYS CONNS THREADS WRITE_CONNS PEER_WORKERS PEER_KEYS \
    RETRIES WRITE_SHARE PACE_MS APIKEYD_BIN; do
    [[ -n ${!knob:-} ]] && COMMAND+="$knob=${!knob} "
done
COMMAND+="bash bench/run.sh"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-3}
    WARMUP=${WARMUP:-1}
    BIG_KEYS=${BIG_KEYS:-100000}
else
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    BIG_KEYS=${BIG_KEYS:-1000000}
fi
SMALL_KEYS=${SMALL_KEYS:-10000}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WRITE_CONNS=${WRITE_CONNS:-16}
PEER_WORKERS=${PEER_WORKERS:-$(nproc)}
PEER_KEYS=${PEER_KEYS:-$SMALL_KEYS}
RETRIES=${RETRIES:-1}           # extra attempts for a run disturbed by other load
WRITE_SHARE=${WRITE_SHARE:-0.01} # mixed run: writes per second as a share of the pure verify rate
PACE_MS=${PACE_MS:-2}           # paced runs: pause per connection after each answer (ms)

# Set by the environment, these would change what the server does; the script passes
# everything explicitly.
unset APIKEYD_ROOT_KEY APIKEYD_DB APIKEYD_BIND
export RUST_LOG=warn # no access log during load

say() { printf '%s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
stop_pid() { # PID: SIGTERM (graceful), wait up to 30 s, then SIGKILL
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "bench: pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}
forget_pid() {
    local rest=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || rest+=("$p"); done
    PIDS=("${rest[@]}")
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
APT_UPDATED=0
apt_install() {
    if [[ $APT_UPDATED == 0 ]]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v wrk >/dev/null; then
    say "bench: installing wrk (Debian package)"
    apt_install wrk
fi
command -v python3 >/dev/null || apt_install python3 python3-venv
if [[ ! -x $VENV/bin/python ]]; then
    say "bench: creating $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi
PY=$VENV/bin/python
"$PY" -m pip install -q --disable-pip-version-check -r "$BENCH/requirements.txt"

if [[ -n ${APIKEYD_BIN:-} ]]; then
    BIN=$APIKEYD_BIN
else
    say "bench: cargo build --release"
    cargo build --release --quiet || die "cargo build --release failed (or set APIKEYD_BIN to a built apikeyd)"
    BIN=$REPO/target/release/apikeyd
fi
[[ -x $BIN ]] || die "no apikeyd binary at $BIN"
"$BIN" keys seed --help >/dev/null 2>&1 \
    || die "this apikeyd has no \`keys seed\` command, which the benchmark needs to make its keys"

rm -rf "$OUT"
mkdir -p "$LOGS"
RESULTS=$OUT/results.txt
: >"$RESULTS"
put() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }

# ---------------------------------------------------------------- helpers
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ns() { date +%s%N; }
secs_since() { "$PY" -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.3f}')" "$1" "$(now_ns)"; }
rss_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; } # PID FIELD
file_size() { if [[ -e $1 ]]; then stat -c %s "$1"; else echo 0; fi; }

# start_apikeyd DB NAME [SERVE_ARGS...]: sets SRV_PID, SRV_URL, STARTUP_MS
start_apikeyd() {
    local db=$1 name=$2 port t0
    shift 2
    port=$(free_port)
    t0=$(now_ns)
    "$BIN" serve --db "$db" --bind "127.0.0.1:$port" "$@" 2>"$LOGS/$name.server.log" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    WATCH_PIDS=("$SRV_PID")
    SRV_URL=http://127.0.0.1:$port
    STARTUP_MS=$("$PY" "$BENCH/tools/startup.py" "$SRV_URL/healthz" "$t0" "$SRV_PID" 300) \
        || die "apikeyd did not come up; see $LOGS/$name.server.log"
    say "bench: apikeyd up on $SRV_URL (pid $SRV_PID) in $STARTUP_MS ms"
}

# Other load on the machine skews everything, and a shared machine may get some at any time.
# Each run therefore measures the CPU time that neither the server under test (WATCH_PIDS,
# with their children) nor this script's own children (wrk, the writer) used: "foreign" CPU,
# as a share of all cores over the run, reported per run and flagged above 5%. Time stolen by
# the hypervisor counts as other load too. Ticks are USER_HZ (100/s) throughout; interrupt
# time is left out, as no process is charged for it.
WATCH_PIDS=()
HZ=$(getconf CLK_TCK)
pid_ticks() { # utime + stime of one process (all its threads); 0 if it is gone
    local line f
    line=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    read -r -a f <<<"${line##*) }" # the fields after "(comm)", which may hold spaces
    echo $((f[11] + f[12]))
}
watched_ticks() {
    local total=0 p k
    for p in "${WATCH_PIDS[@]}"; do
        total=$((total + $(pid_ticks "$p")))
        for k in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
            total=$((total + $(pid_ticks "$k")))
        done
    done
    echo "$total"
}
snap() { # VAR: sets VAR to "wall_ns busy_ticks children_ticks watched_ticks"
    # Not to be called in $(...): `times` must run in this shell to see its children.
    local _ u n s idle iow irq sirq steal kids
    read -r _ u n s idle iow irq sirq steal _ </proc/stat
    times >"$OUT/.times" # second line: user and system time of the waited-for children
    kids=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
                          printf "%d\n", t * hz }' hz="$HZ" "$OUT/.times")
    printf -v "$1" '%s %s %s %s' "$(now_ns)" "$((u + n + s + steal))" "$kids" "$(watched_ticks)"
}
foreign_pct() { # SNAP_BEFORE SNAP_AFTER -> percent of all cores used by other processes
    local w0 b0 c0 s0 w1 b1 c1 s1
    read -r w0 b0 c0 s0 <<<"$1"
    read -r w1 b1 c1 s1 <<<"$2"
    awk -v w="$((w1 - w0))" -v b="$((b1 - b0))" -v c="$((c1 - c0))" -v s="$((s1 - s0))" -v hz="$HZ" -v n="$(nproc)" \
        'BEGIN { f = (b - c - s) / (w / 1e9 * hz * n) * 100; if (f < 0) f = 0; printf "%.1f\n", f }'
}

# run_wrk NAME SCRIPT URL [CONNS] [once]: one bounded wrk run; the Lua scripts read BENCH_*
# from the environment (pass them as prefix assignments). If other processes used over 5% of
# the CPU during the run, it is run again, up to RETRIES more times, and the attempt with the
# least other load is kept; "once" for runs that cannot be repeated as they are (the revokes,
# whose ids are used up).
run_wrk() {
    local name=$1 script=$2 url=$3 conns=${4:-$CONNS} once=${5:-} before after foreign
    local attempt best=""
    for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        snap before
        BENCH_LUA=$BENCH/lua BENCH_THREADS=$THREADS \
            wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s --latency \
            -s "$BENCH/lua/$script" "$url" >"$LOGS/$name.try$attempt" 2>&1 \
            || die "wrk failed for $name; see $LOGS/$name.try$attempt"
        snap after
        foreign=$(foreign_pct "$before" "$after")
        if [[ -z $best ]] || awk -v a="$foreign" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$foreign
            mv "$LOGS/$name.try$attempt" "$LOGS/$name.wrk"
        fi
        if [[ $once == once ]] || awk -v a="$best" 'BEGIN { exit !(a <= 5) }'; then
            break
        fi
        if ((attempt < RETRIES)); then
            say "  $name: other processes used ${foreign}% of the CPU; running it again"
        fi
    done
    put "foreign_$name" "$best"
    "$PY" "$BENCH/tools/report.py" summary "$OUT" "$name" >&2
}
warm_up() { # SCRIPT URL
    BENCH_LUA=$BENCH/lua BENCH_THREADS=$THREADS \
        wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 5s -s "$BENCH/lua/$1" "$2" \
        >"$LOGS/warmup.txt" 2>&1 || die "wrk warm-up failed; see $LOGS/warmup.txt"
}
wrk_get() { "$PY" "$BENCH/tools/report.py" get "$OUT" "$1" "$2"; }

# check_answer NAME EXPECTED_STATUS EXPECTED_TEXT METHOD URL [BODY|-] [HEADER ...]
check_answer() {
    local name=$1 want_status=$2 want_text=$3 answer status
    shift 3
    answer=$("$PY" "$BENCH/tools/request.py" "$@") || die "$name: request failed"
    status=$(head -n1 <<<"$answer")
    if [[ $status != "$want_status" || $answer != *"$want_text"* ]]; then
        die "$name: expected $want_status with '$want_text', got: $(head -c 400 <<<"$answer")"
    fi
}

# ---------------------------------------------------------------- machine
MEM_KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put nproc "$(nproc)"
put cpu "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
put mem "$(awk -v kb="$MEM_KB" 'BEGIN { printf "%.1f GiB", kb / 1048576 }')"
put os "$(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r)"
put command "$COMMAND"
put git "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo +uncommitted)"
put rustc "$(rustc --version 2>/dev/null | cut -d' ' -f1-2 || echo rustc)"
put wrk "$(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
put quick "$QUICK"
put duration "$DURATION"
put warmup "$WARMUP"
put conns "$CONNS"
put threads "$THREADS"
put write_conns "$WRITE_CONNS"
put pace_ms "$PACE_MS"
put small_keys "$SMALL_KEYS"
put big_keys "$BIG_KEYS"
put peer_workers "$PEER_WORKERS"
put peer_keys "$PEER_KEYS"
snap IDLE_BEFORE
sleep 1
snap IDLE_AFTER
BUSY=$(foreign_pct "$IDLE_BEFORE" "$IDLE_AFTER")
BUSY=${BUSY%.*}
put busy_before "$BUSY"
if ((BUSY > 20)); then
    say "bench: WARNING: the machine was ${BUSY}% busy before the benchmark started;" \
        "other load skews every figure (client and server need both cores)"
fi
say "bench: $(nproc) cores; client (wrk) and servers share them, nothing pinned; ${DURATION} s per run"

# ================================================================ apikeyd, small DB
SMALL_DB=$OUT/small.db
SMALL_FILE=$OUT/keys_small.txt
say "bench: seeding $SMALL_KEYS keys"
ROOT_KEY=$("$BIN" keys create --db "$SMALL_DB" --title bench-root 2>/dev/null)
t0=$(now_ns)
"$BIN" keys seed --db "$SMALL_DB" --count "$SMALL_KEYS" >"$SMALL_FILE"
put seed_small_s "$(secs_since "$t0")"
[[ $(wc -l <"$SMALL_FILE") == "$SMALL_KEYS" ]] || die "keys seed printed $(wc -l <"$SMALL_FILE") keys, expected $SMALL_KEYS"
"$PY" "$BENCH/tools/gen_keys.py" unknown "$SMALL_KEYS" "$OUT/keys_unknown.txt"
"$PY" "$BENCH/tools/gen_keys.py" malformed "$SMALL_KEYS" "$OUT/keys_malformed.txt"

start_apikeyd "$SMALL_DB" small
put startup_small_ms "$STARTUP_MS"
A_KEY=$(head -n1 "$SMALL_FILE")
check_answer "POST /api/v1/keys/verify" 200 '"code":"VALID"' \
    POST "$SRV_URL/api/v1/keys/verify" "{\"key\":\"$A_KEY\",\"path\":\"/bench/items\",\"access\":\"read\"}"
check_answer "POST /api/v1/keys/verify (unknown key)" 200 '"code":"NOT_FOUND"' \
    POST "$SRV_URL/api/v1/keys/verify" "{\"key\":\"$(head -n1 "$OUT/keys_unknown.txt")\"}"
check_answer "GET /auth" 200 "" GET "$SRV_URL/auth" - "x-user-api-key: $A_KEY" \
    "X-Original-URI: /bench/items" "X-Original-Method: GET"
check_answer "GET /auth (unknown key)" 401 "" GET "$SRV_URL/auth" - \
    "x-user-api-key: $(head -n1 "$OUT/keys_unknown.txt")" "X-Original-URI: /bench/items" "X-Original-Method: GET"

BENCH_KEYS=$SMALL_FILE warm_up verify.lua "$SRV_URL"
run_wrk health_small health.lua "$SRV_URL"
BENCH_KEYS=$SMALL_FILE run_wrk verify_small verify.lua "$SRV_URL"
BENCH_KEYS=$SMALL_FILE run_wrk auth_small auth.lua "$SRV_URL"
# ---- latency under a paced load: every connection pauses PACE_MS after each answer
BENCH_DELAY_MS=$PACE_MS run_wrk health_paced health.lua "$SRV_URL"
BENCH_DELAY_MS=$PACE_MS BENCH_KEYS=$SMALL_FILE run_wrk verify_paced verify.lua "$SRV_URL"
BENCH_DELAY_MS=$PACE_MS BENCH_KEYS=$SMALL_FILE run_wrk auth_paced auth.lua "$SRV_URL"
put rss_small_kb "$(rss_kb "$SRV_PID" VmRSS)"

# ---- mixed: valid-key verify load while a writer creates and revokes keys. The writer's
# checks after each revoke are failed verifications from 127.0.0.1, so past the failure
# limiter's burst they are answered RATE_LIMITED: also "not valid" (the limiter only
# replaces a failure code), which is what the check needs; the report shows the split.
PURE_RPS=$(wrk_get verify_small rps)
WRITE_RATE=$("$PY" -c "import sys; print(round(max(2.0, float(sys.argv[1]) * float(sys.argv[2])), 1))" "$PURE_RPS" "$WRITE_SHARE")
say "bench: mixed run, writer at $WRITE_RATE writes/s"
snap MIXED_BEFORE
"$PY" "$BENCH/tools/writer.py" "$SRV_URL" "$ROOT_KEY" "$WRITE_RATE" "$DURATION" "$LOGS/writer.json" 8 \
    2>"$LOGS/writer.err" &
WRITER_PID=$!
PIDS+=("$WRITER_PID")
WATCH_PIDS=("$SRV_PID" "$WRITER_PID") # the writer is part of this run, not other load
BENCH_KEYS=$SMALL_FILE run_wrk mixed_verify verify.lua "$SRV_URL" "$CONNS" once
WATCH_PIDS=("$SRV_PID")
wait "$WRITER_PID" || die "the mixed-run writer failed; see $LOGS/writer.err"
forget_pid "$WRITER_PID"
snap MIXED_AFTER # wrk and the writer have both been waited for: both in `times`
put foreign_mixed_verify "$(foreign_pct "$MIXED_BEFORE" "$MIXED_AFTER")"
"$PY" "$BENCH/tools/report.py" writer "$OUT" >&2

# ---- durable writes
BENCH_ROOT=$ROOT_KEY run_wrk create create.lua "$SRV_URL" "$WRITE_CONNS"
CREATED=$(wrk_get create requests)
TARGETS=$((CREATED * 3 > 20000 ? CREATED * 3 : 20000))
BEFORE=$("$PY" "$BENCH/tools/dbstat.py" "$SMALL_DB" maxid)
"$BIN" keys seed --db "$SMALL_DB" --count "$TARGETS" >/dev/null
AFTER=$("$PY" "$BENCH/tools/dbstat.py" "$SMALL_DB" maxid)
[[ $((AFTER - BEFORE)) == "$TARGETS" ]] || die "revoke targets: expected ids $((BEFORE + 1))..$((BEFORE + TARGETS)), max id is $AFTER"
put revoke_targets "$TARGETS"
BENCH_ROOT=$ROOT_KEY BENCH_ID_LO=$((BEFORE + 1)) BENCH_ID_HI=$AFTER run_wrk revoke revoke.lua "$SRV_URL" "$WRITE_CONNS" once
put revoked_in_db "$("$PY" "$BENCH/tools/dbstat.py" "$SMALL_DB" revoked $((BEFORE + 1)) "$AFTER")"

# ---- bad keys from one client address, the failure limiter at its defaults (last on this
# server: they leave 127.0.0.1 over its failure budget)
BENCH_KEYS=$OUT/keys_unknown.txt run_wrk limited_verify_unknown verify.lua "$SRV_URL"
BENCH_KEYS=$OUT/keys_unknown.txt run_wrk limited_auth_unknown auth.lua "$SRV_URL"
stop_pid "$SRV_PID"

# ---- bad keys with the limiter out of the way, to measure the look-up path itself
NO_LIMIT=(--auth-failure-burst 4294967295 --auth-failure-rate 4294967295)
"$BIN" serve --help | grep -q -- --auth-failure-burst || NO_LIMIT=()
start_apikeyd "$SMALL_DB" small_nolimit "${NO_LIMIT[@]}"
BENCH_KEYS=$OUT/keys_unknown.txt warm_up verify.lua "$SRV_URL"
run_wrk health_nolimit health.lua "$SRV_URL"
BENCH_KEYS=$OUT/keys_unknown.txt run_wrk verify_unknown verify.lua "$SRV_URL"
BENCH_KEYS=$OUT/keys_malformed.txt run_wrk verify_malformed verify.lua "$SRV_URL"
BENCH_KEYS=$OUT/keys_unknown.txt run_wrk auth_unknown auth.lua "$SRV_URL"
stop_pid "$SRV_PID"

# ================================================================ apikeyd, big DB
BIG_DB=$OUT/big.db
BIG_FILE=$OUT/keys_big.txt
say "bench: seeding $BIG_KEYS keys"
"$BIN" keys create --db "$BIG_DB" --title bench-root >/dev/null 2>&1
t0=$(now_ns)
"$BIN" keys seed --db "$BIG_DB" --count "$BIG_KEYS" >"$BIG_FILE"
put seed_big_s "$(secs_since "$t0")"
[[ $(wc -l <"$BIG_FILE") == "$BIG_KEYS" ]] || die "keys seed printed $(wc -l <"$BIG_FILE") keys, expected $BIG_KEYS"
start_apikeyd "$BIG_DB" big
put startup_big_ms "$STARTUP_MS"
check_answer "POST /api/v1/keys/verify (big)" 200 '"code":"VALID"' \
    POST "$SRV_URL/api/v1/keys/verify" "{\"key\":\"$(tail -n1 "$BIG_FILE")\"}"
BENCH_KEYS=$BIG_FILE warm_up verify.lua "$SRV_URL"
run_wrk health_big health.lua "$SRV_URL"
BENCH_KEYS=$BIG_FILE run_wrk verify_big verify.lua "$SRV_URL"
BENCH_KEYS=$BIG_FILE run_wrk auth_big auth.lua "$SRV_URL"
put rss_big_kb "$(rss_kb "$SRV_PID" VmRSS)"
put rss_big_anon_kb "$(rss_kb "$SRV_PID" RssAnon)"
put rss_big_file_kb "$(rss_kb "$SRV_PID" RssFile)"
put db_big_bytes "$(file_size "$BIG_DB")"
put db_big_wal_bytes "$(file_size "$BIG_DB-wal")"
put db_big_rows "$("$PY" "$BENCH/tools/dbstat.py" "$BIG_DB" count)"
stop_pid "$SRV_PID"

# ================================================================ peer
say "bench: peer (Django + djangorestframework-api-key), $PEER_KEYS keys"
mkdir -p "$OUT/peer"
export PEER_DB=$OUT/peer/peer.db
(cd "$BENCH/peer" && "$PY" manage.py migrate -v0 && "$PY" make_keys.py "$PEER_KEYS" "$OUT/peer/keys.txt") \
    >"$LOGS/peer.setup.log" 2>&1 || die "peer setup failed; see $LOGS/peer.setup.log"
PEER_PORT=$(free_port)
t0=$(now_ns)
"$VENV/bin/gunicorn" --chdir "$BENCH/peer" --workers "$PEER_WORKERS" --bind "127.0.0.1:$PEER_PORT" \
    --log-level warning peerproj.wsgi:application >"$LOGS/peer.server.log" 2>&1 &
PEER_PID=$!
PIDS+=("$PEER_PID")
WATCH_PIDS=("$PEER_PID")
PEER_URL=http://127.0.0.1:$PEER_PORT
"$PY" "$BENCH/tools/startup.py" "$PEER_URL/ping/" "$t0" "$PEER_PID" 60 any >/dev/null \
    || die "the peer did not come up; see $LOGS/peer.server.log"
check_answer "peer GET /ping/" 200 '"ok":true' GET "$PEER_URL/ping/" - "Authorization: Api-Key $(head -n1 "$OUT/peer/keys.txt")"
check_answer "peer GET /ping/ (bad key)" 403 "" GET "$PEER_URL/ping/" - "Authorization: Api-Key nope.nope"
BENCH_KEYS=$OUT/peer/keys.txt BENCH_PEER_PATH=/ping/ warm_up peer.lua "$PEER_URL"
BENCH_KEYS=$OUT/peer/keys.txt BENCH_PEER_PATH=/ping/ run_wrk peer peer.lua "$PEER_URL"
stop_pid "$PEER_PID"

# ================================================================ report
say ""
status=0
"$PY" "$BENCH/tools/report.py" final "$OUT" || status=$?
if [[ $status != 0 ]]; then
    say "bench: a correctness check failed (see the end of the report)"
fi
exit "$status"
