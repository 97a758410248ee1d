-- Pool benchmarks for bench/run: submit-then-collect of empty tasks on a
-- thread pool and on a process pool, map of small integers through an
-- identity function on 2 workers, and the speed-up of a CPU-bound map on 2
-- workers over 1. bench/pool_bench.py measures the same with
-- concurrent.futures.ThreadPoolExecutor and multiprocessing.Pool;
-- docs/POOLS.md says what each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local TASKS = QUICK and 10000 or 100000
local ITEMS = QUICK and 100000 or 1000000
local CPU_N = QUICK and 2000000 or 20000000
local RUNS = QUICK and 1 or 3

local function empty() end
local function identity(x) return x end

-- Submits `n` empty tasks, then gets every future: microseconds a task.
local function submit_get(pool, n)
  local fs = {}
  local t0 = conc.now()
  for i = 1, n do fs[i] = pool:submit(empty) end
  for i = 1, n do fs[i]:get() end
  return (conc.now() - t0) / n * 1e6
end

local function rows(opts, metric)
  local pool <close> = conc.pool(2, opts)
  submit_get(pool, TASKS // 10) -- warm-up
  local us = {}
  for r = 1, RUNS do
    us[r] = submit_get(pool, TASKS)
    collectgarbage()
  end
  result(metric, median(us), "us")
end

rows(nil, "pool_thread_submit_get")
rows({processes = true}, "pool_process_submit_get")

-- map of ITEMS small integers through identity on 2 worker processes
do
  local list = {}
  for i = 1, ITEMS do list[i] = i end
  local pool <close> = conc.pool(2, {processes = true})
  pool:map(identity, {1, 2, 3, 4})
  local us = {}
  for r = 1, RUNS do
    local t0 = conc.now()
    local out = pool:map(identity, list)
    us[r] = (conc.now() - t0) / ITEMS * 1e6
    assert(#out == ITEMS and out[ITEMS] == ITEMS)
    out = nil
    collectgarbage()
  end
  result("pool_map_item", median(us), "us")
end

-- CPU-bound pure Lua: the same 8 chunks of work (CPU_N / 8 loop turns each, tens
-- of milliseconds: the task overhead is noise) on 1 worker, then on 2, in
-- this one process; each run's ratio pairs two adjacent timings. os.clock()
-- is the process's CPU time (all its threads): CPU time / wall time of the
-- 2-worker runs says how many CPUs the machine actually gave them.
do
  local function count(range)
    local x = 0
    for i = range[1], range[2] do x = x + i % 7 end
    return x
  end
  local chunks, per = {}, CPU_N // 8
  for c = 1, 8 do chunks[c] = {(c - 1) * per + 1, c * per} end
  local sums = {}
  local function timed(workers)
    local pool <close> = conc.pool(workers)
    pool:map(count, {{1, 10}, {1, 10}}, 1)
    local t0, c0 = conc.now(), os.clock()
    local out = pool:map(count, chunks, 1)
    local wall, cpu = conc.now() - t0, os.clock() - c0
    local sum = 0
    for c = 1, 8 do sum = sum + out[c] end
    sums[#sums + 1] = sum
    assert(sum == sums[1], "pool_cpu_speedup: the runs disagree") -- the same work
    return wall, cpu
  end
  local ratios, cpus = {}, {}
  for r = 1, RUNS do
    local t1 = timed(1)
    local t2, c2 = timed(2)
    ratios[r], cpus[r] = t1 / t2, c2 / t2
  end
  result("pool_cpu_speedup", median(ratios), "x")
  local f = io.open("/proc/loadavg")
  local load = f and f:read("l") or "?"
  if f then f:close() end
  io.write(string.format("NOTE pool_cpu_speedup needs 2 idle CPUs: its 2-worker runs got %.2f CPUs " ..
                         "(median CPU time / wall time); load average %s\n",
                         median(cpus), load:match("^(%S+ %S+ %S+)") or load))
end
