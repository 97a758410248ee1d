-- Runs scripts/pool.lua (9 tasks on a pool of 5 processes, then map) as a
-- user would, with a short pause per task, and checks what it prints and
-- how long it takes.
local conclua = assert(os.getenv("CONCLUA"), "CONCLUA is not set")

local function count(out, pattern)
  local n = 0
  for _ in out:gmatch(pattern) do n = n + 1 end
  return n
end

-- 1 s a task: two rounds take about 2 s, nine in a row 9 s; the bound of
-- 6 pauses leaves room for a slow (sanitizer) start of five processes
local pause = 1
local t0 = conc.now()
local f = assert(io.popen(("%s scripts/pool.lua %s 2>&1"):format(conclua, pause)))
local out = f:read("a")
local ok = f:close()
local dt = conc.now() - t0
assert(ok, out)

-- every task ran in a worker process, and its callback ran
assert(count(out, "task %d runs in worker %d+") == 9, out)
assert(count(out, "callback: task %d gave %d+ %(worker %d+%)") == 9, out)
for i = 1, 9 do
  assert(out:find(("callback: task %d gave %d "):format(i, i * i), 1, true), out)
end
-- several workers, at most five, none of them this process
local pids, n = {}, 0
for pid in out:gmatch("runs in worker (%d+)") do
  if not pids[pid] then n = n + 1 end
  pids[pid] = true
end
assert(n >= 2 and n <= 5, out)
assert(not pids[tostring(conc.pid())], out)
-- a callback reports the worker that ran its task
for task, pid in out:gmatch("task (%d) runs in worker (%d+)") do
  assert(out:find(("callback: task %s gave %d (worker %s)"):format(task, task * task, pid), 1, true), out)
end
-- two rounds: at least 2 pauses; far less than 9 pauses one after another
local took = tonumber(out:match("9 tasks on 5 workers: ([%d.]+) s"))
assert(took and took >= 2 * pause - 0.05 and took < 6 * pause, out)
assert(dt < 9 * pause + 5, ("the script took %.1f s"):format(dt))
assert(out:find("map: 1 4 9 16 25 36 49 64 81", 1, true), out)
print("test_scenario_pool: ok")
