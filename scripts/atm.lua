-- atm.lua: the unsynchronised withdrawal from the seed (未使用线程同步).
-- Lao Wang and his wife each withdraw 80 from an account holding 100, at the
-- same moment, from two ATMs. Each one checks the balance, pauses (the ATM
-- counts the notes), then takes the money. Nothing stops both checks from
-- happening before either withdrawal, so both succeed: the balance ends at
-- -60. scripts/atm_lock.lua is the fix.
-- Usage: conclua scripts/atm.lua [pause-seconds]   (default 1)
local pause = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

-- The account lives in a shared table: every thread sees the same fields.
local account = conc.shared({name = "Lao Wang", money = 100})

-- Real threads race, but a race can go either way; the barrier makes this
-- run show the bad interleaving every time: each thread waits there, after
-- its check, until the other has checked too.
local both_checked = conc.barrier(2)

local function withdraw(who, amount)
  if account.money < amount then
    print(("%s: insufficient balance"):format(who))
    both_checked:wait()
    return
  end
  both_checked:wait()
  conc.sleep(pause) -- the check is done; meanwhile the other ATM checks too
  -- The withdrawal itself is one atomic step (s:with), as `-=` was under
  -- Python's GIL: the bug is the gap between the check and this step.
  local left = account:with(function()
    account.money = account.money - amount
    return account.money
  end)
  print(("%s: withdrew %d, balance is %d"):format(who, amount, left))
end

local t1 = conc.thread({name = "Lao Wang"}, withdraw, "Lao Wang", 80)
local t2 = conc.thread({name = "his wife"}, withdraw, "his wife", 80)
t1:join()
t2:join()
print(("account %s: final balance %d"):format(account.name, account.money))
