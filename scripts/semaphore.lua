-- semaphore.lua: a room that only two people may be in at a time.
-- From the seed's "semaphore" (信号量) section: 7 people want in; each stays
-- 2 s. The semaphore lets 2 in at once, so it takes about 4 rounds (8 s),
-- and there are never 3 people inside.
-- Usage: conclua scripts/semaphore.lua [seconds-inside]   (default 2)
local stay = tonumber(arg and arg[1] or 2)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

local room = conc.semaphore(2) -- two places
local inside = conc.atomic(0) -- how many are inside right now

local function visit(name)
  room:with(function()
    local n = inside:add(1)
    print(("%s enters the room (%d inside)"):format(name, n))
    conc.sleep(stay)
    inside:add(-1)
    print(("***%s leaves the room"):format(name))
  end)
end

local start = conc.now()
local people = {}
for i = 0, 6 do
  local name = "tom " .. i
  people[#people + 1] = conc.thread({name = name}, visit, name)
end
for _, t in ipairs(people) do t:join() end
print(("everybody has been in: %.1f s"):format(conc.now() - start))
