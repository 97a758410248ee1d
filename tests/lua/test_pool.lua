-- conc.pool with thread workers: ordering, errors, timeouts, cancel,
-- close/join, callbacks (when and where they run), futures passed to another
-- thread, bad input. Process workers: test_pool_process.lua.

local raises = require("testlib").raises_match

local eventually = require("testlib").eventually

local function id(...) return ... end

-- ordering: submit, apply, map
do
  local p <close> = conc.pool(3, {name = "order"})
  assert(p.name == "order" and p.size == 3 and p.processes == false)
  local fs = {}
  for i = 1, 50 do fs[i] = p:submit(function(x, y) return x * 10, y end, i, "s" .. i) end
  for i = 1, 50 do
    local a, b = fs[i]:get()
    assert(a == i * 10 and b == "s" .. i)
    assert(fs[i]:done())
  end
  assert(select("#", p:apply(id)) == 0)
  local a, b, c = p:apply(id, 1, nil, {k = "v"})
  assert(a == 1 and b == nil and c.k == "v")
  local list = {}
  for i = 1, 1000 do list[i] = i end
  for _, cs in ipairs({1, 3, 7, 1000, 5000}) do
    local r = p:map(function(x) return x + 1 end, list, cs)
    assert(#r == 1000)
    for i = 1, 1000 do assert(r[i] == i + 1) end
  end
  local r = p:map(function(x) return -x end, list)
  for i = 1, 1000 do assert(r[i] == -i) end
  assert(#p:map(id, {}) == 0)
  -- nil results keep their places
  r = p:map(function(x) if x % 2 == 0 then return x end end, {1, 2, 3, 4, 5, 6}, 4)
  assert(r[1] == nil and r[2] == 2 and r[5] == nil and r[6] == 6)
  -- chunks are encoded straight from the list and decoded straight into
  -- the result: larger lists, chunks past the 4096-item cap, nil results
  -- at chunk ends, items of every kind (tables take the codec's general path)
  local big = {}
  for i = 1, 10001 do big[i] = i end
  for _, cs in ipairs({nil, 4096, 4097, 20000}) do
    r = p:map(function(x) if x % 4096 ~= 0 and x % 3 ~= 0 then return x * 2 end end, big, cs)
    for i = 1, 10001 do
      assert(r[i] == ((i % 4096 ~= 0 and i % 3 ~= 0) and i * 2 or nil), i)
    end
  end
  local mixed = {1, -2, 2^53, 1.5, "s", ("x"):rep(100), true, false, {1, {2}}, id}
  r = p:map(function(v) return type(v) == "table" and v[2][1] or v end, mixed, 3)
  for i = 1, #mixed do
    if i == 9 then assert(r[i] == 2) elseif i == 10 then assert(r[i](5) == 5)
    else assert(r[i] == mixed[i], i) end
  end
  r = p:map(function(v) return v, "only the first" end, {"a", "b"})
  assert(#r == 2 and r[1] == "a" and r[2] == "b")
  -- no arguments, no results: tasks without encoded blocks
  assert(select("#", p:submit(function() end):get()) == 0)
  assert(p:submit(function(...) return select("#", ...) end, nil, nil):get() == 2)
  assert(p:submit(function(...) return select("#", ...) end):get() == 0)
  local cb = {}
  local f0 = p:submit(function() end)
  f0:on_done(function(...) cb.n = select("#", ...) cb.ok = ... end)
  p:join()
  assert(cb.n == 1 and cb.ok == true)
  -- a function is copied with its upvalues
  local k = 7
  assert(p:apply(function(x) return x * k end, 6) == 42)
end

-- errors fail only their future; the pool stays usable
do
  local p <close> = conc.pool(2, {name = "errs"})
  local good1 = p:submit(id, 1)
  local bad = p:submit(function() error("boom") end)
  local good2 = p:submit(id, 2)
  local err = raises("boom", bad.get, bad)
  assert(err:find("pool 'errs'", 1, true), err)
  assert(err:find("stack traceback", 1, true), err) -- the task's traceback
  raises("boom", bad.get, bad) -- again: the outcome stays
  assert(good1:get() == 1 and good2:get() == 2)
  raises("table value", p.apply, p, function() return {} .. "" end)
  raises("in map", p.map, p, function(x) if x == 5 then error("in map") end return x end,
         {1, 2, 3, 4, 5, 6})
  -- an uncopyable result is the task's error
  raises("cannot copy a coroutine %(result 1%)", p.apply, p,
         function() return coroutine.create(print) end)
  raises("cannot copy a coroutine %(result 2%)", p.map, p,
         function(x) if x == 2 then return coroutine.create(print) end return x end, {1, 2, 3}, 3)
  assert(p:apply(id, "still fine") == "still fine")
end

-- timeouts: get raises, wait returns false; the task goes on
do
  local p <close> = conc.pool(1)
  local go = conc.event()
  local f = p:submit(function(e) e:wait() return "late" end, go)
  raises("future:get: timeout", f.get, f, 0.05)
  raises("future:get: timeout", f.get, f, 0)
  assert(f:wait(0.05) == false and f:wait(0) == false and not f:done())
  go:set()
  assert(f:wait() == true and f:get(5) == "late")
  raises("timeout must be a non%-negative number", f.get, f, -1)
end

-- cancel: only a task that has not started
do
  local p <close> = conc.pool(1)
  local started, go = conc.event(), conc.event()
  local running = p:submit(function(s, g) s:set() g:wait() return "ran" end, started, go)
  local queued = p:submit(id, "never")
  started:wait()
  assert(queued:cancel() == true)
  assert(queued:cancel() == false) -- already cancelled
  assert(queued:done())
  raises("was cancelled", queued.get, queued)
  assert(running:cancel() == false)
  go:set()
  assert(running:get() == "ran")
  assert(running:cancel() == false)
  p:join() -- a cancelled task counts as finished
end

-- close: no more submits; queued work is finished; join waits for it
do
  local p = conc.pool(1)
  local go = conc.event()
  local blocker = p:submit(function(e) e:wait() return 0 end, go)
  local fs = {}
  for i = 1, 5 do fs[i] = p:submit(id, i) end
  p:close()
  raises("pool is closed", p.submit, p, id, 1)
  raises("pool is closed", p.apply, p, id, 1)
  raises("pool is closed", p.map, p, id, {1})
  go:set()
  p:join()
  assert(blocker:done())
  for i = 1, 5 do assert(fs[i]:done() and fs[i]:get() == i) end
  p:join() -- again: nothing to do
  p:close()
end

-- join without close waits for the work, and the pool stays open
do
  local p <close> = conc.pool(2)
  local fs = {}
  for i = 1, 20 do fs[i] = p:submit(id, i) end
  p:join()
  for i = 1, 20 do assert(fs[i]:done()) end
  assert(p:apply(id, 5) == 5)
end

-- callbacks: in the creating thread, at its next call into the pool or a
-- future, or while it waits in one, and at the latest in join
do
  local p <close> = conc.pool(2, {name = "cbs"})
  local me = conc.current()
  local log = {}
  local gate = conc.event()
  local f = p:submit(function(e) e:wait() return 1, 2 end, gate)
  f:on_done(function(ok, a, b)
    assert(conc.current() == me, "callback ran in another thread")
    log[#log + 1] = ("first %s %s %s"):format(ok, a, b)
  end)
  f:on_done(function(ok) log[#log + 1] = "second " .. tostring(ok) end)
  -- wait for the task without calling into the pool or the future: a
  -- thread's join of a thread that waits on the future
  gate:set()
  conc.thread(function(fut) assert(fut:wait()) end, f):join()
  assert(#log == 0, "a callback ran outside a call into the pool")
  assert(f:done()) -- a call into a future of the pool
  assert(log[1] == "first true 1 2" and log[2] == "second true", table.concat(log, "|"))
  -- on an already finished future: runs at once
  f:on_done(function(ok, a) log[#log + 1] = "late " .. tostring(a) end)
  assert(log[3] == "late 1")
  -- failures and cancellations
  local bad = p:submit(function() error("cb-boom") end)
  local seen
  bad:on_done(function(ok, err) seen = {ok, err} end)
  pcall(bad.get, bad) -- while waiting in the pool, or right after
  assert(seen and seen[1] == false and seen[2]:find("cb-boom", 1, true), "error callback " .. tostring(seen and seen[2]))
  -- callbacks run while the owner waits on another future
  local go = conc.event()
  local slow = p:submit(function(e) e:wait() return "slow" end, go)
  local quick = p:submit(id, "quick")
  local quick_seen = false
  quick:on_done(function() quick_seen = true; go:set() end)
  assert(slow:get() == "slow") -- would hang if quick's callback waited for get to return
  assert(quick_seen)
  -- at the latest in join
  local n = 0
  for i = 1, 10 do p:submit(id, i):on_done(function(ok, v) n = n + v end) end
  p:join()
  assert(n == 55, n)
  -- an error in a callback is printed and does not stop the others
  local after = false
  local g = p:submit(id, 1)
  g:on_done(function() error("callback error (expected in this test)") end)
  g:on_done(function() after = true end)
  g:get()
  assert(after)
  -- only the creating thread may add callbacks
  local err = select(2, conc.thread(function(fut)
    return pcall(fut.on_done, fut, print)
  end, g):join())
  assert(err == false)
end

-- futures are conc objects: get one in another thread
do
  local p <close> = conc.pool(2)
  local go = conc.event()
  local f = p:submit(function(e) e:wait() return "from pool", 42 end, go)
  local t = conc.thread(function(fut) return fut:get() end, f)
  local t2 = conc.thread(function(fut) return fut:wait(0.01) end, f)
  local _, early = t2:join()
  assert(early == false)
  go:set()
  local _, a, b = t:join()
  assert(a == "from pool" and b == 42)
  local bad = p:submit(function() error("far away") end)
  local ok, err = pcall(function() return conc.thread(function(fut) return fut:get() end, bad):join() end)
  assert(not ok and err:find("far away"), err)
  -- a pool can only be used by its creator
  local ok2, err2 = conc.thread(function(pool) return pcall(pool.submit, pool, print) end, p):join()
  assert(ok2 and not select(1, err2))
end

-- error values keep their type: a table raised by a task arrives as that
-- table through f:get, apply and map, and through on_done callbacks
do
  local p <close> = conc.pool(2, {name = "values"})
  local f = p:submit(function() error({code = 42}) end)
  local ok, e = pcall(f.get, f)
  assert(not ok and type(e) == "table" and e.code == 42, "get: " .. tostring(e))
  local seen
  f:on_done(function(okk, err) seen = {okk, err} end)
  assert(seen and seen[1] == false and type(seen[2]) == "table" and seen[2].code == 42)
  ok, e = pcall(p.apply, p, function(n) error(n) end, 7)
  assert(not ok and math.type(e) == "integer" and e == 7, "apply: " .. tostring(e))
  ok, e = pcall(p.map, p, function(x) if x == 3 then error({at = x}) end return x end,
                {1, 2, 3, 4}, 1)
  assert(not ok and type(e) == "table" and e.at == 3, "map: " .. tostring(e))
  -- a callback added before the end gets the value too
  local go = conc.event()
  local g = p:submit(function(ev) ev:wait(10) error({code = 43}) end, go)
  local later
  g:on_done(function(okk, err) later = {okk, err} end)
  go:set()
  assert(not pcall(g.get, g))
  assert(later and later[1] == false and later[2].code == 43)
  -- a string error keeps its text and traceback
  local s = p:submit(function() error("plain text") end)
  ok, e = pcall(s.get, s)
  assert(not ok and type(e) == "string" and e:find("pool 'values': ", 1, true) and
         e:find("plain text", 1, true) and e:find("stack traceback", 1, true), e)
end

-- a misspelled option or method raises with a suggestion; a name is never cut
do
  raises("unknown option 'nmae' %(did you mean 'name'%?%)", conc.pool, 1, {nmae = "x"})
  raises("unknown option 'process' %(did you mean 'processes'%?%)", conc.pool, 1, {process = true})
  raises("name is 300 bytes long", conc.pool, 1, {name = string.rep("n", 300)})
  raises("option 'name' must be a string", conc.pool, 1, {name = 5})
  local p <close> = conc.pool(1, {name = "strict"})
  raises("conc.pool has no method or field 'sumbit' %(did you mean 'submit'%?%)",
         function() return p:sumbit(id) end)
  local f = p:submit(id, 1)
  raises("conc.future has no method or field 'gte' %(did you mean 'get'%?%)",
         function() return f:gte() end)
  assert(p.name == "strict" and p.size == 1 and f:get() == 1)
end

-- a task's function carries the creator's package paths, also when they
-- changed after the pool started (it travels as a job)
do
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local fh = assert(io.open(dir .. "/pool_path_probe.lua", "w"))
  fh:write("return {v = 42}")
  fh:close()
  local p <close> = conc.pool(1)
  assert(p:apply(id, 1) == 1) -- the worker runs with the paths of its start
  local old = package.path
  package.path = dir .. "/?.lua;" .. old
  local m = require("pool_path_probe")
  local ok, v = pcall(p.apply, p, function() return require("pool_path_probe").v end)
  local ok2, v2 = pcall(p.apply, p, function() return m.v end) -- a module upvalue
  package.path = old
  package.loaded.pool_path_probe = nil
  os.remove(dir .. "/pool_path_probe.lua")
  os.remove(dir)
  assert(ok and v == 42, tostring(v))
  assert(ok2 and v2 == 42, tostring(v2))
end

-- bad input: clear errors, the pool stays usable
do
  raises("pool size must be from 1 to 1024", conc.pool, 0)
  raises("pool size must be from 1 to 1024", conc.pool, -3)
  raises("number has no integer representation", conc.pool, 1.5)
  raises("number expected", conc.pool, "x")
  raises("number expected", conc.pool)
  raises("unknown option 'bogus'", conc.pool, 1, {bogus = true})
  raises("table expected", conc.pool, 1, 5)
  local p <close> = conc.pool(2)
  raises("bad argument #1 to 'submit' %(function expected, got number%)", function() return p:submit(5) end)
  raises("bad argument #1 to 'apply' %(function expected, got no value%)", function() return p:apply() end)
  raises("bad argument #1 to 'map' %(function expected", function() return p:map({}, {1}) end)
  raises("cannot copy a coroutine %(argument 3%)", p.submit, p, id, 1, coroutine.create(print))
  raises("cannot copy a coroutine %(argument 2, field 'co'%)", p.submit, p, id, {co = coroutine.create(print)})
  local co = coroutine.create(print)
  raises("cannot copy a coroutine %(argument 1, upvalue 'co'%)", p.submit, p, function() return co end)
  raises("bad argument #2 to 'map' %(table expected, got number%)", function() return p:map(id, 5) end)
  raises("bad argument #2 to 'map' %(table expected, got no value%)", function() return p:map(id) end)
  raises("bad argument #2 to 'map' %(sequence expected", function() return p:map(id, {a = 1}) end)
  raises("list has a hole at index 3", p.map, p, id, {1, 2, nil, 4, n = 4}, 2)
  raises("bad argument #3 to 'map' %(chunksize must be at least 1%)", function() return p:map(id, {1}, 0) end)
  raises("number has no integer representation", p.map, p, id, {1}, 1.5)
  raises("cannot copy a coroutine %(argument 2, field '%[3%]'%)", p.map, p, id,
         {1, 2, coroutine.create(print), 4}, 1)
  raises("conc.pool expected, got number", p.submit, 5, id)
  -- still usable, and nothing was left queued by the failed map
  assert(p:apply(id, "ok") == "ok")
  local r = p:map(id, {1, 2, 3})
  assert(r[1] == 1 and r[3] == 3)
  p:join()
end

-- a pool that is garbage-collected unjoined stops its threads
do
  local before = #conc.threads()
  do
    local p = conc.pool(3)
    assert(p:apply(id, 1) == 1)
    p:submit(conc.sleep, 0.01)
  end
  collectgarbage()
  collectgarbage()
  eventually(function() return #conc.threads() == before end)
end

-- many tasks with one function, several functions, futures dropped unread
do
  local p <close> = conc.pool(2)
  local total = 0
  local list = {}
  for i = 1, 20000 do list[i] = i end
  for _, v in ipairs(p:map(function(x) return x % 7 end, list, 100)) do total = total + v end
  local want = 0
  for i = 1, 20000 do want = want + i % 7 end
  assert(total == want)
  for i = 1, 300 do p:submit(function() return i end) end -- 300 closures
  p:join()
end

-- A new state pays for pools only once it makes one: conc_open_pool leaves
-- the pool and future metatables and the registry's tables (the spawners,
-- the state's pools) to the first use. Also a Future got in a state that
-- has no pool of its own.
do
  local function pool_parts()
    local found = {}
    for _, v in pairs(debug.getregistry()) do
      if type(v) == "table" then
        local name = rawget(v, "__name")
        if name == "conc.pool" or name == "conc.future" then found[name] = true end
        if rawget(v, 1) == conc.thread and rawget(v, 2) == conc.process then
          found.spawners = true
        end
      end
    end
    local list = {}
    for k in pairs(found) do list[#list + 1] = k end
    table.sort(list)
    return table.concat(list, " ")
  end
  local p <close> = conc.pool(1)
  local f = p:submit(id, 42)
  local _, fresh, got, used = conc.thread(function(fut)
    local fresh = pool_parts()
    local got = fut:get(10)
    local q <close> = conc.pool(1)
    q:apply(id, 1)
    return fresh, got, pool_parts()
  end, f):join()
  assert(fresh == "conc.future", "a new state made for pools: " .. fresh)
  assert(got == 42)
  assert(used == "conc.future conc.pool spawners", "after a pool: " .. used)
end

-- A pool closed while pool:map still queues its chunks (here by a done
-- callback that runs while map waits): map fails, and join still returns
-- (the chunk refused was taken off the count of unfinished tasks twice, so
-- join waited for ever). A task cancelled before it ran has no pid.
do
  local pool = conc.pool(1)
  local gate = conc.event()
  local first = pool:submit(function(g) g:wait() end, gate)
  first:on_done(function() pool:close() end)
  local queued = pool:submit(function() end)
  assert(queued.pid == nil)
  assert(queued:cancel() and queued.pid == nil)
  local list = {}
  for i = 1, 100 do list[i] = i end
  gate:set()
  local ok, err = pcall(pool.map, pool, function(x) return x end, list, 1)
  assert(not ok and tostring(err):find("pool is closed", 1, true), tostring(err))
  pool:join()
  assert(first.pid == conc.pid())
end

print("test_pool: ok")
