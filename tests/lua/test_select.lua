-- conc.select: results, timeouts, closed queues, waking, fairness.

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern, 1, true), "unexpected error: " .. tostring(err))
end

local function elapsed(f, ...)
  local t0 = conc.now()
  local r = table.pack(f(...))
  return conc.now() - t0, table.unpack(r, 1, r.n)
end

-- the queue that had an item, as the very value passed in, and the item
do
  local a, b = conc.queue(), conc.queue()
  b:put("from b")
  local q, v = conc.select(a, b)
  assert(rawequal(q, b) and v == "from b")
  a:put({1, 2})
  q, v = conc.select(a, b, 1)
  assert(rawequal(q, a) and v[2] == 2)
  b:put(7)
  q, v = conc.select(a, b, nil) -- a trailing nil timeout: no timeout
  assert(rawequal(q, b) and v == 7)
  a:put(1)
  q, v = conc.select(a, a) -- the same queue twice is fine
  assert(rawequal(q, a) and v == 1)
end

-- timeouts
do
  local a, b = conc.queue(), conc.queue()
  local q, msg, code = conc.select(a, b, 0)
  assert(q == nil and msg == "timeout" and code == "TIMEOUT")
  local dt, q2, msg2 = elapsed(conc.select, a, b, 0.05)
  assert(q2 == nil and msg2 == "timeout" and dt >= 0.045, dt)
end

-- argument errors
do
  local a = conc.queue()
  raises("conc.queue expected", conc.select)
  raises("conc.queue expected", conc.select, 1)
  raises("conc.queue expected", conc.select, a, {}, 0)
  raises("timeout must be a non-negative number", conc.select, a, -1)
end

-- closed queues: drained first, skipped once empty, "closed" when all are
do
  local a, b = conc.queue(), conc.queue()
  a:put("last")
  a:close()
  local q, v = conc.select(a, b, 0)
  assert(rawequal(q, a) and v == "last")
  q, v = conc.select(a, b, 0.01) -- a is closed and empty, b is open
  assert(q == nil and v == "timeout")
  b:close()
  local msg, code
  q, msg, code = conc.select(a, b)
  assert(q == nil and msg == "closed" and code == "CLOSED")
end

-- a parked select is woken by a put in another thread, and by close
do
  local a, b, ready = conc.queue(), conc.queue(), conc.queue()
  local t = conc.thread(function(a, b, ready)
    ready:put(true)
    local q, v = conc.select(a, b, 30)
    local first = (q == b) and v
    ready:put(true)
    local q2, msg = conc.select(a, b, 30)
    return first, q2, msg
  end, a, b, ready)
  ready:get(30)
  b:put("wake")
  ready:get(30)
  a:close()
  b:close()
  local ok, first, q2, msg = t:join(30)
  assert(ok and first == "wake" and q2 == nil and msg == "closed", tostring(msg))
end

-- more queues than the fast path's array
do
  local qs = {}
  for i = 1, 20 do qs[i] = conc.queue() end
  qs[17]:put("seventeen")
  local q, v = conc.select(table.unpack(qs))
  assert(rawequal(q, qs[17]) and v == "seventeen")
end

-- fairness: with every queue always ready, each is chosen about as often
do
  local a, b, c = conc.queue(), conc.queue(), conc.queue()
  for i = 1, 3000 do a:put(i); b:put(i); c:put(i) end
  local hits = {[a] = 0, [b] = 0, [c] = 0}
  for _ = 1, 3000 do
    local q = conc.select(a, b, c)
    hits[q] = hits[q] + 1
  end
  for q, n in pairs(hits) do assert(n > 700 and n < 1300, ("unfair: %d of 3000"):format(n)) end
  -- alternating between two selects that share a queue starves nobody
  local x, y, z = conc.queue(), conc.queue(), conc.queue()
  for i = 1, 2000 do x:put(i); y:put(i); z:put(i) end
  local hx, hy, hz = 0, 0, 0
  for _ = 1, 1000 do
    local q = conc.select(x, y)
    if q == x then hx = hx + 1 else hy = hy + 1 end
    q = conc.select(x, z)
    if q == x then hx = hx + 1 else hz = hz + 1 end
  end
  assert(hy > 300 and hz > 300 and hx > 600, ("x %d y %d z %d"):format(hx, hy, hz))
end

-- select as the consumer of several producers: nothing lost
do
  local a, b = conc.queue(8), conc.queue()
  local N = 3000
  local pa = conc.thread(function(q, N) for i = 1, N do q:put(i) end q:close() end, a, N)
  local pb = conc.thread(function(q, N) for i = 1, N do q:put(-i) end q:close() end, b, N)
  local sum, n, lasta, lastb = 0, 0, 0, 0
  while true do
    local q, v = conc.select(a, b, 30)
    if q == nil then assert(v == "closed", v) break end
    if q == a then assert(v == lasta + 1); lasta = v else assert(v == lastb - 1); lastb = v end
    sum, n = sum + v, n + 1
  end
  pa:join()
  pb:join()
  assert(n == 2 * N and sum == 0 and lasta == N and lastb == -N)
end

print("test_select: ok")
