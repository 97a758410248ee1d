-- event.lua: the hot pot dinner.
-- From the seed's "Event" (事件) section: two friends sit down at the hot
-- pot and wait; nobody eats until the host gives the signal. The host
-- counts to ten (a progress bar), then sets the event: every friend waiting
-- on it wakes up at once and starts eating.
-- Usage: conclua scripts/event.lua [seconds-per-tick]   (default 1)
local tick = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

local dinner = conc.event() -- starts cleared: "not yet"

local function friend(name)
  print(("%s has arrived"):format(name))
  print(("%s sits down, ready to eat"):format(name))
  dinner:wait() -- blocks until the host sets the event
  print(("%s got the signal"):format(name))
  print(("%s starts eating!"):format(name))
end

local friends = {
  conc.thread({name = "tom"}, friend, "tom"),
  conc.thread({name = "cherry"}, friend, "cherry"),
}
for i = 1, 10 do
  conc.sleep(tick)
  print(string.rep(">", i) .. string.rep("-", 10 - i))
end
print("--->>> the host: let's eat!")
dinner:set()
for _, f in ipairs(friends) do f:join() end
