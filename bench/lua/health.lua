-- GET /healthz through the same Lua path as the key scripts: request() builds each request
-- as pre .. substring .. post (the same two string allocations as use_keys() in common.lua,
-- sending the same bytes every time) and response() counts the status, so that the ratio
-- verify/ceiling compares server work, not client overhead.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local pre, mid, post

function init(args)
   seed_random()
   local template = wrk.format("GET", "/healthz")
   local cut = string.find(template, "\r\n", 1, true) + 2
   pre, mid, post = string.sub(template, 1, cut - 1), string.sub(template, cut), ""
end

function request()
   return pre .. string.sub(mid, 1, #mid) .. post
end

function response(status, headers, body)
   bump(counts, "HTTP" .. status)
end
