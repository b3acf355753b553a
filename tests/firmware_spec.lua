-- Firmware interfaces of the PC machine: fw_cfg (vmm.fwcfg) driven at the
-- register level from Lua and from a guest, and the ACPI and MP tables
-- (vmm.acpi, vmm.mptable) found and checked the way an OS would, by
-- scanning guest memory and verifying every checksum.
local vmm = require "vmm"
local pc = require "vmm.pc"
local fwcfg = require "vmm.fwcfg"
local acpi = require "vmm.acpi"
local mptable = require "vmm.mptable"
local H = require "helper"

local SELECT, DATA = 0x510, 0x511

-- fw_cfg through the ports, as a guest would: select, then n byte reads.
local function select(vm, key)
  vm:dispatch{ kind = "io", addr = SELECT, size = 2, value = key }
end

local function read_bytes(vm, n)
  local out = {}
  for i = 1, n do out[i] = string.char(vm:dispatch{ kind = "io", addr = DATA, size = 1 }) end
  return table.concat(out)
end

local function item(vm, key, n)
  select(vm, key)
  return read_bytes(vm, n)
end

local function sums_to_zero(s)
  local sum = 0
  for i = 1, #s do sum = sum + s:byte(i) end
  return sum % 256 == 0
end

describe("fw_cfg", function()
  local vm, fw
  before_each(function()
    vm = vmm.vm{ memory = "1M", cpus = 2 }
    fw = fwcfg.install(vm, { ram_size = 0x4000000, cmdline = "console=ttyS0 quiet",
                             uuid = "12345678-9abc-def0-1122-334455667788" })
  end)
  after_each(function() vm:close() end)

  it("reads the signature and an id saying: traditional interface, no DMA", function()
    assert.equal("QEMU", item(vm, 0x0000, 4))
    assert.equal(1, string.unpack("<I4", item(vm, 0x0001, 4)))
  end)

  it("reports the UUID, RAM size, CPU count and maximum, little-endian", function()
    assert.equal("\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11\x22\x33\x44\x55\x66\x77\x88",
                 item(vm, 0x0002, 16))
    assert.equal(0x4000000, string.unpack("<I8", item(vm, 0x0003, 8)))
    assert.equal(2, string.unpack("<I2", item(vm, 0x0005, 2)))
    assert.equal(2, string.unpack("<I2", item(vm, 0x000f, 2)))
  end)

  it("gives the command line and its size, the NUL included", function()
    assert.equal(20, string.unpack("<I4", item(vm, 0x0014, 4)))
    assert.equal("console=ttyS0 quiet\0", item(vm, 0x0015, 20))
    fw:set_cmdline("")
    assert.equal(1, string.unpack("<I4", item(vm, 0x0014, 4)))
    assert.equal("\0\0", item(vm, 0x0015, 2))
  end)

  it("lists files in a big-endian directory, selectors from 0x20", function()
    assert.equal(0, string.unpack(">I4", item(vm, 0x0019, 4)))
    assert.equal(0x20, fw:add_file("etc/luavmm/one", "first file"))
    assert.equal(0x21, fw:add_file(string.rep("n", 55), string.rep("\xab", 300)))
    local dir = item(vm, 0x0019, 4 + 2 * 64)
    assert.equal(2, string.unpack(">I4", dir))
    local size, sel, reserved, name = string.unpack(">I4I2I2c56", dir, 5)
    assert.same({ 10, 0x20, 0, "etc/luavmm/one" .. string.rep("\0", 42) },
                { size, sel, reserved, name })
    size, sel, reserved, name = string.unpack(">I4I2I2c56", dir, 5 + 64)
    assert.same({ 300, 0x21, 0, string.rep("n", 55) .. "\0" }, { size, sel, reserved, name })
  end)

  it("reads a file's bytes, then 0 past its end", function()
    local sel = fw:add_file("etc/data", "abc")
    assert.equal("abc\0\0\0", item(vm, sel, 6))
    assert.equal("QEMU\0\0", item(vm, 0, 6))
  end)

  it("reads 0 for unknown selectors and from the selector port", function()
    assert.equal("\0\0\0\0", item(vm, 0x0004, 4))
    assert.equal("\0\0", item(vm, 0x20, 2))           -- no file yet
    assert.equal("\0\0", item(vm, 0x8000, 2))
    assert.equal(0, vm:dispatch{ kind = "io", addr = SELECT, size = 2 })
  end)

  it("restarts an item when it is selected again, and ignores writes to the data port", function()
    assert.equal("QE", item(vm, 0, 2))
    vm:dispatch{ kind = "io", addr = DATA, size = 1, value = 0x41 }
    assert.equal("MU", read_bytes(vm, 2))
    assert.equal("QEMU", item(vm, 0, 4))
  end)

  it("takes only 16-bit writes as a selection", function()
    select(vm, 0x0005)
    vm:dispatch{ kind = "io", addr = SELECT, size = 1, value = 0 }
    assert.equal("\2\0", read_bytes(vm, 2))
  end)

  it("leaves accesses wider than a byte at the data port unhandled", function()
    assert.matches("unhandled I/O read from port 0x511 %(2 bytes%)",
                   H.error_of(vm.dispatch, vm, { kind = "io", addr = DATA, size = 2 }))
  end)

  it("keeps each VM's state apart", function()
    local other <close> = vmm.vm{ memory = "1M", cpus = 3 }
    local fw2 = fwcfg.install(other, { ram_size = 1 << 20, cmdline = "two" })
    fw2:add_file("only/here", "x")
    select(vm, 0x0015)
    assert.equal("co", read_bytes(vm, 2))
    assert.equal("tw", item(other, 0x0015, 2))
    assert.equal("ns", read_bytes(vm, 2))            -- the first one's offset is its own
    assert.equal(3, string.unpack("<I2", item(other, 0x0005, 2)))
    assert.equal(2, string.unpack("<I2", item(vm, 0x0005, 2)))
    assert.equal(1, string.unpack(">I4", item(other, 0x0019, 4)))
    assert.equal(0, string.unpack(">I4", item(vm, 0x0019, 4)))
  end)

  it("checks file names and data", function()
    fw:add_file("a", "")
    assert.matches("fw:add_file: a file named 'a' exists already %(selector 0x20%)",
                   H.error_of(fw.add_file, fw, "a", "again"))
    assert.matches("fw:add_file: name '" .. string.rep("x", 56) .. "' must be 1 to 55 bytes "
                   .. "long, not 56", H.error_of(fw.add_file, fw, string.rep("x", 56), ""))
    assert.matches("fw:add_file: name '' must be 1 to 55 bytes long, not 0",
                   H.error_of(fw.add_file, fw, "", ""))
    assert.matches("fw:add_file: name must not contain a NUL byte",
                   H.error_of(fw.add_file, fw, "a\0b", ""))
    assert.matches("fw:add_file: name must be a string, got number",
                   H.error_of(fw.add_file, fw, 1, ""))
    assert.matches("fw:add_file: data for 'b' must be a string, got nil",
                   H.error_of(fw.add_file, fw, "b"))
  end)

  it("checks its options", function()
    local v <close> = vmm.vm{ memory = "1M" }
    assert.matches("fwcfg.install: ram_size is required", H.error_of(fwcfg.install, v, {}))
    assert.matches("fwcfg.install: unknown option 'memory'",
                   H.error_of(fwcfg.install, v, { ram_size = 1, memory = 2 }))
    assert.matches("fwcfg.install: cpus must be an integer from 0 to 2%^16%-1, got 70000",
                   H.error_of(fwcfg.install, v, { ram_size = 1, cpus = 70000 }))
    assert.matches("fwcfg.install: max_cpus %(1%) is less than cpus %(2%)",
                   H.error_of(fwcfg.install, v, { ram_size = 1, cpus = 2, max_cpus = 1 }))
    assert.matches("fwcfg.install: cmdline must not contain a NUL byte",
                   H.error_of(fwcfg.install, v, { ram_size = 1, cmdline = "a\0" }))
    assert.matches("fwcfg.install: uuid must be 16 bytes or",
                   H.error_of(fwcfg.install, v, { ram_size = 1, uuid = "nope" }))
    fwcfg.install(v, { ram_size = 1 })
    assert.matches("fwcfg.install: this VM has a fw_cfg at port 0x510 already",
                   H.error_of(fwcfg.install, v, { ram_size = 1 }))
    assert.matches("overlap", H.error_of(fwcfg.install, v, { ram_size = 1, port = 0x511 }))
  end)

  it("answers a guest's port I/O, string reads included", function()
    local u16 = H.u16
    -- real mode: select 0 and rep insb 4 bytes to 0x600; select 5 and read
    -- two bytes with in al, dx to 0x610; select the directory and rep insb
    -- its count and first entry to 0x620; hlt
    local code = "\xba" .. u16(SELECT) .. "\xb8" .. u16(0) .. "\xef\x42"
      .. "\xbf" .. u16(0x600) .. "\xb9" .. u16(4) .. "\xf3\x6c"
      .. "\x4a\xb8" .. u16(5) .. "\xef\x42" .. "\xec\xa2" .. u16(0x610) .. "\xec\xa2" .. u16(0x611)
      .. "\x4a\xb8" .. u16(0x19) .. "\xef\x42" .. "\xbf" .. u16(0x620) .. "\xb9" .. u16(68)
      .. "\xf3\x6c" .. "\xf4"
    local g <close> = H.real(code)
    local gfw = fwcfg.install(g, { ram_size = 1 << 20, cpus = 3 })
    gfw:add_file("etc/guest", "hello")
    assert.equal("hlt", g:run{ timeout = 5 }.reason)
    assert.equal("QEMU", g.memory:read(0x600, 4))
    assert.equal(3, g.memory:u16(0x610))
    local count, size, sel, _, name = string.unpack(">I4I4I2I2z", g.memory:read(0x620, 68))
    assert.same({ 1, 5, 0x20, "etc/guest" }, { count, size, sel, name })
  end)

  it("is installed by pc's install_firmware with the RAM below 4 GiB", function()
    local m <close> = pc.new{ memory = "3584M", cpus = 2 }
    local f = m:install_firmware{ cmdline = "x" }
    assert.equal(0xc0000000, string.unpack("<I8", item(m.vm, 0x0003, 8)))
    assert.equal(2, string.unpack("<I2", item(m.vm, 0x0005, 2)))
    assert.equal("x\0", item(m.vm, 0x0015, 2))
    assert.equal(f.fwcfg, m.firmware.fwcfg)
  end)
end)

