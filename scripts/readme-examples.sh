#!/usr/bin/env bash
# Runs every curl example in the README against a fresh server on 127.0.0.1:8080 (a temporary
# database, stopped by PID at the end) and prints each command with the body and status it got.
#   bash scripts/readme-examples.sh
set -u
D=$(mktemp -d); cd "$(dirname "$0")/.."; BIN=${BIN:-target/release/apikeyd}; [ -x "$BIN" ] || cargo build --release
$BIN serve --db $D/k.db --bind 127.0.0.1:8080 2> $D/err & PID=$!
for i in $(seq 50); do grep -q listening $D/err && break; sleep 0.1; done
ROOT=$(grep '^root key:' $D/err | cut -d' ' -f3)
H=http://127.0.0.1:8080
show() { echo "\$ $1"; eval "$1" | sed 's/^/  /'; echo; }
J='-H "Content-Type: application/json"'
export ROOT H
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"title\":\"Production backend\",\"grants\":[{\"path\":\"/data\",\"access\":\"read_write\"}]}'"
KEY=$(curl -s -X POST $H/api/v1/keys -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"title":"reader","grants":[{"path":"/data","access":"read"}]}' | python3 -c 'import sys,json;d=json.load(sys.stdin)["data"];print(d["api_key"], d["id"])')
export RKEY=${KEY% *} RID=${KEY#* }
show "curl -s -w ' %{http_code}\n' \"\$H/api/v1/keys?limit=1\" -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X PATCH \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"owner\":\"customer-42\",\"meta\":{\"plan\":\"pro\"}}'"
show "curl -s -w ' %{http_code}\n' -X PATCH \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"grants\":[{\"path\":\"/\",\"access\":\"read\"}],\"expires_at\":null}' -o /dev/null -w '%{http_code}\n'"
show "curl -s -w ' %{http_code}\n' \"\$H/api/v1/keys?owner=customer-42&unused_for=0s\" -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys/verify -H 'Content-Type: application/json' -d \"{\\\"key\\\":\\\"\$RKEY\\\",\\\"path\\\":\\\"/data/report.csv\\\",\\\"access\\\":\\\"read\\\"}\""
show "curl -s -o /dev/null -D - \$H/auth -H \"x-user-api-key: \$RKEY\" -H 'X-Original-URI: /data/report.csv' -H 'X-Original-Method: GET' | head -3"
show "curl -s -o /dev/null -w '%{http_code}\n' \$H/auth -H \"x-user-api-key: \$RKEY\" -H 'X-Original-URI: /data/report.csv' -H 'X-Original-Method: PUT'"
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"title\":\"partner\",\"rate_limit\":{\"limit\":100,\"window_seconds\":60},\"credits\":{\"remaining\":1000,\"refill\":{\"amount\":1000,\"interval\":\"monthly\"}},\"allowed_ips\":[\"203.0.113.0/24\",\"2001:db8::/32\"]}'"
LKEY=$(curl -s -X POST $H/api/v1/keys -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"title":"partner 2","rate_limit":{"limit":100,"window_seconds":60},"credits":{"remaining":1000},"allowed_ips":["203.0.113.0/24"]}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["api_key"])')
MKEY=$(curl -s -X POST $H/api/v1/keys -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"title":"metered","rate_limit":{"limit":2,"window_seconds":60}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["api_key"])')
export LKEY MKEY
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys/verify -H 'Content-Type: application/json' -d \"{\\\"key\\\":\\\"\$LKEY\\\",\\\"ip\\\":\\\"203.0.113.7\\\",\\\"cost\\\":5}\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys/verify -H 'Content-Type: application/json' -d \"{\\\"key\\\":\\\"\$LKEY\\\",\\\"ip\\\":\\\"198.51.100.1\\\"}\""
show "for i in 1 2 3; do curl -s -o /dev/null -D - \$H/auth -H \"x-user-api-key: \$MKEY\" | grep -i -E '^(HTTP|ratelimit|retry)'; done"
show "curl -s -w ' %{http_code}\n' -X PATCH \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"enabled\":false}' -o /dev/null"
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys/verify -H 'Content-Type: application/json' -d \"{\\\"key\\\":\\\"\$RKEY\\\"}\""
show "curl -s -w ' %{http_code}\n' -X PATCH \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"enabled\":true}' -o /dev/null"
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/keys/\$RID/rotate -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"grace_seconds\":3600}'"
show "curl -s -w ' %{http_code}\n' \"\$H/api/v1/audit?key_id=\$RID&limit=2\" -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/v1/keys/\$RID -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/v1/keys/1 -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/v1/keys/999 -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api-key -H \"x-user-api-key: \$ROOT\" -H 'Content-Type: application/json' -d '{\"permissions\":2,\"path\":\"/uploads\",\"expiration_date\":\"0001-01-01T00:00:00Z\"}'"
SK=$(curl -s -X POST $H/api-key -H "x-user-api-key: $ROOT" -H 'Content-Type: application/json' -d '{"permissions":1,"path":"/logs","expiration_date":"0001-01-01T00:00:00Z"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["value"])')
export SK
show "curl -s -w ' %{http_code}\n' -X DELETE \"\$H/api-key?value=\$SK\" -H \"x-user-api-key: \$ROOT\" -H 'Content-Type: application/json'"
show "curl -s -w ' %{http_code}\n' -X DELETE \"\$H/api-key?value=\$SK\" -H \"x-user-api-key: \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/applications -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"name\":\"Acme\"}'"
APP=$(curl -s $H/api/v1/applications -H "Authorization: Bearer $ROOT" | python3 -c 'import sys,json;print(json.load(sys.stdin)["applications"][0]["id"])')
export APP
show "curl -s -w ' %{http_code}\n' \$H/api/v1/applications -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' \$H/api/v1/applications/\$APP -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/applications/\$APP/api-keys -H \"Authorization: Bearer \$ROOT\" -H 'Content-Type: application/json' -d '{\"name\":\"acme admin\"}'"
AK=$(curl -s -X POST $H/api/v1/applications/$APP/api-keys -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"name":"acme worker","grants":[{"path":"/jobs","access":"read"}]}' | python3 -c 'import sys,json;d=json.load(sys.stdin);print(d["api_key"], d["id"])')
export AKEY=${AK% *} AID=${AK#* }
show "curl -s -w ' %{http_code}\n' \$H/api/v1/applications/\$APP/api-keys?limit=1 -H \"Authorization: Bearer \$ROOT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/clients/login -H 'Content-Type: application/json' -d \"{\\\"api_key\\\":\\\"\$ROOT\\\"}\""
JWT=$(curl -s -X POST $H/api/clients/login -H 'Content-Type: application/json' -d "{\"api_key\":\"$ROOT\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["token"])')
export JWT
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/v1/auth/token -H 'Content-Type: application/json' -d \"{\\\"api_key\\\":\\\"\$ROOT\\\"}\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/v1/applications/\$APP/api-keys/\$AID -H \"Authorization: Bearer \$JWT\" -H 'Content-Type: application/json'"
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/v1/applications/\$APP/api-keys/not-a-uuid -H \"Authorization: Bearer \$JWT\""
show "curl -s -w ' %{http_code}\n' -X POST \$H/api/clients/api-keys -H \"Authorization: Bearer \$JWT\" -H 'Content-Type: application/json' -d '{\"name\":\"ussd gateway\"}'"
CK=$(curl -s -X POST $H/api/clients/api-keys -H "Authorization: Bearer $JWT" -H 'Content-Type: application/json' -d '{"name":"ussd 2"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["id"])')
CK2=$(curl -s -X POST $H/api/clients/api-keys -H "Authorization: Bearer $JWT" -H 'Content-Type: application/json' -d '{"name":"ussd 3"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["id"])')
CK3=$(curl -s -X POST $H/api/clients/api-keys -H "Authorization: Bearer $JWT" -H 'Content-Type: application/json' -d '{"name":"ussd 4"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["id"])')
export CK CK2 CK3
show "curl -s -w ' %{http_code}\n' \"\$H/api/clients/api-keys?limit=1\" -H \"Authorization: Bearer \$JWT\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/clients/api-keys/\$CK -H \"Authorization: Bearer \$JWT\" -H 'Content-Type: application/json'"
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/clients/api-keys/\$CK -H \"Authorization: Bearer \$JWT\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/clients/api-keys/bulk -H \"Authorization: Bearer \$JWT\" -H 'Content-Type: application/json' -d \"{\\\"api_key_ids\\\":[\\\"\$CK2\\\",\\\"a1b2c3d4-e5f6-7890-abcd-ef1234567890\\\"]}\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/clients/api-keys/bulk -H \"Authorization: Bearer \$JWT\" -H 'Content-Type: application/json' -d \"{\\\"api_key_ids\\\":[\\\"\$CK2\\\",\\\"\$CK3\\\"]}\""
show "curl -s -w ' %{http_code}\n' -X DELETE \$H/api/clients/api-keys/bulk -H 'Authorization: Bearer not.a.jwt' -H 'Content-Type: application/json' -d '{\"api_key_ids\":[]}'"
show "curl -s -w ' %{http_code}\n' \$H/healthz"
show "curl -s -w ' %{http_code}\n' -X PUT \$H/api/v1/keys -H \"Authorization: Bearer \$ROOT\""
kill $PID; wait $PID 2>/dev/null; rm -rf $D
