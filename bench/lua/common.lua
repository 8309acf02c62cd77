-- Shared by every wrk script in bench/lua: thread numbering, seeding, loading a key file,
-- counting outcomes per thread, and a done() that prints one machine-readable line:
--   BENCH requests=N duration_us=D errors_connect=.. errors_read=.. errors_write=..
--         errors_status=.. errors_timeout=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
--   COUNT <outcome>=<n>            (one line per outcome, summed over threads)
--   EXTRA <name>=<n>               (script-specific counters, summed over threads)
-- run.sh's report.py parses these lines. The outcome counts are the check that a run
-- measured what it claims (e.g. every answer VALID), not only that it answered 200.

-- BENCH_DELAY_MS paces a run: each connection waits that long after every answer before it
-- sends the next request (wrk's delay() hook), so the server is not saturated and latency
-- is measured under a known, moderate load instead of at the point of collapse.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause and pause > 0 then
   function delay() return pause end
end

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
   if thread_setup then thread_setup(thread, next_id) end
end

counts = {}
extra = {}

function bump(tbl, name)
   tbl[name] = (tbl[name] or 0) + 1
end

function seed_random()
   -- Each thread has its own Lua state; mix the thread id in so they draw different keys.
   local t = os.time()
   local c = math.floor((os.clock() * 1000000) % 1000003)
   math.randomseed(t + c + (id or 0) * 104729)
   for _ = 1, 10 do math.random() end
end

-- Sets up next_request(), which returns a request for a key drawn at random from the file
-- BENCH_KEYS; make(key) formats the request for one key (with wrk.format).
--
-- wrk runs each thread's init() on its main thread and starts thread 1 before thread 2's
-- init() has run, so init() must be fast or the first thread gets a head start that inflates
-- requests/s; and a Lua table of a million strings makes every garbage collection walk it
-- (long pauses, a false p99). So when every key has the same length (as the keys apikeyd and
-- the peer make do), the file stays one string and each request is cut from it: the request
-- for a placeholder key is split into the part before and after the key, and a request is
-- pre .. key .. post (Content-Length does not change, as every key has the same length).
-- Files of keys of varying length (malformed keys: kept small) get one prebuilt request per key.
function use_keys(make)
   local path = os.getenv("BENCH_KEYS")
   if not path or path == "" then error("no key file given (env BENCH_KEYS)") end
   local f = assert(io.open(path, "rb"))
   local blob = f:read("*a")
   f:close()
   local first = string.find(blob, "\n", 1, true)
   if not first or first == 1 then error("key file " .. path .. " is empty or starts with a blank line") end
   local len = first - 1
   local stride = len + 1
   local fixed = #blob % stride == 0
   if fixed then
      for pos = stride, #blob, stride do
         if string.byte(blob, pos) ~= 10 then fixed = false break end
      end
   end
   if fixed then
      local n = #blob / stride
      local holder = string.rep("\1", len)
      local template = make(holder)
      local at = string.find(template, holder, 1, true)
      local pre, post = string.sub(template, 1, at - 1), string.sub(template, at + len)
      local random, sub = math.random, string.sub
      next_request = function()
         local off = (random(n) - 1) * stride + 1
         return pre .. sub(blob, off, off + len - 1) .. post
      end
   else
      local reqs = {}
      for line in string.gmatch(blob, "[^\n]+") do reqs[#reqs + 1] = make(line) end
      blob = nil
      local n, random = #reqs, math.random
      next_request = function() return reqs[random(n)] end
   end
end

local function sum_into(acc, tbl)
   if type(tbl) ~= "table" then return end
   for k, v in pairs(tbl) do acc[k] = (acc[k] or 0) + v end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d errors_connect=%d errors_read=%d errors_write=%d " ..
      "errors_status=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
   local c, x = {}, {}
   for _, thread in ipairs(threads) do
      sum_into(c, thread:get("counts"))
      sum_into(x, thread:get("extra"))
   end
   for k, v in pairs(c) do io.write(string.format("COUNT %s=%d\n", k, v)) end
   for k, v in pairs(x) do io.write(string.format("EXTRA %s=%d\n", k, v)) end
end
