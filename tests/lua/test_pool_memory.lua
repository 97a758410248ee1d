-- conc.pool's map holds a bounded amount of shared memory, whatever the
-- length of the list: chunks are queued a few at a time and each chunk's
-- results are freed once read. Run with a 16 MiB arena (the test starts
-- itself again so), a map moves about 50 MiB each way.

if os.getenv("CONCLUA_ARENA_MB") ~= "16" then
  local conclua = os.getenv("CONCLUA") or "build/conclua"
  local ok, _, code = os.execute(("CONCLUA_ARENA_MB=16 %s %s"):format(conclua, arg[0]))
  os.exit(ok and 0 or code or 1)
end

local N = 400000
local list = {}
local pad = ("."):rep(110)
for i = 1, N do list[i] = pad .. ("%010d"):format(i) end
-- (Under GCC 12's ASan a fork while another thread allocates can hang the
-- child, docs/PROCESSES.md: so the process pool comes first, before any
-- thread ends, and a first process starts the reaper thread before the
-- pool forks its workers; without it a worker forked while the reaper was
-- starting hung in ASan's allocator in about 1 run in 20.)
conc.process(function() end):join()
for _, procs in ipairs({true, false}) do
  local p <close> = conc.pool(2, {processes = procs})
  local out = p:map(function(s) return s:sub(-6) .. s end, list)
  assert(#out == N)
  for i = 1, N, 997 do assert(out[i] == list[i]:sub(-6) .. list[i], i) end
  assert(out[N] == list[N]:sub(-6) .. list[N])
end
print("test_pool_memory: ok")
