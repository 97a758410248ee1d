-- What every bench/*_bench.lua shares: the RESULT line bench/run reads, and
-- the median of a list of figures. Loaded by path, next to the script:
--   local bench = dofile(arg[0]:match("^(.-)[^/]*$") .. "benchlib.lua")
local M = {}

-- One figure for bench/run: "RESULT <metric> <value> <unit>", flushed at
-- once (a run that times out later still reports what it measured).
function M.result(metric, value, unit)
  io.write(string.format("RESULT %s %.6g %s\n", metric, value, unit))
  io.flush()
end

-- The median of xs (left as it is).
function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

return M
