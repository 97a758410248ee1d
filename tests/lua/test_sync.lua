-- Every method and error path of locks, rlocks, conditions, semaphores,
-- events, barriers and atomics, from one thread (test_sync_threads.lua has
-- the cross-thread behaviour). Timeouts here are short and bounded.

local raises = require("testlib").raises

local function elapsed(f, ...)
  local t0 = conc.now()
  local r = table.pack(f(...))
  return conc.now() - t0, table.unpack(r, 1, r.n)
end

-- lock: acquire, release, locked, owned, names
do
  local l = conc.lock()
  assert(tostring(l):find("^conc%.lock '.*test_sync%.lua:%d+' %("), tostring(l))
  local named = conc.lock("till")
  assert(tostring(named):find("conc.lock 'till'", 1, true))
  assert(l:locked() == false and l:owned() == false)
  assert(l:acquire() == true)
  assert(l:locked() == true and l:owned() == true)
  assert(l:acquire(0) == false)        -- does not wait
  assert(l:acquire(false) == false)    -- Python's blocking=False
  local dt, got = elapsed(l.acquire, l, 0.05)
  assert(got == false and dt >= 0.045) -- a timed self-acquire just times out
  l:release()
  assert(l:locked() == false)
  assert(l:acquire(true) == true)
  l:release()
  raises("cannot release un-acquired lock 'till'", named.release, named)
  raises("timeout must be a non-negative number", l.acquire, l, -1)
  raises("timeout expected", l.acquire, l, "soon")
end

-- self-deadlock: the exact message, no position prefix
do
  local knife = conc.lock("knife")
  knife:acquire()
  local ok, err = pcall(knife.acquire, knife)
  assert(not ok)
  assert(err == "deadlock: thread 'main' waits for lock 'knife' held by thread 'main' (itself)",
         err)
  assert(knife:owned())
  knife:release()
end

-- rlock: recursion, counted releases
do
  local r = conc.rlock("r")
  assert(tostring(r):find("conc.rlock 'r'", 1, true))
  assert(r:acquire() and r:acquire() and r:acquire(0))
  r:release()
  r:release()
  assert(r:locked())
  r:release()
  assert(not r:locked())
  raises("cannot release un-acquired rlock 'r'", r.release, r)
end

-- wrong types and closed objects
do
  local l, s = conc.lock(), conc.semaphore()
  raises("conc.lock expected, got conc.semaphore", l.acquire, s)
  raises("conc.semaphore expected, got conc.lock", s.acquire, l)
  raises("conc.lock expected, got no value", l.acquire)
  raises("conc.rlock expected, got table", conc.rlock().release, {})
end

-- with: results, arguments, release on error, the error passes unchanged
do
  local l = conc.lock("w")
  local a, b, c = l:with(function(x, y) assert(l:owned()); return x + y, "two", nil end, 1, 2)
  assert(a == 3 and b == "two" and c == nil and not l:locked())
  local n = select("#", l:with(function() end))
  assert(n == 0)
  local err = raises("boom", l.with, l, function() error("boom") end)
  assert(err:find("test_sync.lua:%d+: boom"), err)
  assert(not l:locked())
  local tbl = {}
  local ok, e = pcall(l.with, l, function() error(tbl) end)
  assert(not ok and e == tbl and not l:locked()) -- non-string errors pass through
  -- releasing inside with() is the caller's mistake, reported at the end
  raises("cannot release un-acquired lock 'w'", l.with, l, function() l:release() end)
  raises("bad argument #2 to 'with' (function expected, got no value)", l.with, l)
  -- rlock: with() nests
  local r = conc.rlock()
  assert(r:with(function() return r:with(function() return 7 end) end) == 7)
  assert(not r:locked())
  -- a deadlock inside with() leaves nothing held
  local k = conc.lock("k")
  raises("deadlock: thread 'main' waits for lock 'k'", k.with, k, function() k:acquire() end)
  assert(not k:locked())
