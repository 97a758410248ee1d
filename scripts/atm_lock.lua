-- atm_lock.lua: the ATM race of atm.lua, fixed with a lock.
-- From the seed's "mutex" (互斥锁) section: Lao Wang and his wife both try
-- to withdraw 80 from an account holding 100, at the same moment, from two
-- ATMs. With the lock, only one of them can check-and-withdraw at a time:
-- one withdrawal succeeds, the other is told the balance is insufficient.
-- Usage: conclua scripts/atm_lock.lua [pause-seconds]   (default 1)
local pause = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

-- The account lives in a shared table, as in atm.lua; the lock is the fix.
local account = conc.shared({name = "Lao Wang", money = 100})
local lock = conc.lock("account") -- the same lock object for both threads

local function withdraw(who, amount)
  -- Everything inside with() runs while holding the lock; the lock is
  -- released when the function returns (or raises).
  lock:with(function()
    if account.money < amount then
      print(("%s: insufficient balance"):format(who))
      return
    end
    conc.sleep(pause) -- the pause that let both threads in without the lock
    account.money = account.money - amount
    print(("%s: withdrew %d, balance is %d"):format(who, amount, account.money))
  end)
end

local t1 = conc.thread({name = "Lao Wang"}, withdraw, "Lao Wang", 80)
local t2 = conc.thread({name = "his wife"}, withdraw, "his wife", 80)
t1:join()
t2:join()
print(("final balance: %d"):format(account.money))
