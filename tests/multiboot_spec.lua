-- The Multiboot loader (vmm.multiboot): the test kernel guests/multiboot32.c
-- end to end, on its own and through scripts/multiboot.lua; the header
-- search and every malformed header and a.out address, with their
-- messages; the info structure read back from guest memory.
local pc = require "vmm.pc"
local multiboot = require "vmm.multiboot"
local H = require "helper"

local GUEST = H.guest("multiboot32.bin")
local MAGIC, LOADER_MAGIC = 0x1BADB002, 0x2BADB002

local function crc32(s)
  local crc = 0xffffffff
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do crc = (crc >> 1) ~ (0xedb88320 & -(crc & 1)) end
  end
  return ~crc & 0xffffffff
end

-- A Multiboot header: magic, flags, checksum (right unless given), and
-- with flag 16 the five a.out addresses.
local function header(h)
  local flags = h.flags or 0x10000
  local s = string.pack("<I4I4I4", MAGIC, flags, h.checksum or (-(MAGIC + flags)) & 0xffffffff)
  if flags & 0x10000 ~= 0 then
    s = s .. string.pack("<I4I4I4I4I4", h.header_addr, h.load_addr, h.load_end_addr,
                         h.bss_end_addr, h.entry_addr)
  end
  return s
end

-- 32-bit code: store eax at 0x9000 and ebx at 0x9004, exit 42.
local CODE = "\xa3" .. H.u32(0x9000) .. "\x89\x1d" .. H.u32(0x9004) .. "\xb0\x2a\xe6\xf4\xf4"

-- An a.out-kludge kernel: the header at file offset `at` (default 0),
-- the code right after it, loaded at 1 MiB; fields in opts override.
local function aout(opts)
  opts = opts or {}
  local at = opts.at or 0
  local load = 0x100000
  local size = at + 32 + #CODE
  local h = {
    header_addr = load + at, load_addr = load, load_end_addr = load + size,
    bss_end_addr = load + size + 0x1000, entry_addr = load + at + 32,
  }
  for k, v in pairs(opts) do h[k] = v end
  return string.rep("\0", at) .. header(h) .. CODE .. (opts.tail or "")
end

local dir
setup(function() dir = H.tempdir() end)
teardown(function() H.remove_tree(dir) end)

local function file(name, data)
  return H.write_file(dir .. "/" .. name, data)
end

