-- Task benchmarks for bench/run (bench/task_bench.py measures the same with
-- Python's asyncio): the cost of a task switch, the memory of an idle task,
-- a task-to-thread ping-pong, and a TCP echo with many concurrent
-- connections on loopback. docs/TASKS.md says what each row means.

local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local result = bench.result

local QUICK = os.getenv("BENCH_QUICK") == "1"
local NTASKS, NSWITCH = 100000, 10
local NIDLE = 100000
local NPING = 20000
local NCONN, NREQ = 1000, 20
if QUICK then NTASKS, NIDLE, NPING, NCONN, NREQ = 10000, 10000, 2000, 100, 10 end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Memory per idle task: NIDLE tasks asleep at once in one thread.
do
  collectgarbage()
  collectgarbage()
  local before = rss_kib()
  conc.run(function()
    local ts = {}
    for i = 1, NIDLE do ts[i] = conc.task(function() conc.sleep(3600) end) end
    conc.sleep(0.01) -- every task has run up to its sleep
    local after = rss_kib()
    result("task_idle_bytes", (after - before) * 1024 / NIDLE, "B")
    result("task_idle_count", NIDLE, "tasks")
    for i = 1, NIDLE do ts[i]:cancel() end
  end)
end

-- Task switch: NTASKS tasks, each sleeping 0 s NSWITCH times; all of it
-- (creating, switching, awaiting), and the part after the last task was
-- created (switching and awaiting: task_switch_run_us).
-- The idle row's 100k cancelled tasks are garbage by now: collected first,
-- as Python's reference counting frees them at once (gc.collect() there
-- too), else the collector sweeps them inside this row, and by how much
-- depends on where its cycle stands (one more local in this chunk moved
-- the row from 0.25 to 0.39 us). This row's own garbage is its cost.
collectgarbage()
collectgarbage()
do
  local t0, t1
  conc.run(function()
    local ts = {}
    t0 = conc.now()
    for i = 1, NTASKS do
      ts[i] = conc.task(function() for _ = 1, NSWITCH do conc.sleep(0) end end)
    end
    t1 = conc.now()
    for i = 1, NTASKS do ts[i]:await() end
  end)
  local t2 = conc.now()
  result("task_switch_us", (t2 - t0) / (NTASKS * NSWITCH) * 1e6, "us")
  result("task_switch_run_us", (t2 - t1) / (NTASKS * NSWITCH) * 1e6, "us")
end

-- Task-to-thread ping-pong: a task and a thread hand a token back and forth
-- over two queues (the task's get suspends only the task; asyncio: a
-- queue.Queue one way, call_soon_threadsafe into an asyncio.Queue back).
do
  local ping, pong = conc.queue(), conc.queue()
  local th = conc.thread(function(a, b, n)
    for _ = 1, n do b:put(a:get()) end
  end, ping, pong, NPING)
  local dt = conc.run(function()
    local t0 = conc.now()
    for i = 1, NPING do
      ping:put(i)
      assert(pong:get() == i)
    end
    return conc.now() - t0
  end)
  th:join()
  result("task_thread_roundtrip_us", dt / NPING * 1e6, "us")
end

-- TCP echo: NCONN concurrent connections, NREQ request/response each.
do
  local rps = conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0, 4096))
    local server = conc.task(function()
      while true do
        local c = srv:accept()
        if not c then return end
        conc.task(function()
          while true do
            local line = c:read("L")
            if not line then break end
            c:write(line)
          end
          c:close()
        end)
      end
    end)
    local clients = {}
    local t0 = conc.now()
    for i = 1, NCONN do
      clients[i] = conc.task(function()
        local c = assert(conc.tcp.connect("127.0.0.1", srv.port))
        for _ = 1, NREQ do
          c:write("hello echo\n")
          assert(c:read("l") == "hello echo")
        end
        c:close()
      end)
    end
    for i = 1, NCONN do clients[i]:await() end
    local dt = conc.now() - t0
    srv:close()
    server:await()
    return NCONN * NREQ / dt
  end)
  result("tcp_echo_rps", rps, "req/s")
end
