-- async.lua: the seed's asyncio example, as conc tasks.
-- Two tasks each do three steps of work separated by a pause (a sleep that
-- suspends only that task); conc.gather runs both on one thread's event
-- loop and returns their results in order. Since the pauses overlap, the
-- whole run takes about three pauses (3 s), not six.
-- Usage: conclua scripts/async.lua [pause-seconds]   (default 1)
local pause = tonumber(arg and arg[1] or 1)
  or error(("%s: argument 1 must be a number, not '%s'"):format(arg[0], arg[1]), 0)

local function work(name)
  for step = 1, 3 do
    print(("%s: step %d"):format(name, step))
    conc.sleep(pause) -- suspends this task; the loop runs the other one
  end
  return name .. " done"
end

local t0 = conc.now()
local results = conc.run(function()
  return conc.gather(function() return work("task 1") end,
                     function() return work("task 2") end)
end)
print(("results: %s, %s"):format(results[1], results[2]))
print(("took %.2f s for 6 pauses of %g s"):format(conc.now() - t0, pause))
