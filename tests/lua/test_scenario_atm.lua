-- Runs scripts/atm.lua as a user would (with a short pause) and checks the
-- race it demonstrates: both withdrawals succeed and the balance ends at -60.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")

local function run(script, args)
  local f = assert(io.popen(("%s scripts/%s %s 2>&1"):format(conclua, script, args or "")))
  local out = f:read("a")
  local ok, _, code = f:close()
  return out, ok and 0 or code
end

local function count(out, pattern)
  local n = 0
  for _ in out:gmatch(pattern) do n = n + 1 end
  return n
end

for _ = 1, 3 do -- the barrier makes the bad interleaving happen every time
  local out, code = run("atm.lua", "0.05")
  assert(code == 0, out)
  assert(count(out, "withdrew 80, balance is") == 2, out)
  assert(count(out, "balance is 20") == 1 and count(out, "balance is %-60") == 1, out)
  assert(not out:find("insufficient", 1, true), out)
  assert(out:find("account Lao Wang: final balance -60", 1, true), out)
end
print("test_scenario_atm: ok")
