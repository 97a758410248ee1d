-- conc.tcp: an echo server with many concurrent clients on loopback, the
-- read formats, timeouts, a refused connection, a bad host, a bad port, a
-- peer closing mid-read, writing to a closed connection, and the same
-- calls blocking a plain thread. Every wait is bounded by a timeout.

local raises = require("testlib").raises

local CLIENTS = os.getenv("CONCLUA_SANITIZED") and 50 or 200

-- Echo server and many concurrent clients, all tasks of one loop.
do
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    assert(math.type(srv.port) == "integer" and srv.port > 0)
    local server = conc.task(function()
      while true do
        local c = srv:accept()
        if not c then return "server closed" end
        conc.task(function()
          c:settimeout(10)
          while true do
            local line = c:read("L")
            if not line then break end
            assert(c:write(line))
          end
          c:close()
        end)
      end
    end)
    local clients = {}
    for i = 1, CLIENTS do
      clients[i] = conc.task(function()
        local c = assert(conc.tcp.connect("127.0.0.1", srv.port, 10))
        c:settimeout(10)
        local got = {}
        for k = 1, 3 do
          assert(c:write("client ", tostring(i), " line ", tostring(k), "\n") == c)
          got[k] = c:read("l")
        end
        local ip, port = c:peername()
        assert(ip == "127.0.0.1" and port == srv.port)
        c:close()
        return table.concat(got, "|")
      end)
    end
    for i = 1, CLIENTS do
      local want = ("client %d line 1|client %d line 2|client %d line 3"):format(i, i, i)
      assert(clients[i]:await() == want)
    end
    srv:close()
    assert(server:await() == "server closed")
    assert(select(2, srv:accept()) == "closed")
  end)
end

-- Read formats, end of stream and the peer closing mid-read.
do
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local sent = conc.event()
    conc.task(function()
      local c = assert(srv:accept(10))
      c:write("one\ntwo\nthree and more")
      c:write("abc")
      sent:set()
      conc.sleep(0.02)
      c:close() -- while the client waits in read("a")
    end)
    local c = assert(conc.tcp.connect("localhost", srv.port, 10))
    c:settimeout(10)
    sent:wait(10)
    assert(c:read("l") == "one")
    assert(c:read("L") == "two\n")
    local five = c:read(5)
    assert(#five >= 1 and #five <= 5 and ("three and more"):sub(1, #five) == five)
    local rest = c:read("a") -- up to the close
    assert(five .. rest == "three and moreabc", five .. rest)
    local v, err, code = c:read("l")
    assert(v == nil and err == "closed" and code == "CLOSED")
    assert(c:read("a") == "")
    c:close()
    assert(select(2, c:read()) == "closed")
    assert(select(2, c:write("x")) == "closed")
    raises("invalid format", c.read, c, "x")
    srv:close()
  end)
end

-- Timeouts: read, accept, and a connect that cannot complete in time.
do
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local t0 = conc.now()
    local v, err, code = srv:accept(0.05)
    assert(v == nil and err == "timeout" and code == "TIMEOUT" and conc.now() - t0 >= 0.04)
    local acc = conc.task(function() return srv:accept(10) end)
    local c = assert(conc.tcp.connect("127.0.0.1", srv.port, 10))
    local peer = assert(acc:await())
    c:settimeout(0.05)
    t0 = conc.now()
    v, err, code = c:read("l")
    assert(v == nil and err == "timeout" and code == "TIMEOUT" and conc.now() - t0 >= 0.04)
    peer:write("late\n")
    c:settimeout(10)
    assert(c:read("l") == "late")
    c:close(); peer:close(); srv:close()
  end)
end

-- Failures return nil, message, CODE; bad arguments raise. listen
-- resolves a name as connect does.
do
  local function check()
    local c, err, code = conc.tcp.connect("127.0.0.1", 1, 10)
    assert(c == nil and err == "127.0.0.1:1: connection refused" and code == "ECONNREFUSED",
           tostring(err) .. " " .. tostring(code))
    c, err, code = conc.tcp.connect("no-such-host.invalid", 80, 10)
    assert(c == nil and err:find("no-such-host.invalid:80: ", 1, true) and code:find("^EAI_"), err)
    raises("port must be between 0 and 65535", conc.tcp.connect, "127.0.0.1", 70000)
    raises("port must be between 0 and 65535", conc.tcp.listen, "127.0.0.1", -1)
    local s, e2, c2 = conc.tcp.listen("no-such-host.invalid", 0)
    assert(s == nil and e2:find("no-such-host.invalid:0: ", 1, true) and c2:find("^EAI_"), e2)
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local busy, e3, c3 = conc.tcp.listen("127.0.0.1", srv.port)
    assert(busy == nil and e3:find("address already in use", 1, true) and c3 == "EADDRINUSE", e3)
    srv:close()
    -- a name: resolved (here from /etc/hosts), bound to its IPv4 address
    local byname = assert(conc.tcp.listen("localhost", 0))
    local conn = assert(conc.tcp.connect("127.0.0.1", byname.port, 10))
    local peer = assert(byname:accept(10))
    assert(peer:peername() == "127.0.0.1")
    conn:close(); peer:close(); byname:close()
    assert(select(3, byname:accept()) == "CLOSED")
  end
  check()              -- in the main thread, outside any loop
  conc.run(check)      -- in a task
  -- other tasks keep running while one resolves a bad name
  conc.run(function()
    local ticks = 0
    local ticker = conc.task(function() for _ = 1, 3 do ticks = ticks + 1 conc.sleep(0) end end)
    conc.tcp.connect("no-such-host.invalid", 80, 10)
    ticker:await()
    assert(ticks == 3)
  end)
