-- Errors that teach (issue 11, items 7 and 8): each misuse names the call,
-- the object and where; constructors take a name one way; objects print
-- with their state; default thread names are numbered per kind.
local conc = require "conc"

local function raises(plain, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error with: " .. plain)
  assert(tostring(err):find(plain, 1, true), "unexpected error: " .. tostring(err))
  return err
end

-- argument errors name the method, also when called without a name
do
  local l = conc.lock("L")
  local err = raises("bad argument #1 to 'with' (function expected, got number)",
                     function() l:with(5) end)
  assert(err:find("test_errors_teach.lua:%d+:"), err) -- where
  raises("bad argument #2 to 'with' (function expected, got number)", l.with, l, 5)
  raises("bad argument #1 to 'acquire' (timeout expected (seconds or boolean), got string)",
         function() l:acquire("x") end)
  raises("bad argument #2 to 'acquire' (timeout expected", l.acquire, l, "x")
  raises("bad argument #1 to 'acquire' (timeout must be a non-negative number)",
         function() l:acquire(-1) end)
  local s = conc.shared()
  raises("bad argument #2 to 'with' (function expected, got no value)", s.with, s)
  -- a wrong self names what was expected and what came
  raises("conc.lock expected, got conc.semaphore", l.acquire, conc.semaphore())
  -- callable tables are functions here
  assert(l:with(setmetatable({}, {__call = function() return "called" end})) == "called")
  -- booleans are timeouts everywhere (one parser): false = do not wait
  assert(l:acquire(false) == true and l:acquire(false) == false)
  l:release()
end

-- misspelled methods suggest the right one (locks, guards, tasks)
do
  local l = conc.lock("L")
  raises("conc.lock has no method or field 'aquire' (did you mean 'acquire'?)",
         function() return l.aquire end)
  local g <close> = l:hold()
  raises("conc.guard has no method or field 'relase' (did you mean 'release'?)",
         function() return g.relase end)
  raises("conc.semaphore has no method or field 'valeu' (did you mean 'value'?)",
         function() return conc.semaphore().valeu end)
  -- a shared table is a table: a missing field is nil
  assert(conc.shared().gett == nil)
end

-- every constructor takes a name the same way: a leading string or opts.name
do
  local named = {
    conc.lock("a"), conc.lock({name = "a"}), conc.rlock("a"), conc.rlock({name = "a"}),
    conc.event("a"), conc.event({name = "a"}),
    conc.semaphore("a", 2), conc.semaphore({name = "a", bounded = true}, 2),
    conc.semaphore(2, {name = "a"}),
    conc.barrier("a", 2), conc.barrier({name = "a"}, 2), conc.barrier(2, {name = "a"}),
    conc.atomic("a", 5), conc.atomic({name = "a"}),
    conc.condition("a"), conc.condition({name = "a"}, conc.lock()),
    conc.shared("a", {x = 1}),
  }
  for i, o in ipairs(named) do
    assert(tostring(o):find("'a'", 1, true), i .. ": " .. tostring(o))
  end
  assert(conc.semaphore("a", 2):value() == 2 and conc.atomic("a", 5):get() == 5)
  assert(conc.barrier("a", 3):parties() == 3 and conc.shared("a", {x = 1}).x == 1)
  -- misspelled option keys raise, with a suggestion
  raises("unknown option 'nmae' (did you mean 'name'?)", conc.lock, {nmae = "x"})
  raises("unknown option 'nmae' (did you mean 'name'?)", conc.event, {nmae = "x"})
  raises("unknown option 'bounde' (did you mean 'bounded'?)", conc.semaphore, 1, {bounde = true})
  -- names are never cut silently
  raises("name is 64 bytes long (at most 63)", conc.lock, string.rep("n", 64))
  raises("name is 64 bytes long (at most 63)", conc.event, {name = string.rep("n", 64)})
  raises("name contains a zero byte", conc.thread, {name = "a\0b"}, print)
  raises("name contains a zero byte", conc.lock, "x\0")
  raises("cannot set 'name' on a conc.thread (its fields are read-only)", function()
    local t = conc.thread(function() end)
    t:join()
    t.name = "x"
  end)
  assert(tostring(conc.lock(string.rep("n", 63))):find(string.rep("n", 63), 1, true))
  raises("bad argument #1 to 'conc.lock' (name or options table expected, got number)", conc.lock, 5)
end

-- a shared-table copy error names the field
do
  local s = conc.shared("cfg")
  raises("cannot copy a coroutine (field 'x')", function() s.x = coroutine.create(print) end)
  raises("cannot copy a coroutine (field '[3][1]')", function() s[3] = {coroutine.create(print)} end)
  raises("cannot copy a coroutine (field 'y.a.b')",
         function() s.y = {a = {b = coroutine.create(print)}} end)
end

-- objects print with their state
do
  local e = conc.event("ready")
  assert(tostring(e) == "conc.event 'ready' (not set)", tostring(e))
  e:set()
  assert(tostring(e) == "conc.event 'ready' (set)", tostring(e))
  local l = conc.lock("db")
  assert(tostring(l) == "conc.lock 'db' (unlocked)", tostring(l))
  l:acquire()
  assert(tostring(l) == "conc.lock 'db' (locked)", tostring(l))
  l:release()
  assert(tostring(conc.semaphore("slots", 2)) == "conc.semaphore 'slots' (value 2)")
  assert(tostring(conc.atomic("n", 7)) == "conc.atomic 'n' (7)")
  assert(tostring(conc.barrier("b", 3)) == "conc.barrier 'b' (0 of 3 waiting)")
  local go = conc.event("go")
  local t = conc.thread({name = "w"}, function(ev) ev:wait() end, go)
  assert(tostring(t) == "conc.thread 'w' (running)", tostring(t))
  go:set()
  t:join()
  assert(tostring(t) == "conc.thread 'w' (finished)", tostring(t))
  local f = conc.thread({name = "f"}, function() error("boom") end)
  assert(not pcall(f.join, f))
  assert(tostring(f) == "conc.thread 'f' (failed)", tostring(f))
end

-- default thread names number threads, not every object
do
  local a = conc.thread(function() end)
  conc.lock() conc.event() conc.queue() -- objects made between do not count
  local b = conc.thread(function() end)
  a:join() b:join()
  local na, nb = a.name:match("^thread%-(%d+)$"), b.name:match("^thread%-(%d+)$")
  assert(na and nb and tonumber(nb) == tonumber(na) + 1, a.name .. " then " .. b.name)
end

-- queues: the closed queue is named, try_get on an empty queue says
-- "empty", a misspelled method suggests the right one, put(nil) names put
do
  local q = conc.queue("jobs")
  local v, msg, code = q:try_get()
  assert(v == nil and msg == "empty" and code == "EMPTY", tostring(msg))
  raises("conc.queue has no method or field 'gett' (did you mean 'get'?)",
         function() return q.gett end)
  raises("bad argument #1 to 'put' (non-nil value expected, got nil)", function() q:put(nil) end)
  raises("bad argument #2 to 'put' (non-nil value expected, got nil)", q.put, q, nil)
  q:put(1) q:put(2) q:put(3)
  assert(tostring(q) == "conc.queue 'jobs' (3 items)", tostring(q))
  q:close()
  raises("queue 'jobs' is closed", function() q:put(4) end)
  assert(tostring(q) == "conc.queue 'jobs' (closed, 3 items)", tostring(q))
  assert(tostring(conc.queue({name = "b", maxsize = 2})) == "conc.queue 'b' (0 items)")
  local b = conc.queue({name = "b", maxsize = 1})
  assert(b:try_put(1) == true and b:try_put(2) == false)
  assert(tostring(conc.queue("c", 5)):find("'c'", 1, true))
  raises("unknown option 'maxsise' (did you mean 'maxsize'?)", conc.queue, {maxsise = 3})
end

-- pipes: named the same way, print their state, names never cut
do
  local a, b = conc.pipe("link")
  assert(tostring(a) == "conc.pipe 'link (a)' (open)", tostring(a))
  b:close()
  assert(tostring(b) == "conc.pipe 'link (b)' (closed)", tostring(b))
  local c = conc.pipe({name = "one", duplex = false})
  assert(tostring(c) == "conc.pipe 'one (a)' (open)", tostring(c))
  raises("a pipe's name is at most 59 bytes", conc.pipe, string.rep("p", 60))
  raises("unknown option 'duplx' (did you mean 'duplex'?)", conc.pipe, {duplx = true})
end

-- condition:wait_for, written in Lua, names itself and the caller's line
do
  local c = conc.condition("cv")
  c:acquire()
  local err = raises("bad argument #1 to 'wait_for' (function expected, got number)",
                     function() c:wait_for(5) end)
  assert(err:find("test_errors_teach.lua:%d+:"), err)
  raises("bad argument #2 to 'wait_for' (non-negative timeout", function()
    c:wait_for(function() return true end, "soon")
  end)
  assert(c:wait_for(function() return 7 end, 0) == 7)
  c:release()
end

-- threads and processes take a leading name string too
do
  local t = conc.thread("named", function(x) return x end, 4)
  local ok, v = t:join()
  assert(ok and v == 4 and tostring(t) == "conc.thread 'named' (finished)", tostring(t))
  raises("unknown option 'deamon' (did you mean 'daemon'?)", conc.thread, {deamon = true}, print)
end

-- a pipe's misuse names the end
do
  local a, b = conc.pipe("wire")
  b:close()
  raises("pipe:send: the other end is closed (pipe 'wire (a)')", a.send, a, 1)
  raises("bad argument #2 to 'send' (non-nil value expected, got nil)", a.send, a, nil)
end

-- a misspelled name of the conc module suggests the right one; existing
-- names, rawget and non-string keys are unchanged; the same in a thread's
-- state and with the stock lua5.4 (conc.so)
do
  local err = raises("conc has no field 'thred' (did you mean 'thread'?)",
                     function() return conc.thred(print) end)
  assert(err:find("test_errors_teach.lua:%d+:"), err) -- where
  raises("conc has no field 'qeue' (did you mean 'queue'?)", function() return conc.qeue end)
  err = raises("conc has no field 'nosuchthing'", function() return conc.nosuchthing end)
  assert(not err:find("did you mean", 1, true), err)
  -- internal names (conc._error) are never suggested
  err = raises("conc has no field 'error'", function() return conc.error end)
  assert(not err:find("did you mean", 1, true), err)
  assert(rawget(conc, "thred") == nil and conc[1] == nil and conc[true] == nil)
  assert(type(conc.thread) == "function" and type(conc.version) == "string")
  local t = conc.thread(function()
    return pcall(function() return conc.sleeep end)
  end)
  local ok, ok2, e = t:join()
  assert(ok and not ok2 and tostring(e):find("conc has no field 'sleeep' (did you mean 'sleep'?)",
                                             1, true), tostring(e))
  local so_dir = os.getenv("CONC_SO_DIR")
  if so_dir and os.getenv("CONCLUA_SANITIZED") ~= "1"
      and os.execute("command -v lua5.4 >/dev/null 2>&1") then
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("package.cpath = %q .. '/?.so;' .. package.cpath\n"):format(so_dir),
            "local conc = require 'conc'\n",
            "print(select(2, pcall(function() return conc.thred end)))\n")
    f:close()
    local p = assert(io.popen("lua5.4 " .. path .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert(out:find("conc has no field 'thred' (did you mean 'thread'?)", 1, true), out)
  end
end

-- a method called with '.' instead of ':' says to use a colon; another
-- object, or a colon call on something else, is not that mistake
do
  local q, l = conc.queue("dot"), conc.lock("dot")
  raises("bad argument #1 to 'put' (conc.queue expected, got number "
         .. "(call it as q:put(...), with a colon))", function() q.put(1) end)
  raises("bad argument #1 to 'acquire' (conc.lock expected, got no value "
         .. "(call it as l:acquire(...), with a colon))", function() l.acquire() end)
  -- through pcall, without a name: the method is still named
  raises("bad argument #1 to 'get' (conc.queue expected, got string "
         .. "(call it as q:get(...), with a colon))", q.get, "x")
  raises("(call it as ev:set(...), with a colon)", function() conc.event().set() end)
  raises("(call it as l:release(...), with a colon)", function() conc.rlock().release() end)
  raises("(call it as t:join(...), with a colon)", function()
    local t = conc.thread(function() end)
    t:join()
    t.join()
  end)
  local err = raises("conc.lock expected, got conc.semaphore", l.acquire, conc.semaphore())
  assert(not err:find("colon", 1, true), err)
  err = raises("calling 'put' on bad self", function() local o = {put = q.put}; o:put(1) end)
  assert(not err:find("colon", 1, true), err)
end

-- conc.cpus() counts the CPUs this process may run on, not all online ones
do
  local n = conc.cpus()
  assert(math.type(n) == "integer" and n >= 1)
  local conclua = os.getenv("CONCLUA")
  if conclua and os.execute("taskset -c 0 true >/dev/null 2>&1") then
    local p = assert(io.popen(("taskset -c 0 %s -e 'print(conc.cpus())' 2>&1"):format(conclua)))
    local out = p:read("a")
    p:close()
    assert(out == "1\n", "conc.cpus() under taskset -c 0: " .. out)
  end
end

print("test_errors_teach: ok")

-- an unknown signal name is echoed, with the nearest known one; a process
-- prints its state; arguments errors name the method through pcall too
do
  local p = conc.process(function() conc.sleep(30) end)
  local ok, e = pcall(p.kill, p, "SIGFOO")
  assert(not ok and e:find("bad argument #2 to 'kill' (unknown signal 'SIGFOO' (did you mean 'SIGFPE'?))", 1, true), e)
  ok, e = pcall(p.kill, p, "TREM")
  assert(not ok and e:find("unknown signal 'TREM' (did you mean 'SIGTERM'?)", 1, true), e)
  assert(tostring(p):find("(running)", 1, true), tostring(p))
  p:kill("KILL")
  pcall(p.join, p)
  assert(tostring(p):find("(killed by SIGKILL)", 1, true), tostring(p))
  local q = conc.process(function() end)
  q:join()
  assert(tostring(q):find("(exited 0)", 1, true), tostring(q))
  local r = conc.process(function() os.exit(3) end)
  pcall(r.join, r)
  assert(tostring(r):find("(exited with status 3)", 1, true), tostring(r))
  ok, e = pcall(q.join, q, "soon")
  assert(not ok and e:find("bad argument #2 to 'join'", 1, true), e)
end
print("test_errors_teach: kill, process states: ok")
