-- Actor slots are reused: a thread or task that ends frees its slot, and
-- the next one to start takes it. Readers on other threads must see a
-- slot's identity whole (cc_actor_snapshot); under ThreadSanitizer both
-- blocks below reported data races before (a dump reading a slot as
-- cc_actor_new refilled it; a lock waiter's take-over check reading the
-- owner's pid as the slot was reused). In other builds they check that the
-- outcomes are right.

-- conc.dump in a loop while threads start and end
do
  local stop = conc.event()
  local dumps = 0
  local d = conc.thread(function()
    local n = 0
    while not stop:is_set() do
      assert(conc.dump():find("^conc%.dump %(pid %d+%):"))
      n = n + 1
    end
    return n
  end)
  for _ = 1, 100 do conc.thread(function() end):join() end
  stop:set()
  dumps = select(2, d:join())
  assert(dumps >= 1)
end

-- a lock waiter parked past its poll tick (it then checks whether the
-- owner died) while tasks, each with a new actor, hold the lock in turn
do
  local l, done = conc.lock("L"), conc.event()
  local w = conc.thread(function()
    local n = 0
    while not done:is_set() do
      l:acquire(); l:release()
      n = n + 1
    end
    return n
  end)
  conc.run(function()
    for _ = 1, 4 do
      conc.task(function() l:with(function() conc.sleep(0.12) end) end):await()
    end
  end)
  done:set()
  assert(select(2, w:join()) >= 1)
  assert(not l:locked())
end

print("test_actor_reuse: ok")
