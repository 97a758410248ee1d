-- Every scenario script refuses a bad argument with a message naming it,
-- before it starts any work.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")
local cases = {
  {"atm.lua", "abc"}, {"atm_lock.lua", "x"}, {"async.lua", "soon"}, {"event.lua", "1s"},
  {"pipe.lua", "nope"}, {"pool.lua", "two"}, {"process.lua", "z"}, {"process_queue.lua", "q"},
  {"semaphore.lua", "abc"}, {"threads.lua", "-"}, {"parallel.lua", "1e3x"},
  {"producer_consumer.lua", "0.1 many"}, {"echo.lua", "10 3 slow"}, {"race.lua", "lots"},
}
for _, c in ipairs(cases) do
  local f = assert(io.popen(("%s scripts/%s %s 2>&1"):format(conclua, c[1], c[2])))
  local out = f:read("a")
  local ok = f:close()
  assert(not ok, c[1] .. " accepted '" .. c[2] .. "':\n" .. out)
  assert(out:find("argument %d must be a") or out:find("argument %d must be a positive"), out)
  local bad = c[2]:match("(%S+)$")
  assert(out:find("'" .. bad .. "'", 1, true), c[1] .. ": the bad value is not named:\n" .. out)
end
print("test_scenario_args: ok")