end

-- with() inside a coroutine: fn may yield
do
  local l = conc.lock()
  local co = coroutine.wrap(function()
    return l:with(function(x) local y = coroutine.yield(x); return y * 2 end, 5)
  end)
  assert(co() == 5 and l:locked())
  assert(co(21) == 42 and not l:locked())
end

-- hold: to-be-closed guards
do
  local l = conc.lock("h")
  do
    local g <close> = l:hold()
    assert(l:owned())
    assert(tostring(g):find("conc.guard of lock 'h'", 1, true))
  end
  assert(not l:locked())
  -- released on error too
  pcall(function()
    local g <close> = l:hold()
    error("x")
  end)
  assert(not l:locked())
  -- an early release makes the close a no-op
  do
    local g <close> = l:hold()
    g:release()
    assert(not l:locked())
    assert(tostring(g):find("(released)", 1, true))
  end
  -- timeout: nil, "timeout" (and nil is a valid <close> value)
  local s = conc.semaphore(0)
  do
    local g <close>, msg, code = s:hold(0.01)
    assert(g == nil and msg == "timeout" and code == "TIMEOUT")
  end
end

-- semaphore
do
  local s = conc.semaphore()
  assert(s:value() == 1)
  assert(s:acquire() == true and s:value() == 0)
  assert(s:acquire(0) == false)
  local dt, got = elapsed(s.acquire, s, 0.03)
  assert(got == false and dt >= 0.025)
  s:release(3)
  assert(s:value() == 3)
  assert(s:with(function() return s:value() end) == 2)
  assert(s:value() == 3)
  do
    local g <close> = s:hold()
    assert(s:value() == 2)
  end
  assert(s:value() == 3)
  raises("must be at least 1", s.release, s, 0)
  raises("must be between 0 and 2^31 - 1", conc.semaphore, -1)
  local b = conc.semaphore(2, {bounded = true, name = "room"})
  assert(tostring(b):find("conc.semaphore 'room'", 1, true))
  raises("semaphore 'room' released too many times", b.release, b)
  b:acquire()
  b:release()
  assert(b:value() == 2)
  local u = conc.semaphore(0, {bounded = false})
  u:release(2 ^ 31 - 1)
  raises("value overflow", u.release, u)
  raises("table expected", conc.semaphore, 1, "bounded")
end

-- event
do
  local e = conc.event()
  assert(e:is_set() == false)
  assert(e:wait(0) == false)
  local dt, got = elapsed(e.wait, e, 0.03)
  assert(got == false and dt >= 0.025)
  e:set()
  e:set()
  assert(e:is_set() and e:wait() == true and e:wait(0) == true)
  e:clear()
  assert(not e:is_set() and e:wait(0) == false)
  assert(tostring(conc.event("dinner")):find("conc.event 'dinner'", 1, true))
end

-- condition
do
  local c = conc.condition()
  assert(tostring(c:lock()):find("conc.rlock", 1, true)) -- default: an rlock
  raises("cannot wait on un-acquired rlock", c.wait, c, 0)
  raises("cannot notify on un-acquired rlock", c.notify, c)
  raises("cannot notify on un-acquired rlock", c.notify_all, c)
  raises("cannot wait on un-acquired rlock", c.wait_for, c, function() return true end)
  raises("cannot release un-acquired rlock", c.release, c)
  assert(c:acquire() and c:acquire() and c:owned() and c:locked())
  local dt, got = elapsed(c.wait, c, 0.03)
  assert(got == false and dt >= 0.025)
  assert(c:owned()) -- re-acquired, both levels
  c:release()
  assert(c:owned())
  c:notify()
  c:notify(5)
  c:notify_all()
  raises("must be non-negative", c.notify, c, -1)
  assert(c:wait_for(function() return 42 end) == 42)
  local calls = 0
  dt, got = elapsed(c.wait_for, c, function() calls = calls + 1; return false end, 0.03)
  assert(got == false and dt >= 0.025 and calls >= 2)
  c:release()
  assert(not c:locked())
  assert(c:with(function() return c:owned() end) == true)
  do
    local g <close> = c:hold()
    assert(c:owned())
  end
  assert(not c:locked())
  -- over a given lock
  local l = conc.lock("cl")
  local c2 = conc.condition(l)
  assert(c2:lock() == l)
  l:acquire()
  assert(c2:owned() and c2:wait(0) == false and l:owned())
  l:release()
  raises("cannot wait on un-acquired lock 'cl'", c2.wait, c2)
  raises("conc.lock or conc.rlock expected", conc.condition, conc.semaphore())
  raises("conc.lock or conc.rlock expected", conc.condition, 42)
  raises("conc.lock or conc.rlock expected", conc.condition, "cv", "lock")
  assert(tostring(conc.condition("cv", l)):find("conc.condition 'cv'", 1, true))
