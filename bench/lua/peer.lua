-- The peer (djangorestframework-api-key behind gunicorn): GET BENCH_PEER_PATH with a key
-- drawn at random from BENCH_KEYS in "Authorization: Api-Key <key>". Counts statuses.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function init(args)
   seed_random()
   local path = os.getenv("BENCH_PEER_PATH") or "/ping/"
   use_keys(function(k)
      return wrk.format("GET", path, { ["Authorization"] = "Api-Key " .. k })
   end)
end

function request()
   return next_request()
end

function response(status, headers, body)
   bump(counts, "HTTP" .. status)
end
