#!/usr/bin/env bash
# Flood of bad keys against the failed-authentication limiter (docs/RELIABILITY.md, item 6).
# One client (wrk, as X-Forwarded-For 203.0.113.66) sends unknown well-formed keys as fast as it
# can, far beyond the limit (burst 50, then 10/s); meanwhile another client (Python, as
# 198.51.100.7) verifies valid keys at a steady rate and measures its success rate and latency.
# Prints both clients' figures and the server's resident memory before and after. Loopback
# only; every process is stopped by PID; bounded by DURATION seconds (default 10).
#   bash scripts/flood/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
BIN=${APIKEYD_BIN:-target/release/apikeyd}
[ -x "$BIN" ] || cargo build --release
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$OUT"; }
trap cleanup EXIT

"$BIN" keys seed --db "$OUT/server.db" --count 1000 > "$OUT/good.txt" 2>/dev/null
"$BIN" keys seed --db "$OUT/other.db" --count 1000 > "$OUT/bad.txt" 2>/dev/null   # well-formed, unknown here
RUST_LOG=warn "$BIN" serve --db "$OUT/server.db" --bind 127.0.0.1:0 --trusted-proxy 127.0.0.1 2> "$OUT/err" &
SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 100); do grep -q '^listening on' "$OUT/err" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$OUT/err" | head -1)
rss() { awk '/VmRSS/{print $2}' "/proc/$SERVER/status"; }
RSS_BEFORE=$(rss)

cat > "$OUT/flood.lua" <<LUA
local keys = {}
for line in io.lines("$OUT/bad.txt") do keys[#keys + 1] = line end
counts = {}
local threads = {}
setup = function(thread) table.insert(threads, thread) end
request = function()
  return wrk.format("POST", "/api/v1/keys/verify",
    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = "203.0.113.66"},
    '{"key":"' .. keys[math.random(#keys)] .. '"}')
end
response = function(status, headers, body)
  local code = string.match(body, '"code":"([%u_]+)"') or ("HTTP" .. status)
  counts[code] = (counts[code] or 0) + 1
end
done = function(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do parts[#parts + 1] = k .. "=" .. v end
  end
  io.write("FLOOD_ANSWERS " .. table.concat(parts, " ") .. "\n")
end
LUA
wrk -t1 -c32 -d"${DURATION}s" --latency -s "$OUT/flood.lua" "http://$ADDR" > "$OUT/flood.txt" 2>&1 &
WRK=$!; PIDS+=("$WRK")

python3 - "$ADDR" "$OUT/good.txt" "$DURATION" <<'PY' > "$OUT/victim.txt"
import http.client, json, random, sys, time
host, port = sys.argv[1].rsplit(":", 1)
keys = open(sys.argv[2]).read().split()
deadline = time.monotonic() + float(sys.argv[3]) - 0.5
conn = http.client.HTTPConnection(host, int(port), timeout=5)
ok = total = 0
lat = []
codes = {}
while time.monotonic() < deadline:
    body = json.dumps({"key": random.choice(keys)})
    t = time.perf_counter()
    try:
        conn.request("POST", "/api/v1/keys/verify", body,
                     {"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.7"})
        resp = conn.getresponse(); data = resp.read()
        code = json.loads(data)["data"]["code"] if resp.status == 200 else f"HTTP{resp.status}"
    except Exception as e:
        code = type(e).__name__
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
    lat.append((time.perf_counter() - t) * 1000)
    total += 1
    ok += code == "VALID"
    codes[code] = codes.get(code, 0) + 1
    time.sleep(0.002)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"victim requests={total} valid={ok} success={100.0 * ok / max(total, 1):.3f}% p50={p(0.5):.2f}ms p99={p(0.99):.2f}ms codes={codes}")
PY
wait "$WRK" || true
RSS_AFTER=$(rss)
echo "flood (wrk, 1 thread, 32 connections, ${DURATION}s, unknown keys from one client):"
grep -E "Requests/sec|50%|99%|requests in" "$OUT/flood.txt" | sed 's/^/  /'
echo "answers to the flood: $(sed -n 's/^FLOOD_ANSWERS //p' "$OUT/flood.txt")"
cat "$OUT/victim.txt"
echo "server RSS: before ${RSS_BEFORE} kB, after ${RSS_AFTER} kB"
