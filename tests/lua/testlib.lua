-- Helpers the Lua tests share (tests/CMakeLists.txt puts tests/lua on
-- LUA_PATH): require "testlib".
local M = {}

-- Calls f(...), which must raise an error whose text contains `text`
-- (plain); returns the error.
function M.raises(text, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. text)
  assert(tostring(err):find(text, 1, true), "unexpected error: " .. tostring(err))
  return err
end

-- The same with a Lua pattern.
function M.raises_match(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
  return err
end

-- Polls cond() until it holds, failing after `s` seconds (default 20): for
-- what has no event to wait on, such as an OS thread or process ending.
-- `what` names the condition in the failure.
function M.eventually(cond, s, what)
  local deadline = conc.now() + (s or 20)
  while not cond() do
    assert(conc.now() < deadline, "condition not reached in time: " .. (what or "?"))
    conc.sleep(0.005)
  end
end

-- A process's state letter from /proc (R, S, Z, X...), or nil once it is
-- reaped. It may go between the open and the read: the read then fails.
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  return stat and stat:match("^%d+ %b() (%a)")
end

-- Reaped: no process left, not even a zombie.
function M.gone(pid)
  local st = proc_state(pid)
  return st == nil or st == "X"
end

-- No longer runs: reaped, or a zombie.
function M.finished(pid)
  local st = proc_state(pid)
  return st == nil or st == "Z" or st == "X"
end

-- A task that lets its loop turn a few times, then sets ev.
function M.setter(ev)
  return conc.task(function()
    for _ = 1, 3 do conc.sleep(0) end
    ev:set()
  end)
end

return M
