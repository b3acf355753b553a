-- usage: luavmm scripts/virtio-blk.lua [--image PATH] [--indirect] [--event-idx]
--
-- A virtio-blk disk in C (vm:virtio_blk) driven by a guest that uses the
-- runtime's virtio driver (guests/virtio_blk64.c, 64-bit long mode): it
-- reads the capacity, asks for the disk's id, writes a pattern to sectors
-- 0-2, 8-15 (one request split over five descriptors) and the last one,
-- flushes, reads it all back and compares, then checks that reads and a
-- write past the end fail with IOERR. The script prints what the device
-- counted (dev:status()), checks the pattern in the image file itself, and
-- exits with the guest's exit code: 0 when every check held.
--
--   --image PATH   use this image (at least 32 sectors; its sectors 0-2,
--                  8-15 and the last one are overwritten) instead of a
--                  temporary 1 MiB one
--   --indirect     ask for indirect descriptors (VIRTIO_F_INDIRECT_DESC)
--   --event-idx    ask for event indexes (VIRTIO_F_EVENT_IDX)
--
-- The guest finds the device at 0xD0000000 and asks for its parameters
-- with hypercall 0x30 (index in rdi: 0 the mode, 1 the device's address,
-- 2 the features), see guests/vtest.h.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/virtio-blk.lua

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local BASE, IRQ = 0xd0000000, 5
local HC_PARAM = 0x30
local SECTOR = 512

-- The pattern of guests/vtest.h: what sector s must hold.
local function pattern(s)
  local t = { string.format("sector %08x\n", s) }
  for i = 16, SECTOR - 1 do t[#t + 1] = string.char(((s * 7 + i) & 0xff) ~ 0xa5) end
  return table.concat(t)
end

local function usage(msg)
  io.stderr:write("virtio-blk.lua: ", msg, "\nusage: virtio-blk.lua [--image PATH] "
                  .. "[--indirect] [--event-idx]\n")
  return 2
end

local function main(...)
  local args, image, features = { ... }, nil, 0
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--image" and args[i + 1] then
      image, i = args[i + 1], i + 1
    elseif a == "--indirect" then
      features = features | 1
    elseif a == "--event-idx" then
      features = features | 2
    else
      return usage("unknown argument " .. a)
    end
    i = i + 1
  end

  local path, missing = guests.find("virtio_blk64.bin")
  if not path then
    io.stderr:write("virtio-blk.lua: ", missing, "\n")
    return 1
  end

  local temporary = image == nil
  if temporary then
    image = os.tmpname()
    local img = assert(io.open(image, "wb"))
    img:write(string.rep("\0", 1024 * 1024))
    img:close()
  end

  local vm <close> = vmm.vm{ memory = "16M" }
  vm:load(path, mode.layout.entry)
  vm:cpu(0):set_mode("long")
  vm:debugcon{ port = 0xe9 }
  vm:debug_exit{ port = 0xf4 }
  local dev = vm:virtio_blk{ addr = BASE, irq = IRQ, path = image, id = "luavmm-example" }
  local params = { [0] = 0, [1] = BASE, [2] = features }
  vm:on_hypercall(HC_PARAM, function(_, index) return params[index] or 0 end)

  local t0 = vmm.now()
  local r = vm:run{ timeout = 30 }
  local elapsed = vmm.now() - t0
  local st = dev:status()
  print(string.format("run: %s%s after %.3f s, %d exits", r.reason,
                      r.code and (" " .. r.code) or "", elapsed, r.exits))
  print(string.format("%s: status 0x%x, features 0x%x, %d notifications, %d interrupts",
                      tostring(dev), st.status, st.features, st.notifies, st.interrupts))
  print(string.format("  %d reads (%d bytes), %d writes (%d bytes), %d flushes, %d I/O errors, "
                      .. "%d bad accesses, needs reset: %s%s", st.reads, st.bytes_read, st.writes,
                      st.bytes_written, st.flushes, st.io_errors, st.bad_accesses,
                      tostring(st.needs_reset), st.error and (" (" .. st.error .. ")") or ""))
  vm:close()

  -- The image itself, as the device left it.
  local img = assert(io.open(image, "rb"))
  local data = img:read("a")
  img:close()
  local last = #data // SECTOR - 1
  local bad = {}
  for _, s in ipairs{ 0, 1, 2, 8, 9, 10, 11, 12, 13, 14, 15, last } do
    if data:sub(s * SECTOR + 1, (s + 1) * SECTOR) ~= pattern(s) then bad[#bad + 1] = s end
  end
  print(#bad == 0 and "image: the pattern is on sectors 0-2, 8-15 and " .. last
        or "image: sectors without the pattern: " .. table.concat(bad, ", "))
  if temporary then os.remove(image) end

  if r.reason ~= "exit" then return 1 end
  if r.code == 0 and #bad > 0 then return 1 end
  return r.code
end

os.exit(main(...))
