-- pool:map in a task suspends only that task, as f:get and pool:apply do
-- (test_task_future.lua): the map's items wait for an event that another
-- task of the loop sets once it has seen two items start, so a map that
-- blocked the loop's thread would leave them waiting (each wait has a
-- deadline and the item reports whether the event came). Results keep
-- their order; an item's error raises with its value's type; a cancelled
-- task's map gives back its chunks not yet started.

local raises = require("testlib").raises

-- The items wait for `go` until a shared deadline, so a broken map costs
-- one bounded wait in all, not one per item.
local function item(x, started, go, deadline)
  started:put(x)
  if not go:wait(math.max(0, deadline - conc.now())) then return -x end
  return x * 2
end

do
  conc.run(function()
    local p <close> = conc.pool(2, {name = "mt"})
    local started, go = conc.queue(), conc.event()
    local seen = 0
    local ticker = conc.task(function()
      for _ = 1, 2 do
        assert(started:get(10), "an item started")
        seen = seen + 1
      end
      go:set()
    end)
    local deadline = conc.now() + 10
    local list = {}
    for i = 1, 8 do list[i] = i end
    local r = p:map(function(x) return item(x, started, go, deadline) end, list, 1)
    assert(ticker:done() and seen == 2, "the other task ran while the map waited")
    assert(#r == 8)
    for i = 1, 8 do assert(r[i] == i * 2, ("item %d: %s"):format(i, tostring(r[i]))) end

    -- two tasks map at once on one pool; results stay apart and in order
    local a = conc.task(function() return p:map(function(x) return x + 100 end, {1, 2, 3}) end)
    local b = conc.task(function() return p:map(function(x) return x .. "!" end, {"x", "y"}, 1) end)
    local ra, rb = a:await(), b:await()
    assert(ra[1] == 101 and ra[2] == 102 and ra[3] == 103 and #ra == 3)
    assert(rb[1] == "x!" and rb[2] == "y!" and #rb == 2)

    -- an item's error raises in the task with its value and type
    local t = conc.task(function()
      return p:map(function(x) if x == 3 then error({code = 42, at = x}) end return x end,
                   {1, 2, 3, 4}, 1)
    end)
    local ok, e = pcall(t.await, t)
    assert(not ok and type(e) == "table" and e.code == 42 and e.at == 3, tostring(e))
    t = conc.task(function()
      return p:map(function(x) if x == 2 then error(7, 0) end return x end, {1, 2, 3})
    end)
    ok, e = pcall(t.await, t)
    assert(not ok and math.type(e) == "integer" and e == 7, tostring(e))
    t = conc.task(function()
      return p:map(function(x) if x == 2 then error("bad item") end return x end, {1, 2})
    end)
    raises("bad item", t.await, t)
    -- the pool is still usable
    local r2 = p:map(function(x) return -x end, {5, 6})
    assert(r2[1] == -5 and r2[2] == -6)
  end)
end

-- Cancelled while suspended in map: the task's to-be-closed variables close,
-- its chunks not yet started are cancelled, the pool goes on.
do
  conc.run(function()
    local p <close> = conc.pool(1)
    local started, hold, ran = conc.queue(), conc.event(), conc.atomic(0)
    local closed = false
    local t = conc.task(function()
      local mark <close> = setmetatable({}, {__close = function() closed = true end})
      return p:map(function(x)
        ran:add(1)
        started:put(x)
        hold:wait(10)
        return x
      end, {1, 2, 3, 4}, 1)
    end)
    assert(started:get(10) == 1, "the first chunk started")
    t:cancel()
    raises("cancelled", t.await, t)
    assert(closed, "the task's to-be-closed variable closed")
    hold:set()
    p:close()
    p:join()
    assert(ran:get() == 1, "chunks not started were cancelled: " .. ran:get())
  end)
end

print("test_pool_task: ok")
