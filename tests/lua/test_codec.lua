-- test_codec.lua: the value codec (docs/CODEC.md), through the debug entries
-- conc._encode / conc._decode, then across real threads.
-- Run: conclua tests/lua/test_codec.lua   (exit status 1 on any failure)
local conc = conc or require "conc"
local enc = conc._encode
-- Round trips decode as the runtime does; malformed input goes through the
-- untrusted decoder (conc._decode without its second argument).
local function dec(s) return conc._decode(s, true) end
local udec = conc._decode
local V = "\2" -- the format version byte

local checks, failures = 0, 0
local function check(cond, what)
  checks = checks + 1
  if not cond then
    failures = failures + 1
    io.stderr:write("FAIL: ", tostring(what), "\n", debug.traceback("", 2), "\n")
  end
end

local function rt(...) return dec(enc(...)) end

-- Under a sanitizer every Lua allocation goes through its allocator: "a million" is 100,000 there
-- (still 1000 times the old depth limit), to stay within the test's timeout.
local maps = io.open("/proc/self/maps")
local SANITIZED = maps and maps:read("a"):find("lib[at]san") ~= nil
if maps then maps:close() end
local MILLION = SANITIZED and 100000 or 1000000

-- A linked list of n nodes {v = i, next = ...}, and its length if its values run 1..n.
local function list(n)
  local head
  for i = n, 1, -1 do head = {v = i, next = head} end
  return head
end
local function list_len(l)
  local c, inorder = 0, true
  while l do
    c = c + 1
    inorder = inorder and l.v == c
    l = l.next
  end
  return inorder and c or -c
end

-- f(...) must raise an error containing `text` (plain find).
local function raises(text, f, ...)
  local ok, err = pcall(f, ...)
  check(not ok and type(err) == "string" and err:find(text, 1, true),
        ("expected an error with %q, got %s"):format(text, ok and "success" or tostring(err)))
end

