-- DELETE /api/v1/keys/{id} with the root key as bearer, every request a distinct id that
-- has never been revoked: ids BENCH_ID_LO..BENCH_ID_HI are split into one contiguous range
-- per thread (BENCH_THREADS threads), and each thread walks its own range. A revoke of an
-- id that is already revoked also answers 200 but does no work, so running off the end of
-- a range is counted (EXTRA exhausted=N) and run.sh refuses the figure if it is not 0.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local lo_all = tonumber(os.getenv("BENCH_ID_LO"))
local hi_all = tonumber(os.getenv("BENCH_ID_HI"))
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")

function thread_setup(thread, tid)
   local span = math.floor((hi_all - lo_all + 1) / nthreads)
   local lo = lo_all + (tid - 1) * span
   thread:set("lo", lo)
   thread:set("hi", lo + span - 1)
end

local nxt, headers

function init(args)
   nxt = lo
   headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_ROOT") }
end

function request()
   local i = nxt
   if i > hi then
      bump(extra, "exhausted")
      i = hi
   else
      nxt = nxt + 1
   end
   return wrk.format("DELETE", "/api/v1/keys/" .. i, headers)
end
