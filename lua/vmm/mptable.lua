-- The MultiProcessor Specification 1.4 tables for a vmm.pc machine: how
-- OSes older than ACPI (and small kernels that never learnt ACPI) find the
-- CPUs and the I/O APIC.
--
--   local mptable = require "vmm.mptable"
--   local t = mptable.install(machine)    -- t.floating, t.table
--
-- What goes in (the same machine vmm.acpi describes):
--   a processor entry per vCPU (local APIC ID = vCPU index, version 0x14,
--   vCPU 0 the bootstrap processor, signature and features from CPUID 1),
--   bus 0 "ISA", the I/O APIC at 0xfec00000 (ID = the vCPU count, version
--   0x11), I/O interrupt entries for the ISA IRQs: IRQ 0 as ExtINT on pin
--   0 (the 8259 cascade) and as INT on pin 2 (the PIT, like ACPI's IRQ0 ->
--   GSI 2 override), IRQs 1 and 3-15 on the pin of the same number (IRQ 2
--   is the PICs' cascade: no device raises it, and its pin is the PIT's),
--   and the local interrupts: ExtINT on LINT0 and NMI on LINT1 of every
--   local APIC.
--
-- Where: the floating pointer at 0xf0030 (16-byte aligned, in the BIOS
-- area 0xf0000..0xfffff that the MP spec tells an OS to scan), the
-- configuration table right after it at 0xf0040. Both stay in pc's
-- reserved firmware area; nothing is added to the e820 map.

local acpi = require "vmm.acpi"

local M = {}

M.layout = {
  floating = 0xf0030,
  table = 0xf0040,
  table_end = 0x100000,
}

M.SPEC_REV = 4                 -- MP spec 1.4
M.LAPIC_VERSION = 0x14         -- an integrated xAPIC
M.IOAPIC_VERSION = 0x11
M.OEM_ID = "LUAVMM  "
M.PRODUCT_ID = "LUAVMM PC   "

-- Entry types, and interrupt types of the interrupt entries.
M.PROCESSOR, M.BUS, M.IOAPIC, M.IO_INTERRUPT, M.LOCAL_INTERRUPT = 0, 1, 2, 3, 4
M.INT, M.NMI, M.SMI, M.EXTINT = 0, 1, 2, 3

local function with_checksum(s, at)
  s = s:sub(1, at) .. "\0" .. s:sub(at + 2)
  return s:sub(1, at) .. string.char(acpi.checksum(s)) .. s:sub(at + 2)
end

--- mptable.install(machine) -> { floating, table, size, entries, ioapic_id, cpus }
function M.install(machine)
  if type(machine) ~= "table" or not machine.vm then
    error("mptable.install: expected a vmm.pc machine", 2)
  end
  local vm = machine.vm
  local cpus = vm.cpus
  if cpus > 254 then
    error(string.format("mptable.install: %d vCPUs do not fit 8-bit APIC IDs (at most 254, "
                        .. "leaving an ID for the I/O APIC)", cpus), 2)
  end
  local ioapic_id = cpus
  local entries = {}
  for i = 0, cpus - 1 do
    local id = vm:cpu(i):cpuid(1)
    local flags = 1 | (i == 0 and 2 or 0)             -- enabled, bootstrap processor
    entries[#entries + 1] = string.pack("<BBBBI4I4I8", M.PROCESSOR, i, M.LAPIC_VERSION, flags,
                                        id and id.eax or 0, id and id.edx or 0, 0)
  end
  entries[#entries + 1] = string.pack("<BBc6", M.BUS, 0, "ISA   ")
  entries[#entries + 1] = string.pack("<BBBBI4", M.IOAPIC, ioapic_id, M.IOAPIC_VERSION, 1,
                                      acpi.IOAPIC)
  -- I/O interrupts: type, interrupt type, flags (0: the bus's polarity and
  -- trigger), source bus, source IRQ, destination I/O APIC, its pin.
  local function io_int(kind, irq, pin)
    entries[#entries + 1] = string.pack("<BBI2BBBB", M.IO_INTERRUPT, kind, 0, 0, irq,
                                        ioapic_id, pin)
  end
  io_int(M.EXTINT, 0, 0)
  io_int(M.INT, 0, 2)
  for irq = 1, 15 do
    if irq ~= 2 then io_int(M.INT, irq, irq) end
  end
  -- Local interrupts: to every local APIC (0xff).
  entries[#entries + 1] = string.pack("<BBI2BBBB", M.LOCAL_INTERRUPT, M.EXTINT, 0, 0, 0, 0xff, 0)
  entries[#entries + 1] = string.pack("<BBI2BBBB", M.LOCAL_INTERRUPT, M.NMI, 0, 0, 0, 0xff, 1)

  local body = table.concat(entries)
  local length = 44 + #body
  local L = M.layout
  if L.table + length > L.table_end then
    error(string.format("mptable.install: the table needs 0x%x bytes, more than the 0x%x at 0x%x",
                        length, L.table_end - L.table, L.table), 2)
  end
  local header = string.pack("<c4I2BBc8c12I4I2I2I4I2BB", "PCMP", length, M.SPEC_REV, 0,
                             M.OEM_ID, M.PRODUCT_ID, 0, 0, #entries, acpi.LAPIC, 0, 0, 0)
  local config = with_checksum(header .. body, 7)
  -- The floating pointer: signature, table address, length in 16-byte
  -- units, spec revision, checksum, feature bytes (all 0: the table is
  -- there, and the IMCR is absent, virtual wire mode).
  local floating = with_checksum(string.pack("<c4I4BBBBBBBB", "_MP_", L.table, 1, M.SPEC_REV,
                                             0, 0, 0, 0, 0, 0), 10)
  vm.memory:write(L.table, config)
  vm.memory:write(L.floating, floating)
  return { floating = L.floating, table = L.table, size = length, entries = #entries,
           ioapic_id = ioapic_id, cpus = cpus }
end

return M
