-- A PC-shaped machine: RAM split around the 32-bit PCI hole, the legacy
-- areas reserved, and the e820 memory map that firmware would hand an OS,
-- built from that layout. Loaders (vmm.linux, vmm.multiboot) and firmware
-- tables (vmm.acpi, vmm.fwcfg) take their memory map from here.
--
--   local pc = require "vmm.pc"
--   local m = pc.new{ memory = "256M", cpus = 2, irqchip = true }
--   m.vm ...                  -- the vmm.vm
--   for _, e in ipairs(m:e820()) do print(e.addr, e.size, e.type) end
--   m:install_firmware{ cmdline = "..." }   -- fw_cfg, ACPI and MP tables

local vmm = require "vmm"

local M = {}

M.E820_RAM, M.E820_RESERVED, M.E820_ACPI, M.E820_NVS = 1, 2, 3, 4

local GiB = 1 << 30

-- Fixed addresses of the layout.
M.layout = {
  low_ram_end = 0x9fc00,        -- conventional memory ends where the EBDA starts
  bios_area = 0xe0000,          -- 0xe0000..0xfffff: firmware tables (ACPI, MP)
  bios_area_end = 0x100000,
  high_ram = 0x100000,          -- 1 MiB
  pci_hole = 0xc0000000,        -- 3 GiB: RAM stops here below 4 GiB
  pci_hole_end = 0x100000000,   -- 4 GiB: the rest of RAM continues here
}

local Machine = {}
Machine.__index = Machine

--- The RAM regions for `size` bytes: below the PCI hole, then above 4 GiB.
function M.ram_regions(size)
  local below = math.min(size, M.layout.pci_hole)
  local regions = { { gpa = 0, size = below, name = "ram" } }
  if size > below then
    regions[2] = { gpa = M.layout.pci_hole_end, size = size - below, name = "ram-high" }
  end
  return regions
end

--- pc.new{ memory = "256M", cpus = 1, irqchip = false, pit = false,
---   unhandled = "stop" } -> machine with .vm, .ram_size, :e820(), :reserve()
function M.new(opts)
  opts = opts or {}
  local size = vmm.parse_size(opts.memory or "256M")
  if size < 2 * 1024 * 1024 then
    error("pc: memory must be at least 2M (the legacy areas and 1 MiB of high RAM)", 2)
  end
  local vm = vmm.vm{ memory = false, cpus = opts.cpus, irqchip = opts.irqchip, pit = opts.pit,
                     unhandled = opts.unhandled }
  for _, r in ipairs(M.ram_regions(size)) do vm.memory:map(r) end
  return setmetatable({ vm = vm, ram_size = size, reserved = {} }, Machine)
end

--- Marks [addr, addr+size) with an e820 type other than RAM (ACPI tables,
--- say); later calls win where ranges overlap.
function Machine:reserve(addr, size, type)
  self.reserved[#self.reserved + 1] = { addr = addr, size = size, type = type or M.E820_RESERVED }
end

-- Cuts [addr, addr+size) out of a sorted list of ranges and inserts it with
-- its own type.
local function carve(list, addr, size, type)
  local out = {}
  local stop = addr + size
  for _, e in ipairs(list) do
    local e_end = e.addr + e.size
    if e_end <= addr or e.addr >= stop then
      out[#out + 1] = e
    else
      if e.addr < addr then out[#out + 1] = { addr = e.addr, size = addr - e.addr, type = e.type } end
      if e_end > stop then out[#out + 1] = { addr = stop, size = e_end - stop, type = e.type } end
    end
  end
  out[#out + 1] = { addr = addr, size = size, type = type }
  table.sort(out, function(a, b) return a.addr < b.addr end)
  return out
end

--- The e820 map: { { addr, size, type }, ... } sorted, not overlapping.
--- Usable RAM is what the regions hold, less the EBDA and the firmware
--- area below 1 MiB (0x9fc00..0x100000 is not RAM to the OS) and whatever
--- was reserved.
function Machine:e820()
  local map = {}
  for _, r in ipairs(M.ram_regions(self.ram_size)) do
    map[#map + 1] = { addr = r.gpa, size = r.size, type = M.E820_RAM }
  end
  local L = M.layout
  map = carve(map, L.low_ram_end, L.high_ram - L.low_ram_end, M.E820_RESERVED)
  -- Only the firmware area stays listed; 0x9fc00..0xe0000 (EBDA, VGA) is a
  -- hole, as on real machines.
  local out = {}
  for _, e in ipairs(map) do
    if e.type ~= M.E820_RESERVED or e.addr ~= L.low_ram_end then
      out[#out + 1] = e
    else
      out[#out + 1] = { addr = L.low_ram_end, size = 0x400, type = M.E820_RESERVED }
      out[#out + 1] = { addr = L.bios_area, size = L.bios_area_end - L.bios_area,
                        type = M.E820_RESERVED }
    end
  end
  for _, r in ipairs(self.reserved) do out = carve(out, r.addr, r.size, r.type) end
  return out
end

--- Usable RAM below `limit` (for placing things: an initrd, modules):
--- the highest usable range's end, and its start.
function Machine:highest_ram_below(limit)
  local best
  for _, e in ipairs(self:e820()) do
    if e.type == M.E820_RAM and e.addr < limit then
      local stop = math.min(e.addr + e.size, limit)
      if not best or stop > best.stop then best = { start = e.addr, stop = stop } end
    end
  end
  return best
end

--- Firmware interfaces for an OS or a boot loader: fw_cfg on ports
--- 0x510/0x511 (vmm.fwcfg), the ACPI tables (vmm.acpi) and the MP tables
--- (vmm.mptable). opts: cmdline (fw_cfg's kernel command line), uuid,
--- i8042 and rtc (ACPI's boot flags; the devices are installed apart).
--- Returns { fwcfg = fw, acpi = tables, mp = tables }, also kept in
--- machine.firmware.
function Machine:install_firmware(opts)
  opts = opts or {}
  local fw = require("vmm.fwcfg").install(self.vm, {
    cpus = self.vm.cpus,
    -- The legacy RAM size item holds the RAM below 4 GiB, as QEMU's does.
    ram_size = math.min(self.ram_size, M.layout.pci_hole),
    cmdline = opts.cmdline,
    uuid = opts.uuid,
  })
  local tables = require("vmm.acpi").install(self, { i8042 = opts.i8042, rtc = opts.rtc })
  local mp = require("vmm.mptable").install(self)
  self.firmware = { fwcfg = fw, acpi = tables, mp = mp }
  return self.firmware
end

function Machine:close()
  self.vm:close()
end
Machine.__close = Machine.close

return M
