-- Locks, conditions, semaphores, events, barriers and atomics between real
-- threads: mutual exclusion, deadlock cycles (2 and 3 threads, ordered by
-- barriers so that the cycle is certain), locks left held by an ending
-- thread. Every wait is bounded by a join timeout.
local T = 30

local function join(t)
  local r = table.pack(t:join(T))
  assert(r[1] == true, "join timed out")
  return table.unpack(r, 2, r.n)
end

-- join() that expects the thread's error; returns the message
local function join_error(t)
  local ok, err = pcall(t.join, t, T)
  assert(not ok, "expected thread '" .. t.name .. "' to fail")
  return err
end

-- mutual exclusion: a read-modify-write under the lock never loses updates
do
  local l, cell = conc.lock(), conc.atomic(0)
  local N, per = 4, 5000
  local ts = {}
  for i = 1, N do
    ts[i] = conc.thread(function()
      for _ = 1, per do
        l:acquire()
        cell:set(cell:get() + 1)
        l:release()
      end
    end)
  end
  for _, t in ipairs(ts) do join(t) end
  assert(cell:get() == N * per, cell:get())
  -- the same with with() and an rlock
  local r = conc.rlock()
  cell:set(0)
  for i = 1, N do
    ts[i] = conc.thread(function()
      for _ = 1, per do r:with(function() r:with(function() cell:set(cell:get() + 1) end) end) end
    end)
  end
  for _, t in ipairs(ts) do join(t) end
  assert(cell:get() == N * per and not r:locked())
end

-- another thread cannot release what main holds; timed acquire fails
do
  local l = conc.lock("mine")
  l:acquire()
  local t = conc.thread(function()
    local got = l:acquire(0.02)
    local ok, err = pcall(l.release, l)
    return got, ok, err, l:owned(), l:locked()
  end)
  local got, ok, err, owned, locked = join(t)
  assert(got == false and ok == false and owned == false and locked == true)
  assert(err:find("cannot release un-acquired lock 'mine'", 1, true), err)
  l:release()
end

