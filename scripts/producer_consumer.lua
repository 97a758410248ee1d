-- producer_consumer.lua: the basket of buns from the seed (生产者/消费者模式).
-- A cook puts buns into a basket that holds 5; a hungry customer takes them
-- out. The cook is faster than the customer, so the basket fills up and the
-- cook has to wait; the queue is the buffer between them and does all the
-- locking. After the last bun the cook closes the basket, the customer eats
-- what is left, and the program ends by itself.
-- Usage: conclua scripts/producer_consumer.lua [seconds-per-bun] [buns]
--        (defaults 0.25 and 12: eating takes three times as long as cooking)
local unit = tonumber(arg and arg[1] or 0.25)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)
local buns = tonumber(arg and arg[2] or 12)
  or error(("%s: argument 2 must be a number, not '%s'"):format(arg[0], arg[2]), 0)

local basket = conc.queue(5)

local function cook(basket, n, unit)
  for i = 1, n do
    local bun = ("bun #%d"):format(i)
    conc.sleep(unit) -- making a bun takes a while
    -- said before the put: once the bun is in, the customer may take it
    -- (and say so) before the cook gets to speak
    print(("cook: made %s (%d in the basket)"):format(bun, #basket))
    -- put() waits while the basket is full; with a timeout we can say so
    while not basket:put(bun, unit) do
      print("cook: the basket is full, waiting for someone to take a bun")
    end
  end
  basket:close() -- no more buns: the customer stops once the basket is empty
  print("cook: done for the day")
end

local function customer(basket, unit)
  local eaten = 0
  while true do
    local bun, why = basket:get(unit / 2)
    if bun then
      eaten = eaten + 1
      print(("customer: took %s"):format(bun))
      conc.sleep(3 * unit) -- eating takes a while
    elseif why == "closed" then
      break
    else
      print("customer: hurry up, I'm starving...")
    end
  end
  print(("customer: ate %d buns, going home"):format(eaten))
  return eaten
end

local c = conc.thread({name = "cook"}, cook, basket, buns, unit)
local e = conc.thread({name = "customer"}, customer, basket, unit)
c:join()
local _, eaten = e:join()
print(("%d buns made, %d eaten"):format(buns, eaten))
