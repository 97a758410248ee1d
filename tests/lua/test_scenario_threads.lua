-- scripts/threads.lua: interleaved threads, join, daemon dies with main.
local conclua = os.getenv("CONCLUA") or "build/conclua"
local p = assert(io.popen(conclua .. " scripts/threads.lua 0.2 2>&1; echo \"exit=$?\""))
local out = p:read("a")
p:close()
local lines = {}
for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
local function pos(s)
  for i, l in ipairs(lines) do if l == s then return i end end
  error("missing line '" .. s .. "' in:\n" .. out)
end

assert(out:find("exit=0", 1, true), out)
-- both threads ran all steps
for _, t in ipairs({"1", "2"}) do
  for i = 0, 2 do pos(("thread %s: %d"):format(t, i)) end
end
-- interleaved: thread 2 started before thread 1 finished
assert(pos("thread 2 start") < pos("thread 1 end"), out)
-- main goes on at once, and join waits for both
assert(pos("main: started 1 and 2") < pos("thread 1 end"), out)
assert(pos("main: joined both") > pos("thread 1 end"), out)
assert(pos("main: joined both") > pos("thread 2 end"), out)
-- the program waited for the ordinary thread 3 after the main chunk ended...
assert(pos("thread 3 end") > pos("main: end (the program waits for thread 3, not for the daemon)"), out)
-- ...and ended although the daemon never returns
pos("thread daemon start")
assert(lines[#lines] == "exit=0", out)
print("test_scenario_threads: ok")
