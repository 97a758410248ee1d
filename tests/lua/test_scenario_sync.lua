-- Runs the synchronisation scenarios (scripts/atm_lock.lua, deadlock.lua,
-- semaphore.lua, event.lua) as a user would, with short pauses, and checks
-- what they print and how they end.
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

local function count(out, pattern)
  local n = 0
  for _ in out:gmatch(pattern) do n = n + 1 end
  return n
end

-- atm_lock.lua: one withdrawal, one "insufficient", balance 20
do
  local out, code = run("atm_lock.lua", "0.05")
  assert(code == 0, out)
  assert(count(out, "withdrew 80, balance is 20") == 1, out)
  assert(count(out, "insufficient balance") == 1, out)
  assert(out:find("final balance: 20", 1, true), out)
end

-- deadlock.lua: detected and named, the program ends with an error status
do
  local out, code = run("deadlock.lua")
  assert(code ~= 0, "deadlock.lua should end with a non-zero status\n" .. out)
  local a = "deadlock: thread 'cook1' waits for lock 'pot' held by thread 'cook2', "
            .. "which waits for lock 'knife' held by thread 'cook1'"
  local b = "deadlock: thread 'cook2' waits for lock 'knife' held by thread 'cook1', "
            .. "which waits for lock 'pot' held by thread 'cook2'"
  assert(out:find(a, 1, true) or out:find(b, 1, true), out)
  assert(out:find("took the knife and cooks", 1, true) or out:find("took the pot and cooks", 1, true),
         out)
  assert(count(out, "and cooks") == 1, out)
end

-- semaphore.lua: 7 people, never 3 inside, about 4 rounds
do
  local stay = 0.1
  local t0 = conc.now()
  local out, code = run("semaphore.lua", tostring(stay))
  local dt = conc.now() - t0
  assert(code == 0, out)
  assert(count(out, "enters the room") == 7 and count(out, "leaves the room") == 7, out)
  for n in out:gmatch("%((%d+) inside%)") do assert(tonumber(n) <= 2, out) end
  -- at any moment, at most two have entered and not yet left
  local inside = 0
  for _, l in ipairs(lines(out)) do
    if l:find("enters the room") then inside = inside + 1 end
    if l:find("leaves the room") then inside = inside - 1 end
    assert(inside <= 2, out)
  end
  assert(dt >= 4 * stay * 0.9, ("too fast: %.2f s"):format(dt))
end

-- event.lua: nobody eats before the host's signal
do
  local out, code = run("event.lua", "0.02")
  assert(code == 0, out)
  local host
  for i, l in ipairs(lines(out)) do
    if l:find("let's eat", 1, true) then host = i end
    if l:find("starts eating", 1, true) or l:find("got the signal", 1, true) then
      assert(host and i > host, "a friend ate before the signal\n" .. out)
    end
  end
  assert(host and count(out, "starts eating") == 2, out)
  assert(count(out, "sits down") == 2, out)
end

print("test_scenario_sync: ok")
