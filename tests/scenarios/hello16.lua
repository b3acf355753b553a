-- Scenario: the real-mode hello guest (guests/hello16.S), loaded at 0x8000
-- and entered with cs = 0, writes "Hello from real mode!\n" to port 0xE9 a
-- byte at a time and halts. Run by build/luavmm; exits 0 when every
-- expectation holds, 1 with the failed expectation otherwise.
local scenario = require "vmm.scenario"
local mode = require "vmm.mode"

local GREETING = "Hello from real mode!\n"
local path = (os.getenv("LUAVMM_BUILD") or "build") .. "/guests/hello16.bin"
local f = assert(io.open(path, "rb"))
local image = f:read("a")
f:close()

local s <close> = scenario.new{ guest = path, mode = "real" }
local entry = mode.layout.real_entry

-- Set up as the guest was linked for.
s:expect_memory(entry, image)
s:expect_register("rip", entry)
s:expect_register("cs", function(seg) return seg.selector == 0 and seg.base == 0 end)
s:expect_register("cr0", function(v) return v & 1 == 0 end) -- PE off: real mode

-- The first byte is one `out` to port 0xE9, 'H'; the handler has not seen it.
local first = s:expect_exit{ reason = "io", dir = "out", port = 0xe9, size = 1, value = 0x48 }
if s:text() ~= "" then error("the console printed before the first exit was handed on") end

-- Once all of it has been printed, the guest halts, having printed no more.
s:expect_output(GREETING)
local halt = s:expect_exit{ reason = "hlt" }
if halt.rip <= first.rip then
  error(string.format("hlt at rip 0x%x, expected it after the out at 0x%x", halt.rip, first.rip))
end
s:finish{ reason = "hlt" }
if s:text() ~= GREETING then
  error(string.format("expected the guest to print exactly %q, it printed %q", GREETING, s:text()))
end
