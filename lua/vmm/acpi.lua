-- Minimal ACPI tables for a vmm.pc machine, built from its layout: what an
-- OS needs to find the CPUs and the interrupt controllers without a BIOS.
--
--   local acpi = require "vmm.acpi"
--   local t = acpi.install(machine)      -- t.rsdp, t.rsdt, t.xsdt, t.fadt, ...
--
-- Tables (every one with its checksum; OEM "LUAVMM"):
--   RSDP  revision 2 (ACPI 2.0+): RSDT and XSDT addresses, both checksums
--   RSDT  32-bit pointers to the FADT and the MADT
--   XSDT  the same, 64-bit
--   FADT  revision 6, minor 0 (ACPI 6.0), with HW_REDUCED_ACPI set
--   DSDT  revision 2, the header alone (an empty AML body)
--   MADT  revision 4: a local APIC per vCPU (APIC ID = vCPU index), the
--         I/O APIC at 0xfec00000 (GSI 0-23), IRQ0 -> GSI 2, NMI on LINT1
--
-- Why FADT revision 6 with HW_REDUCED_ACPI: the machine has none of ACPI's
-- fixed hardware (no PM1 event/control blocks, no PM timer, no GPE blocks,
-- no SCI, no sleep states). A hardware-reduced FADT says exactly that, and
-- the flag exists only from revision 5 on; with it the FACS is optional,
-- so there is none (FIRMWARE_CTRL and X_FIRMWARE_CTRL are 0) and no ACPI
-- NVS memory is needed. The DSDT is empty, so there is no SCI to route and
-- no override for IRQ 9.
--
-- Where (pc's firmware area, 0xe0000..0xfffff, reserved in the e820 map):
--   0xe0000  RSDT, XSDT, FADT, DSDT, MADT, 16-byte aligned, in that order;
--            [0xe0000, end rounded up to 4 KiB) is marked E820_ACPI
--   0xf0000  the RSDP, where an OS scanning 0xe0000..0xfffff on 16-byte
--            boundaries finds it; it stays in plain reserved memory, as on
--            real machines, so reclaiming ACPI memory cannot lose it
-- vmm.mptable puts the MP tables after the RSDP.

local pc = require "vmm.pc"

local M = {}

M.layout = {
  tables = 0xe0000,
  tables_end = 0xf0000,
  rsdp = 0xf0000,
}

M.LAPIC = 0xfee00000
M.IOAPIC = 0xfec00000
M.IOAPIC_PINS = 24
M.OEM_ID = "LUAVMM"
M.OEM_TABLE_ID = "LUAVMM  "
M.CREATOR_ID = "LVMM"

M.FADT_REVISION, M.FADT_MINOR = 6, 0
M.MADT_REVISION = 4
M.FADT_SIZE = 276

-- FADT flags and IA-PC boot architecture flags.
M.FADT_WBINVD, M.FADT_PWR_BUTTON, M.FADT_SLP_BUTTON = 1 << 0, 1 << 4, 1 << 5
M.FADT_HW_REDUCED_ACPI = 1 << 20
M.BOOT_LEGACY_DEVICES, M.BOOT_8042, M.BOOT_NO_VGA, M.BOOT_NO_MSI, M.BOOT_NO_CMOS_RTC =
  1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 5

--- The 8-bit checksum byte that makes s plus it sum to 0.
function M.checksum(s)
  local sum = 0
  for i = 1, #s do sum = sum + s:byte(i) end
  return (-sum) & 0xff
end

--- Do the bytes of s sum to 0 (mod 256)?
function M.sums_to_zero(s)
  return M.checksum(s) == 0
end

-- s with byte `at` (0-based) replaced by the checksum of the rest.
local function with_checksum(s, at)
  s = s:sub(1, at) .. "\0" .. s:sub(at + 2)
  return s:sub(1, at) .. string.char(M.checksum(s)) .. s:sub(at + 2)
end

--- A table: the 36-byte header (signature, length, revision, checksum, OEM
--- fields) and body.
function M.sdt(signature, revision, body)
  local header = string.pack("<c4I4BBc6c8I4c4I4", signature, 36 + #body, revision, 0,
                             M.OEM_ID, M.OEM_TABLE_ID, 1, M.CREATOR_ID, 1)
  return with_checksum(header .. body, 9)
end

-- A generic address structure; all zeroes is "not present".
local NO_GAS = string.rep("\0", 12)

local function fadt(dsdt, boot_arch)
  local flags = M.FADT_WBINVD | M.FADT_PWR_BUTTON | M.FADT_SLP_BUTTON | M.FADT_HW_REDUCED_ACPI
  local body = string.pack("<I4I4BBI2I4BBBB", 0, dsdt, 0, 0, 0, 0, 0, 0, 0, 0)   -- 36..55
    .. string.rep("\0", 32)                 -- PM1a/b event, PM1a/b control, PM2, PM timer, GPE0/1
    .. string.rep("\0", 8)                  -- their lengths, GPE1 base, CST_CNT
    .. string.rep("\0", 8)                  -- P_LVL2/3 latency, flush size and stride
    .. string.pack("<BBBBB", 0, 0, 0, 0, 0) -- duty offset/width, alarms, century
    .. string.pack("<I2BI4", boot_arch, 0, flags)
    .. NO_GAS .. string.pack("<BI2B", 0, 0, M.FADT_MINOR) -- reset register and value, ARM, minor
    .. string.pack("<I8I8", 0, dsdt)        -- X_FIRMWARE_CTRL (no FACS), X_DSDT
    .. string.rep(NO_GAS, 10)               -- X_PM1a_EVT .. X_GPE1, sleep control/status
    .. string.pack("<c8", "LUAVMM\0\0")     -- hypervisor vendor identity
  local t = M.sdt("FACP", M.FADT_REVISION, body)
  assert(#t == M.FADT_SIZE)
  return t
end

local function madt(cpus, ioapic_id)
  local entries = {}
  for i = 0, cpus - 1 do
    -- processor local APIC: ACPI UID, APIC ID, flags (enabled)
    entries[#entries + 1] = string.pack("<BBBBI4", 0, 8, i, i, 1)
  end
  entries[#entries + 1] = string.pack("<BBBBI4I4", 1, 12, ioapic_id, 0, M.IOAPIC, 0)
  -- interrupt source override: ISA IRQ 0 (the PIT) is wired to GSI 2;
  -- flags 0: the bus's polarity and trigger (ISA: active high, edge)
  entries[#entries + 1] = string.pack("<BBBBI4I2", 2, 10, 0, 0, 2, 0)
  -- local APIC NMI: every processor (UID 0xff), LINT1, bus-conforming
  entries[#entries + 1] = string.pack("<BBBI2B", 4, 6, 0xff, 0, 1)
  local body = string.pack("<I4I4", M.LAPIC, 1)   -- flags: PCAT_COMPAT (8259s present)
    .. table.concat(entries)
  return M.sdt("APIC", M.MADT_REVISION, body)
end

local function rsdp(rsdt, xsdt)
  local v1 = with_checksum(string.pack("<c8Bc6BI4", "RSD PTR ", 0, M.OEM_ID, 2, rsdt), 8)
  local full = v1 .. string.pack("<I4I8BBBB", 36, xsdt, 0, 0, 0, 0)
  return with_checksum(full, 32)
end

local function align(v, a) return (v + a - 1) // a * a end

local KNOWN = { i8042 = true, rtc = true }

--- acpi.install(machine, { i8042 = false, rtc = false }) -> { rsdp, rsdt,
--- xsdt, fadt, dsdt, madt, range = { addr, size }, ioapic_id, cpus }
--- Writes the tables into the machine's firmware area and marks them in its
--- e820 map. i8042 and rtc only set FADT's boot architecture flags (an
--- 8042 present, a CMOS RTC absent) for devices the caller installs.
function M.install(machine, opts)
  opts = opts or {}
  if type(machine) ~= "table" or not machine.vm or type(machine.reserve) ~= "function" then
    error("acpi.install: expected a vmm.pc machine", 2)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(string.format("acpi.install: unknown option '%s' (known: i8042, rtc)", tostring(k)), 2)
    end
  end
  local vm = machine.vm
  local cpus = vm.cpus
  if cpus > 254 then
    error(string.format("acpi.install: %d vCPUs do not fit 8-bit APIC IDs (at most 254, "
                        .. "leaving an ID for the I/O APIC)", cpus), 2)
  end
  local ioapic_id = cpus        -- unique among the APIC IDs, as the MP spec asks
  local boot_arch = M.BOOT_LEGACY_DEVICES | M.BOOT_NO_VGA | M.BOOT_NO_MSI
    | (opts.i8042 and M.BOOT_8042 or 0) | (opts.rtc and 0 or M.BOOT_NO_CMOS_RTC)

  local L = M.layout
  local at = L.tables
  local placed = {}
  local function place(name, size)
    placed[name] = at
    at = align(at + size, 16)
  end
  -- Sizes first (the pointers need the addresses), then the bytes.
  local madt_bytes = madt(cpus, ioapic_id)
  local dsdt_bytes = M.sdt("DSDT", 2, "")
  place("rsdt", 36 + 2 * 4)
  place("xsdt", 36 + 2 * 8)
  place("fadt", M.FADT_SIZE)
  place("dsdt", #dsdt_bytes)
  place("madt", #madt_bytes)
  if at > L.tables_end then
    error(string.format("acpi.install: the tables need 0x%x bytes, more than the 0x%x at 0x%x",
                        at - L.tables, L.tables_end - L.tables, L.tables), 2)
  end

  local mem = vm.memory
  local fadt_bytes = fadt(placed.dsdt, boot_arch)
  mem:write(placed.rsdt, M.sdt("RSDT", 1, string.pack("<I4I4", placed.fadt, placed.madt)))
  mem:write(placed.xsdt, M.sdt("XSDT", 1, string.pack("<I8I8", placed.fadt, placed.madt)))
  mem:write(placed.fadt, fadt_bytes)
  mem:write(placed.dsdt, dsdt_bytes)
  mem:write(placed.madt, madt_bytes)
  mem:write(L.rsdp, rsdp(placed.rsdt, placed.xsdt))

  local size = align(at - L.tables, 0x1000)
  machine:reserve(L.tables, size, pc.E820_ACPI)
  placed.rsdp = L.rsdp
  placed.range = { addr = L.tables, size = size }
  placed.ioapic_id = ioapic_id
  placed.cpus = cpus
  return placed
end

return M
