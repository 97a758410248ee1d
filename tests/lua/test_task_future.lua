-- Futures in tasks: f:get, f:wait, pool:apply and pool:join suspend only the task
-- (the pool task waits for an event that another task of the loop sets, so
-- a get that blocked the loop's thread would leave it waiting: each such
-- wait has a timeout and reports whether it was set), timeouts, cancel
-- while suspended, on_done callbacks run by the owner's suspended task, a
-- future got from a task of another thread.

local raises = require("testlib").raises

local setter = require("testlib").setter

local function waiter(ev) return ev:wait(10) end

-- The owner's tasks: get, wait and apply suspend; the loop goes on.
do
  conc.run(function()
    local p <close> = conc.pool(2, {name = "tf"})
    local go = conc.event()
    local f = p:submit(waiter, go)
    local g = conc.task(function() return f:get() end)
    setter(go)
    assert(g:await() == true, "the loop ran while a task was in f:get")

    local go2 = conc.event()
    local f2 = p:submit(waiter, go2)
    local w = conc.task(function() return f2:wait() end)
    setter(go2)
    assert(w:await() == true)
    assert(f2:get() == true, "the loop ran while a task was in f:wait")

    local go3 = conc.event()
    local a = conc.task(function() return p:apply(waiter, go3) end)
    setter(go3)
    assert(a:await() == true, "the loop ran while a task was in pool:apply")

    -- pool:join waits for every task (and runs their callbacks) in a task
    local go4 = conc.event()
    local cb_seen = false
    p:submit(waiter, go4):on_done(function(ok, v) cb_seen = ok and v end)
    local j = conc.task(function() p:join() return cb_seen end)
    setter(go4)
    assert(j:await() == true, "the loop ran while a task was in pool:join")

    -- two tasks of the owner wait in the pool at once
    local e1, e2 = conc.event(), conc.event()
    local f3, f4 = p:submit(waiter, e1), p:submit(waiter, e2)
    local t3 = conc.task(function() return f3:get() end)
    local t4 = conc.task(function() return f4:get() end)
    setter(e2)
    assert(t4:await() == true)
    e1:set()
    assert(t3:await() == true)
  end)
end

-- Timeouts: f:wait gives false, f:get raises; the future is still there.
do
  conc.run(function()
    local p <close> = conc.pool(1)
    local go = conc.event()
    local f = p:submit(waiter, go)
    local t0 = conc.now()
    assert(conc.task(function() return f:wait(0.02) end):await() == false)
    assert(conc.now() - t0 >= 0.015)
    local t = conc.task(function() return f:get(0.02) end)
    raises("future:get: timeout", t.await, t)
    go:set()
    assert(conc.task(function() return f:get(10) end):await() == true)
  end)
end

-- Cancelled while suspended in f:get: to-be-closed variables close, the
-- future runs on and is got later. Cancelled in pool:apply: its task,
-- which nobody else can get, is cancelled if it has not started.
do
  conc.run(function()
    local p <close> = conc.pool(1)
    local go = conc.event()
    local f = p:submit(function(ev) ev:wait(10) return "late" end, go)
    local closed = false
    local g = conc.task(function()
      local mark <close> = setmetatable({}, {__close = function() closed = true end})
      return f:get()
    end)
    conc.sleep(0)
    g:cancel()
    raises("cancelled", g.await, g)
    assert(closed)
    -- the one worker is still busy with f: the apply's task stays queued
    local q = conc.queue()
    local a = conc.task(function()
      return p:apply(function(qq) qq:put("ran") return 1 end, q)
    end)
    conc.sleep(0)
    a:cancel()
    raises("cancelled", a.await, a)
    local j = conc.task(function() return p:join() end)
    conc.sleep(0)
    j:cancel()
    raises("cancelled", j.await, j)
    go:set()
    assert(f:get(10) == "late")
    p:close()
    p:join()
    assert(q:try_get() == nil, "a cancelled apply's task did not run")
  end)
end

-- on_done callbacks run in the owner's thread while it waits in the pool:
-- here in the task suspended in f1:get, which wakes at f2's finish, runs
-- f2's callback and suspends again.
do
  conc.run(function()
    local p <close> = conc.pool(2)
    local e1, e2, cb_ran = conc.event(), conc.event(), conc.event()
    local f1, f2 = p:submit(waiter, e1), p:submit(waiter, e2)
    local ran_in
    f2:on_done(function(ok, v)
      assert(ok == true and v == true)
      ran_in = coroutine.running()
      cb_ran:set()
    end)
    local getter_co
    local a = conc.task(function()
      getter_co = coroutine.running()
      return f1:get()
    end)
    local b = conc.task(function()
      e2:set()
      local seen = cb_ran:wait(10) -- the callback ran while a waited
      e1:set()
      return seen
    end)
    assert(b:await() == true, "the callback ran while a task waited in f:get")
    assert(a:await() == true)
    assert(ran_in == getter_co, "the callback ran in the waiting task")
  end)
end

-- A future got from a task of another thread (not the pool's owner).
do
  local p <close> = conc.pool(1)
  local go = conc.event()
  local f = p:submit(function(ev) ev:wait(10) return "far" end, go)
  local th = conc.thread(function(fut, ev)
    return conc.run(function()
      local g = conc.task(function() return fut:get() end)
      conc.task(function()
        for _ = 1, 3 do conc.sleep(0) end
        ev:set()
      end)
      return g:await()
    end)
  end, f, go)
  local ok, v = th:join(30)
  assert(ok == true and v == "far", "another thread's task got the future: " .. tostring(v))
end

-- Process workers: a task suspended in f:get learns of its worker's death
-- (the pool's monitor fails the future); the task waiting next replaces the
-- worker; a table error crosses the process boundary as a table.
conc.process(function() end):join() -- the reaper first: see test_pool_process.lua
do
  conc.run(function()
    local p <close> = conc.pool(1, {processes = true, name = "ptf"})
    local q = conc.queue()
    local never = conc.event()
    local victim = p:submit(function(qq, e) qq:put(conc.pid()) e:wait() end, q, never)
    local g = conc.task(function() return pcall(victim.get, victim) end)
    local pid = q:get()
    assert(os.execute("kill -9 " .. pid))
    local ok, err = g:await()
    assert(not ok and err:find("was killed by signal 9", 1, true), tostring(err))
    local f = p:submit(function() error({code = 42}) end)
    local t = conc.task(function() return pcall(f.get, f) end)
    local ok2, e2 = t:await()
    assert(not ok2 and type(e2) == "table" and e2.code == 42, tostring(e2))
    assert(f.pid ~= pid and f.pid ~= conc.pid(), "a new worker ran it")
  end)
end

print("test_task_future: ok")