end

-- Writing to a connection the peer has closed ends in nil, message.
do
  conc.run(function()
    local srv = assert(conc.tcp.listen("127.0.0.1", 0))
    local acc = conc.task(function() return srv:accept(10) end)
    local c = assert(conc.tcp.connect("127.0.0.1", srv.port, 10))
    acc:await():close()
    c:settimeout(10)
    assert(select(2, c:read("l")) == "closed")
    local ok, err, code
    for _ = 1, 50 do -- the reset arrives after a write or two
      ok, err, code = c:write(string.rep("x", 65536))
      if not ok then break end
    end
    assert(ok == nil and type(err) == "string", "writes to a closed peer must fail")
    assert(code == "EPIPE" or code == "ECONNRESET", code)
    c:close(); srv:close()
  end)
end

-- A plain thread blocks on the same calls; a connection belongs to its thread.
do
  local srv = assert(conc.tcp.listen("127.0.0.1", 0))
  local th = conc.thread(function(port)
    local c = assert(conc.tcp.connect("127.0.0.1", port, 10))
    c:settimeout(10)
    assert(c:write("ping\n"))
    local r = c:read("l")
    c:close()
    return r
  end, srv.port)
  local c = assert(srv:accept(10))
  c:settimeout(10)
  assert(c:read("l") == "ping")
  c:write("pong\n")
  assert(select(2, th:join()) == "pong")
  raises("cannot copy a userdata of type 'conc.tcp.conn'", function() return conc.thread(function(x) return x end, c):join() end)
  c:close(); srv:close()
end

-- In a task: a server and both ends of one connection to it.
local function connected()
  local srv = assert(conc.tcp.listen("127.0.0.1", 0))
  local acc = conc.task(function() return srv:accept(10) end)
  local c = assert(conc.tcp.connect("127.0.0.1", srv.port, 10))
  return srv, c, acc:await()
end

-- A task waiting in read is cancelled: the loop ends, the handle is closed.
do
  conc.run(function()
    local srv, c, peer = connected()
    local reader = conc.task(function() return c:read("l") end)
    conc.sleep(0)
    reader:cancel()
    raises("cancelled", reader.await, reader)
    peer:write("after\n")
    c:settimeout(10)
    assert(c:read("l") == "after")
    c:close(); peer:close(); srv:close()
  end)
end

-- read(0) tests for the end of the stream, as file:read(0) does.
do
  conc.run(function()
    local srv, c, peer = connected()
    peer:write("ab")
    assert(c:read(0) == "" and c:read(1) == "a")
    peer:close()
    assert(c:read(1) == "b")
    local v, msg = c:read(0)
    assert(v == nil and msg == "closed", tostring(v))
    c:close(); srv:close()
  end)
end

-- Two tasks reading one connection at once: the second is told (both
-- waited on the connection's one slot, and one never woke).
do
  conc.run(function()
    local srv, c, peer = connected()
    local first = conc.task(function() return c:read("l") end)
    conc.sleep(0) -- first waits for a line now
    local second = conc.task(function() return c:read("l") end)
    raises("conn:read: another task is reading this connection", second.await, second)
    peer:write("one\n")
    assert(first:await() == "one")
    local a1 = conc.task(function() return srv:accept() end)
    conc.sleep(0)
    local a2 = conc.task(function() return srv:accept() end)
    raises("server:accept: another task is accepting on this server", a2.await, a2)
    a1:cancel()
    c:close(); peer:close(); srv:close()
  end)
end

-- A stream whose reads end mid-line: the connection's buffer drops what
-- was consumed (it kept every byte received: 20 MB sent here made the
-- process 20 MB bigger). VmHWM is the process's peak resident memory.
do
  local function peak_kb()
    for line in io.lines("/proc/self/status") do
      local kb = line:match("^VmHWM:%s+(%d+)")
      if kb then return tonumber(kb) end
    end
  end
  local before, lines
  conc.run(function()
    local srv = conc.tcp.listen("127.0.0.1", 0)
    local chunk = string.rep("x", 5000) .. "\n" .. string.rep("y", 4999) -- ends mid-line
    local w = conc.task(function()
      local c <close> = srv:accept()
      for _ = 1, 2000 do assert(c:write(chunk)) end
      c:write("\n")
    end)
    local c <close> = conc.tcp.connect("127.0.0.1", srv.port)
    c:settimeout(30)
    before, lines = peak_kb(), 0
    local x, yx = string.rep("x", 5000), string.rep("y", 4999) .. string.rep("x", 5000)
    for line in function() return c:read("l") end do
      lines = lines + 1
      assert(line == (lines == 1 and x or lines == 2001 and string.rep("y", 4999) or yx), lines)
    end
    w:await()
    srv:close()
  end)
  assert(lines == 2001, lines)
  -- (a sanitizer's allocator keeps freed blocks for a while: no bound there)
  local grew = peak_kb() - before
  assert(os.getenv("CONCLUA_SANITIZED") or grew < 8 * 1024, ("the process grew by %d KB"):format(grew))
end

print("test_tcp: ok")
