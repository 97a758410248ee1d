-- tests/docs/probe.lua: prints what the conc module really offers, for
-- check_docs.py. One line per item, tab-separated:
--   M  <dotted name>  <lua type>        a value of the module (tables recursed)
--   T  <metatable name>  method  <name>  a method of an object type
--   T  <metatable name>  meta    <name>  a metamethod
--   T  <metatable name>  field   <name>  a field (a non-function value)
-- The arguments are the candidate field names (check_docs.py takes them from
-- the strcmp(k, "...") tests of the bindings' index functions).
-- Each object type is reached by a probe below; check_docs.py fails when the
-- bindings register a type that no probe reaches, so add one here with each
-- new type.

local function emit(...) io.write(table.concat({...}, "\t"), "\n") end

local function walk(prefix, t, seen)
  seen[t] = true
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v, name = t[k], prefix .. "." .. k
    if type(v) == "table" and not seen[v] then
      walk(name, v, seen)
    else
      emit("M", name, type(v))
    end
  end
end
walk("conc", conc, {})

local candidates = {...}
local done = {}
local function methods_of(tbl, out)
  for k, v in pairs(tbl) do
    if type(k) == "string" and k:sub(1, 2) ~= "__" and type(v) == "function" then out[k] = true end
  end
end

local function describe(obj)
  local mt = getmetatable(obj)
  local name = mt.__name
  if done[name] then return end
  done[name] = true
  local out = {}
  if type(mt.__index) == "table" then
    methods_of(mt.__index, out)
  elseif type(mt.__index) == "function" then
    -- a C __index: the method tables are among its upvalues, or in the
    -- metatable
    for i = 1, 255 do
      local n, v = debug.getupvalue(mt.__index, i)
      if n == nil then break end
      if type(v) == "table" then methods_of(v, out) end
    end
    for k, v in pairs(mt) do
      if type(v) == "table" and k ~= "__index" then methods_of(v, out) end
    end
  end
  for k in pairs(out) do emit("T", name, "method", k) end
  if type(mt.__index) == "function" then
    for _, k in ipairs(candidates) do
      local ok, v = pcall(function() return obj[k] end)
      if ok and v ~= nil and type(v) ~= "function" then emit("T", name, "field", k) end
    end
  end
  for k, v in pairs(mt) do  -- metamethods are functions (not __name, __methods, ...)
    if type(k) == "string" and k:sub(1, 2) == "__" and type(v) == "function" then
      emit("T", name, "meta", k)
    end
  end
end

local t = conc.thread(function() end)
t:join()
describe(t)
local p = conc.process(function() end)
p:join()
describe(p)
local l = conc.lock()
describe(l)
local g = l:hold()
describe(g)
g:release()
describe(conc.rlock())
describe(conc.condition())
describe(conc.semaphore(1))
describe(conc.event())
describe(conc.barrier(1))
describe(conc.atomic(0))
describe(conc.queue())
local s = conc.shared()
describe(s)
local sg = s:hold()
describe(sg)
sg:release()
local a, b = conc.pipe()
describe(a)
if conc.pool then
  local pool = conc.pool(1)
  local f = pool:submit(function() end)
  f:wait()
  describe(pool)
  describe(f)
  pool:close()
  pool:join()
end
if conc.tcp then
  conc.run(function()
    local srv = conc.tcp.listen("127.0.0.1", 0)
    local c = conc.tcp.connect("127.0.0.1", srv.port)
    describe(srv)
    describe(c)
    c:close()
    srv:close()
  end)
end
if conc.run and conc.task then
  conc.run(function()
    local task = conc.task(function() end)
    task:await()
    describe(task)
  end)
end
