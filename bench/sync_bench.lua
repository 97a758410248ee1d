-- Synchronisation benchmarks for bench/run: the cost of an uncontended
-- acquire+release pair (lock, rlock, semaphore, with(), hold()) beside two
-- plain Lua-to-C method calls measured in the same run, an atomic
-- add, and the throughput of one lock hammered by two threads.
-- bench/sync_bench.py measures the same with Python's threading.
-- docs/SYNC.md and docs/BENCHMARKS.md say what each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local BATCHES, N = 7, 1000000
local CONT_BATCHES, CONT_N = 5, 200000
if QUICK then BATCHES, N, CONT_BATCHES, CONT_N = 3, 100000, 3, 20000 end

print("TARGET lock_pair_ns <= 80 ns")

-- Median over batches of ns per iteration of body(n) (which loops n times).
local function per_op(body)
  local xs = {}
  body(N // 10) -- warm up
  for b = 1, BATCHES do
    local t0 = conc.now()
    body(N)
    xs[b] = (conc.now() - t0) / N * 1e9
  end
  return median(xs)
end

local l, r, s, a = conc.lock(), conc.rlock(), conc.semaphore(1), conc.atomic(0)
local function nothing() end

-- The baseline of the binding's cost, in the same run: two plain Lua-to-C
-- method calls (string:len, a C function that checks its argument and
-- returns a number) cost what any method call costs; the rest of a lock
-- pair is the self check, the acquire and the release.
local str = "x"
local calls = per_op(function(n) for _ = 1, n do str:len(); str:len() end end)
result("two_c_calls_ns", calls, "ns")
local pair = per_op(function(n) for _ = 1, n do l:acquire(); l:release() end end)
result("lock_pair_ns", pair, "ns")
result("lock_pair_vs_calls", pair / calls, "x")
result("rlock_pair_ns", per_op(function(n) for _ = 1, n do r:acquire(); r:release() end end), "ns")
result("sem_pair_ns", per_op(function(n) for _ = 1, n do s:acquire(); s:release() end end), "ns")
result("lock_with_ns", per_op(function(n) for _ = 1, n do l:with(nothing) end end), "ns")
result("lock_hold_ns", per_op(function(n)
  for _ = 1, n do local g <close> = l:hold() end
end), "ns")
result("atomic_add_ns", per_op(function(n) for _ = 1, n do a:add(1) end end), "ns")

-- Contended: two threads each do CONT_N acquire+release pairs on one lock
-- (with a shared counter bumped inside); throughput in pairs per second.
local function contended()
  local lock, counter = conc.lock(), conc.atomic(0)
  local start = conc.barrier(3)
  local function worker(n)
    start:wait()
    for _ = 1, n do
      lock:acquire()
      counter:add(1)
      lock:release()
    end
  end
  local t1 = conc.thread(worker, CONT_N)
  local t2 = conc.thread(worker, CONT_N)
  start:wait()
  local t0 = conc.now()
  assert(t1:join(600) and t2:join(600))
  local dt = conc.now() - t0
  assert(counter:get() == 2 * CONT_N, "lost updates")
  return 2 * CONT_N / dt / 1000
end

local ok = pcall(function() conc.thread(function(x) return x end, 1):join() end)
if ok then
  local xs = {}
  for b = 1, CONT_BATCHES do xs[b] = contended() end
  result("lock_contended_2t", median(xs), "kops/s")
else
  print("NOTE lock_contended_2t skipped: threads cannot take arguments yet")
end
