-- Soak: threads and processes hammer every primitive at once while the main
-- thread forks victim processes that hammer the same objects and SIGKILLs
-- them at random moments. At the end the invariants must hold exactly:
--
--   counts and sums: a shared-table counter under a lock, an atomic, a
--     shared table under s:with, a queue (producers' sums = consumers'), a
--     bounded buffer under a condition, a pipe, barrier rounds on both sides;
--   bounds: never more than SEM_N holders inside the semaphore, whose value
--     is SEM_N again at the end;
--   shared-table totals: the victims' keys hold whole values only, pairs,
--     the key count and # agree, and the table still works for everyone;
--   liveness: a condition shared with killed waiters still wakes the live
--     ones (every steady wait is bounded and counted as a failure), the
--     locks the victims died holding are taken over, and a fresh process
--     starts and returns a value (the arena allocator is intact).
--
-- CONCLUA_SOAK_SECONDS (default 4) sets how long the hammering lasts;
-- CONCLUA_SOAK_SEED the random seed. Run: build/conclua tests/soak/soak.lua
--
-- Under ThreadSanitizer only threads hammer (no process, no victim): an
-- arena block written by a parent thread, freed in a child and reused by
-- another parent thread looks like a race to TSan, which cannot see the
-- other process (docs/PROCESSES.md, "Sanitizers").
local SECONDS = tonumber(os.getenv("CONCLUA_SOAK_SECONDS")) or 4
local SEED = tonumber(os.getenv("CONCLUA_SOAK_SEED")) or os.time()
local T = 60 + 2 * SECONDS -- bound for any single wait at the end
local SEM_N, BUF_N = 3, 4
math.randomseed(SEED)
local maps = io.open("/proc/self/maps")
local TSAN = maps and maps:read("a"):find("libtsan", 1, true) ~= nil
if maps then maps:close() end

local stop = conc.event()
local s = conc.shared({n = 0, m = 0})  -- steady counters; victims write v* keys
local lk = conc.lock("soak counter")
local cnt = conc.atomic(0)
local sem = conc.semaphore(SEM_N)
local inside, over = conc.atomic(0), conc.atomic(0)
local q = conc.queue(64)
local bl = conc.lock("soak buffer")
local cond = conc.condition(bl)
local buf = conc.shared({items = 0, put = 0, got = 0})
local bar, bstop = conc.barrier(2), conc.atomic(0)
local vlock = conc.lock("victims' lock")
local vq = conc.queue(16)
local failures = conc.queue() -- steady workers report what went wrong

local function fail(what) failures:put(what) end

-- ---- steady workers (never killed): every effect is counted ----

local function counter_worker()
  local mine = 0
  while not stop:is_set() do
    lk:with(function() s.n = s.n + 1 end)
    s:with(function() s.m = s.m + 1 end)
    cnt:add(1)
    mine = mine + 1
    if sem:acquire(5) then
      if inside:add(1) > SEM_N then over:add(1) end
      inside:add(-1)
      sem:release()
    else
      fail("semaphore acquire timed out")
    end
  end
  return mine
end

local function producer(id)
  local sum, i = 0, 0
  while not stop:is_set() do
    i = i + 1
    if q:put(id * 1000000 + i, 5) then sum = sum + id * 1000000 + i
    else fail("queue put timed out") end
  end
  return sum
end

local function consumer()
  local sum = 0
  for v in q:iter() do sum = sum + v end
  return sum
end

-- A bounded buffer under the condition the victims also wait on. A victim
-- woken by a notify passes it on; one killed just after being notified
-- takes it along (as a thread ending then would), so waits go in short
-- slices, counted, under an overall bound.
local function buf_wait(pred)
  local t0 = conc.now()
  while not cond:wait_for(pred, 0.05) do
    if conc.now() - t0 > 10 then return false end
  end
  return true
end

local function buf_producer()
  local n = 0
  while not stop:is_set() do
    local ok = cond:with(function()
      if not buf_wait(function() return buf.items < BUF_N end) then return false end
      buf.items = buf.items + 1
      buf.put = buf.put + 1
      cond:notify(1)
      return true
    end)
    if ok then n = n + 1 else fail("buffer producer waited 10 s") break end
  end
  cond:with(function() buf.done = true cond:notify_all() end)
  return n
end

local function buf_consumer()
  local n = 0
  while true do
    local r = cond:with(function()
      if not buf_wait(function() return buf.items > 0 or buf.done end) then return "stuck" end
      if buf.items == 0 then return "done" end
      buf.items = buf.items - 1
      buf.got = buf.got + 1
      cond:notify(1)
      return "got"
    end)
    if r == "got" then n = n + 1
    elseif r == "done" then return n
    else fail("buffer consumer waited 10 s") return n end
  end
end

local function barrier_party()
  local rounds = 0
  while true do
    local idx = bar:wait(10)
    if idx == 0 then bstop:set(stop:is_set() and 1 or 0) end
    bar:wait(10)
    if bstop:get() == 1 then return rounds end
    rounds = rounds + 1
  end
end

-- ---- victims: forked and SIGKILLed at random moments ----

