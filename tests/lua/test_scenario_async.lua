-- Runs scripts/async.lua and scripts/echo.lua as a user would, with short
-- pauses, and checks what they print: the gathered results in order, the
-- pauses overlapping, and every echo client served.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")

local function run(script, args)
  local f = assert(io.popen(("%s scripts/%s %s 2>&1"):format(conclua, script, args or "")))
  local out = f:read("a")
  local ok, _, code = f:close()
  return out, ok and 0 or code
end

-- async.lua: both tasks interleave, results in order, about 3 pauses.
do
  local out, code = run("async.lua", "0.1")
  assert(code == 0, out)
  local steps = {}
  for name, step in out:gmatch("(task %d): step (%d)") do steps[#steps + 1] = name .. "/" .. step end
  assert(table.concat(steps, " ") ==
         "task 1/1 task 2/1 task 1/2 task 2/2 task 1/3 task 2/3", out)
  assert(out:find("results: task 1 done, task 2 done", 1, true), out)
  local took = tonumber(out:match("took ([%d.]+) s"))
  assert(took and took >= 0.29 and took < 0.55, out)
end

-- echo.lua: every client echoed, concurrent clients faster than serial.
do
  local out, code = run("echo.lua", "20 2 0.005")
  assert(code == 0, out)
  local serial = tonumber(out:match("one after another: ([%d.]+) s"))
  local together = tonumber(out:match("all at once: +([%d.]+) s"))
  assert(serial and together, out)
  assert(together < serial, out)
end

print("test_scenario_async: ok")
