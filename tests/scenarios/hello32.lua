-- Scenario: the protected-mode hello guest (guests/hello32.c, on the guest
-- runtime), loaded at 1 MiB, prints "Hello from 32-bit protected mode!\n" on
-- port 0xE9 and exits with code 0 through port 0xF4. Run by build/luavmm;
-- exits 0 when every expectation holds, 1 with the failed one otherwise.
local scenario = require "vmm.scenario"
local mode = require "vmm.mode"

local GREETING = "Hello from 32-bit protected mode!\n"
local path = (os.getenv("LUAVMM_BUILD") or "build") .. "/guests/hello32.bin"

local s <close> = scenario.new{ guest = path, mode = "protected" }

s:expect_register("rip", mode.layout.entry)
s:expect_register("cr0", function(v) return v & 1 == 1 and v & 0x80000000 == 0 end) -- PE, no PG
s:expect_register("efer", function(v) return v & 0x400 == 0 end)                    -- not long mode

s:expect_output("Hello from 32-bit")
s:expect_output(GREETING)
s:expect_exit{ reason = "io", dir = "out", port = 0xf4, value = 0 }
s:finish{ reason = "stop", code = 0 }
if s:text() ~= GREETING then
  error(string.format("expected the guest to print exactly %q, it printed %q", GREETING, s:text()))
end
