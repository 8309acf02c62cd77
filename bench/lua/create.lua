-- POST /api/v1/keys with the root key (BENCH_ROOT) as bearer: one durable create per
-- request. A static request (no request()/response()), so wrk sends it at full speed; wrk
-- counts non-2xx answers itself (errors_status).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/api/v1/keys"
wrk.body = '{"title":"bench-create"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_ROOT") or "")
