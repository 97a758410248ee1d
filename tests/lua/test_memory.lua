-- The arena and the Lua collector: injected allocation failures give Lua
-- errors (or are absorbed by a collect-and-retry) and leave every object
-- usable with nothing leaked; dropped objects give their memory back
-- without collectgarbage. (Sizes and OS limits: tests/cli/test_limits.py.)

local function blocks()
  collectgarbage()
  collectgarbage()
  return conc._arena().blocks
end

local big = string.rep("b", 100000)

-- Objects made before the failures; each round checks they still work.
local q = conc.queue()
local bq = conc.queue(2)
local s = conc.shared()
local pa, pb = conc.pipe()
local lk = conc.lock()
local ev = conc.event()

local function usable()
  q:put({1, "two", big})
  local v = q:get()
  assert(v[1] == 1 and v[2] == "two" and v[3] == big)
  bq:put(big)
  assert(bq:get() == big and #bq == 0)
  s.k = big
  assert(s.k == big)
  s.k = nil
  pa:send({x = big})
  assert(pb:recv().x == big)
  assert(lk:acquire(0))
  lk:release()
  ev:set()
  assert(ev:wait(0))
  ev:clear()
  local t = conc.thread(function(a) return a .. "!" end, "hi")
  assert(select(2, t:join()) == "hi!")
end

-- Everything a script may do that allocates in the arena.
local ops = {
  function() conc.queue():put(big) end,
  function() q:put(big) assert(q:get() == big) end,
  function() q:put({big, {big}}) assert(q:get()[2][1] == big) end,
  function() for i = 1, 40 do q:put(i) end for i = 1, 40 do assert(q:get() == i) end end,
  function() s.t = {big} assert(s.t[1] == big) s.t = nil end,
  function() s[big] = 1 assert(s[big] == 1) s[big] = nil end,
  function() pa:send(big) assert(pb:recv() == big) end,
  function() conc.shared({a = big}) end,
  function() conc.lock() conc.rlock() conc.condition() end,
  function() conc.semaphore(1) conc.event() conc.barrier(2) conc.atomic(1) end,
  function() conc.pipe() end,
  function() assert(select(2, conc.thread(function() return 1 end):join()) == 1) end,
  function() assert(conc.select(q, conc.queue(), 0) == nil) end,
}

usable()
-- The actor table's chunk and its wait-site records (for conc.dump, made
-- at the first wait that parks) are the runtime's tables, not leaks: make
-- them before counting (a thread's join parks main).
assert(select(2, conc.thread(function() conc.sleep(0.001) return 1 end):join()) == 1)
local base = blocks()
local errors, absorbed = 0, 0
for n = 1, 12 do
  for i, op in ipairs(ops) do
    conc._fail_alloc(n)
    local ok, err = pcall(op)
    conc._fail_alloc(0)
    -- Anything left in the queue by a half-done op is drained.
    while q:try_get() do end
    while pb:recv(0) do end
    if ok then
      absorbed = absorbed + 1
    else
      errors = errors + 1
      assert(tostring(err):find("out of shared memory", 1, true)
               or tostring(err):find("resource temporarily unavailable", 1, true),
             ("op %d, failure %d: %s"):format(i, n, tostring(err)))
    end
    usable()
  end
end
assert(errors > 0, "no injected failure surfaced")
-- A joined thread's worker drops its last references just after join
-- returns: give those a bounded time to go.
local after = blocks()
for _ = 1, 500 do
  if after <= base then break end
  conc.sleep(0.01)
  after = blocks()
end
assert(after <= base, ("leaked %d blocks"):format(after - base))

-- A failed put leaves the queue and the value as they were.
do
  local fq = conc.queue()
  fq:put("first")
  collectgarbage("stop") -- the failure must not be absorbed by a collection
  conc._fail_alloc(1)
  local ok, err = pcall(fq.put, fq, big)
  conc._fail_alloc(0)
  collectgarbage("restart")
  -- Either the retry absorbed it or the put failed as a whole.
  if not ok then
    assert(tostring(err):find("out of shared memory", 1, true), err)
    assert(#fq == 1)
  else
    assert(#fq == 2)
  end
  assert(fq:get() == "first")
end

-- Dropped objects come back without collectgarbage: the collector is told
-- what each object took from the arena.
do
  collectgarbage("generational") -- either mode must keep up
  for _, mode in ipairs({"generational", "incremental"}) do
    collectgarbage(mode)
    local live0 = conc._arena().live
    local peak = 0
    for i = 1, 300 do
      local dq = conc.queue()
      dq:put(big .. i)
      local sh = conc.shared()
      sh.v = big
      local live = conc._arena().live - live0
      if live > peak then peak = live end
    end
    -- 300 rounds hold 300 * 2 blocks of 128 KiB if nothing came back.
    assert(peak < 24 << 20, mode .. ": arena peak " .. peak)
  end
end

print("test_memory: ok (" .. errors .. " errors, " .. absorbed .. " absorbed)")
