-- Thread and process join in tasks: the join suspends only the task (the
-- thread or process waits for an event that another task of the loop sets,
-- so a join that blocked the loop's thread would leave it waiting: each
-- such wait has a timeout and reports whether it was set), timeouts,
-- errors re-raised by a task's join, cancellation while joining.

local raises = require("testlib").raises

local setter = require("testlib").setter

do
  conc.run(function()
    -- a thread
    local go = conc.event()
    local th = conc.thread(function(ev) return ev:wait(10) end, go)
    local j = conc.task(function() return th:join() end)
    setter(go)
    local ok, seen = j:await()
    assert(ok == true and seen == true, "the loop ran while a task joined")
    -- a process
    local go2 = conc.event()
    local p = conc.process(function(ev) return ev:wait(10) end, go2)
    local jp = conc.task(function() return p:join() end)
    setter(go2)
    local okp, seenp = jp:await()
    assert(okp == true and seenp == true, "the loop ran while a task joined a process")
  end)
end

-- Timeouts, and a thread's error re-raised by the task's join.
do
  conc.run(function()
    local go = conc.event()
    local th = conc.thread(function(ev) ev:wait(10) error("boom") end, go)
    local t0 = conc.now()
    assert(conc.task(function() return th:join(0.02) end):await() == false)
    assert(conc.now() - t0 >= 0.015)
    local j = conc.task(function() return th:join() end)
    setter(go)
    raises("boom", j.await, j)
    local go2 = conc.event()
    local p = conc.process(function(ev) ev:wait(10) end, go2)
    assert(conc.task(function() return p:join(0.02) end):await() == false)
    go2:set()
    assert(conc.task(function() return p:join(10) end):await() == true)
  end)
end

-- Cancelled while joining: to-be-closed variables close; the thread is
-- joined later as usual.
do
  conc.run(function()
    local go = conc.event()
    local th = conc.thread(function(ev) ev:wait(10) return "late" end, go)
    local closed = false
    local j = conc.task(function()
      local mark <close> = setmetatable({}, {__close = function() closed = true end})
      return th:join()
    end)
    conc.sleep(0)
    j:cancel()
    raises("cancelled", j.await, j)
    assert(closed)
    go:set()
    local ok, v = th:join(10)
    assert(ok == true and v == "late")
  end)
end

print("test_task_join: ok")
