-- Queue and shared-table benchmarks for bench/run:
--   queue_throughput  small integers one way between two threads (M items/s)
--   queue_pingpong    round trip of one item between two threads (us)
--   queue_1mb         1 MiB strings one way between two threads (GB/s)
--   shared_ops        s[k] = v and s[k] from two threads at once (M ops/s)
--   string_copy_1mb   for scale: one 1 MiB string copy inside Lua (GB/s)
-- bench/queue_bench.py measures the same with Python's queue.Queue, a
-- multiprocessing.Queue for the 1 MiB items and a Manager dict for the
-- shared table. docs/QUEUES.md says what each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local BATCHES = QUICK and 3 or 5
local N_ITEMS = QUICK and 200000 or 2000000
local N_PING = QUICK and 5000 or 50000
local N_BIG = QUICK and 200 or 2000
local N_SHARED = QUICK and 200000 or 2000000

print("TARGET queue_throughput >= 3 M items/s")
print("TARGET queue_pingpong <= 20 us")
print("TARGET shared_ops >= 4 M ops/s")

-- Median over batches of what `batch()` returns.
local function over_batches(batch)
  local xs = {}
  for b = 1, BATCHES do xs[b] = batch() end
  return median(xs)
end

---- one way: a producer thread, the main thread consumes --------------------

local function producer(q, n, item)
  for i = 1, n do q:put(item or i) end
end

local function one_way(n, item, maxsize)
  local q = conc.queue(maxsize)
  local t0 = conc.now()
  local t = conc.thread(producer, q, n, item)
  for _ = 1, n do q:get() end
  local dt = conc.now() - t0
  t:join()
  return dt
end

result("queue_throughput", over_batches(function()
  return N_ITEMS / one_way(N_ITEMS) / 1e6
end), "M items/s")

---- ping-pong: one item bounces between two threads ----------------------------

local function echo(ping, pong, n)
  for _ = 1, n do pong:put(ping:get()) end
end

result("queue_pingpong", over_batches(function()
  local ping, pong = conc.queue(), conc.queue()
  local t = conc.thread(echo, ping, pong, N_PING)
  ping:put(0) -- first exchange includes the thread start: not timed
  pong:get()
  local t0 = conc.now()
  for i = 2, N_PING do
    ping:put(i)
    pong:get()
  end
  local dt = conc.now() - t0
  t:join()
  return dt / (N_PING - 1) * 1e6
end), "us")

---- 1 MiB items -------------------------------------------------------------------

local big = string.rep("0123456789abcdef", 65536)
result("queue_1mb", over_batches(function()
  local dt = one_way(N_BIG, big, 8) -- bounded: at most 8 MiB in flight
  return N_BIG * #big / dt / 1e9
end), "GB/s")

-- For scale: one copy of the same string inside Lua (a queue item is copied
-- twice: into the arena by put, out of it by get). No Python counterpart.
result("string_copy_1mb", over_batches(function()
  local t0 = conc.now()
  for _ = 1, N_BIG do local _ = big:sub(2) end
  return N_BIG * #big / (conc.now() - t0) / 1e9
end), "GB/s")

---- shared table from two threads --------------------------------------------------

local function hammer(s, n, key)
  for i = 1, n // 2 do
    s[key] = i
    local _ = s[key]
  end
end

result("shared_ops", over_batches(function()
  local s = conc.shared()
  local t0 = conc.now()
  local t = conc.thread(hammer, s, N_SHARED, "a")
  hammer(s, N_SHARED, "b")
  t:join()
  return 2 * N_SHARED / (conc.now() - t0) / 1e6
end), "M ops/s")

print("NOTE queue_1mb: Python's row uses multiprocessing.Queue (it copies, as conc does); "
      .. "queue.Queue only passes a reference")
print("NOTE shared_ops: Python's row is a multiprocessing Manager dict used from two threads")