-- ---- ACPI ----

-- The RSDP as an OS finds it: "RSD PTR " on a 16-byte boundary in
-- 0xe0000..0xfffff with a valid checksum over its first 20 bytes.
local function find_rsdp(mem)
  for a = 0xe0000, 0xfffff, 16 do
    if mem:read(a, 8) == "RSD PTR " and sums_to_zero(mem:read(a, 20)) then return a end
  end
end

-- A table at addr: its signature, length, revision and bytes, checksum checked.
local function read_table(mem, addr)
  local sig, len, rev = string.unpack("<c4I4B", mem:read(addr, 9))
  local bytes = mem:read(addr, len)
  assert(sums_to_zero(bytes), string.format("%s at 0x%x: bad checksum", sig, addr))
  return { sig = sig, len = len, rev = rev, bytes = bytes, addr = addr }
end

-- Every table reachable from the RSDP, by signature, through the XSDT;
-- the RSDT must list the same ones.
local function walk_acpi(mem)
  local rsdp = assert(find_rsdp(mem), "no RSDP in 0xe0000..0xfffff")
  local r = mem:read(rsdp, 36)
  local _, _, oem, rev, rsdt, len, xsdt = string.unpack("<c8Bc6BI4I4I8", r)
  assert.equal(2, rev)
  assert.equal(36, len)
  assert.is_true(sums_to_zero(r))
  assert.equal("LUAVMM", oem)
  local rt, xt = read_table(mem, rsdt), read_table(mem, xsdt)
  assert.equal("RSDT", rt.sig)
  assert.equal("XSDT", xt.sig)
  local tables, from_rsdt = {}, {}
  for i = 37, rt.len, 4 do from_rsdt[#from_rsdt + 1] = string.unpack("<I4", rt.bytes, i) end
  local n = 0
  for i = 37, xt.len, 8 do
    n = n + 1
    local addr = string.unpack("<I8", xt.bytes, i)
    assert.equal(from_rsdt[n], addr)
    local t = read_table(mem, addr)
    tables[t.sig] = t
  end
  assert.equal(#from_rsdt, n)
  return tables, rsdp
end

-- MADT entries: { type, bytes } in order.
local function madt_entries(madt)
  local out, at = {}, 45
  while at <= madt.len do
    local t, l = madt.bytes:byte(at, at + 1)
    out[#out + 1] = { type = t, bytes = madt.bytes:sub(at, at + l - 1) }
    at = at + l
  end
  return out
end

describe("the ACPI tables", function()
  for _, cpus in ipairs({ 1, 4 }) do
    it("describe " .. cpus .. " vCPU(s): RSDP found by scanning, RSDT and XSDT to FADT and "
       .. "MADT, every checksum right", function()
      local m <close> = pc.new{ memory = "64M", cpus = cpus, irqchip = true }
      local t = acpi.install(m)
      local mem = m.vm.memory
      local tables, rsdp = walk_acpi(mem)
      assert.equal(t.rsdp, rsdp)
      assert.equal(rsdp % 16, 0)
      local names = {}
      for sig in pairs(tables) do names[#names + 1] = sig end
      table.sort(names)
      assert.same({ "APIC", "FACP" }, names)

      local madt = tables.APIC
      assert.equal(4, madt.rev)
      local lapic, flags = string.unpack("<I4I4", madt.bytes, 37)
      assert.equal(0xfee00000, lapic)
      assert.equal(1, flags)                                  -- PCAT_COMPAT
      local ids, ioapics, overrides = {}, {}, {}
      for _, e in ipairs(madt_entries(madt)) do
        if e.type == 0 then
          local _, _, uid, id, f = string.unpack("<BBBBI4", e.bytes)
          assert.equal(uid, id)
          assert.equal(1, f & 1)                              -- enabled
          ids[#ids + 1] = id
        elseif e.type == 1 then
          local _, _, id, _, addr, gsi = string.unpack("<BBBBI4I4", e.bytes)
          ioapics[#ioapics + 1] = { id = id, addr = addr, gsi = gsi }
        elseif e.type == 2 then
          local _, _, bus, irq, gsi, f = string.unpack("<BBBBI4I2", e.bytes)
          overrides[#overrides + 1] = { bus = bus, irq = irq, gsi = gsi, flags = f }
        end
      end
      local want = {}
      for i = 0, cpus - 1 do want[#want + 1] = i end
      assert.same(want, ids)
      assert.same({ { id = cpus, addr = 0xfec00000, gsi = 0 } }, ioapics)
      assert.same({ { bus = 0, irq = 0, gsi = 2, flags = 0 } }, overrides)
    end)
  end

  it("have a revision 6 hardware-reduced FADT pointing at an empty DSDT, and no FACS", function()
    local m <close> = pc.new{ memory = "64M" }
    local t = acpi.install(m)
    local mem = m.vm.memory
    local fadt = walk_acpi(mem).FACP
    assert.equal(6, fadt.rev)
    assert.equal(276, fadt.len)
    local facs, dsdt = string.unpack("<I4I4", fadt.bytes, 37)
    local flags = string.unpack("<I4", fadt.bytes, 113)
    local minor = fadt.bytes:byte(132)
    local x_facs, x_dsdt = string.unpack("<I8I8", fadt.bytes, 133)
    assert.same({ 0, 0, t.dsdt, t.dsdt, 0 }, { facs, x_facs, dsdt, x_dsdt, minor })
    assert.equal(1 << 20, flags & (1 << 20))                  -- HW_REDUCED_ACPI
    local d = read_table(mem, dsdt)
    assert.same({ "DSDT", 36, 2 }, { d.sig, d.len, d.rev })
  end)

  it("lie in a range the e820 map marks as ACPI (type 3)", function()
    local m <close> = pc.new{ memory = "64M", cpus = 2 }
    local t = acpi.install(m)
    local acpi_ranges = {}
    for _, e in ipairs(m:e820()) do
      if e.type == pc.E820_ACPI then acpi_ranges[#acpi_ranges + 1] = e end
    end
    assert.same({ { addr = 0xe0000, size = 0x1000, type = 3 } }, acpi_ranges)
    local r = acpi_ranges[1]
    for _, name in ipairs({ "rsdt", "xsdt", "fadt", "dsdt", "madt" }) do
      local tb = read_table(m.vm.memory, t[name])
      assert.is_true(tb.addr >= r.addr and tb.addr + tb.len <= r.addr + r.size, name)
    end
    -- The RSDP stays in the reserved BIOS area, and so do the MP tables.
    assert.is_true(t.rsdp >= 0xe1000 and t.rsdp < 0x100000)
  end)

  it("refuse what is not a machine and unknown options", function()
    assert.matches("acpi.install: expected a vmm.pc machine", H.error_of(acpi.install, {}))
    local m <close> = pc.new{ memory = "4M" }
    assert.matches("acpi.install: unknown option 'hpet'",
                   H.error_of(acpi.install, m, { hpet = true }))
  end)
end)

-- ---- MP tables ----

local function find_mp(mem)
  for a = 0xf0000, 0xfffff, 16 do
    if mem:read(a, 4) == "_MP_" and sums_to_zero(mem:read(a, 16)) then return a end
  end
end

describe("the MP tables", function()
  for _, cpus in ipairs({ 1, 4 }) do
    it("list " .. cpus .. " processor(s), the ISA bus, the I/O APIC and the ISA IRQs", function()
      local m <close> = pc.new{ memory = "64M", cpus = cpus, irqchip = true }
      local t = mptable.install(m)
      local mem = m.vm.memory
      local fp = assert(find_mp(mem), "no MP floating pointer in 0xf0000..0xfffff")
      assert.equal(t.floating, fp)
      local _, addr, len, rev, _, feature1 = string.unpack("<c4I4BBBB", mem:read(fp, 16))
      assert.same({ t.table, 1, 4, 0 }, { addr, len, rev, feature1 })
      local sig, base_len, spec = string.unpack("<c4I2B", mem:read(addr, 7))
      assert.same({ "PCMP", 4 }, { sig, spec })
      local bytes = mem:read(addr, base_len)
      assert.is_true(sums_to_zero(bytes))
      local count, lapic = string.unpack("<I2I4", bytes, 35)
      assert.equal(0xfee00000, lapic)

      local procs, buses, ioapics, ints, locals = {}, {}, {}, {}, {}
      local at = 45
      for _ = 1, count do
        local kind = bytes:byte(at)
        if kind == 0 then
          local _, id, ver, flags = string.unpack("<BBBB", bytes, at)
          procs[#procs + 1] = { id = id, ver = ver, flags = flags }
          at = at + 20
        else
          if kind == 1 then
            buses[#buses + 1] = bytes:sub(at + 2, at + 7)
          elseif kind == 2 then
            local _, id, _, flags, a = string.unpack("<BBBBI4", bytes, at)
            ioapics[#ioapics + 1] = { id = id, flags = flags, addr = a }
          elseif kind == 3 then
            local _, itype, _, bus, irq, dest, pin = string.unpack("<BBI2BBBB", bytes, at)
            assert.equal(0, bus)
            assert.equal(cpus, dest)
            ints[#ints + 1] = { itype, irq, pin }
          elseif kind == 4 then
            local _, itype, _, _, _, dest, lint = string.unpack("<BBI2BBBB", bytes, at)
            locals[#locals + 1] = { itype, dest, lint }
          end
          at = at + 8
        end
      end
      assert.equal(base_len + 1, at)
      assert.equal(cpus, #procs)
      for i, p in ipairs(procs) do
        assert.same({ id = i - 1, ver = 0x14, flags = i == 1 and 3 or 1 }, p)
      end
      assert.same({ "ISA   " }, buses)
      assert.same({ { id = cpus, flags = 1, addr = 0xfec00000 } }, ioapics)
      -- ExtINT on pin 0, the PIT on pin 2, the other ISA IRQs on their own pins
      local want = { { 3, 0, 0 }, { 0, 0, 2 } }
      for irq = 1, 15 do
        if irq ~= 2 then want[#want + 1] = { 0, irq, irq } end
      end
      assert.same(want, ints)
      assert.same({ { 3, 0xff, 0 }, { 1, 0xff, 1 } }, locals)
    end)
  end

  it("are installed with ACPI and fw_cfg by install_firmware, apart from each other", function()
    local m <close> = pc.new{ memory = "64M", cpus = 2, irqchip = true }
    local f = m:install_firmware()
    local mem = m.vm.memory
    assert.equal(f.mp.floating, find_mp(mem))
    assert.equal(f.acpi.rsdp, find_rsdp(mem))
    assert.is_true(f.mp.table >= f.acpi.rsdp + 36)
    assert.is_true(f.mp.table + f.mp.size <= 0x100000)
  end)
end)
