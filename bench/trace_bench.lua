-- What seeing costs (issue 12), for bench/run: the same workloads run by
-- this conclua in three ways, alternating, in this one invocation:
--   bare    CONCLUA_DUMP_SITES=0: no observer at all (the runtime as it was
--           before conc.dump recorded where threads park)
--   off     the default: no trace, the observer records parks for conc.dump
--   on      --trace to a file in a temporary directory
-- Workloads (the queue throughput and lock rows of queue_bench.lua and
-- sync_bench.lua): small integers one way between two threads (M items/s),
-- an uncontended acquire+release pair (ns), one lock hammered by two
-- threads (kops/s). Rows: each workload's figure with the trace on, and the
-- ratios on/off (target: at most 2x slower) and off/bare (target: no
-- measurable change, within the noise of about 10%).
-- There is no Python side: this measures conclua against itself.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local RUNS = QUICK and 3 or 5
local N_ITEMS = QUICK and 200000 or 1000000
local N_PAIRS = QUICK and 200000 or 1000000
local N_CONT = QUICK and 50000 or 200000

local conclua = arg[-1]
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))

local workload = dir .. "/work.lua"
local f = assert(io.open(workload, "w"))
f:write(string.format([[
local N_ITEMS, N_PAIRS, N_CONT = %d, %d, %d
local q = conc.queue()
local t0 = conc.now()
local t = conc.thread(function(q, n) for i = 1, n do q:put(i) end end, q, N_ITEMS)
for _ = 1, N_ITEMS do q:get() end
local queue = N_ITEMS / (conc.now() - t0) / 1e6
t:join()
local l = conc.lock()
t0 = conc.now()
for _ = 1, N_PAIRS do l:acquire(); l:release() end
local pair = (conc.now() - t0) / N_PAIRS * 1e9
local function hammer(l, n) for _ = 1, n do l:acquire(); l:release() end end
t0 = conc.now()
local a, b = conc.thread(hammer, l, N_CONT), conc.thread(hammer, l, N_CONT)
a:join(); b:join()
local cont = 2 * N_CONT / (conc.now() - t0) / 1e3
print(string.format("%%.6g %%.6g %%.6g", queue, pair, cont))
]], N_ITEMS, N_PAIRS, N_CONT))
f:close()

local function run(mode)
  local cmd
  if mode == "bare" then
    cmd = string.format("CONCLUA_DUMP_SITES=0 '%s' '%s'", conclua, workload)
  elseif mode == "off" then
    cmd = string.format("'%s' '%s'", conclua, workload)
  else
    cmd = string.format("'%s' --trace '%s/t.json' '%s'", conclua, dir, workload)
  end
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local q, pair, cont = out:match("^(%S+) (%S+) (%S+)")
  assert(q, "workload failed: " .. cmd .. "\n" .. out)
  return {queue = tonumber(q), pair = tonumber(pair), cont = tonumber(cont)}
end

local got = {bare = {}, off = {}, on = {}}
for _ = 1, RUNS do
  for _, mode in ipairs({"bare", "off", "on"}) do table.insert(got[mode], run(mode)) end
end
os.remove(dir .. "/t.json")
os.remove(workload)
os.remove(dir)

local m = {}
for mode, runs in pairs(got) do
  m[mode] = {}
  for _, k in ipairs({"queue", "pair", "cont"}) do
    local xs = {}
    for i, r in ipairs(runs) do xs[i] = r[k] end
    m[mode][k] = median(xs)
  end
end

result("trace_queue_throughput", m.on.queue, "M items/s")
result("trace_lock_pair_ns", m.on.pair, "ns")
result("trace_lock_contended_2t", m.on.cont, "kops/s")
-- slowdowns: > 1 means slower
result("trace_on_queue_slowdown", m.off.queue / m.on.queue, "x")
result("trace_on_lock_pair_slowdown", m.on.pair / m.off.pair, "x")
result("trace_on_lock_contended_slowdown", m.off.cont / m.on.cont, "x")
result("trace_off_queue_slowdown", m.bare.queue / m.off.queue, "x")
result("trace_off_lock_pair_slowdown", m.off.pair / m.bare.pair, "x")
result("trace_off_lock_contended_slowdown", m.bare.cont / m.off.cont, "x")
print("TARGET trace_on_queue_slowdown <= 2 x")
print("TARGET trace_on_lock_pair_slowdown <= 2 x")
print("TARGET trace_on_lock_contended_slowdown <= 2 x")
print("TARGET trace_off_queue_slowdown <= 1.1 x")
print("TARGET trace_off_lock_pair_slowdown <= 1.1 x")
print("TARGET trace_off_lock_contended_slowdown <= 1.1 x")
print(string.format("NOTE trace: off/bare medians: queue %.3g/%.3g M items/s, lock pair %.3g/%.3g ns, "
  .. "contended %.3g/%.3g kops/s (bare: CONCLUA_DUMP_SITES=0, no observer)",
  m.off.queue, m.bare.queue, m.off.pair, m.bare.pair, m.off.cont, m.bare.cont))
