-- vmm.virtio: the virtio-mmio constants, and a driver made of vm:dispatch
-- calls and guest-memory writes, which drives a virtio device (C or Lua)
-- as a guest driver would, without a guest: for tests and for trying a
-- device out at the REPL.
--
--   local virtio = require "vmm.virtio"
--   local drv = virtio.driver(vm, 0xd0000000, { memory = 0x10000 })
--   drv:init()                         -- reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK
--   drv:queue(0, 8)                    -- rings for queue 0, 8 entries, made ready
--   drv:live()                         -- DRIVER_OK
--   drv:offer(0, { { 0x8000, 16, write = true } })  -- a chain of buffers
--   drv:notify(0)                      -- QueueNotify: the device runs now
--   for _, e in ipairs(drv:used(0)) do print(e.id, e.len) end

local M = {}

-- Register offsets (virtio 1.x, 4.2.2).
M.reg = {
  magic = 0x000, version = 0x004, device_id = 0x008, vendor_id = 0x00c,
  device_features = 0x010, device_features_sel = 0x014,
  driver_features = 0x020, driver_features_sel = 0x024,
  queue_sel = 0x030, queue_num_max = 0x034, queue_num = 0x038, queue_ready = 0x044,
  queue_notify = 0x050, interrupt_status = 0x060, interrupt_ack = 0x064, status = 0x070,
  queue_desc_low = 0x080, queue_desc_high = 0x084,
  queue_driver_low = 0x090, queue_driver_high = 0x094,
  queue_device_low = 0x0a0, queue_device_high = 0x0a4,
  config_generation = 0x0fc, config = 0x100,
}

M.status = {
  acknowledge = 1, driver = 2, driver_ok = 4, features_ok = 8, needs_reset = 64, failed = 128,
}

-- Feature bit numbers.
M.feature = { indirect_desc = 28, event_idx = 29, version_1 = 32 }

M.desc = { next = 1, write = 2, indirect = 4 }
M.avail = { no_interrupt = 1 }
M.interrupt = { used = 1, config = 2 }

local Driver = {}
Driver.__index = Driver

-- A driver for the device at `base`. opts.memory: where its rings go in
-- guest memory (default 0x10000; each queue takes 16 KiB from there);
-- opts.cpu: the vCPU making the accesses (default 0).
function M.driver(vm, base, opts)
  opts = opts or {}
  return setmetatable({
    vm = vm, base = base, cpu = opts.cpu or 0, memory = opts.memory or 0x10000,
    queues = {},
  }, Driver)
end

function Driver:read(offset, size)
  return self.vm:dispatch{ cpu = self.cpu, kind = "mmio", addr = self.base + offset,
                           size = size or 4 }
end

function Driver:write(offset, value, size)
  self.vm:dispatch{ cpu = self.cpu, kind = "mmio", addr = self.base + offset, size = size or 4,
                    value = value }
end

function Driver:status() return self:read(M.reg.status) end

-- The device's 64 feature bits.
function Driver:device_features()
  self:write(M.reg.device_features_sel, 0)
  local low = self:read(M.reg.device_features)
  self:write(M.reg.device_features_sel, 1)
  return low | (self:read(M.reg.device_features) << 32)
end

-- Resets the device and negotiates `features` (default VERSION_1 only).
-- Returns whether FEATURES_OK stuck.
function Driver:init(features)
  features = features or (1 << M.feature.version_1)
  self:write(M.reg.status, 0)
  self:write(M.reg.status, M.status.acknowledge)
  self:write(M.reg.status, M.status.acknowledge | M.status.driver)
  self:write(M.reg.driver_features_sel, 0)
  self:write(M.reg.driver_features, features & 0xffffffff)
  self:write(M.reg.driver_features_sel, 1)
  self:write(M.reg.driver_features, features >> 32)
  self:write(M.reg.status, M.status.acknowledge | M.status.driver | M.status.features_ok)
  self.features = features
  for q in pairs(self.queues) do self.queues[q] = nil end
  return self:status() & M.status.features_ok ~= 0
end

-- Sets queue q up with `size` entries (default QueueNumMax) and makes it
-- ready. Returns the queue's record { size, desc, avail, used }.
function Driver:queue(q, size)
  self:write(M.reg.queue_sel, q)
  size = size or self:read(M.reg.queue_num_max)
  local at = self.memory + q * 0x4000
  local rec = { size = size, desc = at, avail = at + 16 * size, next_desc = 0, seen = 0 }
  rec.used = (rec.avail + 6 + 2 * size + 3) & ~3
  assert(rec.used + 6 + 8 * size <= at + 0x4000, "vmm.virtio: queue too large for 16 KiB")
  self.vm.memory:fill(at, 0x4000, 0)
  self:write(M.reg.queue_num, size)
  for _, r in ipairs{ { "desc", rec.desc }, { "driver", rec.avail }, { "device", rec.used } } do
    self:write(M.reg["queue_" .. r[1] .. "_low"], r[2] & 0xffffffff)
    self:write(M.reg["queue_" .. r[1] .. "_high"], r[2] >> 32)
  end
  self:write(M.reg.queue_ready, 1)
  self.queues[q] = rec
  return rec
end

-- DRIVER_OK: the device is live.
function Driver:live()
  self:write(M.reg.status, self:status() | M.status.driver_ok)
end

-- Writes a chain of buffers { { addr, len, write = bool }, ... } into free
-- descriptors and makes it available. Returns its head.
function Driver:offer(q, bufs)
  local rec = assert(self.queues[q], "vmm.virtio: queue not set up")
  local mem = self.vm.memory
  local first = rec.next_desc
  for i, b in ipairs(bufs) do
    local idx = (first + i - 1) % rec.size
    local flags = (b.write and M.desc.write or 0) | (i < #bufs and M.desc.next or 0)
    mem:write(rec.desc + 16 * idx, string.pack("<I8I4I2I2", b[1], b[2], flags,
                                                (idx + 1) % rec.size))
  end
  rec.next_desc = (first + #bufs) % rec.size
  local avail_idx = mem:u16(rec.avail + 2)
  mem:u16(rec.avail + 4 + 2 * (avail_idx % rec.size), first)
  mem:u16(rec.avail + 2, (avail_idx + 1) & 0xffff)
  return first
end

function Driver:notify(q)
  self:write(M.reg.queue_notify, q)
end

-- The used entries the device added since the last call: { { id, len }, ... }.
function Driver:used(q)
  local rec = assert(self.queues[q], "vmm.virtio: queue not set up")
  local mem = self.vm.memory
  local idx = mem:u16(rec.used + 2)
  local out = {}
  while rec.seen ~= idx do
    local at = rec.used + 4 + 8 * (rec.seen % rec.size)
    out[#out + 1] = { id = mem:u32(at), len = mem:u32(at + 4) }
    rec.seen = (rec.seen + 1) & 0xffff
  end
  return out
end

-- InterruptStatus, acknowledged (returns what it was).
function Driver:ack()
  local isr = self:read(M.reg.interrupt_status)
  if isr ~= 0 then self:write(M.reg.interrupt_ack, isr) end
  return isr
end

return M
