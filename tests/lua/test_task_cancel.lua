-- Cancelling tasks (docs/TASKS.md, "Cancellation"): a task that caught a
-- cancel can be cancelled again (and conc.run's final cancel reaches it); a
-- task that caught one and returned gives its results to await and is not
-- "cancelled"; a cancel that comes while a task was woken from a wait or an
-- I/O call but not yet resumed is not lost when that wait or call must wait
-- again. Each scenario runs conc.run in a daemon thread joined with a
-- timeout, so a lost cancel (a hang) fails the test instead of hanging it.
-- Order is made with events and queues; conc.sleep(0) only yields.

local failures = {}

-- Runs fn (copied to a new thread: it uses globals only) in a thread; the
-- scenario fails when it raises or has not ended within `limit` seconds.
local function scenario(name, fn, limit)
  local th = conc.thread({name = name, daemon = true}, fn)
  local ok, res = pcall(th.join, th, limit or 20)
  if not ok then
    failures[#failures + 1] = name .. ": " .. tostring(res)
  elseif not res then
    failures[#failures + 1] = name .. ": hung (a cancel was lost)"
  end
end

-- ---- a caught cancel -------------------------------------------------------

-- A second cancel after a caught one reaches the task (bug: cancel returned
-- false and did nothing once one cancel had been raised).
scenario("second cancel after a caught one", function()
  conc.run(function()
    local caught = conc.event()
    local t = conc.task(function()
      local ok, err = pcall(conc.sleep, 10) -- the first cancel, caught
      assert(not ok and err == "cancelled", tostring(err))
      caught:set()
      conc.queue():get() -- for ever, unless cancelled again
    end)
    conc.sleep(0) -- t runs and sleeps
    assert(t:cancel() == true, "first cancel")
    caught:wait()
    assert(not t:done())
    assert(t:cancel() == true, "second cancel of a live task")
    local ok, err = pcall(t.await, t)
    assert(not ok and err == "cancelled", tostring(err))
    assert(t:done() and t:cancelled())
    assert(t:cancel() == false, "a finished task")
  end)
end)

-- conc.run ends when a task swallowed the first cancel (the report's
-- script): its final cancel of the remaining tasks is a new one, which the
-- task does not catch (bug: conc.run never returned).
scenario("conc.run ends after a swallowed cancel", function()
  local closed = false
  local r = conc.run(function()
    local caught = conc.event()
    local t = conc.task(function()
      local _ <close> = setmetatable({}, {__close = function() closed = true end})
      pcall(conc.sleep, 10)
      caught:set()
      conc.queue():get() -- cancelled by conc.run's end
    end)
    conc.sleep(0)
    assert(t:cancel())
    caught:wait()
    return "main done"
  end)
  assert(r == "main done")
  assert(closed, "the task's to-be-closed variable closed")
end)

-- A task that catches a cancel and returns normally: await gives its
-- results, and it did not end cancelled.
scenario("caught cancel, normal return", function()
  conc.run(function()
    local t = conc.task(function()
      local ok, err = pcall(conc.sleep, 10)
      conc.sleep(0) -- suspends again: no cancel is left pending
      return "after", ok, err
    end)
    conc.sleep(0)
    assert(t:cancel())
    local a, ok, err = t:await()
    assert(a == "after" and ok == false and err == "cancelled", tostring(err))
    assert(t:done())
    assert(t:cancelled() == false, "it returned normally")
    assert(tostring(t):find("(done)", 1, true), tostring(t))
    assert(t:cancel() == false)
  end)
end)

-- ---- a cancel between a wake and the resume ----------------------------------

-- A queue get (a wait that sees the cancel, CONC_WAIT_SEE_CANCEL): b is
-- woken by a put, the item is taken back before b runs, b is cancelled.
scenario("cancel of a woken queue get", function()
  local q = conc.queue()
  conc.run(function()
    local b = conc.task(function() return q:get() end)
    local c = conc.task(function()
      conc.sleep(0) -- b parks in get
      q:put(1)      -- wakes b (not run yet)
      assert(q:get() == 1) -- takes the item back first
      return b:cancel()
    end)
    assert(c:await() == true, "cancel of a live task")
    local ok, err = pcall(b.await, b)
    assert(not ok and err == "cancelled", tostring(err))
    assert(b:cancelled())
    assert(#q == 0)
  end)
end)

-- A semaphore acquire (a plain wait, no flags): b is woken by a release,
-- the permit is taken back before b runs, b is cancelled.
scenario("cancel of a woken semaphore acquire", function()
  conc.run(function()
    local sem = conc.semaphore(0)
    local b = conc.task(function() return sem:acquire() end)
    conc.sleep(0) -- b parks in acquire
    sem:release()  -- wakes b (not run yet)
    assert(sem:acquire(0) == true) -- takes the permit back first
    assert(b:cancel() == true)
    local ok, err = pcall(b.await, b)
    assert(not ok and err == "cancelled", tostring(err))
    sem:release() -- b passed no permit on and holds none
    assert(sem:acquire(0) == true and sem:acquire(0) == false)
  end)
end)

-- A cancel that is not lost still leaves the wait like an interrupted one:
-- a task woken, cancelled and raising does not keep a later put's item from
-- another getter.
scenario("woken and cancelled getter passes the turn on", function()
  conc.run(function()
    local q = conc.queue()
    local b = conc.task(function() return q:get() end)
    local d = conc.task(function() return q:get() end)
    conc.sleep(0) -- both park in get
    q:put(1)
    local first = q:get() -- taken back: b was woken for nothing
    assert(first == 1)
    assert(b:cancel())
    assert(not pcall(b.await, b))
    q:put(2)
    assert(d:await() == 2)
  end)
end)

-- TCP: a read("l") woken by "abc" (no newline) is cancelled before it runs;
-- the step finds no line and must not suspend again. The peer is another
-- thread, so the data arrives while the main task polls (a write of this
-- loop could complete after the read's wake, and the reader run first).
scenario("cancel of a woken TCP read", function()
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local send, sent = conc.event(), conc.event()
    -- a daemon: it outlives a scenario that hangs without ending it
    local peer = conc.thread({daemon = true}, function(port, send, sent)
      local c = assert(conc.tcp.connect("127.0.0.1", port, 10))
      assert(send:wait(60))
      assert(c:write("abc"))
      assert(sent:wait(60))
      assert(c:write("def\n"))
      c:close()
    end, srv.port, send, sent)
    local s = assert(srv:accept(10))
    local r = conc.task(function() return s:read("l") end)
    local deadline = conc.now() + 10
    repeat conc.sleep(0) until tostring(r):find("in I/O", 1, true) or conc.now() > deadline
    assert(tostring(r):find("in I/O", 1, true), tostring(r))
    send:set()
    repeat conc.sleep(0) until tostring(r):find("(ready)", 1, true) or conc.now() > deadline
    assert(tostring(r):find("(ready)", 1, true), tostring(r))
    assert(r:cancel() == true)
    local ok, err = pcall(r.await, r)
    assert(not ok and err == "cancelled", tostring(err))
    -- the connection still works: the unread "abc" is there for the next read
    sent:set()
    assert(s:read("l") == "abcdef")
    assert(peer:join(10))
    s:close()
    srv:close()
  end)
end)

-- A read with a cancel pending from before the call is not started (the
-- cancel came while the task was ready after conc.sleep(0)).
scenario("cancel pending before a TCP read", function()
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local c = assert(conc.tcp.connect("127.0.0.1", srv.port, 10))
    local s = assert(srv:accept())
    local r = conc.task(function()
      conc.sleep(0)
      return s:read("l")
    end)
    conc.sleep(0) -- r runs, and is ready again after its sleep(0)
    assert(tostring(r):find("(ready)", 1, true), tostring(r))
    assert(r:cancel())
    local ok, err = pcall(r.await, r)
    assert(not ok and err == "cancelled", tostring(err))
    assert(c:write("x\n"))
    assert(s:read("l") == "x")
    c:close()
    s:close()
    srv:close()
  end)
end)

if #failures > 0 then error(#failures .. " failed:\n  " .. table.concat(failures, "\n  "), 0) end
print("test_task_cancel: ok")
