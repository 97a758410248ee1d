-- Runs scripts/producer_consumer.lua with a short time unit and checks what
-- must hold whatever the timing: every bun is made once and eaten once, in
-- order; the basket never holds more than 5; the run ends by itself.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")

local BUNS = 12
local f = assert(io.popen(("%s scripts/producer_consumer.lua 0.02 %d 2>&1"):format(conclua, BUNS)))
local out = f:read("a")
assert(f:close(), out)

local made, eaten = {}, {}
for line in out:gmatch("[^\n]+") do
  local n, inside = line:match("^cook: made bun #(%d+) %((%d+) in the basket%)$")
  if n then
    made[#made + 1] = tonumber(n)
    assert(tonumber(inside) >= 0 and tonumber(inside) <= 5, line)
  end
  local e = line:match("^customer: took bun #(%d+)$")
  if e then
    eaten[#eaten + 1] = tonumber(e)
    assert(made[#eaten] == tonumber(e), "a bun taken before it was made:\n" .. out)
  end
end
assert(#made == BUNS and #eaten == BUNS, out)
for i = 1, BUNS do assert(made[i] == i and eaten[i] == i, out) end
assert(out:find("cook: done for the day", 1, true), out)
assert(out:find(("customer: ate %d buns, going home"):format(BUNS), 1, true), out)
assert(out:find(("%d buns made, %d eaten"):format(BUNS, BUNS), 1, true), out)
print("test_scenario_producer_consumer: ok")
