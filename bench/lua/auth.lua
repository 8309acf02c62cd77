-- GET /auth (forward auth, as a gateway calls it) with a key drawn at random from
-- BENCH_KEYS in x-user-api-key, X-Original-URI BENCH_PATH, X-Original-Method GET.
-- Counts statuses: 200 allowed, 401 bad key, 403 no grant.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function init(args)
   seed_random()
   local path = os.getenv("BENCH_PATH") or "/bench/items"
   use_keys(function(k)
      return wrk.format("GET", "/auth", {
         ["x-user-api-key"] = k,
         ["X-Original-URI"] = path,
         ["X-Original-Method"] = "GET",
      })
   end)
end

function request()
   return next_request()
end

function response(status, headers, body)
   bump(counts, "HTTP" .. status)
end
