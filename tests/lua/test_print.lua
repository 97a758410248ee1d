-- print writes whole lines: two threads and a process print at once into
-- one pipe; every line must arrive intact (Lua's own print tore about one
-- line in thirty here).
local conclua = os.getenv("CONCLUA") or "build/conclua"
local N = 15000
local script = os.tmpname()
local f = assert(io.open(script, "w"))
f:write(([[
local N = %d
local go = conc.event()
local function talk(who)
  go:wait()
  for i = 1, N do print(who, i, "abcdefghijklmnopqrstuvwxyz", who) end
end
-- the process first: a fork while other threads allocate can hang in
-- GCC 12's ASan allocator, which takes no lock around fork()
local p = conc.process(talk, "p1")
local a = conc.thread(talk, "t1")
local b = conc.thread(talk, "t2")
io.write("io.write before print ")  -- buffered: must come out before the next line
print("main", 0, "abcdefghijklmnopqrstuvwxyz", "main")
go:set()
a:join(); b:join(); p:join()
]]):format(N))
f:close()
local p = assert(io.popen(conclua .. " " .. script .. " 2>&1; echo \"exit=$?\""))
local out = p:read("a")
p:close()
os.remove(script)
local counts, bad = {}, {}
for line in out:gmatch("[^\n]*\n") do
  local who, i, who2 = line:match("^(%w+)\t(%d+)\tabcdefghijklmnopqrstuvwxyz\t(%w+)\n$")
  if who and who == who2 then
    counts[who] = (counts[who] or 0) + 1
  elseif line ~= "exit=0\n" and line ~= "io.write before print main\t0\tabcdefghijklmnopqrstuvwxyz\tmain\n" then
    bad[#bad + 1] = line
  end
end
assert(#bad == 0, #bad .. " torn lines, first: " .. tostring(bad[1]))
assert(counts.t1 == N and counts.t2 == N and counts.p1 == N,
       ("lines lost: t1=%s t2=%s p1=%s"):format(counts.t1, counts.t2, counts.p1))
assert(out:find("io.write before print main\t0", 1, true), "io.write order lost")
assert(out:find("exit=0\n$"), out:sub(-200))
print("test_print: ok")