-- deadlock: cycles of 2 and 3 threads. Each thread takes its first lock,
-- all meet at a barrier, then each reaches for the next thread's lock: the
-- last wait to close the cycle fails at once and names the whole cycle.
local function cycle(names, locknames)
  local n = #names
  local locks = {}
  for i = 1, n do locks[i] = conc.lock(locknames[i]) end
  local ready = conc.barrier(n)
  local ts = {}
  for i = 1, n do
    local first, second = locks[i], locks[i % n + 1]
    ts[i] = conc.thread({name = names[i]}, function()
      first:with(function()
        ready:wait()
        second:with(function() end)
      end)
      return "cooked"
    end)
  end
  local failed, cooked = {}, 0
  for i = 1, n do
    local ok, res = pcall(ts[i].join, ts[i], T)
    assert(ok ~= nil)
    if ok then
      assert(res == true, "join timed out")
      cooked = cooked + 1
    else
      failed[#failed + 1] = {i = i, err = res}
    end
  end
  assert(#failed == 1 and cooked == n - 1, "expected exactly one deadlock error")
  -- the message walks the cycle from the thread that detected it
  local i = failed[1].i
  local expect = ("thread '%s': deadlock: thread '%s'"):format(names[i], names[i])
  for k = 0, n - 1 do
    local j = (i + k - 1) % n + 1
    local nxt = j % n + 1
    expect = expect .. ("%s lock '%s' held by thread '%s'"):format(
      k == 0 and " waits for" or ", which waits for", locknames[nxt], names[nxt])
  end
  assert(failed[1].err:sub(1, #expect) == expect, failed[1].err)
  for k = 1, n do assert(not locks[k]:locked()) end
end

for _ = 1, 5 do
  cycle({"cook1", "cook2"}, {"knife", "pot"})
  cycle({"a", "b", "c"}, {"L1", "L2", "L3"})
end

-- self-deadlock in a thread
do
  local l = conc.lock("spoon")
  local t = conc.thread({name = "clumsy"}, function()
    l:acquire()
    l:acquire()
  end)
  local err = join_error(t)
  assert(err:find("thread 'clumsy': deadlock: thread 'clumsy' waits for lock 'spoon' held by "
                  .. "thread 'clumsy' (itself)", 1, true), err)
  assert(l:acquire(T)) -- released when the thread ended
  l:release()
end

-- a timed wait is not part of the graph: no error, just a timeout
do
  local a, b = conc.lock("a"), conc.lock("b")
  local ready = conc.barrier(2)
  local t = conc.thread(function()
    return b:with(function()
      ready:wait()
      return a:acquire(0.2) -- times out while main waits (untimed) for b
    end)
  end)
  a:acquire()
  ready:wait()
  assert(b:acquire(T) == true) -- t gives up on a, releases b
  b:release()
  a:release()
  assert(join(t) == false)
end

-- a thread that ends holding a lock: released (thread.c prints a warning),
-- and a waiter gets it
do
  local l = conc.rlock("ladle")
  local held = conc.event()
  local t = conc.thread({name = "forgetful"}, function()
    l:acquire()
    l:acquire()
    held:set()
  end)
  held:wait(T)
  assert(l:acquire(T) == true)
  assert(l:owned())
  l:release()
  join(t)
  assert(not l:locked())
end

-- the same, seen from outside: the warning names the thread and the lock
do
  local conclua = os.getenv("CONCLUA")
  if conclua then
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
      local l = conc.lock("pot")
      local held = conc.event()
      local t = conc.thread({name = "cook3"}, function() l:acquire(); held:set() end)
      held:wait(30)
      print("waiter got it:", l:acquire(30))
      t:join(30)
    ]])
    f:close()
    local p = assert(io.popen(conclua .. " " .. path .. " 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    os.remove(path)
    assert(ok, out)
    assert(out:find("waiter got it:\ttrue", 1, true), out)
    assert(out:find("warning: thread 'cook3' ended holding lock 'pot'; released it", 1, true), out)
  end
end

-- a lock that nobody references any more while a thread holds it stays
-- valid until the thread ends (and releases it with a warning)
do
  local t = conc.thread(function()
    do conc.lock("lost"):acquire() end
    collectgarbage()
    collectgarbage()
    local fresh = {}
    for i = 1, 100 do fresh[i] = conc.lock() end
    return fresh[100]:locked()
  end)
  assert(join(t) == false)
end

-- condition: producer/consumer with notify
do
  local c = conc.condition()
  local items, done = conc.atomic(0), conc.atomic(0)
  local N = 2000
  local consumer = conc.thread(function()
    local got = 0
    while got < N do
      c:with(function()
        c:wait_for(function() return items:get() > 0 end)
        items:add(-1)
        got = got + 1
      end)
    end
    return got
  end)
  for _ = 1, N do
    c:with(function()
      items:add(1)
      c:notify()
    end)
  end
  assert(join(consumer) == N and items:get() == 0)
  -- notify_all wakes every waiter
  local waiters = {}
  local parked = conc.atomic(0)
  local flag = conc.atomic(0)
  for i = 1, 3 do
    waiters[i] = conc.thread(function()
      return c:with(function()
        parked:add(1)
        return c:wait_for(function() return flag:get() == 1 end, T)
      end)
    end)
  end
  -- all three are parked once each has bumped `parked` and given up the lock
  while parked:get() < 3 do conc.sleep(0.001) end
  c:with(function()
    flag:set(1)
    c:notify_all()
  end)
  for i = 1, 3 do assert(join(waiters[i]) == true) end
end

-- a condition's re-acquire is deadlock-checked: A holds m and waits on c;
-- B notifies while holding c's lock, then wants m. Whichever closes the
-- cycle gets the error (A inside wait(), without the lock; or B), and the
-- other one finishes.
for _ = 1, 3 do
  local c, m = conc.condition(conc.rlock("cv")), conc.lock("m")
  local parked = conc.atomic(0)
  local a = conc.thread({name = "A"}, function()
    m:with(function()
      c:with(function()
        parked:set(1)
        c:wait()
      end)
    end)
  end)
  -- A is inside wait() once it set `parked` and gave c's lock up
  while parked:get() == 0 do c:with(function() end) end
  local b = conc.thread({name = "B"}, function()
    c:with(function()
      c:notify()
      m:with(function() end)
    end)
  end)
  local oka, erra = pcall(a.join, a, T)
  local okb, errb = pcall(b.join, b, T)
  assert(oka ~= okb, "exactly one of A and B must fail")
  local err = oka and errb or erra
  local ea = "thread 'A': deadlock: thread 'A' waits for rlock 'cv' held by thread 'B', "
             .. "which waits for lock 'm' held by thread 'A'"
  local eb = "thread 'B': deadlock: thread 'B' waits for lock 'm' held by thread 'A', "
             .. "which waits for rlock 'cv' held by thread 'B'"
  assert(err:sub(1, #ea) == ea or err:sub(1, #eb) == eb, err)
  assert(not m:locked() and not c:locked())
end

-- semaphore: never more inside than allowed
do
  local s = conc.semaphore(2)
  local inside, max = conc.atomic(0), conc.atomic(0)
  local ts = {}
  for i = 1, 6 do
    ts[i] = conc.thread(function()
      for _ = 1, 300 do
        s:with(function()
          local n = inside:add(1)
          local m = max:get()
          while n > m and not max:cas(m, n) do m = max:get() end
          inside:add(-1)
        end)
      end
    end)
  end
  for _, t in ipairs(ts) do join(t) end
  assert(max:get() <= 2 and max:get() >= 1 and s:value() == 2)
end

-- event: every waiter wakes on set
do
  local e = conc.event()
  local ts = {}
  for i = 1, 4 do ts[i] = conc.thread(function() return e:wait(T) end) end
  e:set()
  for i = 1, 4 do assert(join(ts[i]) == true) end
end

-- barrier: arrival indexes 0..n-1, each once per round
do
  local n = 4
  local b = conc.barrier(n)
  local ts = {}
  for i = 1, n do
    ts[i] = conc.thread(function()
      local seen = {}
      for r = 1, 50 do seen[r] = b:wait(T) end
      return seen
    end)
  end
  local results = {}
  for i = 1, n do results[i] = join(ts[i]) end
  for r = 1, 50 do
    local set = {}
    for i = 1, n do set[results[i][r]] = true end
    for k = 0, n - 1 do assert(set[k], "round " .. r .. " misses index " .. k) end
  end
end

print("test_sync_threads: ok")
