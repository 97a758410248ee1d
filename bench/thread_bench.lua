-- Thread benchmarks for bench/run: spawn+join, memory per parked thread, and
-- the speed-up of a CPU-bound loop on two threads. bench/thread_bench.py
-- measures the same with Python's threading; docs/BENCHMARKS.md says what
-- each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local SPAWN_BATCHES, SPAWN_ITERS = 7, 2000
local MEM_BASE, MEM_MORE = 50, 200
local CPU_BATCHES, CPU_HALF = 5, 20000000
local MANY = 20000
if QUICK then
  MANY = 2000
  SPAWN_BATCHES, SPAWN_ITERS = 3, 200
  MEM_BASE, MEM_MORE = 20, 50
  CPU_BATCHES, CPU_HALF = 3, 2000000
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  local kib = assert(text:match("VmRSS:%s*(%d+)"), "no VmRSS in /proc/self/status")
  return tonumber(kib)
end

---- memory: RSS growth per parked thread ------------------------------------

-- A parked thread says it runs, then blocks on the gate until main opens it.
local function parked(gate, ready)
  ready:release()
  local heap = collectgarbage("count")
  gate:wait()
  return heap
end

local function thread_memory()
  local gate, ready = conc.event(), conc.semaphore(0)
  local threads = {}
  local function start(n)
    for _ = 1, n do threads[#threads + 1] = conc.thread(parked, gate, ready) end
    for _ = 1, n do ready:acquire() end
    conc.sleep(0.05) -- let the last ones reach gate:wait()
  end

  -- Measure the growth from MEM_BASE to MEM_BASE + MEM_MORE live threads, so
  -- one-time costs of the first threads (and idle prepared workers) do not
  -- count.
  start(MEM_BASE)
  collectgarbage()
  local before = rss_kib()
  start(MEM_MORE)
  collectgarbage()
  local after = rss_kib()
  gate:set()
  local heaps = {}
  for i, t in ipairs(threads) do
    local ok, heap = t:join()
    assert(ok and type(heap) == "number", "a parked thread returned no heap size")
    heaps[i] = heap
  end
  result("thread_rss_per_thread", (after - before) / MEM_MORE, "KiB")
  result("thread_lua_heap", median(heaps), "KiB")
end

---- spawn + join ------------------------------------------------------------

local function noop() end

local function spawn_join()
  for _ = 1, SPAWN_ITERS // 4 do conc.thread(noop):join() end -- warm-up
  local per = {}
  for b = 1, SPAWN_BATCHES do
    local t0 = conc.now()
    for _ = 1, SPAWN_ITERS do conc.thread(noop):join() end
    per[b] = (conc.now() - t0) / SPAWN_ITERS * 1e6
  end
  result("thread_spawn_join", median(per), "us")
end

---- CPU-bound loop: 2 threads vs 1 ------------------------------------------

local function work(n)
  local x = 0
  for k = 1, n do x = x + k % 7 end
  return x
end

local function both_halves(n)
  return work(n), work(n)
end

local function cpu_speedup()
  local expect = work(CPU_HALF)
  local ratios, loop_ns = {}, {}
  for b = 1, CPU_BATCHES do
    local t0 = conc.now()
    local ok, a, c = conc.thread(both_halves, CPU_HALF):join()
    local serial = conc.now() - t0
    assert(ok and a == expect and c == expect, "wrong result from the serial thread")

    t0 = conc.now()
    local t1, t2 = conc.thread(work, CPU_HALF), conc.thread(work, CPU_HALF)
    local ok1, r1 = t1:join()
    local ok2, r2 = t2:join()
    local parallel = conc.now() - t0
    assert(ok1 and ok2 and r1 == expect and r2 == expect,
           "wrong result from a parallel thread")

    ratios[b] = serial / parallel
    loop_ns[b] = serial / (2 * CPU_HALF) * 1e9
  end
  io.write("NOTE thread_cpu_speedup runs 2 threads at once: it needs 2 idle CPUs",
           " (this machine has ", conc.cpus(), " online)\n")
  result("thread_cpu_speedup", median(ratios), "x")
  result("thread_cpu_loop", median(loop_ns), "ns")
end

---- many at once: 20,000 parked threads ----------------------------------------

-- All MANY threads alive and parked at the same time (the actor table once
-- capped this at 4096): the time to start them all and the RSS they cost.
local function many_parked()
  local gate, ready = conc.event(), conc.semaphore(0)
  local threads = {}
  collectgarbage()
  local before = rss_kib()
  local t0 = conc.now()
  for i = 1, MANY do threads[i] = conc.thread(parked, gate, ready) end
  for _ = 1, MANY do ready:acquire() end
  local started = conc.now() - t0
  local after = rss_kib()
  gate:set()
  for _, t in ipairs(threads) do t:join() end
  result("thread_many_start", started / MANY * 1e6, "us")
  result("thread_many_rss", (after - before) / MANY, "KiB")
  io.write("NOTE thread_many_*: ", MANY, " threads parked at once\n")
end

thread_memory() -- first: before any other thread has run
spawn_join()
cpu_speedup()
many_parked() -- last: it leaves many idle workers behind
