-- race.lua: the lost update. Several threads add 1 to one counter, many
-- times. `counter.n = counter.n + 1` is two steps, a read and a write, and
-- another thread can write in between: its update is then overwritten and
-- lost, so the plain counter ends short. With a lock around the two steps,
-- or with conc.atomic (one indivisible add), every update counts.
-- Usage: conclua scripts/race.lua [increments-per-thread [threads]]
--        (defaults 100000 and 4)
local function count_arg(i, default)
  local v = arg and arg[i]
  if v == nil then return default end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then
    error(("race.lua: argument %d must be a positive integer (got '%s')"):format(i, v), 0)
  end
  return n
end
local per_thread = count_arg(1, 100000)
local nthreads = count_arg(2, 4)

-- Starts nthreads threads running body(i) per_thread times, all at once.
local function hammer(body, ...)
  local start = conc.barrier(nthreads)
  local threads = {}
  for t = 1, nthreads do
    threads[t] = conc.thread(function(...)
      start:wait()
      for _ = 1, per_thread do body(...) end
    end, ...)
  end
  for _, t in ipairs(threads) do t:join() end
end

local expected = per_thread * nthreads

local plain = conc.shared({n = 0})
local t0 = conc.now()
hammer(function(c) c.n = c.n + 1 end, plain)
print(("plain shared counter:  %d of %d (%d updates lost) in %.2f s"):format(
  plain.n, expected, expected - plain.n, conc.now() - t0))

local locked, lock = conc.shared({n = 0}), conc.lock("counter")
t0 = conc.now()
hammer(function(c, l)
  local g <close> = l:hold()
  c.n = c.n + 1
end, locked, lock)
print(("with a lock:           %d of %d in %.2f s"):format(locked.n, expected, conc.now() - t0))

local atomic = conc.atomic(0)
t0 = conc.now()
hammer(function(a) a:add(1) end, atomic)
print(("with conc.atomic:      %d of %d in %.2f s"):format(atomic:get(), expected, conc.now() - t0))
