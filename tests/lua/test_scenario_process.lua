-- Runs the process scenarios (scripts/process.lua, process_queue.lua,
-- pipe.lua, manager.lua, parallel.lua) as a user would, with short pauses,
-- and checks what they print and how they end.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")

local function run(script, args)
  local f = assert(io.popen(("%s scripts/%s %s 2>&1"):format(conclua, script, args or "")))
  local out = f:read("a")
  local ok, how, code = f:close()
  return out, ok and 0 or code, how
end

local function lines(out)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The index of the first line equal to s (fails if there is none).
local function pos(out, s)
  for i, l in ipairs(lines(out)) do if l == s then return i end end
  error("missing line '" .. s .. "' in:\n" .. out)
end

-- process.lua: children print their own pid and their parent's
do
  local out, code = run("process.lua", "0.2")
  assert(code == 0, out)
  local main = assert(tonumber(out:match("main: my pid is (%d+)")), out)
  local pids = {}
  for _, name in ipairs({"p1", "p2"}) do
    local pid = assert(tonumber(out:match("process " .. name .. ": my pid is (%d+)")), out)
    local ppid = tonumber(out:match("process " .. name .. ": my parent's pid is (%d+)"))
    assert(pid ~= main and ppid == main, out)
    pids[name] = pid
  end
  assert(pids.p1 ~= pids.p2, out)
  assert(out:find(("main: started p1 (pid %d) and p2 (pid %d)"):format(pids.p1, pids.p2), 1, true), out)
  -- they ran at the same time: both started before either ended
  assert(pos(out, "process p2: start") < pos(out, "process p1: end"), out)
  assert(pos(out, "process p1: start") < pos(out, "process p2: end"), out)
  local l = lines(out)
  assert(l[#l] == "main: both ended, exit codes 0 and 0", out)
end

-- process_queue.lua: each process takes an item, appends '1', puts it back
do
  local out, code = run("process_queue.lua", "0.05")
  assert(code == 0, out)
  for i, item in ipairs({"1", "2", "3"}) do
    local name = "p" .. (i - 1)
    assert(pos(out, ("process %s: got %s"):format(name, item)) <
           pos(out, ("process %s: put %s1"):format(name, item)), out)
    assert(pos(out, ("process %s: end"):format(name)) < pos(out, "main: 11"), out)
  end
  assert(pos(out, "main: 11") < pos(out, "main: 21") and pos(out, "main: 21") < pos(out, "main: 31"), out)
end

-- pipe.lua: greetings both ways over a duplex pipe, then a one-way pipe
do
  local out, code = run("pipe.lua", "0.05")
  assert(code == 0, out)
  assert(out:find("process 1 %(pid %d+%) sends: Hello!"), out)
  assert(out:find("process 2 %(pid %d+%) sends: 你好!"), out)
  pos(out, "process 1 got from process 2: 你好!")
  pos(out, "process 2 got from process 1: Hello!")
  assert(pos(out, "main: received 1") < pos(out, "main: received 3"), out)
  assert(pos(out, "main: received 3") <
         pos(out, 'main: recv returned nil, "closed": the writer closed its end'), out)
end

-- manager.lua: the child's writes to the shared list and dict are seen; its
-- plain global is not
do
  local out, code = run("manager.lua")
  assert(code == 0, out)
  pos(out, "m_dict: {age = 19}")
  pos(out, "m_list[1] = I'm PD!!!")
  pos(out, "m_list[2] = I'm a handsome guy!!")
  pos(out, "plain global: the parent's own")
end

-- parallel.lua: the four ways compute the same result
do
  local out, code = run("parallel.lua", "2000000")
  assert(code == 0, out)
  local results = {}
  for what, r in out:gmatch("\n(%w[%w ]-)%s+[%d.]+ s%s+%(result (%d+)%)") do
    results[#results + 1] = r
    assert(what:match("^%d %a+$") or what == "pool of 2 workers", what)
  end
  assert(#results == 4, out)
  for i = 2, 4 do assert(results[i] == results[1], out) end
  assert(out:find("speed-up with 2 threads:", 1, true) and out:find("speed-up with 2 processes:", 1, true), out)
  assert(out:find("speed-up with a pool of 2:", 1, true), out)
end

print("test_scenario_process: ok")
