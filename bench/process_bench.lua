-- Process benchmarks for bench/run: start + join of a child process, and
-- the throughput of small items sent from one process to another through a
-- queue and through a pipe. bench/process_bench.py measures the same with
-- Python's multiprocessing; docs/PROCESSES.md says what each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result, median = bench.result, bench.median

local QUICK = os.getenv("BENCH_QUICK") == "1"
local SPAWN_N = QUICK and 50 or 400
local ITEMS = QUICK and 100000 or 1000000
local RUNS = QUICK and 1 or 3

---- start + join ------------------------------------------------------------

local function noop() end

local function start_join()
  for _ = 1, 20 do assert(conc.process(noop):join()) end -- warm-up
  local ms = {}
  for i = 1, SPAWN_N do
    local t0 = conc.now()
    assert(conc.process(noop):join())
    ms[i] = (conc.now() - t0) * 1e3
  end
  result("process_start_join", median(ms), "ms")
end

---- throughput: a producer process, the consumer here -----------------------

-- The child waits for `go`, then sends `n` small integers and a last 0.
-- Timed from go:set() to the last item received.
local function throughput(send_side, recv, n)
  local go = conc.event()
  local p = conc.process(function()
    go:wait()
    for i = 1, n do send_side(i) end
    send_side(0)
  end)
  local t0 = conc.now()
  go:set()
  local count = 0
  while recv() ~= 0 do count = count + 1 end
  local dt = conc.now() - t0
  assert(count == n, "lost items")
  assert(p:join())
  return n / dt
end

local function queue_rate()
  local rates = {}
  for r = 1, RUNS do
    local q = conc.queue()
    rates[r] = throughput(function(v) q:put(v) end, function() return q:get() end, ITEMS)
  end
  result("process_queue_rate", median(rates), "items/s")
end

local function pipe_rate()
  local rates = {}
  for r = 1, RUNS do
    local reader, writer = conc.pipe(false)
    rates[r] = throughput(function(v) writer:send(v) end, function() return reader:recv() end,
                          ITEMS)
  end
  result("process_pipe_rate", median(rates), "items/s")
end

start_join()
queue_rate()
pipe_rate()
