-- usage: luavmm scripts/trace.lua record FILE
--        luavmm scripts/trace.lua replay FILE [--broken]
--
-- Record and replay at the level of VM exits, on the CRC-32 device of
-- scripts/mmio-device.lua.
--
--   record  runs the mmio64 guest against the device with vm:trace(FILE):
--           every exit (MMIO register accesses, console bytes, the exit
--           port) and the answer the guest got go to FILE.
--   replay  builds the same machine with no guest at all and feeds FILE to
--           its handlers (lua/vmm/trace.lua): each read must get the
--           answer that was recorded. It takes milliseconds, so it makes a
--           regression test for a device. --broken replays against a copy
--           of the device with a deliberate bug (the CRC-32C polynomial),
--           to show what a divergence looks like.
-- Exit status: 0 when the guest passed (record) or the replay matched,
-- 1 when it did not, 2 for a usage error.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/trace.lua record /tmp/mmio.trace

local trace = require "vmm.trace"
local guests = require "vmm.guests"

local USAGE = "usage: trace.lua record FILE | replay FILE [--broken]"

-- scripts/mmio-device.lua, loaded for its device and machine.
local function device_script()
  local source = debug.getinfo(1, "S").source
  local script = source:sub(1, 1) == "@" and source:sub(2) or arg[0]
  local dir = script:match("^(.*)/[^/]*$") or "."
  return assert(loadfile(dir .. "/mmio-device.lua"))("--module")
end

local function record(dev, path)
  local guest, missing = guests.find("mmio64.bin")
  if not guest then
    io.stderr:write("trace.lua: ", missing, "\n")
    return 1
  end
  local vm <close> = dev.machine{ guest = guest, console = "/dev/null" }
  vm:trace(path)
  local r = vm:run{ timeout = 5 }
  local n = vm:trace(false)
  print(string.format("recorded %d exits to %s; the guest ended with %s %s", n, path,
                      r.reason, tostring(r.code)))
  return (r.reason == "exit" and r.code == 0) and 0 or 1
end

-- The device with a bug: it computes CRC-32C instead of CRC-32.
local function broken_device(dev)
  return function(opts)
    local d = dev.new_device(opts)
    local mmio = d.mmio
    function d.mmio(cpu, offset, size, value)
      if value ~= nil and offset == 0x0C then -- DATA: the buggy CRC step
        d.count = (d.count + 1) & 0xFFFFFFFF
        local crc = d.crc ~ (value & 0xFF)
        for _ = 1, 8 do
          crc = (crc & 1 ~= 0) and ((crc >> 1) ~ 0x82F63B78) or (crc >> 1)
        end
        d.crc = crc
        return
      end
      return mmio(cpu, offset, size, value)
    end
    return d
  end
end

local function replay(dev, path, broken)
  local vm <close> = dev.machine{ console = "/dev/null",
                                  new_device = broken and broken_device(dev) or nil }
  local t0 = os.clock()
  local ok, result = trace.replay(vm, path)
  local ms = (os.clock() - t0) * 1000
  if ok then
    print(string.format("replay matched: %d exits in %.1f ms", result, ms))
    return 0
  end
  print("replay diverged: " .. result.message)
  return 1
end

local function main(args)
  local cmd, path = args[1], args[2]
  local broken = args[3] == "--broken"
  if not path or (cmd ~= "record" and cmd ~= "replay") or (args[3] and not broken)
     or (broken and cmd ~= "replay") then
    io.stderr:write(USAGE, "\n")
    return 2
  end
  local dev = device_script()
  if cmd == "record" then return record(dev, path) end
  return replay(dev, path, broken)
end

os.exit(main(arg or {}))