-- Every way of cutting s short must be refused as malformed.
local function all_prefixes_fail(s, what)
  for i = 0, #s - 1 do
    local ok, err = pcall(udec, s:sub(1, i))
    if ok or not tostring(err):find("malformed data", 1, true) then
      check(false, ("%s: prefix of %d/%d bytes: %s"):format(what, i, #s, tostring(err)))
      return
    end
  end
  check(true)
end

---------------------------------------------------------------- scalars
do
  local a, b, c, d = rt(nil, true, false, nil)
  check(a == nil and b == true and c == false and d == nil, "nil and booleans")
  check(select("#", rt(nil, nil, nil)) == 3, "trailing nils kept")
  check(select("#", rt()) == 0, "no values")
  for _, v in ipairs({0, 1, -1, 127, 128, -128, 255, 256, 1 << 31, -(1 << 31), 1 << 53,
                      math.maxinteger, math.mininteger, 123456789012345}) do
    local r = rt(v)
    check(r == v and math.type(r) == "integer", "integer " .. v)
  end
  for _, v in ipairs({0.0, 1.0, 3.0, -2.5, 1.5e300, 2 ^ 63, math.pi, math.huge, -math.huge,
                      math.mininteger + 0.0}) do
    local r = rt(v)
    check(r == v and math.type(r) == "float", "float " .. v)
  end
  local nz = rt(-0.0)
  check(math.type(nz) == "float" and 1 / nz == -math.huge, "negative zero")
  local nan = rt(0 / 0)
  check(nan ~= nan and math.type(nan) == "float", "NaN")
  check(math.type(rt(3)) == "integer" and math.type(rt(3.0)) == "float", "subtype kept")
end

---------------------------------------------------------------- strings
do
  for _, s in ipairs({"", "a", "hello", ("x"):rep(31), ("y"):rep(32), ("z"):rep(33),
                      ("w"):rep(127), ("v"):rep(128), ("u"):rep(70000)}) do
    check(rt(s) == s, "string of length " .. #s)
  end
  check(rt("a\0b\0") == "a\0b\0", "embedded NULs")
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  check(rt(all) == all, "all 256 byte values")
  local big = ("0123456789abcdef"):rep(65536) -- 1 MiB
  check(rt(big) == big, "1 MiB string")
  check(rt(big, 1, big) == big, "two big strings")
  -- compactness of the common items
  check(#enc(5) == 3, "a small integer takes 3 bytes, got " .. #enc(5))
  check(#enc("abc") == 6, "a short string takes 6 bytes, got " .. #enc("abc"))
  check(enc(1):byte(1) == 2, "version 2, no flags")
end

---------------------------------------------------------------- tables
do
  local t = rt({1, 2, 3, x = "a", y = {z = {w = true}}, [1.5] = "f", [true] = "b", [-7] = "n"})
  check(t[1] == 1 and t[2] == 2 and t[3] == 3 and #t == 3, "array part")
  check(t.x == "a" and t.y.z.w == true, "nested fields")
  check(t[1.5] == "f" and t[true] == "b" and t[-7] == "n", "non-string keys")

  local h = rt({1, nil, 3, nil, 5})
  check(h[1] == 1 and h[2] == nil and h[3] == 3 and h[4] == nil and h[5] == 5, "holes")

  local sparse = {[1] = "a", [1 << 40] = "b", [2] = "c", [4] = "d", [8] = "e", [1 << 30] = "f"}
  check(#enc(sparse) < 80, "sparse table stays small: " .. #enc(sparse))
  local s2 = rt(sparse)
  check(s2[1] == "a" and s2[1 << 40] == "b" and s2[1 << 30] == "f" and s2[3] == nil, "sparse")

  local arr, hash = {}, {}
  for i = 1, 1000 do arr[i] = i * 2 end
  for i = 1, 300 do hash["k" .. i] = i end
  local a2, h2 = rt(arr, hash)
  local ok = #a2 == 1000
  for i = 1, 1000 do ok = ok and a2[i] == i * 2 end
  for i = 1, 300 do ok = ok and h2["k" .. i] == i end
  check(ok, "big array and hash parts")

  local tk = {}
  local kt = rt({[tk] = 1, [{}] = 2})
  local n = 0
  for k, v in pairs(kt) do
    n = n + 1
    check(type(k) == "table" and k ~= tk and (v == 1 or v == 2), "table keys copied")
  end
  check(n == 2, "two table keys")
end

---------------------------------------------------------------- identity
do
  local t = {}
  t.self = t
  local c = rt(t)
  check(c ~= t and c.self == c, "self cycle")

  local a, b = {}, {}
  a.b, b.a = b, a
  local ca = rt(a)
  check(ca.b.a == ca and ca.b ~= b, "two-table cycle")

  local s = {v = 1}
  local c2 = rt({x = s, y = s, z = {s, s}})
  check(c2.x == c2.y and c2.z[1] == c2.x and c2.z[2] == c2.x and c2.x.v == 1, "shared sub-table")

  local p, q = rt(s, s)
  check(p == q and p ~= s, "same table as two values")
  local p2, q2 = rt(s, {s})
  check(q2[1] == p2, "same table, top level and nested")

  local r1, r2, r3 = rt({}, s, {a = s})
  check(r3.a == r2 and r1 ~= r2, "identity after another table")

  local k = {}
  local c3 = rt({[k] = k})
  local kk, vv = next(c3)
  check(kk == vv and type(kk) == "table", "a table as key and value")
end

---------------------------------------------------------------- metatables
do
  local mt = {__index = function(_, k) return k .. "!" end}
  local c = rt(setmetatable({}, mt))
  check(getmetatable(c) ~= mt and c.hi == "hi!", "metatable with a function")

  local m2 = {}
  m2.__index = m2
  m2.greet = function() return "hello" end
  local a, b = rt(setmetatable({}, m2), setmetatable({}, m2))
  check(getmetatable(a) == getmetatable(b) and a.greet() == "hello", "shared metatable")
  check(getmetatable(a).__index == getmetatable(a), "metatable cycle")

  local self = {}
  setmetatable(self, self)
  local cs = rt(self)
  check(getmetatable(cs) == cs, "table is its own metatable")

  local finalized = 0
  local gcs = enc(setmetatable({}, {__gc = function() finalized = finalized + 1 end}))
  dec(gcs)
  collectgarbage()
  collectgarbage()
  check(finalized == 1, "__gc copied and run once: " .. finalized)
  raises("malformed data: metatable with __gc refused", udec, gcs)

  local protected = setmetatable({}, {__metatable = "locked", v = 3})
  local cp = rt(protected)
  check(getmetatable(cp) == "locked", "__metatable field copied too")
end

---------------------------------------------------------------- Lua functions
do
  local function add(a, b) return a + b end
  check(rt(add)(2, 3) == 5, "plain function")

  local k, tbl = 10, {n = 5}
  local function f(x) return x + k + tbl.n end
  local g = rt(f)
  check(g ~= f and g(1) == 16, "upvalues copied")
  k = 100
  check(g(1) == 16, "upvalues are copies")

  local function fact(n) return n <= 1 and 1 or n * fact(n - 1) end
  check(rt(fact)(10) == 3628800, "recursive local function")

  local a, b = rt(f, f)
  check(a == b, "same function twice: same copy")
  local c = rt({f, f, h = f})
  check(c[1] == c[2] and c.h == c[1], "same function in a table")

  -- closures sharing an upvalue keep sharing it within one copy
  local count = 0
  local function inc() count = count + 1 end
  local function get() return count end
  local ci, cg = rt(inc, get)
  ci(); ci()
  check(cg() == 2 and count == 0, "shared upvalue stays shared")
  local pair = rt({inc = inc, get = get})
  pair.inc()
  check(pair.get() == 1, "shared upvalue through a table")

  -- debug information kept
  local line = debug.getinfo(f, "S").linedefined
  local info = debug.getinfo(g, "S")
  check(info.linedefined == line and info.source == debug.getinfo(f, "S").source, "debug info")
  check(debug.getupvalue(g, 1) ~= nil, "upvalue names")

  local function boom() error("boom") end
  local ok, err = pcall(rt(boom))
  check(not ok and err:find("test_codec.lua:%d+: boom"), "error position: " .. tostring(err))

  local varf = rt(function(...) return select("#", ...), ... end)
  local n, x, y = varf("p", "q")
  check(n == 2 and x == "p" and y == "q", "vararg function")
end

---------------------------------------------------------------- _ENV and modules
do
  local function reads() return CODEC_TEST_GLOBAL end
  local r = rt(reads)
  CODEC_TEST_GLOBAL = "seen"
  check(r() == "seen", "a global read sees the destination's globals")
  local name, v = debug.getupvalue(r, 1)
  check(name == "_ENV" and rawequal(v, _G), "_ENV bound, not copied")
  CODEC_TEST_GLOBAL = nil

  local G = _G
  local function viaG() return G.CODEC_TEST_GLOBAL2 end
  CODEC_TEST_GLOBAL2 = 7
  check(rt(viaG)() == 7, "an upvalue holding _G is bound to the globals")
  CODEC_TEST_GLOBAL2 = nil

  -- a custom environment is a plain table: copied
  local env = {x = 5}
  local custom = load("return x", "=custom", "t", env)
  local cc = rt(custom)
  local _, cenv = debug.getupvalue(cc, 1)
  check(cc() == 5 and cenv ~= env and not rawequal(cenv, _G), "custom _ENV copied")

  local str = string
  local function up() return str.upper("x") end
  local u = rt(up)
  local uname, uval = debug.getupvalue(u, 1)
  check(uname == "str" and rawequal(uval, string), "module upvalue bound, not copied")

  local c2 = require "conc"
  local function uses() return c2 end
  check(rawequal(rt(uses)(), conc), "local conc = require 'conc' bound")

  -- a module absent in the destination is required there
  local old = {tag = "old"}
  package.preload.codec_testmod = function() return {tag = "fresh"} end
  package.loaded.codec_testmod = old
  local mod = old
  local function usemod() return mod.tag end
  local s = enc(usemod)
  package.loaded.codec_testmod = nil
  local um = dec(s)
  check(um() == "fresh" and package.loaded.codec_testmod.tag == "fresh", "module required")
  check(um() == "fresh" and dec(s)() == "fresh", "module required once")
  package.loaded.codec_testmod = nil
  raises("malformed data: module 'codec_testmod' is not loaded", udec, s)
  check(package.loaded.codec_testmod == nil, "untrusted decoding requires nothing")
  package.loaded.codec_testmod, package.preload.codec_testmod = nil, nil

  -- module tables as plain values (not upvalues) are copied
  local cs = rt({s = string})
  check(cs.s ~= string and cs.s.format == string.format, "module table as a value is copied")
end

---------------------------------------------------------------- modules a new state cannot require
-- A module upvalue is bound by name; a destination that has not loaded the module gets the
-- sender's package.preload loader, or, for a module set in package.loaded by hand, a copy of it.
local tmpdir = os.tmpname()
os.remove(tmpdir)
local have_dir = os.execute("mkdir -p '" .. tmpdir .. "'")
local function write_module(name, body)
  local f = assert(io.open(tmpdir .. "/" .. name .. ".lua", "w"))
  f:write(body)
  f:close()
end
do
  package.preload.codec_pre = function(name, extra) return {name = name, extra = extra} end
  local pre = require "codec_pre"
  local function usepre() return pre.name, pre.extra end
  local s = enc(usepre)
  package.loaded.codec_pre, package.preload.codec_pre = nil, nil
  local f = dec(s)
  local n, x = f()
  check(n == "codec_pre" and x == ":preload:" and type(package.preload.codec_pre) == "function"
        and rawequal(package.loaded.codec_pre, select(2, debug.getupvalue(f, 1))),
        "a preload-only module: its loader is copied, set in package.preload and required")
  package.loaded.codec_pre, package.preload.codec_pre = nil, nil

  package.loaded.codec_hand = {v = 41, inc = function(v) return v + 1 end}
  local hand = package.loaded.codec_hand
  local function usehand() return hand.inc(hand.v) end
  s = enc(usehand)
  package.loaded.codec_hand = nil
  f = dec(s)
  local copy = package.loaded.codec_hand
  check(f() == 42 and type(copy) == "table" and copy ~= hand and
        rawequal(select(2, debug.getupvalue(f, 1)), copy),
        "a module set by hand: copied and set in package.loaded")
  check(rawequal(select(2, debug.getupvalue(dec(s), 1)), copy), "then found loaded")
  package.loaded.codec_hand = hand
  check(rawequal(select(2, debug.getupvalue(dec(s), 1)), hand), "a loaded module wins over the copy")
  package.loaded.codec_hand = nil

  -- a module whose functions refer to the module itself, and two functions using it
  local M = {n = 7}
  function M.get() return M.n end
  package.loaded.codec_self = M
  local function a() return M.get() end
  local function b() return M end
  s = enc(a, b)
  package.loaded.codec_self = nil
  local ca, cb = dec(s)
  local cm = package.loaded.codec_self
  check(ca() == 7 and rawequal(cb(), cm) and rawequal(select(2, debug.getupvalue(cm.get, 1)), cm)
        and cm ~= M, "a self-referencing module copied once, its inner references to the copy")
  package.loaded.codec_self = nil

  -- a module set by hand that cannot be copied: the error says why and what to do
  package.loaded.codec_bad = {out = io.stdout}
  local bad = package.loaded.codec_bad
  raises("cannot copy a userdata of type 'FILE*' (argument 1, upvalue 'bad', field 'out'); " ..
         "module 'codec_bad' is copied because a new state cannot require it", enc,
         function() return bad end)
  package.loaded.codec_bad = nil

  if have_dir then
    -- a module found on package.path is required by name, not copied
    write_module("codec_pathmod", "return {tag = 'from file'}")
    local oldpath = package.path
    package.path = tmpdir .. "/?.lua;" .. oldpath
    local pm = require "codec_pathmod"
    local function usepm() return pm.tag end
    s = enc(usepm)
    check(not s:find("from file", 1, true), "a module on package.path is not copied")
    package.loaded.codec_pathmod = nil
    check(dec(s)() == "from file" and package.loaded.codec_pathmod ~= pm, "required from the path")
    package.loaded.codec_pathmod = nil
    package.path = oldpath
    local ok, err = pcall(dec, s)
    check(not ok and err:find("cannot bind module 'codec_pathmod' for a copied function: module " ..
          "'codec_pathmod' not found", 1, true) and err:find("creator's paths", 1, true),
          "a module this state cannot find: " .. tostring(err))
    package.path = tmpdir .. "/?.lua;" .. oldpath
    check(dec(s)() == "from file", "found again with the path")
    package.loaded.codec_pathmod = nil

    -- a job carries the creator's paths, set before the job's values are decoded
    local oldcpath = package.cpath
    local jpath, jcpath = "/nonexistent/?.lua;" .. tmpdir .. "/?.lua", "/nonexistent/?.so"
    package.path, package.cpath = jpath, jcpath
    local js = conc._encode_job(usepm, 1)
    local p1, p2, _, a1 = dec(js)
    check(p1 == jpath and p2 == jcpath and a1 == 1, "a job: the paths, then the values")
    package.path, package.cpath = oldpath, oldcpath
    package.loaded.codec_pathmod = nil
    local jf, j1 = conc._decode(js, "job")
    check(package.path == jpath and package.cpath == jcpath and jf() == "from file" and j1 == 1,
          "decoding a job sets the creator's paths first")
    package.path, package.cpath = oldpath, oldcpath
    package.loaded.codec_pathmod = nil
  end
end

---------------------------------------------------------------- errors of a job
-- conc._error runs a function as a thread runs its job, stores its error as a thread does
-- and reads it back as join does: false, the error join raises, the text of an unjoined report.
do
  local ok, err, text = conc._error("thread", "worker", function() error({code = 42}) end)
  check(ok == false and type(err) == "table" and err.code == 42, "a table error keeps its type")
  check(text:find("^%(error object is a table value%)\nstack traceback:\n"), "its report text: " .. text)

  ok, err, text = conc._error("thread", "worker", function() error("boom") end)
  check(type(err) == "string" and err:find("^thread 'worker': [^\n]*: boom\nstack traceback:\n"),
        "a string error names the thread and keeps the traceback: " .. tostring(err))
  check(text:find("boom\nstack traceback:\n") and not text:find("worker", 1, true), "its report text")
  ok, err = conc._error(nil, nil, function() error("plain", 0) end)
  check(err:find("^plain\nstack traceback:"), "no kind: the text alone")

  ok, err, text = conc._error("process", "p", function() error(42) end)
  check(math.type(err) == "integer" and err == 42 and text:find("^42\nstack traceback"), "error(42)")
  ok, err = conc._error("process", "p", function() error(1.5) end)
  check(math.type(err) == "float" and err == 1.5, "error(1.5)")
  ok, err = conc._error("thread", "t", function() error(true) end)
  check(err == true, "error(true)")
  ok, err, text = conc._error("thread", "t", function() error() end)
  check(ok == false and err == nil and text:find("^%(error object is a nil value%)"), "error()")

  local E = setmetatable({msg = "m"}, {__tostring = function(e) return "E: " .. e.msg end})
  ok, err, text = conc._error("thread", "t", function() error(E) end)
  check(type(err) == "table" and err ~= E and err.msg == "m" and tostring(err) == "E: m" and
        text:find("^E: m\nstack traceback"), "a __tostring error: a table, its text for the report")

  local me = conc.current()
  ok, err = conc._error("thread", "t", function() error({who = me, list = {1, {2, {3}}}}) end)
  check(rawequal(err.who, me) and err.list[2][2][1] == 3, "a conc object and nesting in an error")
  local head
  for i = 1, 500 do head = {i = i, next = head} end
  ok, err = conc._error("thread", "t", function() error(head) end)
  local n = 0
  while err do n, err = n + 1, err.next end
  check(n == 500, "a 500-deep error value")

  ok, err, text = conc._error("thread", "w", function() error({co = coroutine.create(print)}) end)
  check(type(err) == "string" and err:find("^thread 'w': %(error object is a table value%)\n") and
        err:find("(the error value itself could not be copied: cannot copy a coroutine " ..
                 "(error value, field 'co'))", 1, true) and text:find("could not be copied", 1, true),
        "an error value that cannot be copied: text saying why: " .. tostring(err))

  local r = table.pack(conc._error("thread", "t", function(a, b) return a + b, "x" end, 1, 2))
  check(r.n == 3 and r[1] == true and r[2] == 3 and r[3] == "x", "no error: the results")
end

---------------------------------------------------------------- C functions
do
  local p, f = rt(print, string.format)
  check(rawequal(p, print) and rawequal(f, string.format), "C functions by address")
  check(rt({fn = table.concat}).fn({"a", "b"}, "-") == "a-b", "C function in a table")

  -- a C closure with upvalues: the __index of conc objects
  local idx = getmetatable(conc.current()).__index
  local c = rt(idx)
  check(debug.getupvalue(c, 1) ~= nil, "C closure upvalues present")
  check(c ~= idx and c(conc.current(), "name") == "main", "C closure re-created and works")
  local c1, c2 = rt(idx, idx)
  check(c1 == c2, "same C closure twice: same copy")

  raises("cannot copy a userdata (argument 1, upvalue 3)", enc, string.gmatch("a", "a"))
  raises("cannot copy a coroutine (argument 1, upvalue 1)", enc, coroutine.wrap(print))
end

---------------------------------------------------------------- conc objects
do
  local me = conc.current()
  local c = rt(me)
  check(rawequal(c, me), "conc object by reference")
  local t = rt({obj = me, [me] = "key"})
  check(rawequal(t.obj, me) and t[me] == "key", "conc object in a table and as key")
  check(enc(me):byte(1) & 0x10 ~= 0, "objects flag set")
  check(enc({1}):byte(1) & 0x10 == 0, "objects flag clear")
  raises("malformed data: invalid conc object", dec, V .. "\1\11" .. string.pack("<j", 0x1230))
end

---------------------------------------------------------------- rejections
do
  local co = coroutine.create(print)
  raises("cannot copy a coroutine (argument 1)", enc, co)
  raises("cannot copy a coroutine (argument 2, field 'co')", enc, 1, {co = co})
  raises("cannot copy a coroutine (argument 1, field 'a.b[3]')", enc, {a = {b = {1, 2, co}}})
  raises("cannot copy a coroutine (argument 1, field '[\"a b\"].c')", enc, {["a b"] = {c = co}})
  raises("cannot copy a coroutine (argument 1, field '[true][1.5]')", enc, {[true] = {[1.5] = co}})
  raises("cannot copy a coroutine (argument 1, key)", enc, {[co] = 1})
  raises("cannot copy a coroutine (argument 1, field 'k', key)", enc, {k = {[co] = 1}})
  raises("cannot copy a coroutine (argument 1, metatable, field '__index')", enc,
         setmetatable({}, {__index = co}))
  local function holds() return co end
  raises("cannot copy a coroutine (argument 1, upvalue 'co')", enc, holds)
  raises("cannot copy a coroutine (argument 3, field 'f', upvalue 'co')", enc, 1, 2, {f = holds})
  raises("cannot copy a userdata of type 'FILE*' (argument 1)", enc, io.stdout)
  raises("cannot copy a userdata of type 'FILE*' (argument 1, field 'out')", enc, {out = io.stderr})
  raises("cannot copy a light userdata (argument 1)", enc, debug.upvalueid(holds, 1))

  -- depth: no limit. A table or function 100 levels deep or more is numbered in place and its
  -- contents written after the top-level value (docs/CODEC.md, "Depth"); cycles, shared
  -- sub-tables and error places still work across that boundary.
  local function nest(n)
    local t = {}
    for _ = 2, n do t = {t} end
    return t
  end
  for _, n in ipairs({99, 100, 101, 102, 200, 201, 1000, 20000}) do
    local deep = rt(nest(n))
    local d = 0
    while deep do d, deep = d + 1, deep[1] end
    check(d == n, n .. " nested levels copied, got " .. d)
  end
  check(list_len(rt(list(201))) == 201, "a linked list of 201 nodes")
  check(list_len(rt(list(MILLION))) == MILLION, "a linked list of a million nodes")
  local two = {rt(list(300), list(250))}
  check(list_len(two[1]) == 300 and list_len(two[2]) == 250, "two deep values in one message")

  local ring = {}
  local cur = ring
  for i = 1, 300 do cur.next = {i = i}; cur = cur.next end
  cur.next = ring
  local r = rt(ring)
  cur = r
  for _ = 1, 301 do cur = cur.next end
  check(rawequal(cur, r) and r.next.next.i == 2, "a 301-table ring keeps its cycle")

  local shared = {tag = "s"}
  local top = {x = shared}
  cur = top
  for _ = 1, 150 do cur.sub = {}; cur = cur.sub end
  cur.y, cur.me, cur.top = shared, cur, top
  local c = rt(top)
  cur = c
  for _ = 1, 150 do cur = cur.sub end
  check(rawequal(cur.y, c.x) and cur.y.tag == "s" and rawequal(cur.me, cur) and
        rawequal(cur.top, c), "shared sub-tables and cycles across the depth boundary")

  local key = "leaf"
  for _ = 1, 300 do key = {[key] = true} end
  local kc, kd = rt(key), 0
  while type(kc) == "table" do kd, kc = kd + 1, next(kc) end
  check(kd == 300 and kc == "leaf", "300 tables nested as keys")

  local mtc = {}
  for i = 1, 300 do mtc = setmetatable({i = i}, {__index = mtc}) end
  local mc = rt(mtc)
  check(mc.i == 300 and getmetatable(mc).__index.i == 299 and
        getmetatable(getmetatable(getmetatable(mc).__index).__index).__index.i == 297,
        "300 nested metatables")

  local fn = function() return 0 end
  for _ = 1, 300 do
    local g = fn
    fn = function() return g() + 1 end
  end
  check(rt(fn)() == 300, "300 closures nested through upvalues")

  local counter = 0
  local function inc() counter = counter + 1 end
  local function get() return counter end
  local holder = nest(150)
  cur = holder
  for _ = 1, 149 do cur = cur[1] end
  cur.inc, cur.get = inc, get
  local h, g2 = rt(holder, get)
  cur = h
  for _ = 1, 149 do cur = cur[1] end
  cur.inc(); cur.inc()
  check(cur.get() == 2 and g2() == 2 and counter == 0, "shared upvalues across the depth boundary")

  local co = coroutine.create(print)
  local deepco = nest(150)
  cur = deepco
  for _ = 1, 149 do cur = cur[1] end
  cur.bad = {co = co}
  local okco, errco = pcall(enc, deepco)
  check(not okco and errco:find("cannot copy a coroutine (argument 1, ..., field '[1][1]", 1, true)
        and errco:find("[1].bad.co')", 1, true), "error place inside a deep value: " .. errco)

  -- a failed encoding of a value with objects must not leave anything held
  raises("cannot copy a coroutine", enc, conc.current(), {conc.current(), co})
end

-- A shared table's field is the root of its place: one path, no number
-- (it read "(field 'x' 1, field '[1]')"), the same steps as an argument's.
do
  local co = coroutine.create(print)
  local s = conc.shared()
  local function set(k, v) s[k] = v end
  local function nest(n)
    local t = {}
    for _ = 2, n do t = {t} end
    return t
  end
  raises("cannot copy a coroutine (field 'x')", set, "x", co)
  raises("cannot copy a coroutine (field 'x[1]')", set, "x", {co})
  raises("cannot copy a coroutine (field 'x.a.b[2]')", set, "x", {a = {b = {1, co}}})
  raises("cannot copy a coroutine (field '[3].a')", set, 3, {a = co})
  raises("cannot copy a coroutine (field '[true][1]')", set, true, {co})
  raises("cannot copy a coroutine (field '[\"a b\"].c')", set, "a b", {c = co})
  raises("cannot copy a coroutine (field 'f', upvalue 'co')", set, "f", function() return co end)
  raises("cannot copy a coroutine (field 'k', key)", set, "k", {[co] = 1})
  local ok, err = pcall(set, "deep", {nest(150)})
  check(ok, "a deep value stores: " .. tostring(err))
  local deepco = nest(150)
  local cur = deepco
  for _ = 1, 149 do cur = cur[1] end
  cur.co = co
  ok, err = pcall(set, "deep", deepco)
  check(not ok and err:find("cannot copy a coroutine (field 'deep', ..., field '[1]", 1, true)
        and err:find("[1].co')", 1, true), "a shared field's place inside a deep value: " .. err)
  -- a queue item and a thread's argument name the same steps
  local q = conc.queue()
  raises("cannot copy a coroutine (item 1, field 'x[1]')", q.put, q, {x = {co}})
  raises("cannot copy a coroutine (argument 2, field 'x[1]')", conc.thread, function() end, {x = {co}})
  check(s.x == nil and s.deep ~= nil and #q == 0, "nothing stored by a failed copy")
end

---------------------------------------------------------------- malformed input
do
  local samples = {
    enc(1), enc(-1000), enc(1.5), enc("short"), enc(("long"):rep(20)), enc(nil, true, false),
    enc({1, 2, 3}), enc({a = 1, b = {c = "d"}}), enc(setmetatable({}, {__index = {}})),
    enc(function(a) return a end), enc(print), enc(conc.current()),
  }
  local t = {}
  t.t = t
  samples[#samples + 1] = enc(t)
  local k = 1
  local str = string
  samples[#samples + 1] = enc(function() return k, str, CODEC_X end)
  local idx = getmetatable(conc.current()).__index
  samples[#samples + 1] = enc(idx)
  local c1 = 0
  samples[#samples + 1] = enc(function() c1 = c1 + 1 end, function() return c1 end)

  for i, s in ipairs(samples) do
    check(select("#", udec(s)) >= 1, "sample " .. i .. " decodes")
    all_prefixes_fail(s, "sample " .. i)
  end

  raises("malformed data: truncated", udec, "")
  raises("malformed data: unsupported format version 3", udec, "\3\1\128")
  raises("malformed data: unsupported format version 0", udec, "\0\1\128")
  raises("malformed data: bad header", udec, "\x82\1\128")
  raises("malformed data: trailing bytes", udec, V .. "\1\128\128")
  raises("malformed data: bad value count", udec, V .. "\5\128")
  raises("malformed data: bad tag 0x40", udec, V .. "\1\x40")
  raises("malformed data: bad tag 0x0c", udec, V .. "\1\12")          -- globals outside an upvalue
  raises("malformed data: bad tag 0x0e", udec, V .. "\1\14\1\1")      -- join outside an upvalue
  raises("malformed data: bad back-reference", udec, V .. "\1\8\1")
  raises("malformed data: bad back-reference", udec, V .. "\1\6\1\0\8\2")
  raises("malformed data: bad varint", udec, V .. "\1\3" .. ("\255"):rep(10) .. "\1")
  raises("malformed data: bad table size", udec, V .. "\1\6\255\255\255\255\15\0")
  raises("malformed data: bad table key", udec, V .. "\1\6\0\1\0\128")
  raises("malformed data: bad table key", udec, V .. "\1\6\0\1\4" .. string.pack("<d", 0 / 0) .. "\128")
  raises("malformed data: bad metatable", udec, V .. "\1\7\0\0\128")
  raises("malformed data: null C function", udec, V .. "\1\10" .. ("\0"):rep(8) .. "\0")
  raises("malformed data: nesting too deep", udec, V .. "\1" .. ("\6\1\0"):rep(201) .. "\128")
  check(select("#", udec(V .. "\1" .. ("\6\1\0"):rep(199) .. "\128")) == 1, "199 nested tables decode")
  -- a deferred table (0x0F) is filled after its top-level value, from a table's contents
  local dt = udec(V .. "\1\6\1\0\15\6\1\0\128")
  check(type(dt) == "table" and type(dt[1]) == "table" and dt[1][1] == 0, "deferred table")
  raises("malformed data: bad deferred table", udec, V .. "\1\6\1\0\15\128")
  raises("malformed data: truncated", udec, V .. "\1\6\1\0\15")
  check(type(udec(V .. "\1" .. ("\15"):rep(1) .. "\6\0\0")) == "table", "deferred top-level table")
  local strlib = string
  local ms = enc(function() return strlib end) -- ends with the module's "how" byte
  raises("malformed data: bad module entry", dec, ms:sub(1, -2) .. "\3")
  raises("malformed data: bad module loader", dec, ms:sub(1, -2) .. "\1\128")

  -- bytecode: a valid header and garbage after it, lengths that lie
  local fs = enc(function() return 1 end)
  local blen = string.unpack("<I4", fs, 4)
  raises("malformed data: bad bytecode", udec, fs:sub(1, 7) .. ("\0"):rep(blen) .. fs:sub(8 + blen))
  raises("malformed data: bad bytecode", udec, fs:sub(1, 11) .. ("\0"):rep(blen - 4) .. fs:sub(8 + blen))
  raises("malformed data: bad bytecode", udec, fs:sub(1, 3) .. string.pack("<I4", blen + 1) .. fs:sub(8))
  raises("malformed data: truncated", udec, fs:sub(1, 3) .. string.pack("<I4", blen + 100) .. fs:sub(8))
  raises("malformed data: bad bytecode", dec,
         fs:sub(1, 3) .. string.pack("<I4", blen - 1) .. fs:sub(8, 7 + blen - 1) .. fs:sub(8 + blen))

  -- flip every byte of every sample, one at a time: decode or raise, never crash
  local decoded, refused = 0, 0
  for _, s in ipairs(samples) do
    for i = 1, #s do
      for _, mask in ipairs({0x01, 0x80, 0xff}) do
        local m = s:sub(1, i - 1) .. string.char(s:byte(i) ~ mask) .. s:sub(i + 1)
        if pcall(udec, m) then decoded = decoded + 1 else refused = refused + 1 end
      end
    end
  end
  check(decoded > 0 and refused > 0, "byte flips: " .. decoded .. " decoded, " .. refused .. " refused")

  -- random garbage, with and without a valid header
  local seed = 12345
  local function rnd(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  end
  for _ = 1, 3000 do
    local len = rnd(40)
    local b = {}
    for j = 1, len do b[j] = string.char(rnd(256)) end
    local s = table.concat(b)
    pcall(udec, s)
    pcall(udec, V .. s)
    pcall(udec, V .. "\1" .. s)
  end
  collectgarbage()
  check(true, "garbage survived")
end

---------------------------------------------------------------- across threads
do
  local ok, th = pcall(conc.thread, function(...) return ... end, 1, 2.0, "s", {x = {1}}, print)
  if not ok then
    io.stderr:write("note: conc.thread unavailable, thread tests skipped: ", tostring(th), "\n")
  else
    local r = table.pack(th:join())
    check(r[1] == true and r[2] == 1 and math.type(r[3]) == "float" and r[4] == "s" and
          r[5].x[1] == 1 and rawequal(r[6], print), "arguments and results through a thread")

    -- _ENV: the thread's own globals
    CODEC_SIDE = "main"
    local function side() return CODEC_SIDE end
    local _, v = conc.thread(function() CODEC_SIDE = "thread"; return side() end):join()
    check(v == "thread" and CODEC_SIDE == "main", "_ENV is the destination's: " .. tostring(v))
    CODEC_SIDE = nil

    -- module upvalue bound to the thread's module
    local str = string
    local _, same, mt = conc.thread(function()
      return rawequal(str, string), rawequal(str, package.loaded.string)
    end):join()
    check(same and mt, "module upvalue bound in the thread")

    local me = conc.current()
    local _, back = conc.thread(function(o) return o end, me):join()
    check(rawequal(back, me), "conc object there and back")

    local count = 0
    local function inc() count = count + 1 end
    local function get() return count end
    local _, n = conc.thread(function() inc(); inc(); return get() end):join()
    check(n == 2 and count == 0, "shared upvalues in a thread")

    -- modules a fresh thread cannot require: a preload loader, a module set by hand
    package.preload.codec_tpre = function() return {v = "pre"} end
    local tpre = require "codec_tpre"
    package.loaded.codec_thand = {v = "hand"}
    local thand = package.loaded.codec_thand
    local tok, tv1, tv2, tsame = pcall(function()
      return conc.thread(function()
        return tpre.v, thand.v, rawequal(thand, package.loaded.codec_thand)
      end):join()
    end)
    check(tok and tv1 == true and tv2 == "pre" and tsame == "hand",
          "preload-only and hand-set module upvalues in a thread: " .. tostring(tv1))
    package.loaded.codec_tpre, package.preload.codec_tpre, package.loaded.codec_thand = nil, nil, nil

    if have_dir then -- a job with the creator's paths, decoded in a real thread
      write_module("codec_threadmod", "return {tag = 'thread file'}")
      local oldpath = package.path
      package.path = tmpdir .. "/?.lua;" .. oldpath
      local tm = require "codec_threadmod"
      local js = conc._encode_job(function(x) return tm.tag .. x, require("codec_threadmod") == tm end, "!")
      package.path = oldpath
      local _, tag, again, tpath = conc.thread(function(s)
        local f, x = conc._decode(s, "job")
        local a, b = f(x)
        return a, b, package.path
      end, js):join()
      check(tag == "thread file!" and again and tpath == tmpdir .. "/?.lua;" .. oldpath,
            "a job's paths reach a new thread: " .. tostring(tag))
      package.loaded.codec_threadmod = nil
    end

    -- a million-node list through a thread and back
    local _, len1, back1 = conc.thread(function(l)
      local c = 0
      local p = l
      while p do c, p = c + 1, p.next end
      return c, l
    end, list(MILLION)):join()
    check(len1 == MILLION and list_len(back1) == MILLION, "a million-node list there and back")

    local big = ("b"):rep(1 << 20)
    local _, len, b2 = conc.thread(function(s) return #s, s end, big):join()
    check(len == #big and b2 == big, "1 MiB string through a thread")

    local co = coroutine.create(print)
    raises("cannot copy a coroutine (argument 2, field 'co')", conc.thread, function() end, {co = co})
    raises("cannot copy a coroutine (result 1)",
           function() return conc.thread(function() return coroutine.create(print) end):join() end)
  end
end

if have_dir then os.execute("rm -rf '" .. tmpdir .. "'") end
io.write(("test_codec: %d checks, %d failures\n"):format(checks, failures))
if failures > 0 then os.exit(1) end