-- A 64 MiB PC with fw_cfg and the ACPI/MP tables, the exit port, and the
-- console captured into out.
local function machine(opts)
  opts = opts or {}
  local m = pc.new{ memory = opts.memory or "64M", cpus = opts.cpus or 1,
                    irqchip = opts.irqchip or (opts.cpus or 1) > 1 }
  m:install_firmware{ cmdline = opts.fw_cmdline }
  m.vm:debug_exit{}
  m.out = {}
  m.vm:on_io(0xe9, function(_, _, _, v)
    if v then m.out[#m.out + 1] = string.char(v) end
  end)
  return m
end

-- The command line that states what the test kernel should find.
local function expectations(m, modules, over)
  over = over or {}
  local count, ram = 0, 0
  for _, e in ipairs(m:e820()) do
    count = count + 1
    if e.type == pc.E820_RAM then ram = ram + e.size end
  end
  local words = {
    string.format("cpus=%d", over.cpus or m.vm.cpus),
    string.format("mmap=%d", over.mmap or count),
    string.format("ram=0x%x", over.ram or ram),
    string.format("mods=%d", over.mods or #modules),
  }
  for i, mod in ipairs(modules) do
    words[#words + 1] = string.format("mod%d=%d:0x%08x", i - 1, #mod.data, crc32(mod.data))
  end
  return table.concat(words, " ")
end

local MODULES = {
  { data = "the first module\n", cmdline = "first" },
  { data = string.rep("\x5a\xa5", 3000), cmdline = "second --with args" },
}

-- Boots the test kernel with the MODULES (or opts.modules) and runs it.
local function run_guest(opts)
  opts = opts or {}
  local m <close> = machine(opts)
  local mods = opts.modules or MODULES
  local cmdline = opts.cmdline or expectations(m, mods, opts.over)
  if opts.fw_cmdline == nil then m.firmware.fwcfg:set_cmdline(cmdline) end
  if opts.tamper then opts.tamper(m) end
  local info = multiboot.boot(m, { kernel = GUEST, cmdline = cmdline,
                                   modules = opts.boot_modules or mods })
  local r = m.vm:run{ timeout = 20 }
  return r, table.concat(m.out), info
end

describe("the Multiboot test kernel", function()
  it("finds everything it was promised", function()
    local r, out = run_guest()
    assert.equal("exit", r.reason, out)
    assert.equal(0, r.code, out)
    assert.matches("multiboot32: all checks passed", out, 1, true)
    assert.matches('module 1: [^\n]* 6000 bytes, crc32 0x%x+, string "second %-%-with args"', out)
  end)

  it("passes with 4 vCPUs and RAM above 4 GiB", function()
    local r, out = run_guest{ cpus = 4, memory = "5G", modules = {} }
    assert.equal(0, r.code, out)
    assert.matches("fw_cfg: signature \"QEMU\", 4 CPUs", out, 1, true)
    assert.matches("[0x100000000, 0x180000000) type 1", out, 1, true)
  end)

  it("fails with its own code for each thing the host lies about", function()
    local cases = {
      { 9, "module content", { boot_modules = { MODULES[1], { data = "not the second" } } } },
      { 5, "memory map size", { over = { mmap = 9 } } },
      { 6, "usable RAM", { over = { ram = 0x1000 } } },
      { 8, "module count", { over = { mods = 3 } } },
      { 12, "CPU count", { over = { cpus = 7 } } },
      { 4, "a malformed expectation", { cmdline = "cpus=one mmap=5" } },
      { 4, "mods= without each module's mod<i>=", { cmdline = "mods=2" } },
      { 13, "fw_cfg's command line", { fw_cmdline = "something else" } },
      { 11, "fw_cfg's signature", { tamper = function(m) m.firmware.fwcfg.items[0] = "QEMX" end } },
    }
    for _, c in ipairs(cases) do
      local r, out = run_guest(c[3])
      assert.equal("exit", r.reason, c[2])
      assert.equal(c[1], r.code, c[2] .. ":\n" .. out)
      assert.matches("FAIL " .. c[1] .. ":", out, 1, true)
    end
  end)

  it("boots through scripts/multiboot.lua and exits with the guest's code", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local m0 = file("m0", "one")
    local m1 = file("m1", "two2")
    local m <close> = pc.new{ memory = "64M", cpus = 2, irqchip = true }
    m:install_firmware()
    local append = expectations(m, { { data = "one" }, { data = "two2" } })
    local cmd = string.format("%s scripts/multiboot.lua %s --memory 64M --cpus 2 --append %s "
                              .. "--module %s --module=%s=second", H.luavmm, GUEST,
                              H.quote(append), m0, m1)
    local r = H.sh(cmd)
    assert.equal(0, r.rc, r.out .. r.err)
    assert.matches('module 1: [^\n]* 4 bytes, crc32 0xbe15b0ea, string "second"', r.out)
    assert.truthy(r.out:find('module 0: [0x143000, 0x143003) 3 bytes, crc32 0x7a6c86f1, string "'
                             .. m0 .. '"', 1, true))
    r = H.sh((cmd:gsub(" %-%-module=", " --module " .. m0 .. " --module=")))
    assert.equal(8, r.rc, r.out .. r.err)
  end)

  it("passes with no expectations, checking what needs no numbers", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local r = H.sh(H.luavmm .. " scripts/multiboot.lua " .. GUEST)
    assert.equal(0, r.rc, r.out .. r.err)
    assert.matches("cmdline: printed, not checked (no expectation): cpus= mmap= ram= mods=", r.out,
                   1, true)
    assert.matches("mmap: 5 entries", r.out, 1, true)
    assert.matches('fw_cfg: signature "QEMU", 1 CPUs', r.out, 1, true)
  end)

  it("reports usage and loader errors from the script", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local r = H.sh(H.luavmm .. " scripts/multiboot.lua")
    assert.equal(2, r.rc)
    assert.matches("multiboot.lua: no kernel given\nusage: multiboot.lua KERNEL", r.err)
    r = H.sh(H.luavmm .. " scripts/multiboot.lua k --cpus")
    assert.equal(2, r.rc)
    assert.matches("multiboot.lua: --cpus needs a value", r.err, 1, true)
    r = H.sh(H.luavmm .. " scripts/multiboot.lua " .. file("bad", "nothing here"))
    assert.equal(1, r.rc)
    assert.matches("multiboot: " .. dir .. "/bad: no Multiboot header", r.err, 1, true)
  end)
end)

describe("the Multiboot loader", function()
  local m
  before_each(function() m = pc.new{ memory = "4M" } end)
  after_each(function() m:close() end)

  -- The message booting data as a kernel raises, or nil.
  local function boot_error(data, opts)
    opts = opts or {}
    opts.kernel = file("k", data)
    local err = H.error_of(multiboot.boot, m, opts)
    return err and err:gsub("^multiboot: " .. dir:gsub("%p", "%%%0") .. "/k: ", "k: ")
  end

  it("enters a.out kernels in flat protected mode with the magic in eax and the info in ebx",
     function()
    local info = multiboot.boot(m, { kernel = file("k", aout()) })
    local cpu = m.vm:cpu(0)
    assert.equal(LOADER_MAGIC, cpu.rax)
    assert.equal(info.info, cpu.rbx)
    assert.equal(0x100020, cpu.rip)
    assert.same({ 0x08, 0, 0xffffffff, 1 }, { cpu.cs.selector, cpu.cs.base, cpu.cs.limit,
                                              cpu.cs.db })
    assert.same({ 0x10, 0, 0xffffffff }, { cpu.ss.selector, cpu.ss.base, cpu.ss.limit })
    assert.equal(1, cpu.cr0 & 1)                        -- protected
    assert.equal(0, cpu.cr0 & 0x80000000)               -- paging off
    assert.equal(0, cpu.rflags & 0x200)                 -- interrupts off
    m.vm:debug_exit{}
    local r = m.vm:run{ timeout = 5 }
    assert.equal(42, r.code)
    assert.equal(LOADER_MAGIC, m.vm.memory:u32(0x9000))
    assert.equal(info.info, m.vm.memory:u32(0x9004))
  end)

  it("loads what the a.out addresses say and zeroes the bss", function()
    -- The file's tail lies past load_end_addr: not loaded, zeroed as bss.
    m.vm.memory:fill(0x100000, 0x3000, 0xcc)
    local data = aout{ tail = "TAIL", bss_end_addr = 0x102800 }
    local n = #data - 4
    local info = multiboot.boot(m, { kernel = file("k", data) })
    assert.equal(data:sub(1, n), m.vm.memory:read(0x100000, n))
    assert.equal(string.rep("\0", 0x2800 - n), m.vm.memory:read(0x100000 + n, 0x2800 - n))
    assert.equal(0xcc, m.vm.memory:u8(0x102800))
    assert.same({ start = 0x100000, load_end = 0x100000 + n, stop = 0x102800 }, info.kernel)
    -- load_end_addr 0: the whole file from load_addr on
    info = multiboot.boot(m, { kernel = file("k", aout{ tail = "more", load_end_addr = 0,
                                                        bss_end_addr = 0 }) })
    assert.same({ start = 0x100000, load_end = 0x100000 + 32 + #CODE + 4,
                  stop = 0x100000 + 32 + #CODE + 4 }, info.kernel)
  end)

  it("loads a kernel whose header is not at the start of the file", function()
    -- The file starts 0x40 bytes before the header, so load_addr is 0x40 lower.
    local info = multiboot.boot(m, { kernel = file("k", aout{ at = 0x40 }) })
    assert.equal(0x40, info.header.offset)
    assert.equal(0x100060, info.entry)
    assert.equal(MAGIC, m.vm.memory:u32(0x100040))
  end)

  it("finds the header anywhere 4-byte aligned in the first 8192 bytes", function()
    local data = aout{ at = 8192 - 32 }
    assert.equal(8160, multiboot.parse_header(data).offset)
    -- A bad-checksum magic before a good header does not hide it.
    local h = multiboot.parse_header(header{ flags = 0, checksum = 1 } .. header{ flags = 0 })
    assert.equal(12, h.offset)
  end)

  it("says why there is no header", function()
    local pad = string.rep("\0", 8192)
    local m32 = H.u32(MAGIC)
    local function err(data) return H.error_of(multiboot.parse_header, data, "k") end
    assert.equal("multiboot: k: no Multiboot header (magic 0x1badb002) in the first 8192 bytes",
                 err(pad .. header{ flags = 0 }:sub(5)))
    assert.equal("multiboot: k: no Multiboot header (magic 0x1badb002) in the first 8192 bytes",
                 err(""))
    assert.equal("multiboot: k: the Multiboot header at offset 0x10 has a bad checksum: magic "
                 .. "0x1badb002 + flags 0x3 + checksum 0x0 = 0x1badb005, not 0 (mod 2^32)",
                 err(string.rep("\0", 16) .. header{ flags = 3, checksum = 0 }))
    assert.equal("multiboot: k: no Multiboot header in the first 8192 bytes: the magic "
                 .. "0x1badb002 at offset 0x6 is not 4-byte aligned",
                 err("\0\0\0\0\0\0" .. header{ flags = 0 } .. pad))
    assert.equal("multiboot: k: no Multiboot header in the first 8192 bytes: the magic "
                 .. "0x1badb002 at offset 0x2000 is beyond them", err(pad .. header{ flags = 0 }))
    assert.equal("multiboot: k: the Multiboot header at offset 0x1ffc does not fit in the "
                 .. "first 8192 bytes", err(pad:sub(5) .. header{ flags = 0 }))
    assert.equal("multiboot: k: the Multiboot header at offset 0x8 is cut short: the file "
                 .. "ends after 8 of its 12 bytes", err(string.rep("\0", 8) .. m32 .. "\0\0\0\0"))
    assert.equal("multiboot: k: the Multiboot header at offset 0x1fe4 does not fit in the first "
                 .. "8192 bytes: with flag 16 it has 32 bytes",
                 err(aout{ at = 8192 - 28 }))
    assert.equal("multiboot: k: the Multiboot header at offset 0x0 is cut short: with flag 16 "
                 .. "it has 32 bytes, and the file ends after 20",
                 err(aout():sub(1, 20)))
  end)

  it("refuses flags it cannot honour", function()
    assert.equal("k: the kernel requires a video mode (header flag 2), which luavmm cannot "
                 .. "provide", boot_error(aout{ flags = 0x10007 }))
    assert.equal("k: the kernel requires features luavmm does not know (header flags 3, 15: "
                 .. "0x8008); the Multiboot spec says to refuse it",
                 boot_error(aout{ flags = 0x18009 }))
    -- Unknown optional flags (16-31, but 16) are fine.
    assert.is_nil(boot_error(aout{ flags = 0x80010003 }))
  end)

  it("checks every a.out address against the file and the machine", function()
    local L = 0x100000
    local n = 32 + #CODE
    local cases = {
      { { load_addr = L + 4 },
        "load_addr 0x100004 is above header_addr 0x100000: the header must be part of the "
        .. "loaded image" },
      { { at = 8, load_addr = L - 8 },
        "header_addr 0x100008 is outside the file: with the header at offset 0x8, load_addr "
        .. "0xffff8 would be 0x8 bytes before the file's start" },
      { { load_end_addr = L - 1 }, "load_end_addr 0xfffff is below load_addr 0x100000" },
      { { load_end_addr = L + n + 1 },
        string.format("load_end_addr 0x%x is beyond the file: it asks for 0x%x bytes from "
                      .. "offset 0x0, and the file has 0x%x there", L + n + 1, n + 1, n) },
      { { load_end_addr = L + 16 },
        "header_addr 0x100000 is outside the loaded image [0x100000, 0x100010)" },
      { { bss_end_addr = L + n - 1 },
        string.format("bss_end_addr 0x%x is below load_end_addr 0x%x", L + n - 1, L + n) },
      { { entry_addr = L + n },
        string.format("entry_addr 0x%x is outside the loaded image [0x100000, 0x%x)", L + n, L + n) },
      { { entry_addr = L - 1 },
        string.format("entry_addr 0xfffff is outside the loaded image [0x100000, 0x%x)", L + n) },
      { { bss_end_addr = 0x500000 },
        "the image [0x100000, 0x500000) is not inside usable RAM ([0x0, 0x9fc00) "
        .. "[0x100000, 0x400000))" },
      { { header_addr = 0xa0000, load_addr = 0xa0000, load_end_addr = 0xa0000 + n,
          bss_end_addr = 0, entry_addr = 0xa0020 },
        string.format("the image [0xa0000, 0x%x) is not inside usable RAM ([0x0, 0x9fc00) "
                      .. "[0x100000, 0x400000))", 0xa0000 + n) },
      { { header_addr = 0xfffffff0, load_addr = 0xfffffff0, load_end_addr = 0,
          bss_end_addr = 0, entry_addr = 0xfffffffc },
        string.format("the image [0xfffffff0, 0x%x) does not fit below 4 GiB", 0xfffffff0 + n) },
    }
    for _, c in ipairs(cases) do
      assert.equal("k: " .. c[2], boot_error(aout(c[1])))
    end
  end)

  -- A 32-bit ELF kernel without a.out addresses: one PT_LOAD segment
  -- holding the headers, a Multiboot header (flags 3) and CODE, linked at
  -- vaddr and loaded at paddr.
  local function elf32(paddr, vaddr, extra_bss, machine)
    local body = header{ flags = 3 } .. CODE
    local size = 52 + 32 + #body
    local entry = vaddr + 52 + 32 + 12
    return "\x7fELF\1\1\1" .. string.rep("\0", 9)
      .. string.pack("<I2I2I4I4I4I4I4I2I2I2I2I2I2", 2, machine or 3, 1, entry, 52, 0, 0, 52, 32, 1, 0, 0, 0)
      .. string.pack("<I4I4I4I4I4I4I4I4", 1, 0, vaddr, paddr, size, size + (extra_bss or 0), 5,
                     0x1000)
      .. body
  end

  it("loads ELF kernels through vmm.elf when the header has no a.out addresses", function()
    local data = elf32(0x200000, 0x200000, 0x2000)
    local info = multiboot.boot(m, { kernel = file("k", data) })
    assert.equal(0x200000 + 96, info.entry)
    assert.same({ start = 0x200000, load_end = 0x200000 + #data + 0x2000,
                  stop = 0x200000 + #data + 0x2000 }, info.kernel)
    assert.equal(data, m.vm.memory:read(0x200000, #data))
    assert.equal(0x200000 + 96, m.vm:cpu(0).rip)
    m.vm:debug_exit{}
    local r = m.vm:run{ timeout = 5 }
    assert.equal(42, r.code)
    assert.equal(LOADER_MAGIC, m.vm.memory:u32(0x9000))
    assert.equal(info.info, m.vm.memory:u32(0x9004))
    -- A higher-half kernel: linked at 0xc0100000, loaded at 1 MiB, entered
    -- at the physical address of its entry.
    info = multiboot.boot(m, { kernel = file("k", elf32(0x100000, 0xc0100000)) })
    assert.equal(0x100000 + 96, info.entry)
  end)

  it("checks an ELF kernel's segments against usable RAM", function()
    local n = #elf32(0, 0)
    local usable = "([0x0, 0x9fc00) [0x100000, 0x400000))"
    assert.equal(string.format("k: ELF program header 0: [0xa0000, 0x%x) is not inside usable "
                               .. "RAM %s", 0xa0000 + n, usable),
                 boot_error(elf32(0xa0000, 0xa0000)))
    assert.equal(string.format("k: ELF program header 0: [0x3ff000, 0x%x) is not inside usable "
                               .. "RAM %s", 0x3ff000 + n + 0x2000, usable),
                 boot_error(elf32(0x3ff000, 0x3ff000, 0x2000)))
    -- What vmm.elf refuses, it says itself.
    assert.matches("^elf: .*/k: e_machine 62 does not match an ELF32 file",
                   H.error_of(multiboot.boot, m, { kernel = file("k", elf32(0x100000, 0x100000,
                                                                            0, 62)) }))
  end)

  it("wants flag 16 or an ELF file", function()
    assert.equal("k: the header has no a.out addresses (flag 16), so the kernel must be an ELF "
                 .. "file, and it is not", boot_error(header{ flags = 3 } .. CODE))
  end)

  it("checks its arguments", function()
    local k = file("k", aout())
    local function err(opts) return H.error_of(multiboot.boot, m, opts) end
    assert.matches("multiboot.boot: expected a vmm.pc machine",
                   H.error_of(multiboot.boot, m.vm, { kernel = k }))
    assert.matches("multiboot.boot: kernel %(a path%) is required", err{})
    assert.matches("multiboot.boot: unknown option 'initrd'", err{ kernel = k, initrd = "x" })
    assert.matches("multiboot.boot: cmdline must not contain a NUL byte",
                   err{ kernel = k, cmdline = "a\0b" })
    assert.matches("multiboot.boot: modules%[1%] needs a path or data %(one of them%)",
                   err{ kernel = k, modules = { { path = k, data = "x" } } })
    assert.matches("multiboot.boot: modules%[2%].cmdline must be a string, got number",
                   err{ kernel = k, modules = { k, { data = "", cmdline = 5 } } })
    assert.equal("multiboot: cannot open kernel: " .. dir .. "/none: No such file or directory",
                 err{ kernel = dir .. "/none" })
    assert.equal("multiboot: cannot open module 1: " .. dir .. "/none: No such file or directory",
                 err{ kernel = k, modules = { dir .. "/none" } })
    local smp <close> = pc.new{ memory = "4M", cpus = 2 }
    assert.matches("multiboot.boot: a machine with 2 vCPUs needs irqchip = true",
                   H.error_of(multiboot.boot, smp, { kernel = k }))
  end)

  it("places modules where they fit, or says they do not", function()
    -- A kernel filling high RAM, low RAM reserved but for a page: a module
    -- of a page and a byte fits nowhere. (Small on purpose: freeing a large
    -- string raises glibc's mmap threshold for the rest of the process,
    -- which stress_spec's RSS check would notice.)
    local small <close> = pc.new{ memory = "2M" }
    small:reserve(0x1000, 0x9e000)
    local full = file("full", aout{ bss_end_addr = 0x200000 })
    assert.equal("multiboot: module 1: no room for its 4097 bytes in usable RAM below 4 GiB "
                 .. "([0x0, 0x1000) [0x9f000, 0x9fc00) [0x100000, 0x200000))",
                 H.error_of(multiboot.boot, small, { kernel = full,
                                                     modules = { { data = string.rep("x", 4097) } } }))
    -- No room above the kernel: the first free pages below it.
    local high = file("high", aout{ header_addr = 0x3ff000, load_addr = 0x3ff000,
                                    load_end_addr = 0x3ff000 + 32 + #CODE, bss_end_addr = 0,
                                    entry_addr = 0x3ff020 })
    local info = multiboot.boot(m, { kernel = high, modules = { { data = string.rep("y", 0x2000) },
                                                                { data = "z" } } })
    assert.same({ 0x1000, 0x3000 }, { info.modules[1].start, info.modules[2].start })
    assert.equal(0x4000, info.info)
  end)
end)

describe("the Multiboot info structure", function()
  it("holds the memory sizes, command line, modules, memory map and loader name", function()
    local m <close> = machine{ cpus = 2 }
    local mem = m.vm.memory
    local k = file("k", aout())
    local info = multiboot.boot(m, { kernel = k, cmdline = "root=/dev/x loglevel=8", modules = {
      { data = "alpha", cmdline = "a.mod one" }, { path = k }, { data = "" } } })
    local base = info.info
    assert.equal(0x1000, base)
    local flags, lower, upper, _, cmdline, count, mods = string.unpack("<I4I4I4I4I4I4I4",
                                                                        mem:read(base, 28))
    assert.equal((1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9), flags)
    assert.same({ 639, 63 * 1024 }, { lower, upper })
    local function cstring(addr) return (mem:read(addr, 256):match("^[^%z]*")) end
    assert.equal("root=/dev/x loglevel=8", cstring(cmdline))
    assert.equal(3, count)

    -- Modules: page-aligned, after the kernel's bss, none sharing a page.
    local kernel_end = info.kernel.stop
    local want = { { "alpha", "a.mod one" }, { aout(), k }, { "", "" } }
    local last_page = (kernel_end + 0xfff) // 0x1000 * 0x1000
    for i = 1, 3 do
      local s, e, str, reserved = string.unpack("<I4I4I4I4", mem:read(mods + 16 * (i - 1), 16))
      assert.equal(0, s % 0x1000)
      assert.is_true(s >= last_page)
      assert.equal(want[i][1], mem:read(s, e - s))
      assert.equal(want[i][2], cstring(str))
      assert.equal(0, reserved)
      last_page = s + math.max(e - s, 1) + 0xfff & ~0xfff
    end

    -- The memory map is the machine's e820 map, ACPI range included.
    local len, addr = string.unpack("<I4I4", mem:read(base + 44, 8))
    local map = m:e820()
    assert.equal(24 * #map, len)
    for i, e in ipairs(map) do
      local size, a, l, t = string.unpack("<I4I8I8I4", mem:read(addr + 24 * (i - 1), 24))
      assert.same({ 20, e.addr, e.size, e.type }, { size, a, l, t })
    end
    local types = {}
    for _, e in ipairs(map) do types[e.type] = true end
    assert.is_true(types[pc.E820_ACPI])

    assert.equal("luavmm 0.1.0", cstring(mem:u32(base + 64)))
    -- Everything the loader wrote lies in its block, GDT included, in pages
    -- of its own, below the EBDA.
    assert.is_true(info.gdt >= base and info.gdt + 24 <= base + info.block.size)
    assert.equal(info.gdt, m.vm:cpu(0).gdt.base)
    assert.is_true(base + info.block.size <= 0x9fc00)
  end)

  it("goes where the kernel is not, even when the kernel sits in low memory", function()
    local m <close> = pc.new{ memory = "4M" }
    local L = 0x1000
    local n = 32 + #CODE
    local k = file("k", aout{ header_addr = L, load_addr = L, load_end_addr = L + n,
                              bss_end_addr = 0x9e000, entry_addr = L + 32 })
    local info = multiboot.boot(m, { kernel = k, cmdline = "low" })
    assert.equal(0x9e000, info.info)
    local big = file("big", aout{ header_addr = L, load_addr = L, load_end_addr = L + n,
                                  bss_end_addr = 0x9fc00, entry_addr = L + 32 })
    info = multiboot.boot(m, { kernel = big, modules = { { data = "m" } } })
    assert.equal(0x100000, info.modules[1].start)
    assert.equal(0x101000, info.info)
  end)
end)
