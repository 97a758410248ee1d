-- process.lua: creating processes.
-- From the seed's "processes" (进程) section: two child processes print their
-- own pid and their parent's pid, work for a while, and end. A process has
-- its own memory, so it runs Lua truly in parallel with the others; the main
-- program waits for both with join.
-- Usage: conclua scripts/process.lua [seconds]   (default 3)
local pause = tonumber(arg and arg[1] or 3)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

-- One line at a time, even through a pipe, so that the lines of the three
-- processes come out in the order they are printed.
io.stdout:setvbuf("line")

local function fun(name)
  print(("process %s: my pid is %d"):format(name, conc.pid()))
  print(("process %s: my parent's pid is %d"):format(name, conc.ppid()))
  print(("process %s: start"):format(name))
  conc.sleep(pause)
  print(("process %s: end"):format(name))
end

print(("main: my pid is %d"):format(conc.pid()))
local p1 = conc.process({name = "p1"}, fun, "p1")
local p2 = conc.process({name = "p2"}, fun, "p2")
print(("main: started %s (pid %d) and %s (pid %d)"):format(p1.name, p1.pid, p2.name, p2.pid))
p1:join()
p2:join()
print(("main: both ended, exit codes %d and %d"):format(p1.exitcode, p2.exitcode))
