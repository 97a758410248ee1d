-- Run by tests/host/test_lua_nomem.c, whose allocator fails the n-th Lua
-- allocation after fail_in(n). Each operation either works or raises, and
-- afterwards every object is usable and the arena holds what it held.

local function blocks()
  collectgarbage()
  collectgarbage()
  return conc._arena().blocks
end

local big = string.rep("b", 10000)
local q, s = conc.queue(), conc.shared()
local pa, pb = conc.pipe()
local lk, ev = conc.lock(), conc.event()

local function usable()
  q:put({1, big})
  assert(q:get()[2] == big)
  q:put(big)
  assert(q:get() == big)
  s.k = {big}
  assert(s.k[1] == big)
  s.k = nil
  pa:send(big)
  assert(pb:recv() == big)
  assert(lk:acquire(0))
  lk:release()
  ev:set()
  ev:clear()
  local ok, v = conc.thread(function(x) return x .. "!" end, "hi"):join()
  assert(ok and v == "hi!")
end

-- Each puts what it needs first (with no failure armed), then arms the
-- failure and runs the part that allocates Lua memory.
local ops = {
  {function() q:put(big) end, function() return q:get() end},
  {function() q:put({big, {x = 1}}) end, function() return q:get() end},
  {function() q:put("short") end, function() return q:get() end},
  {function() pa:send({big}) end, function() return pb:recv() end},
  {function() pa:send(big) end, function() return pb:recv() end},
  {function() q:put(big) end, function() return conc.select(q, conc.queue(), 0) end},
  {nil, function() s.t = {big, 2} return s.t end},
  {nil, function() return conc.queue(), conc.lock(), conc.shared({a = big}) end},
  {nil, function() local t = conc.thread(function() return big end) return t:join() end},
  {nil, function() q:put({big}) return q:get() end},
}

local errors, done = 0, 0
local function pass()
  for n = 1, 60 do
    for i, op in ipairs(ops) do
      if op[1] then op[1]() end
      local ok, err = try_failing(n, op[2])
      if ok then
        done = done + 1
      else
        errors = errors + 1
        assert(type(err) == "string", ("op %d, failure %d: %s"):format(i, n, tostring(err)))
      end
      -- What an operation left in a queue, pipe or the table goes.
      while q:try_get() do end
      while pb:recv(0) do end
      s.t = nil
      usable()
    end
  end
end

-- The first pass also makes what the runtime allocates once, on first use
-- (a wait table the first time something parks, ...): the second one,
-- through the same failures, must leave the arena as it found it.
usable()
pass()
local base, gc_errors0 = blocks(), gc_errors()
pass()
assert(errors > 0 and failures() > 0, "no injected failure surfaced")
-- Workers release their last references just after a join: bounded wait.
local after = blocks()
for _ = 1, 500 do
  if after <= base then break end
  conc.sleep(0.01)
  after = blocks()
end
-- Lua 5.4 never retries a finalizer it could not call (no memory for the
-- call: a warning "error in __gc"), so the object that userdata held stays
-- allocated: at most 4 blocks each (a shared table with its slots and a
-- boxed value). Anything beyond that is a leak of ours.
local lost = gc_errors() - gc_errors0
assert(after <= base + 4 * lost,
       ("leaked %d arena blocks (%d finalizers skipped by Lua)"):format(after - base, lost))
print(("lua_nomem: ok (%d errors, %d done, %d failures injected, %d finalizers skipped)")
  :format(errors, done, failures(), gc_errors()))
