-- Queue get/put/iter/join, conc.select and pipe recv in tasks: each call
-- suspends only its task (another task of the same loop makes progress
-- meanwhile: the value a waiting task receives is produced by that other
-- task, so a call that blocked the loop's thread would only end by its
-- timeout and the assertion on the result fails), wake-ups from another
-- thread and another process, timeouts, cancellation while suspended
-- (to-be-closed variables close, nothing is lost), iter ending on close,
-- select over several queues, wake order, and the same calls in plain
-- threads. Ordered by events and queues, never by sleeps; every wait that
-- could hang has a timeout.

local raises = require("testlib").raises

-- A task that yields a few times to the loop, then runs f.
local function later(f, ...)
  local args = table.pack(...)
  return conc.task(function()
    for _ = 1, 3 do conc.sleep(0) end
    return f(table.unpack(args, 1, args.n))
  end)
end

local function closer(flag)
  return setmetatable({}, {__close = function() flag.closed = true end})
end

-- get, put on a full queue, join, select, iter and pipe recv: each waits
-- for something another task of the loop does later.
do
  conc.run(function()
    local q = conc.queue()
    local g = conc.task(function() return q:get(10) end)
    later(function() q:put("one") end)
    assert(g:await() == "one", "get suspended only its task")

    local b = conc.queue(1)
    b:put(1)
    local p = conc.task(function() return b:put(2, 10) end)
    later(function() return b:get() end)
    assert(p:await() == true, "put on a full queue suspended only its task")
    assert(b:get(0) == 2)

    local jq = conc.queue()
    jq:put("a")
    jq:put("b")
    local j = conc.task(function() return jq:join(10) end)
    later(function()
      for _ = 1, 2 do jq:get() jq:task_done() end
    end)
    assert(j:await() == true, "join suspended only its task")

    local q1, q2, q3 = conc.queue(), conc.queue(), conc.queue()
    local s = conc.task(function() return conc.select(q1, q2, q3, 10) end)
    later(function() q2:put("two") end)
    local from, v = s:await()
    assert(from == q2 and v == "two", "select suspended only its task")

    local it = conc.queue()
    local collected = conc.task(function()
      local got = {}
      for x in it:iter() do got[#got + 1] = x end
      return got
    end)
    later(function()
      for i = 1, 3 do it:put(i) end
      it:close()
    end)
    local got = collected:await()
    assert(#got == 3 and got[1] == 1 and got[2] == 2 and got[3] == 3, "iter ended on close")

    local ra, sb = conc.pipe()
    local r = conc.task(function() return ra:recv(10) end)
    later(function() sb:send({k = "msg"}) end)
    assert(r:await().k == "msg", "pipe recv suspended only its task")
    later(function() sb:close() end)
    local rv, why = conc.task(function() return ra:recv(10) end):await()
    assert(rv == nil and why == "closed")
  end)
end

-- Wake order: two tasks waiting on one queue take the items in the order
-- they started waiting.
do
  conc.run(function()
    local q = conc.queue()
    local t1 = conc.task(function() return q:get(10) end)
    local t2 = conc.task(function() return q:get(10) end)
    conc.sleep(0) -- both are waiting now
    q:put("first")
    q:put("second")
    assert(t1:await() == "first" and t2:await() == "second")
  end)
end

-- Wake-ups from another thread and another process (each waits for an
-- event that a task sets later, then answers on a queue or pipe).
do
  conc.run(function()
    local q, go = conc.queue(), conc.event()
    local th = conc.thread(function(q, go)
      assert(go:wait(10))
      q:put("from a thread")
    end, q, go)
    local g = conc.task(function() return q:get(10) end)
    later(function() go:set() end)
    assert(g:await() == "from a thread")
    assert(th:join(10))

    local pq, pgo = conc.queue(), conc.event()
    local pr = conc.process(function(q, go)
      assert(go:wait(10))
      q:put("from a process")
    end, pq, pgo)
    local pg = conc.task(function() return pq:get(10) end)
    later(function() pgo:set() end)
    assert(pg:await() == "from a process")
    assert(pr:join(10))

    local sq1, sq2, sgo = conc.queue(), conc.queue(), conc.event()
    local sp = conc.process(function(q, go)
      assert(go:wait(10))
      q:put(42)
    end, sq2, sgo)
    local s = conc.task(function() return conc.select(sq1, sq2, 10) end)
    later(function() sgo:set() end)
    local from, v = s:await()
    assert(from == sq2 and v == 42, "select woken by another process")
    assert(sp:join(10))

    local ra, sb = conc.pipe()
    local rgo = conc.event()
    local rp = conc.process(function(e, go)
      assert(go:wait(10))
      e:send("piped")
    end, sb, rgo)
    local r = conc.task(function() return ra:recv(10) end)
    later(function() rgo:set() end)
    assert(r:await() == "piped")
    assert(rp:join(10))

    -- a thread blocked on a full queue is woken by a task's get
    local full = conc.queue(1)
    full:put(0)
    local putter = conc.thread(function(q) return q:put(1, 10) end, full)
    local taker = conc.task(function()
      local got = {}
      for i = 1, 2 do got[i] = full:get(10) end
      return got
    end)
    local got = taker:await()
    assert(got[1] == 0 and got[2] == 1)
    local pok, put = putter:join(10)
  assert(pok == true and put == true)
  end)
end

-- Timeouts inside a task.
do
  conc.run(function()
    local q, b = conc.queue(), conc.queue(1)
    b:put(1)
    local v, why, code = q:get(0.02)
    assert(v == nil and why == "timeout" and code == "TIMEOUT")
    assert(b:put(2, 0.02) == false)
    assert(b:get(0) == 1 and b:get(0) == nil, "the timed-out put stored nothing")
    local s, swhy = conc.select(q, conc.queue(), 0.02)
    assert(s == nil and swhy == "timeout")
    q:put("x")
    assert(q:join(0.02) == false)
    local ra = conc.pipe()
    local rv, rwhy = ra:recv(0.02)
    assert(rv == nil and rwhy == "timeout")
    -- another task ran while this one waited for its timeout
    local ran = false
    local t = conc.task(function() ran = true end)
    assert(conc.queue():get(0.02) == nil and ran)
    t:await()
  end)
end

-- Cancellation while suspended: the task sees "cancelled", its
-- to-be-closed variables close, the queue loses nothing and is usable.
do
  conc.run(function()
    local q, b = conc.queue(), conc.queue(1)
    b:put("kept")
    local ra, sb = conc.pipe()
    local jq = conc.queue()
    jq:put(1)
    local big = string.rep("d", 100000) -- an item with arena memory of its own
    collectgarbage()
    collectgarbage()
    local before = conc._arena().blocks
    local waits = {
      function() return q:get() end,
      function() return b:put(big) end,
      function() return conc.select(q, conc.queue()) end,
      function() for _ in q:iter() do end end,
      function() return jq:join() end,
      function() return ra:recv() end,
    }
    for i, f in ipairs(waits) do
      local flag = {}
      local t = conc.task(function()
        local mark <close> = closer(flag)
        return f()
      end)
      conc.sleep(0)
      t:cancel()
      raises("cancelled", t.await, t)
      assert(flag.closed, "to-be-closed variable closed (wait " .. i .. ")")
    end
    q:put("after")
    assert(q:get(0) == "after")
    assert(b:get(0) == "kept" and b:get(0) == nil, "the cancelled put stored nothing")
    sb:send("still")
    assert(ra:recv(0) == "still")
    jq:get()
    jq:task_done()
    assert(jq:join(0) == true)
    collectgarbage()
    collectgarbage()
    local after = conc._arena().blocks
    assert(after == before, ("arena blocks %d before the cancelled waits, %d after"):format(before, after))
  end)
end

-- The same calls in plain threads still block the thread.
do
  local q, r = conc.queue(), conc.queue()
  local t = conc.thread(function(q, r)
    local a = q:get(10)
    local from, b = conc.select(conc.queue(), q, 10)
    r:put({a, b, from == q})
    local n = 0
    for x in q:iter() do n = n + x end
    return n
  end, q, r)
  q:put("a")
  q:put("b")
  local res = r:get(10)
  assert(res[1] == "a" and res[2] == "b" and res[3] == true)
  q:put(1)
  q:put(2)
  q:close()
  local ok, n = t:join(10)
  assert(ok == true and n == 3)
end

print("test_task_queue: ok")
