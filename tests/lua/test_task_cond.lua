-- Condition wait/wait_for and shared-table hold/with/single operations in
-- tasks: they suspend only the task (another task of the loop makes
-- progress meanwhile), wake-ups come from tasks, threads and processes,
-- timeouts, cancellation while suspended (to-be-closed variables close,
-- the condition's lock comes back first), and the owner of a hold is the
-- task. Order is made with events; timed values are upper bounds.

local raises = require("testlib").raises

-- A task that counts while it runs: proof that the loop is not blocked.
local function ticker(n, done)
  return conc.task(function()
    for i = 1, n do conc.sleep(0) end
    if done then done:set() end
    return n
  end)
end

-- ---- condition -------------------------------------------------------------

-- wait suspends the task; a task of the same loop notifies; the waiter owns
-- the lock again when wait returns.
do
  conc.run(function()
    local c = conc.condition()
    local log = {}
    local waiting = conc.event()
    local w = conc.task(function()
      c:acquire()
      log[#log + 1] = "wait"
      waiting:set()
      local ok = c:wait()
      local mine = c:owned()
      log[#log + 1] = "woken"
      c:release()
      return ok, mine
    end)
    waiting:wait()
    assert(ticker(5):await() == 5, "the loop runs while the task waits")
    assert(not w:done())
    c:acquire() -- the waiter released it inside wait
    log[#log + 1] = "notify"
    c:notify()
    c:release()
    local ok, mine = w:await()
    assert(ok == true and mine == true)
    assert(table.concat(log, ",") == "wait,notify,woken", table.concat(log, ","))
  end)
end

-- Timeout: false, and the lock is held again; a non-owner wait raises.
do
  conc.run(function()
    local c = conc.condition()
    local t0 = conc.now()
    local t = conc.task(function()
      c:acquire()
      local ok = c:wait(0.03)
      local mine = c:owned()
      c:release()
      return ok, mine
    end)
    local progressed = ticker(3):await()
    local ok, mine = t:await()
    assert(ok == false and mine == true and progressed == 3)
    assert(conc.now() - t0 >= 0.025)
    assert(conc.task(function() c:acquire() local r = c:wait(0) c:release() return r end):await() == false)
    raises("cannot wait on un-acquired", c.wait, c)
    raises("cannot wait on un-acquired", c.wait_for, c, function() return true end)
  end)
end

-- notify(n) wakes n task waiters, oldest first; notify_all the rest.
do
  conc.run(function()
    local c = conc.condition()
    local order, ws = {}, {}
    for i = 1, 4 do
      ws[i] = conc.task(function()
        c:with(function()
          c:wait()
          order[#order + 1] = i
        end)
      end)
    end
    conc.sleep(0) -- all four are queued: each ran up to its wait
    c:with(function() c:notify(2) end)
    ws[1]:await(); ws[2]:await()
    assert(not ws[3]:done() and not ws[4]:done())
    c:with(function() c:notify_all() end)
    ws[3]:await(); ws[4]:await()
    assert(table.concat(order, ",") == "1,2,3,4", table.concat(order, ","))
  end)
end

-- wait_for in a task: the predicate is re-checked after each wake; a
-- timeout returns the predicate's last value.
do
  conc.run(function()
    local c = conc.condition()
    local items = 0
    local t = conc.task(function()
      return c:with(function() return c:wait_for(function() return items >= 3 and items end) end)
    end)
    for _ = 1, 3 do
      conc.sleep(0)
      c:with(function() items = items + 1; c:notify() end)
    end
    assert(t:await() == 3)
    local never = conc.task(function()
      return c:with(function() return c:wait_for(function() return false end, 0.02) end)
    end)
    assert(ticker(2):await() == 2)
    assert(never:await() == false)
  end)
end

-- Wake-ups from another thread and another process: the waiter holds the
-- lock until it waits, so the notifier's acquire returns only then.
do
  conc.run(function()
    local c = conc.condition()
    local t = conc.task(function()
      c:acquire()
      local th = conc.thread(function(cond)
        cond:acquire(); cond:notify(); cond:release()
      end, c)
      local ok = c:wait(10)
      c:release()
      th:join()
      return ok
    end)
    assert(ticker(3):await() == 3)
    assert(t:await() == true)
    local p = conc.task(function()
      c:acquire()
      local pr = conc.process(function(cond)
        cond:acquire(); cond:notify(); cond:release()
      end, c)
      local ok = c:wait(10)
      c:release()
      pr:join()
      return ok
    end)
    assert(p:await() == true)
  end)
end

-- A task waits while a plain thread waits on the same condition, and the
-- thread still blocks as before (only the task suspends).
do
  local c = conc.condition()
  local th_in = conc.event()
  local th = conc.thread(function(cond, ev)
    cond:acquire()
    ev:set()
    local ok = cond:wait(10)
    cond:release()
    return ok
  end, c, th_in)
  th_in:wait()
  conc.run(function()
    local t = conc.task(function() c:acquire() local ok = c:wait(10) c:release() return ok end)
    conc.sleep(0)
    c:with(function() c:notify_all() end)
    assert(t:await() == true)
  end)
  assert(select(2, th:join()) == true)
end

-- Cancelled while waiting: the lock comes back before "cancelled" is
-- raised, to-be-closed variables close (the hold guard releases it).
do
  conc.run(function()
    local c = conc.condition()
    local closed = false
    local waiting = conc.event()
    local t = conc.task(function()
      local g <close> = c:hold()
      local mark <close> = setmetatable({}, {__close = function() closed = c:owned() end})
      waiting:set()
      c:wait()
      error("not reached")
    end)
    waiting:wait()
    assert(t:cancel() == true)
    raises("cancelled", t.await, t)
    assert(closed == true, "closed while the task held the lock again")
    assert(not c:locked())
  end)
end

-- Cancelled after being notified, while re-acquiring a held lock: the
-- cancel waits for the lock, then the notification goes to the next waiter.
do
  conc.run(function()
    local c = conc.condition()
    local w1 = conc.task(function() c:with(function() c:wait() end) return "w1" end)
    local w2 = conc.task(function() return c:with(function() return c:wait(10) end) end)
    conc.sleep(0)
    c:acquire()
    c:notify(1)     -- w1's
    w1:cancel()
    conc.sleep(0)   -- w1 runs: parks for the lock we hold
    assert(not w1:done())
    c:release()
    raises("cancelled", w1.await, w1)
    assert(w2:await() == true, "the cancelled waiter passed its notification on")
    assert(not c:locked())
  end)
end

-- ---- shared tables -----------------------------------------------------------

-- Two tasks of one thread: the holder is the task; the other task's with()
-- suspends until the hold ends, and a third task runs meanwhile.
do
  conc.run(function()
    local s = conc.shared({n = 0})
    local log = {}
    local held, go = conc.event(), conc.event()
    local a = conc.task(function()
      local g <close> = s:hold()
      held:set()
      log[#log + 1] = "a holds"
      go:wait()
      s.n = s.n + 1
      log[#log + 1] = "a done"
    end)
    held:wait()
    local b = conc.task(function()
      return s:with(function()
        log[#log + 1] = "b in"
        s.n = s.n + 10
        return s.n
      end)
    end)
    assert(ticker(4):await() == 4)
    assert(not b:done(), "b waits for a's hold")
    go:set()
    assert(b:await() == 11)
    a:await()
    assert(table.concat(log, ",") == "a holds,a done,b in", table.concat(log, ","))
  end)
end

-- A single operation of another task waits for the holder; timeouts.
do
  conc.run(function()
    local s = conc.shared()
    local held, go = conc.event(), conc.event()
    local a = conc.task(function()
      s:with(function()
        held:set()
        go:wait()
        assert(s.x == nil, "the other task's write waits for the hold to end")
        s.x = "a"
      end)
    end)
    held:wait()
    local w = conc.task(function() s.x = "b" return s.x end)
    local r = conc.task(function() return #s, s.x end)
    local h = conc.task(function() return s:hold(0.02) end)
    local g, err = h:await()
    assert(g == nil and err == "timeout")
    assert(not w:done() and not r:done())
    go:set()
    a:await()
    assert(w:await() == "b")
    local n, x = r:await()
    assert(n == 0 and (x == "a" or x == "b"))
  end)
end

-- Cancelled while waiting for a hold: to-be-closed variables close, the
-- table is free afterwards.
do
  conc.run(function()
    local s = conc.shared()
    local held, go = conc.event(), conc.event()
    local a = conc.task(function() s:with(function() held:set() go:wait() end) end)
    held:wait()
    local closed = false
    local t = conc.task(function()
      local mark <close> = setmetatable({}, {__close = function() closed = true end})
      s:with(function() error("not reached") end)
    end)
    conc.sleep(0)
    t:cancel()
    raises("cancelled", t.await, t)
    assert(closed)
    go:set()
    a:await()
    local g <close> = s:hold(0)
    assert(g, "free after the cancel")
  end)
end

-- A thread and a process hold the table: the waiting task suspends alone
-- (the holder lets go only after the loop's ticker has run).
do
  conc.run(function()
    local s = conc.shared({v = 0})
    local held, ticked = conc.event(), conc.event()
    local th = conc.thread(function(sh, h, tk)
      return sh:with(function()
        h:set()
        local ok = tk:wait(10)
        sh.v = 1
        return ok
      end)
    end, s, held, ticked)
    held:wait()
    local t = conc.task(function() return s:with(function() return s.v end) end)
    ticker(3, ticked)
    assert(t:await() == 1)
    assert(select(2, th:join()) == true, "the loop ran while the task waited")
    held:clear(); ticked:clear()
    local p = conc.process(function(sh, h, tk)
      sh:with(function()
        h:set()
        tk:wait(10)
        sh.v = 2
      end)
    end, s, held, ticked)
    held:wait()
    local t2 = conc.task(function() return s:with(function() return s.v end) end)
    ticker(3, ticked)
    assert(t2:await() == 2)
    p:join()
  end)
end

print("test_task_cond: ok")
