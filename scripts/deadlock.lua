-- deadlock.lua: two cooks, one knife and one pot.
-- From the seed's "deadlock" (死锁) section: both cooks need the knife and
-- the pot. Cook 1 takes the knife first, cook 2 takes the pot first; then
-- each waits for the tool the other holds. In Python the program hangs.
-- Here the wait that would close the cycle fails at once with an error
-- naming every cook and tool in it; that cook's with() puts its first tool
-- down, the other cook gets to cook, and the main thread reports the error
-- once: the program ends (with a non-zero exit status), never hangs.
-- Usage: conclua scripts/deadlock.lua
local knife = conc.lock("knife")
local pot = conc.lock("pot")
local both = conc.barrier(2) -- makes sure each cook holds a tool before reaching for the other

local function steps(first, first_name, second, second_name)
  local me = conc.current().name
  first:with(function()
    print(("%s took the %s"):format(me, first_name))
    both:wait()
    second:with(function()
      print(("%s took the %s and cooks"):format(me, second_name))
    end)
    print(("%s put the %s down"):format(me, second_name))
  end)
  print(("%s put the %s down"):format(me, first_name))
end

-- A cook returns its error (if any) instead of raising it: main joins the
-- cooks one after the other, and an error raised by the second cook while
-- main still waits for the first would be reported twice (once as an error
-- nobody joined yet, once by the join).
local function cook(...)
  return pcall(steps, ...)
end

local cooks = {
  conc.thread({name = "cook1"}, cook, knife, "knife", pot, "pot"),
  conc.thread({name = "cook2"}, cook, pot, "pot", knife, "knife"),
}
local failed
for _, c in ipairs(cooks) do
  local _, ok, err = c:join()
  if not ok then failed = err end
end
-- the deadlock, named, ends the program here (exit status 1)
if failed then error(failed, 0) end
print("both cooks cooked (no deadlock this time?)")
