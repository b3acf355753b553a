-- Scenario: the long-mode hello guest (guests/hello64.c, on the guest
-- runtime), loaded at 1 MiB, prints "Hello from 64-bit long mode!\n" on port
-- 0xE9 and exits with code 0 through port 0xF4. Run by build/luavmm; exits 0
-- when every expectation holds, 1 with the failed one otherwise.
local scenario = require "vmm.scenario"
local mode = require "vmm.mode"

local GREETING = "Hello from 64-bit long mode!\n"
local path = (os.getenv("LUAVMM_BUILD") or "build") .. "/guests/hello64.bin"

local s <close> = scenario.new{ guest = path, mode = "long" }

s:expect_register("rip", mode.layout.entry)
s:expect_register("efer", function(v) return v & 0x500 == 0x500 end) -- LME and LMA
s:expect_register("cr3", mode.layout.page_tables)

s:expect_output(GREETING)
local e = s:expect_exit{ reason = "io", dir = "out", port = 0xf4, value = 0 }
-- The runtime's code runs above its load address, on its stack.
if e.rip <= mode.layout.entry then
  error(string.format("exit at rip 0x%x, not above the entry", e.rip))
end
s:expect_register("rsp", function(v) return v > mode.layout.entry end)
s:finish{ reason = "stop", code = 0 }
if s:text() ~= GREETING then
  error(string.format("expected the guest to print exactly %q, it printed %q", GREETING, s:text()))
end
