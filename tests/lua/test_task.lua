-- Coroutine tasks: conc.run, conc.task, await, cancel (with to-be-closed
-- variables), done, gather, conc.sleep in a task, errors, nested tasks and
-- misuse. Ordering is by the loop's FIFO and by events, never by timing;
-- the only timed checks are upper bounds that show tasks overlap.

local raises = require("testlib").raises

-- conc.run returns the main task's results and passes its arguments.
do
  local a, b, n = conc.run(function(x, y) return x + y, "two", nil end, 40, 2)
  assert(a == 42 and b == "two" and n == nil)
  assert(select("#", conc.run(function() end)) == 0)
end

-- Outside conc.run: tasks raise a clear error; conc.sleep blocks the thread.
raises("no event loop runs here", conc.task, print)
raises("bad argument #1 to 'conc.run'", conc.run, 42)
do
  local t0 = conc.now()
  conc.sleep(0.01)
  assert(conc.now() - t0 >= 0.009)
end

-- Ordering: the loop runs ready tasks first come, first served; sleep(0)
-- goes to the back of the line.
do
  local log = {}
  conc.run(function()
    local ts = {}
    for i = 1, 3 do
      ts[i] = conc.task(function()
        for step = 1, 3 do
          log[#log + 1] = i .. ":" .. step
          conc.sleep(0)
        end
        return i * 10
      end)
    end
    local r = conc.gather(ts[1], ts[2], ts[3])
    assert(r[1] == 10 and r[2] == 20 and r[3] == 30)
  end)
  assert(table.concat(log, " ") == "1:1 2:1 3:1 1:2 2:2 3:2 1:3 2:3 3:3", table.concat(log, " "))
end

-- The seed's gather: sleeps overlap (two tasks, three sleeps each).
do
  local t0 = conc.now()
  local r = conc.run(function()
    local function work(name)
      for _ = 1, 3 do conc.sleep(0.05) end
      return name
    end
    return conc.gather(function() return work("a") end, function() return work("b") end)
  end)
  local dt = conc.now() - t0
  assert(r[1] == "a" and r[2] == "b")
  assert(dt >= 0.14 and dt < 0.28, "gathered sleeps took " .. dt)
end

-- await: results, errors re-raised (with their value), await twice, done().
do
  conc.run(function()
    local t = conc.task(function(...) return ... end, 1, nil, 3)
    assert(not t:done())
    local a, b, c = t:await()
    assert(a == 1 and b == nil and c == 3 and t:done())
    assert(select("#", t:await()) == 3)
    local e = conc.task(function() error({code = 7}) end)
    local ok, err = pcall(e.await, e)
    assert(not ok and type(err) == "table" and err.code == 7)
    local s = conc.task(function() error("boom") end)
    raises("boom", s.await, s)
    raises("a task cannot await itself", function()
      local me
      me = conc.task(function() return me:await() end)
      conc.sleep(0)
      return me:await()
    end)
  end)
end

-- Nested tasks: a task starts tasks and awaits them; a finished task's
-- results stay for later awaits.
do
  local r = conc.run(function()
    local outer = conc.task(function()
      local inner = conc.task(function()
        local deepest = conc.task(function() conc.sleep(0.001) return "deep" end)
        return deepest:await() .. "er"
      end)
      return inner:await() .. "!"
    end)
    return outer:await()
  end)
  assert(r == "deeper!", r)
end

-- Cancellation: the task sees "cancelled" where it waits, its to-be-closed
-- variables close, await raises; cancel of a finished task returns false.
do
  local closed, reached = {}, false
  conc.run(function()
    local started = conc.event()
    local t = conc.task(function()
      local x <close> = setmetatable({}, {__close = function() closed[#closed + 1] = "x" end})
      started:set()
      conc.sleep(60)
      reached = true
    end)
    started:wait()
    assert(t:cancel() == true)
    raises("cancelled", t.await, t)
    assert(t:done() and t:cancelled())
    assert(t:cancel() == false)
    -- cancelled before it ever ran: it never runs
    local ran = false
    local n = conc.task(function() ran = true end)
    n:cancel()
    raises("cancelled", n.await, n)
    assert(not ran)
    -- cancelled while awaiting another task, and while waiting on a lock
    local l = conc.lock()
    l:acquire()
    local w1 = conc.task(function()
      local y <close> = setmetatable({}, {__close = function() closed[#closed + 1] = "y" end})
      l:acquire()
    end)
    local blocker = conc.task(function() conc.sleep(60) end)
    local w2 = conc.task(function() return blocker:await() end)
    conc.sleep(0)
    w1:cancel()
    w2:cancel()
    raises("cancelled", w1.await, w1)
    raises("cancelled", w2.await, w2)
    assert(not blocker:done())
    l:release()
    assert(l:acquire(0) == true, "the cancelled waiter must not keep the lock")
    l:release()
    -- a task that catches its cancel goes on; await gives its result
    local stubborn = conc.task(function()
      local ok, err = pcall(conc.sleep, 60)
      assert(not ok and err == "cancelled")
      return "survived"
    end)
    conc.sleep(0)
    stubborn:cancel()
    assert(stubborn:await() == "survived")
    -- blocker is left running: conc.run cancels it when the main task ends
  end)
  assert(table.concat(closed, ",") == "x,y", table.concat(closed, ","))
  assert(not reached)
end

-- When the main task ends, the others are cancelled and awaited (their
-- to-be-closed variables close before conc.run returns).
do
  local closed = false
  conc.run(function()
    conc.task(function()
      local z <close> = setmetatable({}, {__close = function() closed = true end})
      conc.sleep(60)
    end)
    conc.sleep(0)
  end)
  assert(closed)
end

-- The main task's error leaves conc.run; the loop can run again afterwards.
do
  raises("main failed", conc.run, function()
    conc.task(function() conc.sleep(60) end)
    conc.sleep(0)
    error("main failed")
  end)
  assert(conc.run(function() return "again" end) == "again")
end

-- Misuse: one loop per thread; gather's arguments.
do
  conc.run(function()
    raises("a loop already runs in this thread", conc.run, print)
    raises("conc.task or function expected", conc.gather, 42)
  end)
end

-- pcall inside a task body is yieldable: a task suspends inside it.
do
  local r = conc.run(function()
    local ok, v = pcall(function() conc.sleep(0.001) return "inside pcall" end)
    assert(ok)
    return v
  end)
  assert(r == "inside pcall")
end

-- A function written for threads runs unchanged as a task and as a thread.
do
  local function worker(l, n)
    local s = 0
    for i = 1, n do
      l:with(function() s = s + i end)
      conc.sleep(0)
    end
    return s
  end
  local l = conc.lock()
  assert(select(2, conc.thread(worker, l, 10):join()) == 55)
  local r = conc.run(function()
    return conc.gather(function() return worker(l, 10) end, function() return worker(l, 4) end)
  end)
  assert(r[1] == 55 and r[2] == 10)
end

-- Many arguments reach a task (and conc.run's main task) whole.
do
  local args = {}
  for i = 1, 200 do args[i] = i end
  local n, last = conc.run(function(...)
    local t = conc.task(function(...) return select("#", ...), (select(200, ...)) end, ...)
    return t:await()
  end, table.unpack(args))
  assert(n == 200 and last == 200, tostring(n))
end

-- The ready queue grows while a round runs, when it has wrapped around:
-- 60 tasks go round it a few times, then one starts 100 more; every task
-- still runs in its turn (first come, first served).
do
  local log = {}
  conc.run(function()
    local ts = {}
    for i = 1, 60 do
      ts[i] = conc.task(function()
        for step = 1, 5 do
          log[#log + 1] = "t" .. i .. "." .. step
          if i == 1 and step == 3 then
            for c = 1, 100 do
              conc.task(function() log[#log + 1] = "c" .. c end)
            end
          end
          conc.sleep(0)
        end
      end)
    end
    for i = 1, 60 do ts[i]:await() end
  end)
  local want = {}
  for step = 1, 5 do
    if step == 4 then
      for c = 1, 100 do want[#want + 1] = "c" .. c end
    end
    for i = 1, 60 do want[#want + 1] = "t" .. i .. "." .. step end
  end
  assert(table.concat(log, " ") == table.concat(want, " "))
end

-- The Task object: its methods check their argument, a misspelled method
-- raises with a suggestion, tostring shows the state.
do
  conc.run(function()
    local t = conc.task(function() conc.sleep(0) end)
    assert(tostring(t):match("^conc%.task %d+ %(new%)$"), tostring(t))
    raises("conc.task expected, got table", t.await, {})
    raises("conc.task expected, got no value", t.done)
    raises("awiat", function() return t:awiat() end)
    t:await()
    assert(tostring(t):match("^conc%.task %d+ %(done%)$"), tostring(t))
    assert(getmetatable(t).__name == "conc.task")
  end)
end

-- Loops in two threads at once: each thread's state builds its own Task
-- type on first use and keeps its own live tasks.
do
  local function work(n)
    return conc.run(function()
      local ts = {}
      for i = 1, n do ts[i] = conc.task(function(x) conc.sleep(0) return x * 2 end, i) end
      local s = 0
      for i = 1, n do s = s + ts[i]:await() end
      local g = conc.gather(function() return "g" end)
      return s, g[1], tostring(ts[1]):match("^conc%.task %d+ %(done%)$") ~= nil
    end)
  end
  local a, b = conc.thread(work, 500), conc.thread(work, 300)
  local _, sa, ga, ta = a:join()
  local _, sb, gb, tb = b:join()
  assert(sa == 500 * 501 and sb == 300 * 301, tostring(sa) .. " " .. tostring(sb))
  assert(ga == "g" and gb == "g" and ta and tb)
end

-- Tasks that fail and whose errors are retrieved: more of them than were
-- ever alive at once (each slot they keep outlived them: the table of free
-- slots overflowed, a crash), and a loop that runs on does not keep them.
do
  local retrieved, kept = 0, {}
  conc.run(function()
    for i = 1, 3000 do
      local t = conc.task(function() error("x" .. i) end)
      local ok, err = pcall(t.await, t)
      assert(not ok and err:find("x" .. i, 1, true))
      retrieved = retrieved + 1
      if i % 1000 == 0 then
        collectgarbage()
        kept[#kept + 1] = collectgarbage("count")
      end
    end
  end)
  assert(retrieved == 3000)
  -- memory after 2000 and 3000 failed tasks: no more than after 1000
  assert(kept[3] < kept[1] + 64 and kept[2] < kept[1] + 64, table.concat(kept, " "))
end

print("test_task: ok")
