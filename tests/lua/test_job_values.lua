-- What a thread or process hands back and what it starts with: error values
-- keep their type through join, string errors keep the name and traceback,
-- a nil global that exists in the joiner is explained, the creator's
-- package.path reaches the new state, and spawn options are checked.
local function fails(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return e
end

-- error values keep their type (and a join waiting at the end raises it)
for _, spawn in ipairs({conc.thread, conc.process}) do
  local go = conc.event()
  local w = spawn(function(ev) ev:wait(); error({code = 42, list = {1, 2}}) end, go)
  local e = fails(function()
    go:set()
    return w:join()
  end)
  assert(type(e) == "table" and e.code == 42 and e.list[2] == 2, tostring(e))
  go = conc.event()
  w = spawn(function(ev) ev:wait(); error(7) end, go)
  e = fails(function() go:set(); return w:join() end)
  assert(math.type(e) == "integer" and e == 7, tostring(e))
end

-- string errors: "thread 'name': msg" and the thread's traceback
local go = conc.event()
local t = conc.thread({name = "w"}, function(ev) ev:wait(); error("boom") end, go)
local e = fails(function() go:set(); return t:join() end)
assert(e:find("^thread 'w': .*boom\nstack traceback:\n"), e)

-- a nil global that the joining state has: the message says why
limit = 10
go = conc.event()
t = conc.thread(function(ev) ev:wait(); return limit + 1 end, go)
e = fails(function() go:set(); return t:join() end)
assert(e:find("(global 'limit') ('limit' is a global here, but globals are not shared",
              1, true), e)
assert(e:find("pass it as an argument or use conc.shared", 1, true), e)
-- ...and stays as it was when the joiner has no such global either
go = conc.event()
t = conc.thread(function(ev) ev:wait(); return no_such_global_here + 1 end, go)
e = fails(function() go:set(); return t:join() end)
assert(e:find("(global 'no_such_global_here')\nstack", 1, true), e)

-- package.path changed at run time reaches threads and processes
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local f = assert(io.open(dir .. "/jobmod_xyz.lua", "w"))
f:write("return {answer = 42}\n")
f:close()
package.path = dir .. "/?.lua;" .. package.path
local m = require "jobmod_xyz"
for _, spawn in ipairs({conc.thread, conc.process}) do
  local ok, a, b = spawn(function() return m.answer, require("jobmod_xyz").answer end):join()
  assert(ok and a == 42 and b == 42, tostring(a))
end
os.remove(dir .. "/jobmod_xyz.lua")
os.remove(dir)

-- options are checked: a misspelled key raises with a suggestion, names are never cut
e = fails(conc.thread, {nmae = "x"}, print)
assert(e:find("unknown option 'nmae' (did you mean 'name'?)", 1, true), e)
e = fails(conc.process, {deamon = true}, print)
assert(e:find("unknown option 'deamon' (did you mean 'daemon'?)", 1, true), e)
e = fails(conc.thread, {name = ("x"):rep(64)}, print)
assert(e:find("name is 64 bytes long (at most 63)", 1, true), e)
assert(conc.thread({name = ("y"):rep(63)}, print).name == ("y"):rep(63))

-- a misspelled method says which was meant
e = fails(function() return t:joni() end)
assert(e:find("conc.thread has no method or field 'joni' (did you mean 'join'?)", 1, true), e)
-- a job runs on its state's main coroutine, in a thread and in a process
-- alike (also when conc.process is called inside a coroutine), and its
-- traceback stops where the job starts
local function probe()
  local _, main = coroutine.running()
  local ok, err = pcall(coroutine.yield, 1)
  return main, coroutine.isyieldable(), ok, err
end
local function check_main(ok, main, yieldable, yok, yerr)
  assert(ok and main == true and yieldable == false and yok == false, tostring(yerr))
  assert(yerr:find("outside a coroutine", 1, true), yerr)
end
check_main(conc.thread(probe):join())
check_main(conc.process(probe):join())
check_main(coroutine.wrap(function() return conc.process(probe):join() end)())
for _, spawn in ipairs({conc.thread, conc.process}) do
  go = conc.event()
  local w = spawn(function(ev) ev:wait(); local x = nil; return x.y end, go)
  e = fails(function() go:set(); return w:join() end)
  assert(e:find("stack traceback:\n\t[^\n]*test_job_values.lua:%d+: in function <"), e)
  assert(not e:find("in main chunk", 1, true) and not e:find("[C]: in ?", 1, true), e)
end
print("test_job_values: ok")
