-- process_queue.lua: processes talk through a queue.
-- From the seed's "multiprocessing.Queue" section (进程间通信). A global
-- variable is not shared between processes (each has its own copy), so the
-- three processes pass data through a queue, the same conc.queue that
-- threads use. Each process takes an item, appends '1' and puts it back.
-- Usage: conclua scripts/process_queue.lua [seconds]   (default 2)
local pause = tonumber(arg and arg[1] or 2)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

io.stdout:setvbuf("line") -- one line at a time, even through a pipe

local function worker(name, mq)
  print(("process %s: start"):format(name))
  local item = mq:get()
  print(("process %s: got %s"):format(name, item))
  conc.sleep(pause)
  print(("process %s: put %s"):format(name, item .. "1"))
  mq:put(item .. "1")
  print(("process %s: end"):format(name))
end

local mq = conc.queue()
mq:put("1")
mq:put("2")
mq:put("3")

-- As in the seed, each process is started and joined in turn.
for i = 0, 2 do
  local p = conc.process({name = "p" .. i}, worker, "p" .. i, mq)
  p:join()
end

-- The main program reads what the processes left in the queue.
for _ = 1, 3 do
  print(("main: %s"):format(mq:get()))
end
