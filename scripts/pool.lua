-- pool.lua: a pool of 5 worker processes runs 9 tasks of 2 s each.
-- From the seed's "process pool" (进程池) section: apply_async with a
-- callback per task, then the map form. Five workers take the first five
-- tasks, the other four wait for a free worker: about 2 rounds (4 s), and
-- several pids appear. Each callback runs in this (the main) thread, here
-- while it waits in join.
-- Usage: conclua scripts/pool.lua [seconds-per-task]   (default 2)
local pause = tonumber(arg and arg[1] or 2)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

local function task(i, secs)
  print(("task %d runs in worker %d"):format(i, conc.pid()))
  conc.sleep(secs)
  return i * i, conc.pid()
end

local start = conc.now()
local pool <close> = conc.pool(5, {processes = true, name = "seed pool"})
for i = 1, 9 do
  pool:submit(task, i, pause):on_done(function(ok, square, pid)
    print(("callback: task %d gave %s (worker %s)"):format(i, ok and square or "an error", pid))
  end)
end
pool:join() -- every task done, every callback run
print(("9 tasks on 5 workers: %.1f s"):format(conc.now() - start))

local list = {}
for i = 1, 9 do list[i] = i end
local squares = pool:map(function(x) return x * x end, list)
print("map: " .. table.concat(squares, " "))
