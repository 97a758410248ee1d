-- Behaviour of conc.pipe: duplex and one-way pipes, every method, every
-- misuse error, close semantics (one end object wherever it is held),
-- between threads and between processes. Every wait is bounded.
local T = 30

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern, 1, true), err)
end

-- duplex: both ends send and receive, in order, any copyable value
do
  local a, b = conc.pipe()
  assert(tostring(a):find("conc.pipe '", 1, true) and tostring(a):find("(a)", 1, true), tostring(a))
  assert(tostring(b):find("(b)", 1, true))
  a:send(1); a:send("two"); a:send({3, k = {4}})
  assert(b:poll() == true)
  assert(b:recv() == 1 and b:recv(0) == "two")
  local t = b:recv(T)
  assert(t[1] == 3 and t.k[1] == 4)
  assert(b:poll() == false)
  b:send(math.pi); b:send(true); b:send(2^53)
  assert(a:recv() == math.pi and a:recv() == true and math.type(a:recv()) == "float")
  local f = function(x) return x * 2 end
  a:send(f)
  assert(b:recv()(21) == 42)
  local q = conc.queue()
  a:send(q)
  assert(b:recv() == q, "conc objects travel by reference")
  a:send(a)
  assert(b:recv() == a)
  -- recv with a timeout on an empty pipe
  local v, err, code = b:recv(0)
  assert(v == nil and err == "timeout" and code == "TIMEOUT")
  local t0 = conc.now()
  v, err = a:recv(0.05)
  assert(v == nil and err == "timeout" and conc.now() - t0 >= 0.04)
  -- misuse
  raises("non-nil value", a.send, a, nil)
  raises("non-nil value", a.send, a)
  raises("cannot copy a coroutine", a.send, a, coroutine.create(print))
  raises("conc.pipe expected", a.send, q, 1)
  raises("timeout must be a non-negative number", a.recv, a, -1)
  assert(a:closed() == false and b:closed() == false)
end

-- close: the other end drains what was sent, then gets nil, "closed"
do
  local a, b = conc.pipe()
  a:send("last words")
  b:send("never read")
  a:close()
  assert(a:closed() == true and b:closed() == false)
  a:close() -- idempotent
  assert(b:recv(T) == "last words")
  local v, err, code = b:recv(T)
  assert(v == nil and err == "closed" and code == "CLOSED")
  assert(b:recv(0) == nil, "still closed")
  raises("pipe:send: the other end is closed", b.send, b, 1)
  raises("pipe:send: this end is closed", a.send, a, 1)
  raises("pipe:recv: this end is closed", a.recv, a)
  b:close()
  raises("pipe:send: this end is closed", b.send, b, 1)
end

-- one-way: a only receives, b only sends
do
  local r, w = conc.pipe(false)
  w:send("one way")
  assert(r:recv(T) == "one way")
  raises("pipe:send: this end only receives", r.send, r, 1)
  raises("pipe:recv: this end only sends", w.recv, w)
  assert(w:poll() == false)
  w:send(1); w:send(2)
  w:close()
  assert(r:recv() == 1 and r:recv() == 2)
  local v, err = r:recv(T)
  assert(v == nil and err == "closed")
  local r2, w2 = conc.pipe(false)
  r2:close()
  raises("pipe:send: the other end is closed", w2.send, w2, 1)
  local r3, w3 = conc.pipe(true) -- true is duplex, like the default
  w3:send(1); assert(r3:recv() == 1); r3:send(2); assert(w3:recv() == 2)
end

-- an end nobody holds any more is closed: the other end sees "closed"
do
  local a, b = conc.pipe()
  a:send("bye")
  a = nil
  collectgarbage(); collectgarbage()
  assert(b:recv(T) == "bye")
  local v, err = b:recv(T)
  assert(v == nil and err == "closed")
end

-- between threads: a blocked recv wakes on send and on close
do
  local a, b = conc.pipe()
  local t = conc.thread(function()
    local got = {}
    while true do
      local v, err = b:recv(30)
      if v == nil then got[#got + 1] = err break end
      got[#got + 1] = v
      b:send(v * 10)
    end
    return table.concat(got, ",")
  end)
  for i = 1, 3 do
    a:send(i)
    assert(a:recv(T) == i * 10)
  end
  a:close()
  local ok, got = t:join(T)
  assert(ok and got == "1,2,3,closed", got)
end

-- between processes, both ways, and a close seen by every holder
do
  local a, b = conc.pipe()
  local p = conc.process(function()
    b:send("hello from " .. conc.pid())
    local msg = b:recv(30)
    b:send(msg .. "!")
    -- the parent closes its end: we see "closed" once drained
    local v, err = b:recv(30)
    return v, err, pcall(b.send, b, "x")
  end)
  assert(a:recv(T) == "hello from " .. p.pid)
  a:send("hi child")
  assert(a:recv(T) == "hi child!")
  a:close()
  local ok, v, err, sent, serr = p:join(T)
  assert(ok and v == nil and err == "closed" and sent == false, tostring(serr))
  assert(serr:find("the other end is closed", 1, true), serr)
  -- the child closes an end that the parent holds too: closed for both
  local c, d = conc.pipe()
  local q = conc.process(function() c:close() end)
  assert(q:join(T))
  assert(c:closed() == true)
  raises("pipe:send: this end is closed", c.send, c, 1)
  local v2, err2 = d:recv(T)
  assert(v2 == nil and err2 == "closed")
end

-- many messages between two processes, in order
do
  local r, w = conc.pipe(false)
  local n = 20000
  local p = conc.process(function()
    for i = 1, n do w:send(i) end
    w:send("end")
  end)
  local expect = 1
  while true do
    local v = assert(r:recv(T))
    if v == "end" then break end
    assert(v == expect, v)
    expect = expect + 1
  end
  assert(expect == n + 1)
  assert(p:join(T))
end

-- a receiver killed while waiting does not stop the pipe from working
do
  local a, b = conc.pipe()
  local ready = conc.event()
  local p = conc.process(function() ready:set(); b:recv() end)
  assert(ready:wait(T))
  p:kill(9)
  assert(not pcall(p.join, p, T))
  local t = conc.thread(function() return b:recv(30) end)
  a:send("still works")
  local ok, v = t:join(T)
  assert(ok and v == "still works")
end

print("test_pipe: ok")
