-- Blocking calls inside tasks suspend the task only: lock, rlock,
-- semaphore, with/hold, event, barrier; wake-ups from other threads and
-- other processes; a task owns the locks it takes (two tasks of one thread
-- contend, and a task-vs-task deadlock is named). Order is made with
-- events; timeouts are short upper bounds.

local raises = require("testlib").raises

-- While one task waits on a lock, the others run; the task owns the lock.
do
  conc.run(function()
    local l = conc.lock()
    local held, release = conc.event(), conc.event()
    local owner = conc.task(function()
      l:acquire()
      assert(l:owned())
      held:set()
      release:wait()
      l:release()
    end)
    held:wait()
    assert(l:locked() and not l:owned(), "the lock belongs to the owner task, not to us")
    raises("cannot release un-acquired lock", l.release, l)
    assert(l:acquire(0) == false)
    local progressed = 0
    local waiter = conc.task(function()
      local ok = l:acquire(5)
      local mine = l:owned()
      l:release()
      return ok, mine
    end)
    local other = conc.task(function() for _ = 1, 5 do progressed = progressed + 1; conc.sleep(0) end end)
    other:await()
    assert(progressed == 5 and not waiter:done())
    release:set()
    local ok, mine = waiter:await()
    assert(ok == true and mine == true)
    owner:await()
    -- a timed acquire times out in a task as in a thread
    l:acquire()
    local t0 = conc.now()
    local t = conc.task(function() return l:acquire(0.05) end)
    assert(t:await() == false and conc.now() - t0 >= 0.045)
    l:release()
  end)
end

-- rlock: re-entry by the same task; another task waits.
do
  conc.run(function()
    local r = conc.rlock()
    local inside = conc.event()
    local a = conc.task(function()
      r:acquire(); r:acquire()
      inside:set()
      conc.sleep(0.01)
      r:release(); r:release()
    end)
    inside:wait()
    local b = conc.task(function() assert(r:acquire(5)) local o = r:owned() r:release() return o end)
    a:await()
    assert(b:await() == true)
  end)
end

-- with() and hold() suspend while acquiring; release on return and on error.
do
  conc.run(function()
    local l = conc.lock()
    local s = conc.semaphore(1)
    local go = conc.event()
    local log = {}
    local first = conc.task(function()
      l:with(function()
        log[#log + 1] = "first in"
        go:wait()
        log[#log + 1] = "first out"
      end)
    end)
    local second = conc.task(function()
      local r = l:with(function(x) log[#log + 1] = "second" return x end, "v")
      return r
    end)
    conc.sleep(0)
    go:set()
    first:await()
    assert(second:await() == "v")
    assert(table.concat(log, ",") == "first in,first out,second", table.concat(log, ","))
    local g = s:hold()
    local h = conc.task(function()
      local g2 <close> = s:hold(5)
      return s:value()
    end)
    conc.sleep(0)
    assert(not h:done())
    g:release()
    assert(h:await() == 0 and s:value() == 1)
    local e = conc.task(function() l:with(function() error("inside with") end) end)
    raises("inside with", e.await, e)
    assert(not l:locked())
  end)
end

-- semaphore: acquire suspends; release from another task or a thread.
do
  conc.run(function()
    local s = conc.semaphore(0)
    local t = conc.task(function() return s:acquire() end)
    conc.sleep(0)
    assert(not t:done())
    s:release()
    assert(t:await() == true)
    local th = conc.thread(function(sem) sem:release() end, s)
    assert(s:acquire(10) == true)
    th:join()
    assert(conc.task(function() return s:acquire(0.02) end):await() == false)
  end)
end

-- event and barrier among tasks; a barrier between tasks and a thread.
do
  conc.run(function()
    local e = conc.event()
    local waiters = {}
    for i = 1, 3 do waiters[i] = conc.task(function() return e:wait() end) end
    conc.sleep(0)
    e:set()
    for i = 1, 3 do assert(waiters[i]:await() == true) end
    e:clear()
    assert(conc.task(function() return e:wait(0.02) end):await() == false)
    local b = conc.barrier(3)
    local th = conc.thread(function(bar) return bar:wait(10) end, b)
    local t1 = conc.task(function() return b:wait(10) end)
    local t2 = conc.task(function() return b:wait(10) end)
    local seen = {t1:await(), t2:await(), select(2, th:join())}
    table.sort(seen)
    assert(table.concat(seen, ",") == "0,1,2")
    local lonely = conc.barrier(2)
    local ok, err = conc.task(function() return lonely:wait(0.02) end):await()
    assert(ok == nil and err == "timeout")
    assert(lonely:broken())
  end)
end

-- Wake-ups from another thread and from another process reach a loop that
-- is blocked in its poll (nothing else to do).
do
  conc.run(function()
    local e = conc.event()
    local th = conc.thread(function(ev) conc.sleep(0.05) ev:set() end, e)
    assert(e:wait(10) == true)
    th:join()
    local l = conc.lock()
    local got = conc.event()
    local p = conc.process(function(lock, ev)
      lock:acquire()
      ev:set()
      conc.sleep(0.05)
      lock:release()
    end, l, got)
    got:wait(10)
    local t0 = conc.now()
    assert(l:acquire(10) == true, "woken by the other process's release")
    assert(conc.now() - t0 < 5)
    l:release()
    p:join()
    local s = conc.semaphore(0)
    local p2 = conc.process(function(sem) conc.sleep(0.05) sem:release() end, s)
    assert(conc.task(function() return s:acquire(10) end):await() == true)
    p2:join()
  end)
end

-- Deadlock between two tasks of one thread is detected and names tasks.
do
  conc.run(function()
    local a, b = conc.lock("A"), conc.lock("B")
    local a_held, b_held = conc.event(), conc.event()
    local t1 = conc.task(function()
      a:acquire()
      a_held:set()
      b_held:wait()
      local ok = b:acquire() -- parks: t2 holds B; t2 then closes the cycle
      b:release()
      a:release()
      return ok
    end)
    local t2 = conc.task(function()
      b:acquire()
      b_held:set()
      a_held:wait()
      conc.sleep(0.01) -- t1 is parked on B by now: the loop ran it first
      local ok, err = pcall(a.acquire, a)
      b:release()
      return ok, err
    end)
    local ok, err = t2:await()
    assert(not ok, "expected a deadlock")
    assert(err:find("deadlock", 1, true) and err:find("task-", 1, true) and
           err:find("'A'", 1, true) and err:find("'B'", 1, true), err)
    assert(t1:await() == true)
  end)
end

print("test_task_sync: ok")