local function victim(round)
  local keys, vals = {}, {}
  for i = 0, 63 do
    keys[i] = i < 16 and 1000 + i or ("victim key %d, long enough to live outside the slot"):format(i)
    local n = round * 64 + i
    vals[i] = ("%d:"):format(n) .. string.rep(string.char(65 + n % 26), 100 + n % 150)
  end
  local i = 0
  while true do
    i = i + 1
    local k = i % 64
    if i % 5 == 0 then s[keys[k]] = nil else s[keys[k]] = vals[k] end
    if i % 7 == 0 then vlock:with(function() cnt:get() end) end
    if i % 11 == 0 then
      cond:with(function() if cond:wait(0.001) then cond:notify(1) end end) -- pass it on
    end
    if i % 13 == 0 then vq:try_put(vals[k]) end
    if i % 17 == 0 then vq:try_get() end
  end
end

local function whole(v)
  local n, rest = tostring(v):match("^(%d+):(.*)$")
  return n and rest == string.rep(string.char(65 + n % 26), 100 + n % 150)
end

-- ---- run ----

-- The steady process starts before any thread (a fork while other threads
-- allocate can hang under GCC's ASan runtime: docs/PROCESSES.md).
local pa, pb = conc.pipe(false)
local piper = (TSAN and conc.thread or conc.process)(function()
  local sum, i = 0, 0
  while not stop:is_set() do
    i = i + 1
    pb:send(i)
    sum = sum + i
    lk:with(function() s.n = s.n + 1 end) -- the counter from another process
    cnt:add(1)
  end
  pb:close()
  return sum, i
end)

local threads = {
  counters = {}, producers = {}, consumers = {},
}
for i = 1, 3 do threads.counters[i] = conc.thread(counter_worker) end
for i = 1, 2 do threads.producers[i] = conc.thread(producer, i) end
for i = 1, 2 do threads.consumers[i] = conc.thread(consumer) end
local bp = conc.thread(buf_producer)
local barrier_threads = {conc.thread(barrier_party), conc.thread(barrier_party)}
local pipe_reader = conc.thread(function()
  local sum = 0
  while true do
    local v, why = pa:recv(T)
    if v == nil then assert(why == "closed", why) return sum end
    sum = sum + v
  end
end)
local bc = conc.thread(buf_consumer)

local kills, rounds, t0 = 0, 0, conc.now()
while TSAN and conc.now() - t0 < SECONDS do conc.sleep(0.05) end
while conc.now() - t0 < SECONDS do
  rounds = rounds + 1
  local p = conc.process(victim, rounds)
  conc.sleep(math.random() * 0.02)
  if p:kill("SIGKILL") then kills = kills + 1 end
  local ok, err = pcall(p.join, p, T)
  assert(not ok and tostring(err):find("killed by signal 9", 1, true),
         "victim " .. rounds .. ": " .. tostring(err))
end
stop:set()

local function joined(t)
  local r = table.pack(t:join(T))
  assert(r[1] == true, "a steady worker did not end within " .. T .. " s")
  return table.unpack(r, 2, r.n)
end

local steady = 0
for _, t in ipairs(threads.counters) do steady = steady + joined(t) end
local psum, pcount = joined(piper)
local produced = 0
for _, t in ipairs(threads.producers) do produced = produced + joined(t) end
q:close()
local consumed = 0
for _, t in ipairs(threads.consumers) do consumed = consumed + joined(t) end
local bput = joined(bp)
local bgot = joined(bc)
local r1, r2 = joined(barrier_threads[1]), joined(barrier_threads[2])
local piped = joined(pipe_reader)

local problems = {}
while true do
  local f = failures:try_get()
  if f == nil then break end
  problems[#problems + 1] = f
end
assert(#problems == 0, "steady workers failed: " .. table.concat(problems, "; "))

-- counts and sums
assert(s.n == steady + pcount, ("lock counter %d, expected %d"):format(s.n, steady + pcount))
assert(s.m == steady, ("s:with counter %d, expected %d"):format(s.m, steady))
assert(cnt:get() == steady + pcount, ("atomic %d, expected %d"):format(cnt:get(), steady + pcount))
assert(produced == consumed, ("queue: %d produced, %d consumed"):format(produced, consumed))
assert(bput == bgot and buf.put == bput and buf.got == bgot and buf.items == 0,
       ("buffer: %d put, %d got, items %d"):format(bput, bgot, buf.items))
assert(r1 == r2, ("barrier rounds %d and %d"):format(r1, r2))
assert(piped == psum, ("pipe: %d sent, %d received"):format(psum, piped))
-- bounds
assert(over:get() == 0, "more than " .. SEM_N .. " inside the semaphore")
assert(sem:value() == SEM_N, "semaphore value " .. sem:value())
-- shared-table totals: steady keys exact (above), victims' values whole
local keys = 0
for k, v in pairs(s) do
  keys = keys + 1
  if k ~= "n" and k ~= "m" then assert(whole(v), "torn value at key " .. tostring(k)) end
end
assert(keys <= 66, keys .. " keys")
local border = 0
while s[border + 1] ~= nil do border = border + 1 end
assert(#s == border)
-- liveness after the kills
assert(vlock:acquire(T), "the victims' lock was never taken over")
vlock:release()
assert(cond:with(function() cond:notify_all() return true end))
local fresh = (TSAN and conc.thread or conc.process)(function(x) return x * 2, s.n end, 21)
local okf, r, n = fresh:join(T)
assert(okf and r == 42 and n == s.n)

print(("soak: ok (%.1f s, seed %d): %d victims, %d killed; %d counted updates, %d queue sum, "
       .. "%d buffer items, %d barrier rounds, %d piped"):format(
  conc.now() - t0, SEED, rounds, kills, steady + pcount, produced, bput, r1, pcount))
