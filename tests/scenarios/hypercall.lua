-- Scenario: the hypercall guest (guests/hypercall64.c, long mode) asks the
-- host for sum(1..6), fib(50) and to upper-case a string in its memory,
-- prints the answers on port 0xE9, checks them itself and exits with 0
-- through port 0xF4 when all were right. The three hypercalls are answered
-- here. Run by build/luavmm; exits 0 when every expectation holds, 1 with
-- the failed one otherwise.
local scenario = require "vmm.scenario"

local path = (os.getenv("LUAVMM_BUILD") or "build") .. "/guests/hypercall64.bin"
local EINVAL = 22

local s <close> = scenario.new{ guest = path, mode = "long" }
local vm = s.vm

local calls = {}    -- calls[nr]: how often hypercall nr came
local upper_at      -- the guest physical address hypercall 3 was given

vm:on_hypercall(1, function(_, a, b, c, d, e, f)
  calls[1] = (calls[1] or 0) + 1
  return a + b + c + d + e + f
end)

vm:on_hypercall(2, function(_, n)
  calls[2] = (calls[2] or 0) + 1
  if n < 0 or n > 93 then return -EINVAL end
  local x, y = 0, 1
  for _ = 1, n do x, y = y, x + y end
  return x
end)

vm:on_hypercall(3, function(_, gpa, len)
  calls[3] = (calls[3] or 0) + 1
  if len < 0 or len > 4096 then return -EINVAL end
  upper_at = gpa
  vm.memory:write(gpa, vm.memory:read(gpa, len):upper())
  return len
end)

local function check(ok, fmt, ...)
  if not ok then error(string.format(fmt, ...), 2) end
end

s:expect_output("sum(1..6) = 21\n")
s:expect_output("fib(50) = 12586269025\n")
s:expect_output("upper: HELLO FROM THE GUEST\n")
check(upper_at ~= nil, "hypercall 3 was not called before the guest printed its result")
s:expect_memory(upper_at, "HELLO FROM THE GUEST\0")
s:expect_output("hypercall64: all answers right\n")
s:expect_exit{ reason = "io", dir = "out", port = 0xf4, value = 0 }
s:finish{ reason = "stop", code = 0 }

local want = "sum(1..6) = 21\nfib(50) = 12586269025\nupper: HELLO FROM THE GUEST\n"
  .. "hypercall64: all answers right\n"
check(s:text() == want, "expected the guest to print exactly %q, it printed %q", want, s:text())
for nr = 1, 3 do
  check(calls[nr] == 1, "hypercall %d was called %s times, expected once", nr, calls[nr] or 0)
end
local stats = vm:stats()
check(stats.hypercalls and stats.hypercalls[1] == 1 and stats.hypercalls[3] == 1,
      "the statistics do not count one call of hypercalls 1 and 3")
