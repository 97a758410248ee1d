-- echo.lua: why coroutines suit I/O-bound work.
-- An echo server and N clients, all tasks of one thread's event loop. Each
-- client connects, sends a few lines and reads each echo back; the server
-- has a small delay per reply (standing in for a slow backend). First the
-- clients run one after another, then all at once: concurrently they spend
-- their waits together, so the run takes about as long as one client.
-- Usage: conclua scripts/echo.lua [clients] [lines] [delay-seconds]
--        (defaults 100 clients, 3 lines, 0.01 s)
local nclients = tonumber(arg and arg[1] or 100)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)
local nlines = tonumber(arg and arg[2] or 3)
  or error(("%s: argument 2 must be a number, not '%s'"):format(arg[0], arg[2]), 0)
local delay = tonumber(arg and arg[3] or 0.01)
  or error(("%s: argument 3 must be a number, not '%s'"):format(arg[0], arg[3]), 0)

local function serve(srv)
  while true do
    local c = srv:accept()
    if not c then return end -- closed
    conc.task(function()
      while true do
        local line = c:read("L")
        if not line then break end
        conc.sleep(delay)
        c:write(line)
      end
      c:close()
    end)
  end
end

local function client(port, id)
  local c = assert(conc.tcp.connect("127.0.0.1", port))
  for i = 1, nlines do
    local msg = ("client %d line %d"):format(id, i)
    assert(c:write(msg, "\n"))
    assert(c:read("l") == msg, "bad echo")
  end
  c:close()
  return id
end

conc.run(function()
  local srv = assert(conc.tcp.listen("127.0.0.1", 0))
  local server = conc.task(serve, srv)
  print(("echo server on 127.0.0.1:%d, %d clients x %d lines, %g s per reply")
        :format(srv.port, nclients, nlines, delay))

  local t0 = conc.now()
  for id = 1, nclients do client(srv.port, id) end
  local one_by_one = conc.now() - t0

  t0 = conc.now()
  local clients = {}
  for id = 1, nclients do
    clients[id] = conc.task(client, srv.port, id)
  end
  local ids = conc.gather(table.unpack(clients))
  local together = conc.now() - t0
  assert(#ids == nclients and ids[nclients] == nclients)

  print(("one after another: %.3f s"):format(one_by_one))
  print(("all at once:       %.3f s (%.1fx faster)"):format(together, one_by_one / together))
  srv:close()
  server:await()
end)
