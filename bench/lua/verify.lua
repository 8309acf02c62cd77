-- POST /api/v1/keys/verify with a key drawn at random (per request) from the file in
-- BENCH_KEYS; asks for read access on BENCH_PATH (default /bench/items). Counts the
-- "code" of every answer (VALID, NOT_FOUND, ...), or HTTPnnn when there is none.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function init(args)
   seed_random()
   local path = os.getenv("BENCH_PATH") or "/bench/items"
   use_keys(function(k)
      return wrk.format("POST", "/api/v1/keys/verify",
         { ["Content-Type"] = "application/json" },
         '{"key":"' .. k .. '","path":"' .. path .. '","access":"read"}')
   end)
end

function request()
   return next_request()
end

function response(status, headers, body)
   local code = string.match(body, '"code":"([%u_]+)"')
   bump(counts, code or ("HTTP" .. status))
end
