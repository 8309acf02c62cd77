#!/usr/bin/env bash
# Runs every command of the README's "Operating apikeyd" section against a fresh server (a
# temporary database, stopped by PID) and prints each command with what it printed.
#   bash scripts/operating-examples.sh        (BIN=target/debug/apikeyd to use a debug build)
# Needs curl; promtool (Debian: prometheus) and systemd-analyze for their steps.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/apikeyd}; [ -x "$BIN" ] || cargo build --release
BIN=$(realpath "$BIN"); UNIT=$(realpath examples/apikeyd.service)
D=$(mktemp -d); cd "$D"
apikeyd() { "$BIN" "$@"; }
PORT=${PORT:-18080}; MPORT=${MPORT:-19464}
H=http://127.0.0.1:$PORT
show() { echo "\$ $1"; eval "$1" 2>&1 | sed 's/^/  /'; echo; }
export BIN H

start() {
    $BIN serve --db apikeyd.db --bind 127.0.0.1:$PORT --metrics-bind 127.0.0.1:$MPORT "$@" 2> err & PID=$!
    for _ in $(seq 100); do grep -q '^listening' err && break; sleep 0.1; done
}
start
ROOT=$(grep '^root key:' err | cut -d' ' -f3); export ROOT
echo "\$ apikeyd serve --db apikeyd.db --bind 127.0.0.1:$PORT --metrics-bind 127.0.0.1:$MPORT"
grep -v '^root key:' err | sed 's/^/  /'; echo
mkkey() { curl -s -X POST $H/api/v1/keys -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d "$1" \
    | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["api_key"])'; }
SCRAPER=$(mkkey '{"title":"prometheus","grants":[{"path":"/metrics","access":"read"}]}'); export SCRAPER
for _ in 1 2 3; do curl -s -o /dev/null -X POST $H/api/v1/keys/verify -H 'Content-Type: application/json' -d "{\"key\":\"$ROOT\"}"; done
curl -s -o /dev/null -X POST $H/api/v1/keys/verify -H 'Content-Type: application/json' -d '{"key":"sk-nope"}'

show "curl -s -w ' %{http_code}\n' $H/readyz"
show "curl -s $H/metrics -H \"Authorization: Bearer \$SCRAPER\" | grep -E '^apikeyd_verdicts_total.*(VALID|NOT_FOUND)'"
show "curl -s -o /dev/null -w '%{http_code}\n' $H/metrics"
show "curl -s http://127.0.0.1:$MPORT/metrics | grep -E '^apikeyd_(write_queue_depth|key_index|last_used|http_request_duration_seconds_count\{route=\"/api/v1/keys/verify\")'"
if command -v promtool >/dev/null; then
    show "curl -s http://127.0.0.1:$MPORT/metrics | promtool check metrics && echo promtool: ok"
fi

show "apikeyd backup --db apikeyd.db --out backup.db"
show "ls -l backup.db | cut -d' ' -f1,5"
show "apikeyd check --db backup.db"
show "apikeyd restore --from backup.db --db apikeyd.db"
kill -TERM $PID; wait $PID
show "apikeyd restore --from backup.db --db apikeyd.db"
echo "garbage" | dd of=backup.db bs=1 seek=5000 conv=notrunc 2>/dev/null
for i in $(seq 200); do printf 'XXXXXXXXXXXXXXXXXXXX' ; done | dd of=backup.db bs=1 seek=4200 conv=notrunc 2>/dev/null
show "apikeyd restore --from backup.db --db apikeyd.db"
sqlite_delete() { python3 -c "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);c.execute(\"DELETE FROM audit_log WHERE action='create' AND key_id=2\");c.commit()" "$1"; }
sqlite_delete apikeyd.db
show "apikeyd check --db apikeyd.db; echo \"exit \$?\""

start --log-format json
curl -s -o /dev/null "$H/api-key?value=$ROOT" -X DELETE
kill -TERM $PID; wait $PID
echo "\$ apikeyd serve --db apikeyd.db --log-format json   # a request, then SIGTERM"
grep -v '^listening on' err | sed 's/^/  /'; echo

if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart's binary exists: the copy names the one just built.
    sed "s#/usr/local/bin/apikeyd#$BIN#" "$UNIT" > apikeyd.service
    show "systemd-analyze verify apikeyd.service && echo verify: ok"
    show "systemd-analyze security --offline=true apikeyd.service | tail -1"
fi
show "apikeyd completions bash > apikeyd.bash && bash -n apikeyd.bash && wc -l < apikeyd.bash"
show "apikeyd man | head -4"
cd / && rm -rf "$D"
