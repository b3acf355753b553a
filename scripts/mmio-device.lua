-- usage: luavmm scripts/mmio-device.lua [--trace]
--
-- A device written in Lua: a byte sink that counts the bytes pushed into it
-- and computes their CRC-32, mapped at MMIO 0xD0000000 (4 KiB). The guest
-- (guests/mmio64.c, 64-bit long mode) checks every register and exits with
-- 0, or with the number of the first check that failed; so does this
-- script. --trace prints each register access on stderr.
--
-- Registers, 32 bits each, at offsets from the base:
--   0x00 ID       read-only   0x4C554131, "LUA1"
--   0x04 CTRL     write-only  writing a value with bit 0 set resets the
--                             device: COUNT = 0, the CRC starts over
--   0x08 COUNT    read-only   bytes pushed since the last reset
--   0x0C DATA     write-only  pushes the low byte of the value written
--   0x10 CRC      read-only   CRC-32 (IEEE 802.3, as zlib's crc32) of the
--                             bytes pushed since the last reset
--   0x14 SCRATCH  read/write  32 bits kept for the guest
-- Reads of write-only registers and of unknown offsets return 0; writes to
-- read-only registers and to unknown offsets are ignored. A register is
-- found by the offset of the access alone, whatever its width: a 1-byte
-- read of ID returns its low byte (the core truncates a read result to the
-- access size), a 1-byte write to DATA pushes a byte.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/mmio-device.lua

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local BASE, SIZE = 0xD0000000, 0x1000

-- ---- the device ----

local ID, CTRL, COUNT, DATA, CRC, SCRATCH = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
local NAMES = { [ID] = "ID", [CTRL] = "CTRL", [COUNT] = "COUNT", [DATA] = "DATA", [CRC] = "CRC",
                [SCRATCH] = "SCRATCH" }
local DEVICE_ID = 0x4C554131

-- One byte into a running CRC-32: the reflected polynomial 0xEDB88320,
-- bit by bit. The running value starts at 0xFFFFFFFF and is inverted when
-- read out, as zlib does.
local function crc32_byte(crc, byte)
  crc = crc ~ byte
  for _ = 1, 8 do
    if crc & 1 ~= 0 then
      crc = (crc >> 1) ~ 0xEDB88320
    else
      crc = crc >> 1
    end
  end
  return crc
end

-- Makes one device: its state and the handler to give vm:on_mmio. Each
-- call makes an independent device, so two of them can sit at two bases.
-- opts.trace = function(text) is called with a line for each access.
local function new_device(opts)
  local trace = opts and opts.trace
  local dev = {
    count = 0,            -- bytes pushed since the reset
    crc = 0xFFFFFFFF,     -- the running CRC, not yet inverted
    scratch = 0,
  }

  function dev.reset()
    dev.count = 0
    dev.crc = 0xFFFFFFFF
  end

  -- What each register does, by offset. A register missing from `reads`
  -- reads as 0; one missing from `writes` ignores writes.
  local reads = {
    [ID] = function() return DEVICE_ID end,
    [COUNT] = function() return dev.count end,
    [CRC] = function() return dev.crc ~ 0xFFFFFFFF end,
    [SCRATCH] = function() return dev.scratch end,
  }
  local writes = {
    [CTRL] = function(v) if v & 1 ~= 0 then dev.reset() end end,
    [DATA] = function(v)
      dev.count = (dev.count + 1) & 0xFFFFFFFF
      dev.crc = crc32_byte(dev.crc, v & 0xFF)
    end,
    [SCRATCH] = function(v) dev.scratch = v & 0xFFFFFFFF end,
  }

  -- The MMIO handler: offset is relative to the device's base; value is
  -- nil for a read, and a read returns the value the guest sees.
  function dev.mmio(cpu, offset, size, value)
    local name = NAMES[offset] or string.format("0x%x", offset)
    if value == nil then
      local read = reads[offset]
      local result = read and read() or 0
      if trace then trace(string.format("read  %-7s -> 0x%08x", name, result)) end
      return result
    end
    if trace then trace(string.format("write %-7s <- 0x%08x", name, value)) end
    local write = writes[offset]
    if write then write(value) end
  end

  return dev
end

-- ---- the machine ----

-- The machine: the device at BASE, the console and exit ports in C, and
-- (with opts.guest) the guest loaded and the CPU in long mode. Without a
-- guest it is what scripts/trace.lua replays a trace against.
local function machine(opts)
  local vm = vmm.vm{ memory = "64M", unhandled = "stop" }
  if opts.guest then
    vm:load(opts.guest, mode.layout.entry)
    vm:cpu(0):set_mode("long") -- maps the first 4 GiB, so 0xD0000000 is reachable
  end
  vm:debugcon{ port = 0xe9, path = opts.console }
  vm:debug_exit{ port = 0xf4 }
  local dev = (opts.new_device or new_device){ trace = opts.trace }
  vm:on_mmio(BASE, SIZE, dev.mmio)
  return vm, dev
end

local function main(args)
  local trace
  for _, a in ipairs(args) do
    if a == "--trace" then
      trace = function(text) io.stderr:write("mmio: ", text, "\n") end
    else
      io.stderr:write("mmio-device.lua: unexpected argument '", a, "'\n",
                      "usage: mmio-device.lua [--trace]\n")
      return 2
    end
  end

  local path, missing = guests.find("mmio64.bin")
  if not path then
    io.stderr:write("mmio-device.lua: ", missing, "\n")
    return 1
  end

  local vm <close> = machine{ guest = path, trace = trace }

  local result = vm:run{ timeout = 5 }
  if result.reason == "exit" then
    return result.code
  end
  io.stderr:write(string.format("mmio-device.lua: the guest did not finish: %s at rip 0x%x\n",
                                result.reason, result.rip))
  return 1
end

-- Loaded by another script (scripts/trace.lua) with "--module": hand over
-- the device and the machine instead of running.
if ... == "--module" then
  return { new_device = new_device, machine = machine, crc32_byte = crc32_byte }
end
os.exit(main(arg or {}))
