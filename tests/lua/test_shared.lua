-- conc.shared: values and keys, length and the table library, pairs while
-- others write, with/hold (exclusion, reentrancy, errors, timeouts), atomic
-- compound updates from several threads, deadlock detection, processes.

local raises = require("testlib").raises

local function sorted_keys(s)
  local ks = {}
  for k in pairs(s) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return table.concat(ks, ",")
end

-- construction
do
  local s = conc.shared()
  assert(tostring(s):find("^conc%.shared '.*test_shared%.lua:%d+' %("), tostring(s))
  assert(#s == 0 and next({}) == nil and sorted_keys(s) == "")
  local init = {10, 20, x = "y", [true] = false}
  local c = conc.shared(init)
  init.x = "changed" -- the init table is copied
  assert(c[1] == 10 and c[2] == 20 and c.x == "y" and c[true] == false and #c == 2)
  raises("table expected", conc.shared, 5)
  raises("shared table keys must be booleans, numbers or strings", conc.shared, {[{}] = 1})
end

-- values: copied in and out, subtypes kept; nil deletes
do
  local s = conc.shared()
  s.i, s.f, s.t, s.b, s.str = 3, 3.0, true, false, "a\0b"
  assert(math.type(s.i) == "integer" and math.type(s.f) == "float")
  assert(s.t == true and s.b == false and s.str == "a\0b" and #s.str == 3)
  s.big = string.rep("x", 100000)
  assert(#s.big == 100000)
  local t = {1, {2}, k = "v"}
  s.tab = t
  t.k = "changed"
  local copy = s.tab
  assert(copy ~= t and copy.k == "v" and copy[2][1] == 2)
  copy.k = "local change"
  assert(s.tab.k == "v") -- reading gives a fresh copy
  s.fn = function(x) return x + 1 end
  assert(s.fn(1) == 2)
  s.str = nil
  assert(s.str == nil)
  assert(sorted_keys(s) == "b,big,f,fn,i,t,tab")
  raises("cannot copy a coroutine", function() s.co = coroutine.create(print) end)
  assert(s.co == nil)
end

-- conc objects are stored by reference
do
  local s = conc.shared()
  local child, q = conc.shared(), conc.queue()
  s.child, s.q = child, q
  s.child.x = 1 -- writes through to the same shared table
  assert(child.x == 1 and rawequal(s.child, child) and rawequal(s.q, q))
  s.q:put("via field")
  assert(q:get(0) == "via field")
end

-- keys: Lua's normalisation, and the keys that are refused
do
  local s = conc.shared()
  s[1] = "int"
  assert(s[1.0] == "int")
  s[2.0] = "float key"
  assert(s[2] == "float key" and math.type(next({[2.0] = 1})) == "integer")
  s[1.5], s["1"], s[true], s[-0.0] = "f", "str", "bool", "zero"
  assert(s[1.5] == "f" and s["1"] == "str" and s[true] == "bool" and s[0] == "zero")
  assert(s[1] == "int" and s[false] == nil)
  s[math.maxinteger], s[math.mininteger] = "max", "min"
  assert(s[math.maxinteger] == "max" and s[math.mininteger] == "min")
  s[2 ^ 63] = "huge float" -- not representable as an integer: stays a float key
  assert(s[2 ^ 63] == "huge float" and s[math.mininteger] == "min")
  raises("shared table index is nil", function() s[nil] = 1 end)
  raises("shared table index is nil", function() return s[nil] end)
  raises("shared table index is NaN", function() s[0 / 0] = 1 end)
  raises("keys must be booleans, numbers or strings (got table)", function() s[{}] = 1 end)
  raises("(got function)", function() return s[print] end)
  -- the method names read as methods; other names are plain keys
  s.with = "data"
  assert(type(s.with) == "function" and type(s.hold) == "function")
  assert(s.withx == nil)
end

-- length, ipairs and the table library
do
  local s = conc.shared()
  for i = 1, 5 do s[i] = i * 10 end
  assert(#s == 5)
  s[3] = nil
  assert(#s == 2) -- a border
  s[3] = 30
  assert(#s == 5)
  table.insert(s, 60)
  table.insert(s, 1, 0)
  assert(#s == 7 and s[1] == 0 and s[2] == 10 and s[7] == 60)
  assert(table.remove(s) == 60 and table.remove(s, 1) == 0 and #s == 5)
  assert(table.concat(s, ",") == "10,20,30,40,50")
  local n, sum = 0, 0
  for i, v in ipairs(s) do n, sum = n + 1, sum + v; assert(v == i * 10) end
  assert(n == 5 and sum == 150)
  assert(select("#", table.unpack(s)) == 5)
end

-- pairs: each key present throughout is seen once; deleted keys are skipped
do
  local s = conc.shared()
  for i = 1, 100 do s["k" .. i] = i end
  local seen, n = {}, 0
  for k, v in pairs(s) do
    assert(not seen[k] and s[k] == v)
    seen[k], n = true, n + 1
    if n == 1 then
      for i = 1, 100 do
        if "k" .. i ~= k then s["k" .. i] = nil end -- delete all the others
      end
      for i = 1, 200 do s["new" .. i] = i end -- added keys: not in the snapshot
    end
  end
  assert(n == 1, n)
  -- while another thread writes constantly
  local w = conc.shared()
  for i = 1, 1000 do w[i] = i end
  local stop = conc.queue()
  local writer = conc.thread(function(w, stop)
    local i = 0
    while stop:try_get() == nil do
      i = i + 1
      w[1000 + i % 500] = i -- overwrites, adds
      w["extra" .. i % 50] = i
    end
  end, w, stop)
  for _ = 1, 20 do
    local cnt = 0
    for k, v in pairs(w) do
      if math.type(k) == "integer" and k <= 999 then cnt = cnt + 1; assert(v == k) end
    end
    assert(cnt == 999, cnt)
  end
  stop:put(true)
  writer:join()
end

-- with: results, arguments, errors release the hold, nesting
do
  local s = conc.shared({n = 0})
  local a, b = s:with(function(x, y) s.n = s.n + x; return s.n, y end, 5, "y")
  assert(a == 5 and b == "y")
  local ok, err = pcall(s.with, s, function() s.n = 99; error("boom") end)
  assert(not ok and tostring(err):find("boom"))
  assert(s.n == 99)
  s:with(function() s:with(function() s.n = s.n + 1 end) end) -- reentrant
  assert(s.n == 100)
  raises("bad argument #2 to 'with' (function expected, got no value)", s.with, s)
  -- hold: a to-be-closed guard
  do
    local g <close> = s:hold()
    s.n = s.n + 1
    assert(tostring(g):find("conc.guard of shared"))
  end
  local g = s:hold(1)
  g:release()
  g:release() -- a second release does nothing
  assert(s.n == 101)
  -- after an error and releases, another thread can take it
  local t = conc.thread(function(s) return s:with(function() return s.n end) end, s)
  assert(select(2, t:join(30)) == 101)
end

-- while one thread holds the table, single reads and writes of others wait
do
  local s = conc.shared({x = 1})
  local started, done = conc.queue(), conc.queue()
  local g = s:hold()
  local t = conc.thread(function(s, started, done)
    started:put(true)
    s.x = 2
    done:put(s.x)
  end, s, started, done)
  started:get(30)
  assert(done:get(0.1) == nil) -- blocked on our hold
  assert(s.x == 1)             -- our own access goes through
  -- another thread's hold with a timeout gives up
  local t2 = conc.thread(function(s) return s:hold(0.05) end, s)
  local ok2, guard, msg = t2:join(30)
  assert(ok2 and guard == nil and msg == "timeout")
  g:release()
  assert(done:get(30) == 2)
  t:join()
end

-- compound updates: with() is atomic, a bare read-modify-write is not
do
  local NT, N = 4, 2000
  local s = conc.shared({locked = 0, bare = 0})
  local ts = {}
  for i = 1, NT do
    ts[i] = conc.thread(function(s, N)
      for _ = 1, N do
        s:with(function() s.locked = s.locked + 1 end)
        s.bare = s.bare + 1 -- the ATM race: may lose updates
      end
    end, s, N)
  end
  for i = 1, NT do assert(ts[i]:join(60)) end
  assert(s.locked == NT * N, s.locked)
  assert(s.bare >= N and s.bare <= NT * N, s.bare)
  -- the same through hold()
  local h = conc.shared({n = 0})
  for i = 1, NT do
    ts[i] = conc.thread(function(h, N)
      for _ = 1, N do
        local g <close> = h:hold()
        h.n = h.n + 1
      end
    end, h, N)
  end
  for i = 1, NT do assert(ts[i]:join(60)) end
  assert(h.n == NT * N)
end

-- deadlock: two threads each hold one table and touch the other's
do
  local s1, s2, q1, q2 = conc.shared(), conc.shared(), conc.queue(), conc.queue()
  local function side(mine, other, tell, hear)
    return mine:with(function()
      tell:put(true)
      hear:get(30)
      local ok, err = pcall(function() other.x = 1 end)
      return ok, err
    end)
  end
  local a = conc.thread({name = "cook1"}, side, s1, s2, q1, q2)
  local b = conc.thread({name = "cook2"}, side, s2, s1, q2, q1)
  local _, oka, erra = a:join(30)
  local _, okb, errb = b:join(30)
  assert(oka ~= okb, "exactly one side sees the deadlock")
  local err = oka and errb or erra
  assert(tostring(err):find("^deadlock: thread 'cook%d' waits for rlock"), tostring(err))
end

-- processes share the same table
if conc.process then
  local s = conc.shared({list = 0})
  local p = conc.process(function(s)
    s.child = "written by the child"
    s:with(function() s.list = s.list + 1 end)
  end, s)
  p:join(30)
  assert(s.child == "written by the child" and s.list == 1)
end

-- a writer process SIGKILLed at random moments while it writes long strings
-- (boxed values, long string keys, grow and shrink): every value stays
-- whole, pairs and # agree with what is there, and the arena keeps working
-- for the parent (docs/PROCESSES.md, "a child killed in the middle").
if conc.process then
  local rounds = tonumber(os.getenv("CONCLUA_KILL_ROUNDS")) or 40
  local s, n = conc.shared(), conc.atomic(0)
  local function key(i)
    local k = i % 60
    return k < 30 and k + 1 or ("a long string key, number %d of the test"):format(k)
  end
  local function val(i)
    return ("%d:"):format(i) .. string.rep(string.char(65 + i % 26), 100 + i % 200)
  end
  local function whole(v)
    local i, rest = v:match("^(%d+):(.*)$")
    return i and rest == string.rep(string.char(65 + i % 26), 100 + i % 200)
  end
  math.randomseed(7)
  for round = 1, rounds do
    n:set(0)
    local p = conc.process(function()
      local keys, vals = {}, {} -- made first: the loop should spend its time in s
      for i = 0, 599 do keys[i], vals[i] = key(i), val(round * 600 + i) end
      for i = 0, math.huge do
        if (i // 500) % 2 == 0 or i % 4 == 0 then s[keys[i % 600]] = vals[i % 600]
        else s[keys[i % 600]] = nil end
        n:add(1)
      end
    end)
    local target, t0 = math.random(1, 3000), conc.now()
    while n:get() < target and p:alive() do
      assert(conc.now() - t0 < 30, "the writer made no progress")
    end
    p:kill("SIGKILL")
    local ok, err = pcall(p.join, p, 30)
    assert(not ok and tostring(err):find("killed by signal 9", 1, true), tostring(err))
    local count = 0
    for k, v in pairs(s) do
      count = count + 1
      assert(whole(v), ("round %d: key %s holds a torn value"):format(round, tostring(k)))
    end
    local border = 0
    while s[border + 1] ~= nil do border = border + 1 end
    assert(#s == border, ("round %d: # is %d, keys 1..%d are present"):format(round, #s, border))
    local q = conc.process(function() return string.rep("z", 1000) end) -- allocates
    local okq, r = q:join(30)
    assert(okq and r == string.rep("z", 1000))
    assert(count <= 60)
  end
end

print("test_shared: ok")
