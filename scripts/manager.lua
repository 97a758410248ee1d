-- manager.lua: data shared between processes.
-- From the seed's "Manager" section. Python needs a Manager process to share
-- a list and a dict; in conclua a shared table (conc.shared) is one object in
-- memory that every thread and process of the program sees. The child's
-- writes to the shared list and dict are seen by the parent; its write to a
-- plain global is not (the child has its own copy of the globals).
-- Usage: conclua scripts/manager.lua

local function show(name, t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = ("%s = %s"):format(tostring(k), tostring(v))
  end
  table.sort(parts)
  print(("%s: {%s}"):format(name, table.concat(parts, ", ")))
end

local function func(name, m_list, m_dict)
  m_dict.age = 19
  table.insert(m_list, "I'm a handsome guy!!")
  plain = "written by " .. name -- a global: the parent never sees this
end

local m_list = conc.shared()
local m_dict = conc.shared()
table.insert(m_list, "I'm PD!!!")
plain = "the parent's own"

local p1 = conc.process(func, "p1", m_list, m_dict)
p1:join()

show("m_dict", m_dict)
for i, v in ipairs(m_list) do print(("m_list[%d] = %s"):format(i, v)) end
print(("plain global: %s"):format(plain))