end

-- barrier
do
  local one = conc.barrier(1)
  assert(one:wait() == 0 and one:wait(0) == 0 and one:parties() == 1)
  raises("must be between 1 and 65535", conc.barrier, 0)
  raises("number expected", conc.barrier)
  local b = conc.barrier(2, {name = "pair"})
  assert(tostring(b):find("conc.barrier 'pair'", 1, true))
  assert(b:n_waiting() == 0 and not b:broken())
  local idx, msg, code = b:wait(0.01)
  assert(idx == nil and msg == "timeout" and code == "TIMEOUT")
  assert(b:broken())
  raises("barrier 'pair' is broken", b.wait, b)
  b:reset()
  assert(not b:broken())
  b:abort()
  assert(b:broken())
  raises("barrier 'pair' is broken", b.wait, b, 0)
  b:reset()
  assert(not b:broken() and b:parties() == 2)
end

-- atomic
do
  local a = conc.atomic()
  assert(a:get() == 0 and math.type(a:get()) == "integer")
  a:set(5)
  assert(a:add(3) == 8 and a:add() == 9 and a:add(-10) == -1)
  assert(a:cas(-1, 7) == true and a:cas(-1, 8) == false and a:get() == 7)
  assert(a:exchange(1) == 7 and a:get() == 1)
  a:set(math.maxinteger)
  assert(a:add(1) == math.mininteger) -- wraps like Lua integers
  assert(conc.atomic(2.0):get() == 2)
  raises("number has no integer representation", a.set, a, 1.5)
  raises("number expected", a.add, a, "x")
  raises("number expected", a.cas, a, 1)
end

-- the fast path is lean enough for tight loops (a loose smoke check; the
-- real figure is in bench/sync_bench.lua)
do
  local l = conc.lock()
  local n = 200000
  local t0 = os.clock()
  for _ = 1, n do l:acquire(); l:release() end
  local ns = (os.clock() - t0) / n * 1e9
  assert(ns < 2000, ("acquire+release took %.0f ns"):format(ns))
end

-- 32 locks at once is the most: the 33rd is refused (it was taken without
-- being listed, so it stayed held after its thread ended, owned by whoever
-- got the thread's slot next); an rlock held may be taken again.
do
  local locks = {}
  for i = 1, 33 do locks[i] = conc.lock("held" .. i) end
  local r = conc.rlock()
  local _, err, again = conc.thread(function()
    for i = 1, 31 do assert(locks[i]:acquire()) end
    assert(r:acquire() and r:acquire())
    local ok, e = pcall(locks[33].acquire, locks[33])
    assert(not ok)
    local ok2 = pcall(r.acquire, r)
    r:release(); r:release(); r:release()
    for i = 31, 1, -1 do locks[i]:release() end
    return e, ok2
  end):join()
  assert(err:find("this thread holds 32 locks already", 1, true), err)
  assert(again)
  assert(locks[33]:acquire(0) and locks[1]:acquire(0))
  locks[33]:release(); locks[1]:release()
end

print("test_sync: ok")
