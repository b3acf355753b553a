-- Scenario: the MMIO guest (guests/mmio64.c, long mode) drives a device at
-- 0xD0000000: a byte sink that counts the bytes pushed into it and computes
-- their CRC-32. The device is defined here (scripts/mmio-device.lua is a
-- program, not a module to load). The guest checks every register, prints
-- what it saw on port 0xE9 and exits with 0 through port 0xF4 when all
-- matched. Run by build/luavmm; exits 0 when every expectation holds, 1
-- with the failed one otherwise.
local scenario = require "vmm.scenario"

local path = (os.getenv("LUAVMM_BUILD") or "build") .. "/guests/mmio64.bin"
local BASE, SIZE = 0xd0000000, 0x1000
local FOX = "The quick brown fox jumps over the lazy dog"

-- CRC-32 as zlib computes it, with a table of the 256 byte values.
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1 == 1) and (0xedb88320 ~ (c >> 1)) or (c >> 1) end
  CRC_TABLE[i] = c
end
local function crc_update(crc, byte)
  return CRC_TABLE[(crc ~ byte) & 0xff] ~ (crc >> 8)
end

-- The device: registers by offset (ID, CTRL, COUNT, DATA, CRC, SCRATCH).
local dev = { count = 0, crc = 0xffffffff, scratch = 0, reads = 0, writes = 0, pushed = {} }
local function mmio(_, offset, size, value)
  if value == nil then
    dev.reads = dev.reads + 1
    if offset == 0x00 then return 0x4c554131 end
    if offset == 0x08 then return dev.count end
    if offset == 0x10 then return dev.crc ~ 0xffffffff end
    if offset == 0x14 then return dev.scratch end
    return 0
  end
  dev.writes = dev.writes + 1
  if offset == 0x04 and value & 1 == 1 then
    dev.count, dev.crc, dev.pushed = 0, 0xffffffff, {}
  elseif offset == 0x0c then
    dev.count = dev.count + 1
    dev.crc = crc_update(dev.crc, value & 0xff)
    dev.pushed[#dev.pushed + 1] = string.char(value & 0xff)
  elseif offset == 0x14 then
    dev.scratch = value & 0xffffffff
  end
end

local function check(ok, fmt, ...)
  if not ok then error(string.format(fmt, ...), 2) end
end

local s <close> = scenario.new{ guest = path, mode = "long" }
s.vm:on_mmio(BASE, SIZE, mmio)

-- The first thing the guest does is read ID, 32 bits.
s:expect_exit{ reason = "mmio", addr = BASE, size = 4, write = false }
s:expect_output('id      = 0x4c554131 "LUA1"\n')
s:expect_output("scratch = 0xdeadbeef\n")
s:expect_output("count   = 43\n")
s:expect_output("crc     = 0x414fa339 (device), 0x414fa339 (guest)\n")
s:expect_output("mmio64: everything matched\n")
s:expect_exit{ reason = "io", dir = "out", port = 0xf4, value = 0 }
s:finish{ reason = "stop", code = 0 }

check(not s:text():find("check %d+ failed"), "the guest reported a failed check: %q", s:text())
check(dev.count == #FOX, "the device counted %d bytes, expected %d", dev.count, #FOX)
check(table.concat(dev.pushed) == FOX, "the device got %q", table.concat(dev.pushed))
check(dev.scratch == 0xdeadbeef, "SCRATCH holds 0x%x", dev.scratch)
local stats = s.vm:stats()
check(stats.reasons.mmio == dev.reads + dev.writes,
      "the statistics count %s MMIO exits, the device saw %d accesses",
      tostring(stats.reasons.mmio), dev.reads + dev.writes)
