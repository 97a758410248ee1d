-- conc.pool with process workers: results and pids, callbacks, worker death
-- (SIGKILL, os.exit) and replacement, futures passed to a thread and a
-- process, a garbage-collected pool leaves no process behind.

local raises = require("testlib").raises_match

local testlib = require "testlib"
local function eventually(cond) return testlib.eventually(cond, 30) end

local gone = testlib.gone

local function id(...) return ... end

-- A first process starts the reaper thread before any pool forks workers:
-- see test_pool_memory.lua (GCC 12's ASan and a fork while it starts).
conc.process(function() end):join()

-- results, pids, map, callbacks
do
  POOL_MARK = "at fork"
  local p <close> = conc.pool(3, {processes = true, name = "procs"})
  assert(p.processes == true)
  -- three tasks that meet at a barrier: three distinct workers
  local b = conc.barrier(3)
  local fs = {}
  for i = 1, 3 do fs[i] = p:submit(function(bar, i) bar:wait() return conc.pid(), i end, b, i) end
  local pids = {}
  for i = 1, 3 do
    local pid, j = fs[i]:get()
    assert(j == i and pid ~= conc.pid() and fs[i].pid == pid)
    pids[pid] = true
  end
  local n = 0
  for _ in pairs(pids) do n = n + 1 end
  assert(n == 3, "three workers")
  local list = {}
  for i = 1, 5000 do list[i] = i end
  local r = p:map(function(x) return x * 2 end, list)
  for i = 1, 5000 do assert(r[i] == i * 2) end
  local got = {}
  for i = 1, 6 do
    p:submit(id, i):on_done(function(ok, v) assert(ok) got[#got + 1] = v end)
  end
  local bad = p:submit(function() error("in a child") end)
  raises("in a child", bad.get, bad)
  p:join()
  assert(#got == 6)
  -- a process worker sees the creating state's globals at fork time
  POOL_MARK = "later"
  assert(p:apply(function() return POOL_MARK end) == "at fork")
end

-- a worker killed by SIGKILL: its task fails naming pid and signal, the
-- others go on, the worker is replaced
do
  local p <close> = conc.pool(2, {processes = true, name = "victims"})
  local q = conc.queue()
  local never = conc.event()
  local victim = p:submit(function(qq, e) qq:put(conc.pid()) e:wait() end, q, never)
  local pid = q:get()
  local other = p:submit(id, "other")
  assert(other:get() == "other")
  assert(os.execute("kill -9 " .. pid))
  local err = raises("worker process " .. pid .. " was killed by signal 9 %(SIGKILL%)",
                     victim.get, victim)
  assert(err:find("pool 'victims'", 1, true), err)
  -- replaced: two workers again (a barrier of two needs both)
  local b = conc.barrier(2)
  local f1 = p:submit(function(bar) bar:wait() return conc.pid() end, b)
  local f2 = p:submit(function(bar) bar:wait() return conc.pid() end, b)
  local p1, p2 = f1:get(10), f2:get(10)
  assert(p1 ~= p2 and p1 ~= pid and p2 ~= pid)
  -- os.exit in a task
  local ex = p:submit(function() os.exit(3) end)
  raises("worker process %d+ exited with status 3 while running this task", ex.get, ex)
  assert(p:apply(id, "after") == "after")
  -- a death seen by a future's waiter in another thread, while the owner waits elsewhere
  local victim2 = p:submit(function(qq, e) qq:put(conc.pid()) e:wait() end, q, never)
  local pid2 = q:get()
  local t = conc.thread(function(f) return pcall(f.get, f) end, victim2)
  assert(os.execute("kill -9 " .. pid2))
  local _, ok, msg = t:join()
  assert(ok == false and msg:find("worker process " .. pid2, 1, true), msg)
  p:join()
  assert(gone(pid) and gone(pid2))
end

-- futures passed to a thread and to a process
do
  local p <close> = conc.pool(2, {processes = true})
  local go = conc.event()
  local f = p:submit(function(e) e:wait() return "shared", 7 end, go)
  local t = conc.thread(function(fut) return fut:get() end, f)
  local c = conc.process(function(fut) return fut:get() end, f)
  go:set()
  local _, a, b = t:join()
  assert(a == "shared" and b == 7)
  local _, a2, b2 = c:join()
  assert(a2 == "shared" and b2 == 7)
  -- and a thread pool's future in a process
  local tp <close> = conc.pool(1)
  -- (A first round trip orders the worker thread's start, where it frees
  -- its job block, before the process below, which may reuse that block for
  -- its results: ThreadSanitizer cannot see the allocator's synchronisation
  -- in another process; see docs/PROCESSES.md, "Sanitizers".)
  assert(tp:apply(id, "warm") == "warm")
  local g = tp:submit(id, "thread pool")
  local _, v = conc.process(function(fut) return fut:get() end, g):join()
  assert(v == "thread pool")
end

-- close with queued work finishes it; <close> joins the workers
do
  local pids
  do
    local p <close> = conc.pool(2, {processes = true})
    local fs = {}
    for i = 1, 10 do fs[i] = p:submit(function(i) return i, conc.pid() end, i) end
    p:close()
    raises("pool is closed", p.submit, p, id)
    pids = {}
    for i = 1, 10 do
      local v, pid = fs[i]:get()
      assert(v == i)
      pids[pid] = true
    end
  end
  for pid in pairs(pids) do assert(gone(pid), "worker " .. pid .. " left after <close>") end
end

-- a pool garbage-collected unjoined stops its workers: no zombie, no thread
do
  local before = #conc.threads()
  local pids = {}
  do
    local p = conc.pool(3, {processes = true})
    local b = conc.barrier(3)
    local fs = {}
    for i = 1, 3 do fs[i] = p:submit(function(bar) bar:wait() return conc.pid() end, b) end
    for i = 1, 3 do pids[i] = fs[i]:get() end
    for i = 1, 5 do p:submit(conc.sleep, 0.01) end -- queued work is cancelled
  end
  collectgarbage()
  collectgarbage()
  eventually(function() return gone(pids[1]) and gone(pids[2]) and gone(pids[3]) end)
  eventually(function() return #conc.threads() == before end)
end

print("test_pool_process: ok")
