-- parallel.lua: CPU-bound work on 1 thread, 2 threads, 2 processes and a
-- pool of 2 workers.
-- From the seed's "GIL" section. In Python a global interpreter lock lets
-- one thread run Python code at a time, so two threads doing arithmetic take
-- as long as one doing all of it. In conclua each thread and each process
-- runs its own Lua state in parallel: on a machine with 2 free cores, the
-- same work split in two takes about half the time either way.
-- Usage: conclua scripts/parallel.lua [iterations]   (default 100000000)
local n = math.tointeger(tonumber(arg and arg[1] or 100000000))
  or error(("%s: argument 1 must be a whole number, not '%s'"):format(arg[0], arg[1]), 0)
local half = n // 2

-- Pure arithmetic: the sum of i % 7 for i from first to last.
local function count(first, last)
  local x = 0
  for i = first, last do x = x + i % 7 end
  return x
end

local function timed(label, fn)
  local t0 = conc.now()
  local result = fn()
  local dt = conc.now() - t0
  print(("%-20s %7.3f s   (result %d)"):format(label, dt, result))
  return dt
end

print(("%d iterations, %d CPUs online"):format(n, conc.cpus()))

local one = timed("1 thread", function()
  return select(2, conc.thread(count, 1, n):join())
end)

local two = timed("2 threads", function()
  local a = conc.thread(count, 1, half)
  local b = conc.thread(count, half + 1, n)
  return select(2, a:join()) + select(2, b:join())
end)

local procs = timed("2 processes", function()
  local a = conc.process(count, 1, half)
  local b = conc.process(count, half + 1, n)
  return select(2, a:join()) + select(2, b:join())
end)

-- The same split handed to a pool of 2 worker threads, as Python's
-- Pool(2).map would do with processes (started before the clock).
local pool <close> = conc.pool(2, {name = "parallel"})
pool:apply(count, 1, 1) -- both workers are up once one has answered
local pooled = timed("pool of 2 workers", function()
  local r = pool:map(function(range) return count(range[1], range[2]) end,
                     {{1, half}, {half + 1, n}}, 1)
  return r[1] + r[2]
end)

print(("speed-up with 2 threads:   %.2fx"):format(one / two))
print(("speed-up with 2 processes: %.2fx"):format(one / procs))
print(("speed-up with a pool of 2: %.2fx"):format(one / pooled))
