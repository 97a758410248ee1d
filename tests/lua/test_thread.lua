-- Behaviour of conc.thread and friends, through the Lua API.
-- Every wait is bounded: a hang fails the join with a timeout.
local T = 30 -- generous bound for any single wait

local function joined(t, ...)
  local r = table.pack(t:join(T))
  assert(r[1] == true, "join timed out or failed: " .. tostring(r[1]))
  return table.unpack(r, 2, r.n)
end

-- results and arguments are copied both ways
do
  local t = conc.thread(function(a, b, s) return a + b, s:upper(), nil, math.type(a) end,
                        1, 2.5, "x")
  local sum, s, n, ty = joined(t)
  assert(sum == 3.5 and s == "X" and n == nil and ty == "integer")
  -- join again returns the same results
  local ok, again = t:join()
  assert(ok and again == 3.5)
end

-- no results
do
  local r = table.pack(conc.thread(function() end):join(T))
  assert(r.n == 1 and r[1] == true)
end

-- upvalues are copied, the caller's copy is untouched
do
  local counter = {n = 1}
  local t = conc.thread(function() counter.n = counter.n + 1; return counter.n end)
  assert(joined(t) == 2)
  assert(counter.n == 1)
end

-- globals: a thread sees its own fresh globals, not the caller's
do
  GLOBAL_X = 42
  local t = conc.thread(function() return GLOBAL_X, type(string), type(conc) end)
  local x, s, c = joined(t)
  assert(x == nil and s == "table" and c == "table")
end

-- names, ids, daemon flag, alive, tostring
do
  local gate = conc.queue and conc.queue() -- if queues exist, use one to hold the thread
  local t = conc.thread({name = "worker", daemon = true}, function(q)
    if q then q:get() end
    return conc.current().name, conc.current().id, conc.current().daemon
  end, gate)
  assert(t.name == "worker" and t.daemon == true and math.type(t.id) == "integer")
  if gate then
    assert(t:alive() == true)
    gate:put(1)
  end
  local name, id, daemon = joined(t)
  assert(name == "worker" and id == t.id and daemon == true)
  assert(t:alive() == false)
  assert(tostring(t):find("conc.thread 'worker'", 1, true))
  local d = conc.thread(function() end)
  assert(d.name:match("^thread%-%d+$") and d.daemon == false)
  joined(d)
end

-- errors are re-raised by join with the thread's name and traceback
do
  local t = conc.thread({name = "bad"}, function() local x = nil; return x.field end)
  local ok, err = pcall(t.join, t, T)
  assert(not ok)
  assert(err:find("thread 'bad': ", 1, true), err)
  assert(err:find("attempt to index", 1, true), err)
  assert(err:find("stack traceback", 1, true), err)
  -- joining again raises again
  assert(not pcall(t.join, t, T))
  -- error objects that are not strings
  local t2 = conc.thread(function() error(setmetatable({}, {__tostring = function() return "custom" end})) end)
  local ok2, err2 = pcall(t2.join, t2, T)
  -- error values keep their type: the table arrives with its metatable
  assert(not ok2 and type(err2) == "table" and tostring(err2) == "custom", tostring(err2))
  local t3 = conc.thread(function() error({}) end)
  local _, err3 = pcall(t3.join, t3, T)
  assert(type(err3) == "table" and next(err3) == nil, tostring(err3))
end

-- join timeouts
do
  if conc.event then
    local e = conc.event()
    local t = conc.thread(function(ev) ev:wait() return "done" end, e)
    assert(t:join(0) == false)
    assert(t:join(0.01) == false)
    e:set()
    assert(joined(t) == "done")
  end
  assert(not pcall(conc.thread(function() end).join, {}, 1))
end

-- current(), threads()
do
  local me = conc.current()
  assert(me.name == "main", me.name)
  assert(me == conc.current())
  local found = false
  for _, th in ipairs(conc.threads()) do if th == me then found = true end end
  assert(found, "main thread not listed")
  local inner = joined(conc.thread(function() return conc.current().name end))
  assert(inner:match("^thread%-%d+$"), inner)
end

-- a thread object passed to another thread is the same thread
do
  local t = conc.thread(function() return 7 end)
  local other = conc.thread(function(th) local ok, v = th:join(30); return ok, v, th.name end, t)
  local ok, v, name = joined(other)
  assert(ok == true and v == 7 and name == t.name)
end

-- cannot join oneself
do
  local t = conc.thread(function() local ok, err = pcall(function() return conc.current():join() end); return ok, err end)
  local ok, err = joined(t)
  assert(ok == false and err:find("cannot join the current thread", 1, true), err)
end

-- many threads at once, truly concurrent: each waits for all via a shared counter
do
  local n = 32
  local ts = {}
  for i = 1, n do ts[i] = conc.thread(function(i) local s = 0; for k = 1, 1000 do s = s + k end; return s + i end, i) end
  for i = 1, n do assert(joined(ts[i]) == 500500 + i) end
end

-- spawn+join repeatedly: fresh state each time, no leftovers from a previous thread
do
  for i = 1, 200 do
    local leftover = joined(conc.thread(function(i) local seen = LEFTOVER; LEFTOVER = i; return seen end, i))
    assert(leftover == nil, "thread saw a previous thread's global")
  end
end

-- argument errors
do
  assert(not pcall(conc.thread))
  assert(not pcall(conc.thread, 42))
  assert(not pcall(conc.thread, {name = "x"}))
  local ok, err = pcall(conc.thread, function() end, coroutine.create(function() end))
  assert(not ok and err:find("cannot copy a coroutine", 1, true), err)
  assert(not pcall(conc.sleep, -1))
  assert(not pcall(conc.sleep, "x"))
end

-- sleep, now, cpus
do
  local t0 = conc.now()
  conc.sleep(0.02)
  local dt = conc.now() - t0
  assert(dt >= 0.019, dt)
  assert(math.type(conc.cpus()) == "integer" and conc.cpus() >= 1)
  conc.sleep(0)
end

print("test_thread: ok")

-- conc.threads() lists every live thread, not the first 1024
do
  local n = 1100
  local go, ready = conc.event(), conc.semaphore(0)
  local ts = {}
  for i = 1, n do ts[i] = conc.thread(function(g, r) r:release(); g:wait() end, go, ready) end
  for _ = 1, n do ready:acquire() end
  local seen = 0
  for _, t in ipairs(conc.threads()) do if t ~= conc.current() then seen = seen + 1 end end
  go:set()
  for i = 1, n do ts[i]:join() end
  assert(seen >= n, ("conc.threads() listed %d of %d"):format(seen, n))
end
