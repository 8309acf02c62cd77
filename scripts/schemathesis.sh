#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document (GET /openapi.json) with
# schemathesis: every check, a fixed seed, bounded examples, once with a read-only key and once
# with the root key. Builds the release binary, starts it on 127.0.0.1 with a temporary
# database, and stops it by PID at the end.
#   bash scripts/schemathesis.sh                       # 50 examples per operation
#   MAX_EXAMPLES=500 bash scripts/schemathesis.sh      # the larger documented run
# Prints, per run, every check with its case and failure counts (scripts/schemathesis_summary.py).
# Env: MAX_EXAMPLES (50), SEED (20261122), PORT (18089), BIN (target/release/apikeyd),
# REPORT_DIR (a temp dir: JUnit and NDJSON reports of each run).
# Needs python3 and PyPI (schemathesis is installed into scripts/.venv on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
SEED=${SEED:-20261122}
PORT=${PORT:-18089}
BIN=${BIN:-target/release/apikeyd}
VENV=scripts/.venv
D=$(mktemp -d)
REPORT_DIR=${REPORT_DIR:-$D/reports}

if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
[ "$BIN" != target/release/apikeyd ] || cargo build --release --quiet

# Failed authentications are rate limited per client address (429 after 50). Schemathesis
# sends thousands of deliberately bad credentials from one address, so the burst is raised
# here; 429 is still documented on every authenticated operation.
"$BIN" serve --db "$D/k.db" --bind "127.0.0.1:$PORT" --auth-failure-burst 1000000 2> "$D/err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D/k.db"*' EXIT
for _ in $(seq 100); do grep -q listening "$D/err" && break; sleep 0.1; done
ROOT=$(grep '^root key:' "$D/err" | cut -d' ' -f3)
[ -n "$ROOT" ] || { echo "server did not start:"; cat "$D/err"; exit 1; }
H=http://127.0.0.1:$PORT

# A read-only key: authenticates everywhere, manages nothing (403 on every management call).
RO_JSON=$(python3 - "$H" "$ROOT" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/v1/keys", method="POST",
                             data=json.dumps({"title": "ro", "grants": [{"path": "/", "access": "read"}]}).encode(),
                             headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
)
RO=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["api_key"])' <<<"$RO_JSON")
RO_ID=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["id"])' <<<"$RO_JSON")

# scripts/schemathesis_hooks.py keeps generated requests within the three rules the document
# cannot state (future expiry, no self-revocation, a DELETE /api-key value somewhere).
export PYTHONPATH=scripts${PYTHONPATH:+:$PYTHONPATH} SCHEMATHESIS_HOOKS=schemathesis_hooks

status=0
# The read-only run goes first: the root run revokes and deletes keys by guessed ids, which
# may include the read-only key's.
for who in ro root; do
    key=$ROOT; caller=1; [ "$who" = root ] || { key=$RO; caller=$RO_ID; }
    echo "== schemathesis as the $who key ($MAX_EXAMPLES examples per operation, seed $SEED)"
    # --checks all, nothing excluded: every check applies to this API.
    APIKEYD_CALLER_ID=$caller "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "$H/openapi.json" \
        --checks all \
        --seed "$SEED" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --request-timeout 10 \
        --header "Authorization: Bearer $key" \
        --report junit,ndjson --report-dir "$REPORT_DIR/$who" \
        || status=$?
done
echo "reports: $REPORT_DIR"
for who in ro root; do
    echo "== summary, $who key"
    python3 scripts/schemathesis_summary.py "$REPORT_DIR/$who"/*.ndjson || status=1
done
exit $status
