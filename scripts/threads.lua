-- threads.lua: creating threads, join, daemon threads.
-- From the seed's "thread creation", "join" and "daemon thread" sections.
-- Usage: conclua scripts/threads.lua [pause-seconds]   (default 1)
local pause = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

local function work(name, steps, pause)
  print(("thread %s start"):format(name))
  for i = 0, steps - 1 do
    print(("thread %s: %d"):format(name, i))
    conc.sleep(pause)
  end
  print(("thread %s end"):format(name))
end

-- 1. Start two threads; their output interleaves. The main chunk goes on
--    at once, and it does not wait for them: join does.
print("main: start")
local t1 = conc.thread({name = "1"}, work, "1", 3, pause)
local t2 = conc.thread({name = "2"}, work, "2", 3, pause)
print(("main: started %s and %s"):format(t1.name, t2.name))
t1:join()
t2:join()
print("main: joined both")

-- 2. A daemon thread dies with the program; the program still waits for
--    the ordinary thread. The daemon below would run forever.
conc.thread({name = "daemon", daemon = true}, function(pause)
  print("thread daemon start")
  while true do conc.sleep(pause) end
end, pause)
conc.thread({name = "3"}, work, "3", 2, pause)
print("main: end (the program waits for thread 3, not for the daemon)")
