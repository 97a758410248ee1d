-- pipe.lua: two processes talk over a pipe.
-- From the seed's "Pipe" section (管道). conc.pipe() returns the two ends of
-- a duplex pipe: each end can send and receive. Each process sends a
-- greeting on its end and receives the other's. A one-way pipe
-- (conc.pipe(false)) follows: its first end only receives, its second end
-- only sends; once the sender closes its end and everything it sent has been
-- received, recv returns nil, "closed".
-- Usage: conclua scripts/pipe.lua [seconds]   (default 1)
local pause = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

io.stdout:setvbuf("line") -- one line at a time, even through a pipe

local function func1(conn1)
  local info = "Hello!"
  print(("process 1 (pid %d) sends: %s"):format(conc.pid(), info))
  conc.sleep(pause)
  conn1:send(info)
  print(("process 1 got from process 2: %s"):format(conn1:recv()))
  conc.sleep(pause)
end

local function func2(conn2)
  local info = "你好!"
  print(("process 2 (pid %d) sends: %s"):format(conc.pid(), info))
  conc.sleep(pause)
  conn2:send(info)
  print(("process 2 got from process 1: %s"):format(conn2:recv()))
  conc.sleep(pause)
end

local conn1, conn2 = conc.pipe()
local p1 = conc.process(func1, conn1)
local p2 = conc.process(func2, conn2)
p1:join()
p2:join()

-- One way: the child sends three numbers and closes its end.
local reader, writer = conc.pipe(false)
local p3 = conc.process(function()
  for i = 1, 3 do writer:send(i) end
  writer:close()
end)
while true do
  local v, err = reader:recv()
  if v == nil then
    print(("main: recv returned nil, %q: the writer closed its end"):format(err))
    break
  end
  print(("main: received %d"):format(v))
end
p3:join()
