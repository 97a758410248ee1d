-- Every method, timeout and closed path of conc.queue, values of every
-- copyable kind, and the cross-thread guarantees: FIFO per producer, no loss,
-- no duplicates. Timeouts are short and bounded; nothing sleeps to order
-- threads (handshakes go through queues).

local raises = require("testlib").raises

local function elapsed(f, ...)
  local t0 = conc.now()
  local r = table.pack(f(...))
  return conc.now() - t0, table.unpack(r, 1, r.n)
end

-- construction and arguments
do
  local q = conc.queue()
  assert(tostring(q):find("^conc%.queue '.*test_queue%.lua:%d+' %("), tostring(q))
  assert(#q == 0 and q:empty() and not q:full() and not q:closed())
  assert(conc.queue(0):full() == false)
  raises("maxsize out of range", conc.queue, -1)
  raises("maxsize out of range", conc.queue, 1 << 40)
  raises("number expected", conc.queue, "big", "many")
  assert(tostring(conc.queue("big")):find("conc.queue 'big' (0 items)", 1, true))
  raises("conc.queue expected", q.put, {}, 1)
  raises("conc.queue expected", q.get, "q")
  raises("non-nil value expected", q.put, q, nil)
  raises("non-nil value expected", q.put, q)
  raises("timeout must be a non-negative number", q.get, q, -1)
  assert(#q == 0)
end

-- values of every kind come back equal, with their subtype
do
  local q = conc.queue()
  local other = conc.queue(3)
  local bin = "a\0b\255" .. string.rep("z", 100)
  local big = string.rep("0123456789abcdef", 65536) -- 1 MiB
  local function f(x) return x * 2 end
  local vals = {1, -7, math.maxinteger, math.mininteger, 3.0, -0.5, 1e300, true, false,
                "", "short", bin, big, {1, 2, {3, k = "v"}}, f, other, 0 / 0}
  for _, v in ipairs(vals) do assert(q:put(v) == true) end
  assert(#q == #vals)
  for i, v in ipairs(vals) do
    local got = q:get()
    if type(v) == "table" then
      assert(got ~= v and got[1] == 1 and got[3][1] == 3 and got[3].k == "v")
    elseif type(v) == "function" then
      assert(got ~= v and got(21) == 42)
    elseif v ~= v then
      assert(got ~= got and math.type(got) == "float", "NaN")
    else
      assert(got == v, ("item %d: %s ~= %s"):format(i, tostring(got), tostring(v)))
      assert(math.type(got) == math.type(v), "subtype of item " .. i)
    end
  end
  -- a conc object comes back as the same object (same userdata in a state)
  q:put(other)
  assert(rawequal(q:get(), other))
  -- cycles and shared sub-tables survive
  local t = {name = "t"}
  t.self = t
  t.a, t.b = {}, nil
  t.b = t.a
  q:put(t)
  local u = q:get()
  assert(u.self == u and u.a == u.b and u.name == "t")
  -- what cannot be copied says where
  raises("cannot copy a coroutine", q.put, q, coroutine.create(print))
  raises("cannot copy a coroutine", q.put, q, {co = coroutine.create(print)})
  assert(#q == 0)
end

-- timeouts and try_ variants
do
  local q = conc.queue(2)
  assert(q:put("a", 0) and q:try_put("b"))
  assert(q:full() and #q == 2)
  assert(q:try_put("c") == false)
  assert(q:put("c", 0) == false)
  local dt, ok = elapsed(q.put, q, "c", 0.05)
  assert(ok == false and dt >= 0.045, dt)
  assert(q:get() == "a" and q:get(0) == "b")
  local v, msg, code = q:get(0)
  assert(v == nil and msg == "timeout" and code == "TIMEOUT")
  v, msg, code = q:try_get()
  assert(v == nil and msg == "empty" and code == "EMPTY")
  local dt2, v2, msg2 = elapsed(q.get, q, 0.05)
  assert(v2 == nil and msg2 == "timeout" and dt2 >= 0.045, dt2)
  assert(q:empty())
end

-- peek, size, empty, full
do
  local q = conc.queue(3)
  assert(q:peek() == nil)
  q:put({x = 1})
  q:put(2)
  local p = q:peek()
  assert(type(p) == "table" and p.x == 1 and #q == 2 and q:size() == 2)
  assert(q:get().x == 1 and q:peek() == 2 and q:get() == 2 and q:peek() == nil)
end

-- close: puts raise, gets drain, then nil, "closed"
do
  local q = conc.queue()
  q:put(1)
  q:put(2)
  q:close()
  q:close() -- idempotent
  assert(q:closed())
  local qname = tostring(q):match("^conc%.queue '(.-)'")
  raises("queue '" .. qname .. "' is closed", q.put, q, 3)
  raises("queue '" .. qname .. "' is closed", q.try_put, q, 3)
  assert(q:peek() == 1 and q:get() == 1 and q:get(0) == 2)
  local v, msg, code = q:get()
  assert(v == nil and msg == "closed" and code == "CLOSED")
  v, msg = q:try_get()
  assert(v == nil and msg == "closed")
  assert(q:peek() == nil)
end

-- iter: until closed and drained
do
  local q = conc.queue()
  for i = 1, 5 do q:put(i) end
  q:close()
  local seen = {}
  for v in q:iter() do seen[#seen + 1] = v end
  assert(#seen == 5 and seen[1] == 1 and seen[5] == 5)
end

-- task_done / join
do
  local q = conc.queue()
  assert(q:join() == true)
  raises("task_done: called more times than items were put", q.task_done, q)
  q:put("job1")
  q:put("job2")
  assert(q:join(0) == false)
  local dt, ok = elapsed(q.join, q, 0.03)
  assert(ok == false and dt >= 0.025)
  local worker = conc.thread(function(jobs)
    for _ = 1, 2 do
      jobs:get()
      jobs:task_done()
    end
  end, q)
  assert(q:join(30) == true)
  worker:join()
  raises("task_done: called more times", q.task_done, q)
end

-- blocking get woken by a put in another thread, blocking put woken by a get
do
  local to, back, ready = conc.queue(1), conc.queue(1), conc.queue()
  local t = conc.thread(function(to, back, ready)
    ready:put("parked soon")
    local v = to:get(30)
    back:put("reply " .. tostring(v), 30)
    back:put("second", 30) -- blocks until the main thread takes "reply"
    return "done"
  end, to, back, ready)
  assert(ready:get(30) == "parked soon")
  assert(to:put("ping", 30))
  assert(back:get(30) == "reply ping")
  assert(back:get(30) == "second")
  assert(select(2, t:join(30)) == "done")
end

-- close wakes every blocked getter and putter in other threads
do
  local empty, full, ready = conc.queue(), conc.queue(1), conc.queue()
  full:put("x")
  local ts = {}
  for i = 1, 2 do
    ts[#ts + 1] = conc.thread(function(e, ready)
      ready:put(true)
      return e:get(30)
    end, empty, ready)
    ts[#ts + 1] = conc.thread(function(f, ready)
      ready:put(true)
      return pcall(f.put, f, "y", 30)
    end, full, ready)
  end
  for _ = 1, 4 do ready:get(30) end
  -- they may still be on their way to park: closing works either way
  empty:close()
  full:close()
  for i, t in ipairs(ts) do
    local r = table.pack(t:join(30))
    if i % 2 == 1 then
      assert(r[1] == true and r[2] == nil and r[3] == "closed", tostring(r[3]))
    else
      assert(r[1] == true and r[2] == false and tostring(r[3]):find("closed"), tostring(r[3]))
    end
  end
end

-- many producers, many consumers: no loss, no duplicate, FIFO per producer
do
  local NP, NC, N = 4, 3, 5000
  local q = conc.queue(64)
  local consumers = {}
  for c = 1, NC do
    consumers[c] = conc.thread(function(q, NP)
      local last, got, n = {}, {}, 0
      for p = 1, NP do last[p] = 0 end
      for v in q:iter() do
        local p, i = v[1], v[2]
        assert(i > last[p], "FIFO broken for producer " .. p)
        last[p] = i
        got[#got + 1] = p * 1000000 + i
        n = n + 1
      end
      return got
    end, q, NP)
  end
  local producers = {}
  for p = 1, NP do
    producers[p] = conc.thread(function(q, p, N)
      for i = 1, N do q:put({p, i}) end
    end, q, p, N)
  end
  for p = 1, NP do assert(producers[p]:join(60)) end
  q:close()
  local seen, total = {}, 0
  for c = 1, NC do
    local ok, got = consumers[c]:join(60)
    assert(ok)
    for _, key in ipairs(got) do
      assert(not seen[key], "duplicate " .. key)
      seen[key] = true
      total = total + 1
    end
  end
  assert(total == NP * N, total)
end

-- the same queue object through a thread (identity is per object)
do
  local q = conc.queue()
  local t = conc.thread(function(q)
    local inner = q:get(30)
    inner:put("through " .. tostring(inner == q))
  end, q)
  q:put(q)
  t:join(30)
  assert(q:get(30) == "through true")
end

-- between processes: the same queue object in a forked child
if conc.process then
  local q, back = conc.queue(4), conc.queue()
  local p = conc.process(function(q, back)
    local sum = 0
    for v in q:iter() do sum = sum + v end
    back:put(sum)
  end, q, back)
  for i = 1, 1000 do q:put(i) end
  q:close()
  assert(back:get(30) == 500500)
  p:join(30)
end

print("test_queue: ok")
