-- The Linux x86 boot protocol (Documentation/arch/x86/boot.rst in the
-- kernel's tree), from Lua: load a kernel, build what it expects to find
-- in memory, and set the boot CPU at its entry point.
--
--   local pc = require "vmm.pc"
--   local linux = require "vmm.linux"
--   local m <close> = pc.new{ memory = "256M", irqchip = true, pit = true }
--   local placed = linux.boot(m, { kernel = "build/linux/bzImage",
--                                  initrd = "build/linux/initramfs.cpio.gz",
--                                  cmdline = "console=ttyS0" })
--   m.vm:run{}
--
-- Two kinds of kernel:
--   bzImage  the protected-mode part goes to 1 MiB (code32_start's classic
--            address) and is entered at its 64-bit entry, 0x200 past it.
--            The real-mode setup code is not loaded: the 64-bit entry does
--            not need it. Needs boot protocol 2.12 or later: xloadflags,
--            whose XLF_KERNEL_64 bit says the 64-bit entry exists, came
--            in 2.12. The decompressor moves the kernel to
--            max(load address aligned up to kernel_alignment, pref_address)
--            and needs init_size bytes there, which is checked against RAM.
--   vmlinux  the uncompressed ELF (see vmm.elf): segments at their physical
--            addresses, entered either at the 64-bit startup_64 (the ELF
--            entry, phys_startup_64) with a zero page as for a bzImage, or
--            at the Xen PVH entry (the XEN_ELFNOTE_PHYS32_ENTRY note) in
--            32-bit protected mode with a struct hvm_start_info. Skips the
--            decompressor entirely.
--
-- The 64-bit entry (boot.rst, "64-bit Boot Protocol"): long mode with the
-- kernel, the zero page and the command line identity-mapped (vmm.mode maps
-- the first 4 GiB), a GDT with flat __BOOT_CS 0x10 (execute/read) and
-- __BOOT_DS 0x18 (read/write) loaded in cs and ds/es/ss, interrupts off,
-- rsi = the zero page (struct boot_params).
--
-- The zero page: the bzImage's setup header copied in as it is (0x1f1 up to
-- 0x202 plus the byte at 0x201), or for a vmlinux a minimal one ("HdrS",
-- boot_flag, version 2.12, cmdline_size, initrd_addr_max); then what a boot
-- loader fills in: type_of_loader 0xff (no assigned ID), vid_mode 0xffff,
-- code32_start, cmd_line_ptr, ramdisk_image/size (and the ext_ halves),
-- acpi_rsdp_addr when given, and the e820 table (at most 128 entries).
-- loadflags needs nothing more: LOADED_HIGH is the image's own (checked),
-- and CAN_USE_HEAP and KEEP_SEGMENTS concern the 16- and 32-bit entries.
--
-- The PVH entry (Xen's docs/misc/pvh.pandoc): 32-bit protected mode, paging
-- off, flat cs/ds/es/ss, cr4 = 0, interrupts off, ebx = the physical
-- address of struct hvm_start_info (version 1: with a memory map). Linux
-- turns the memory map into its own e820 table and adds the ISA hole
-- 0xa0000..0xfffff as reserved, so what it prints is our map plus that.
--
-- Where things go (all below the EBDA, all copied by the kernel early):
--   0x500    GDT (vmm.mode)              0x1000  page tables (vmm.mode, 64-bit entry)
--   0x7000   zero page (boot_params)     0x8000  hvm_start_info, module list, memory map
--   0x20000  command line                0x100000  bzImage protected-mode code
--   initrd   at the top of the RAM below min(initrd_addr_max + 1, 3 GiB),
--            page-aligned, above the kernel

local elf = require "vmm.elf"
local mode = require "vmm.mode"

local M = {}

M.layout = {
  boot_params = 0x7000,
  start_info = 0x8000,
  cmdline = 0x20000,
  cmdline_max = 0x10000,   -- room for the command line at 0x20000
  kernel = 0x100000,
}

M.MIN_VERSION = 0x020c         -- 2.12: xloadflags
M.BOOT_CS, M.BOOT_DS = 0x10, 0x18
M.E820_MAX = 128               -- entries that fit in the zero page
M.LOADER_TYPE = 0xff           -- "undefined" boot loader: we have no assigned ID

-- Flags in the setup header.
local LOADED_HIGH = 0x01       -- loadflags: the protected-mode code is at 1 MiB
local XLF_KERNEL_64 = 0x01     -- xloadflags: has the 64-bit entry at +0x200

local HVM_START_MAGIC = 0x336ec578

-- The zero page (struct boot_params) and the setup header inside it: the
-- offsets we read and write (boot.rst and arch/x86/include/uapi/asm/bootparam.h).
local BP = {
  acpi_rsdp_addr = 0x070, ext_ramdisk_image = 0x0c0, ext_ramdisk_size = 0x0c4,
  ext_cmd_line_ptr = 0x0c8, e820_entries = 0x1e8, hdr = 0x1f1,
  e820_table = 0x2d0,
}
-- Setup header fields: offset and string.unpack format.
local HDR = {
  setup_sects = { 0x1f1, "<I1" }, syssize = { 0x1f4, "<I4" }, vid_mode = { 0x1fa, "<I2" },
  boot_flag = { 0x1fe, "<I2" }, version = { 0x206, "<I2" },
  type_of_loader = { 0x210, "<I1" }, loadflags = { 0x211, "<I1" },
  code32_start = { 0x214, "<I4" }, ramdisk_image = { 0x218, "<I4" },
  ramdisk_size = { 0x21c, "<I4" }, cmd_line_ptr = { 0x228, "<I4" },
  initrd_addr_max = { 0x22c, "<I4" }, kernel_alignment = { 0x230, "<I4" },
  relocatable_kernel = { 0x234, "<I1" }, min_alignment = { 0x235, "<I1" },
  xloadflags = { 0x236, "<I2" }, cmdline_size = { 0x238, "<I4" },
  payload_offset = { 0x248, "<I4" }, payload_length = { 0x24c, "<I4" },
  pref_address = { 0x258, "<i8" }, init_size = { 0x260, "<I4" },
}
-- The setup header ends at most here: the zero page's next field
-- (edd_mbr_sig_buffer) is at 0x290. A 2.12 header reaches init_size.
local HDR_LIMIT, HDR_MIN_END = 0x290, 0x264

local function fail(name, fmt, ...)
  error(string.format("linux: %s: " .. fmt, name, ...), 0)
end

local function hex(v) return string.format("0x%x", v) end


local function is_pow2(v) return v > 0 and v & (v - 1) == 0 end

local function align_up(v, a) return (v + a - 1) // a * a end

--- linux.parse_bzimage(bytes [, name [, size]]) -> the setup header's
--- fields, plus setup_size (bytes of real-mode code before the kernel),
--- kernel_offset, kernel_size, header_end and header_bytes (what goes into
--- the zero page). bytes may be just the file's start (0x290 bytes hold
--- any header) when size gives the whole file's.
function M.parse_bzimage(data, name, size)
  name = name or "bzImage"
  size = size or #data
  if size < 0x206 + 2 or data:sub(0x202 + 1, 0x202 + 4) ~= "HdrS" then
    fail(name, "not a bzImage (no \"HdrS\" setup header magic at 0x202)")
  end
  local h = { name = name, version = string.unpack("<I2", data, 0x206 + 1) }
  if h.version < M.MIN_VERSION then
    fail(name, "boot protocol %d.%02d is too old (need %d.%02d or later: the 64-bit entry "
         .. "is announced by xloadflags)", h.version >> 8, h.version & 0xff,
         M.MIN_VERSION >> 8, M.MIN_VERSION & 0xff)
  end
  -- The header's length: the jump at 0x200 skips over it (boot.rst: its end
  -- is 0x202 plus the byte at 0x201).
  h.header_end = 0x202 + data:byte(0x201 + 1)
  if h.header_end < HDR_MIN_END or h.header_end > HDR_LIMIT then
    fail(name, "setup header end 0x%x (from the jump at 0x200) is outside [0x%x, 0x%x]",
         h.header_end, HDR_MIN_END, HDR_LIMIT)
  end
  if h.header_end > size or h.header_end > #data then
    fail(name, "truncated: the setup header ends at 0x%x, the file has %d bytes", h.header_end,
         size)
  end
  for field, f in pairs(HDR) do h[field] = string.unpack(f[2], data, f[1] + 1) end
  if h.boot_flag ~= 0xaa55 then
    fail(name, "boot_flag is 0x%04x, not 0xaa55", h.boot_flag)
  end
  h.header_bytes = data:sub(BP.hdr + 1, h.header_end)

  local sects = h.setup_sects == 0 and 4 or h.setup_sects
  h.setup_size = (sects + 1) * 512
  if h.setup_size >= size then
    fail(name, "setup_sects %d puts the kernel at 0x%x, past the end of the file (%d bytes)",
         h.setup_sects, h.setup_size, size)
  end
  h.kernel_offset = h.setup_size
  h.kernel_size = size - h.setup_size
  if h.syssize * 16 > h.kernel_size then
    fail(name, "syssize says the kernel has %d bytes, the file has %d after the setup code",
         h.syssize * 16, h.kernel_size)
  end
  if h.loadflags & LOADED_HIGH == 0 then
    fail(name, "loadflags has no LOADED_HIGH: a zImage (loaded at 0x10000) is not supported")
  end
  if h.xloadflags & XLF_KERNEL_64 == 0 then
    fail(name, "xloadflags has no XLF_KERNEL_64: the kernel has no 64-bit entry point")
  end
  if not is_pow2(h.kernel_alignment) then
    fail(name, "kernel_alignment 0x%x is not a power of two", h.kernel_alignment)
  end
  if h.init_size == 0 then fail(name, "init_size is 0") end
  if h.cmdline_size == 0 then fail(name, "cmdline_size is 0") end
  if h.pref_address < 0 or h.pref_address >= 1 << 40 then
    fail(name, "pref_address %s is out of range", hex(h.pref_address))
  end
  return h
end

-- Whether [addr, addr + size) is RAM in the e820 map.
local function is_ram(e820, addr, size)
  for _, e in ipairs(e820) do
    if e.type == 1 and addr >= e.addr and addr + size <= e.addr + e.size then return true end
  end
  return false
end

-- The e820 table for the zero page (20 bytes an entry) or the PVH memory
-- map (24 bytes: a reserved u32 after the type).
local function pack_e820(map, pvh)
  local out = {}
  for _, e in ipairs(map) do
    out[#out + 1] = string.pack(pvh and "<I8I8I4I4" or "<I8I8I4", e.addr, e.size, e.type,
                                pvh and 0 or nil)
  end
  return table.concat(out)
end

-- The zero page: setup header from the image (or a minimal one for a
-- vmlinux), then what the boot loader fills in.
local function zero_page(memory, at, hdr_bytes, p)
  local page = string.rep("\0", 4096)
  local function put(off, fmt, v)
    if type(off) == "table" then off, fmt = off[1], off[2] end
    local b = string.pack(fmt, v)
    page = page:sub(1, off) .. b .. page:sub(off + #b + 1)
  end
  if hdr_bytes then
    page = page:sub(1, BP.hdr) .. hdr_bytes .. page:sub(BP.hdr + #hdr_bytes + 1)
  else
    -- No setup header in an ELF: the fields the kernel's 64-bit startup
    -- reads, and protocol 2.12, the newest whose header fields we fill.
    put(HDR.boot_flag, nil, 0xaa55)
    put(0x202, "c4", "HdrS")
    put(HDR.version, nil, M.MIN_VERSION)
    put(HDR.loadflags, nil, LOADED_HIGH)
    put(HDR.cmdline_size, nil, p.cmdline_size)
    put(HDR.initrd_addr_max, nil, p.initrd_addr_max)
  end
  put(HDR.vid_mode, nil, 0xffff)                  -- "normal" text mode
  put(HDR.type_of_loader, nil, M.LOADER_TYPE)
  if p.code32_start then put(HDR.code32_start, nil, p.code32_start) end
  put(HDR.cmd_line_ptr, nil, p.cmdline & 0xffffffff)
  put(BP.ext_cmd_line_ptr, "<I4", p.cmdline >> 32)
  put(HDR.ramdisk_image, nil, p.initrd_addr & 0xffffffff)
  put(HDR.ramdisk_size, nil, p.initrd_size & 0xffffffff)
  put(BP.ext_ramdisk_image, "<I4", p.initrd_addr >> 32)
  put(BP.ext_ramdisk_size, "<I4", p.initrd_size >> 32)
  if p.rsdp then put(BP.acpi_rsdp_addr, "<i8", p.rsdp) end
  put(BP.e820_entries, "<I1", #p.e820)
  page = page:sub(1, BP.e820_table) .. pack_e820(p.e820)
    .. page:sub(BP.e820_table + #p.e820 * 20 + 1)
  assert(#page == 4096)
  memory:write(at, page)
end

-- struct hvm_start_info (version 1), then the module list, then the memory
-- map, in one page.
local function start_info(memory, at, p)
  local modlist, memmap = at + 0x40, at + 0x80
  local mods = p.initrd_size > 0 and 1 or 0
  memory:write(at, string.pack("<I4I4I4I4I8I8I8I8I4I4", HVM_START_MAGIC, 1, 0, mods,
                               mods > 0 and modlist or 0, p.cmdline, p.rsdp or 0, memmap,
                               #p.e820, 0))
  if mods > 0 then
    memory:write(modlist, string.pack("<I8I8I8I8", p.initrd_addr, p.initrd_size, 0, 0))
  end
  memory:write(memmap, pack_e820(p.e820, true))
end

-- linux.boot after its arguments were checked; open(source, what) gives
-- a reader (elf.reader) that the caller closes. Everything is checked
-- before the first byte is written.
local function boot(machine, opts, entry, cmdline, open)
  local vm = machine.vm
  local memory = vm.memory
  local L = M.layout
  local kernel = open(opts.kernel, "kernel")
  local name = kernel.name
  local e820 = machine:e820()
  if #e820 > M.E820_MAX then
    error(string.format("linux: the e820 map has %d entries; the zero page holds %d", #e820,
                        M.E820_MAX), 0)
  end

  local placed = { e820 = e820, cmdline = { addr = L.cmdline, size = #cmdline, text = cmdline } }
  local p = { e820 = e820, cmdline = L.cmdline, rsdp = opts.rsdp }
  local hdr_bytes, kernel_end, initrd_max, cmdline_size, write_kernel

  local head = kernel.read(0, math.min(kernel.size, 0x290))
  if head:sub(1, 4) == "\127ELF" then
    local info = elf.parse(kernel)
    if entry == "auto" then entry = "64" end
    if entry == "pvh" and not info.pvh_entry then
      fail(name, "has no Xen PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note)")
    end
    if entry == "64" and info.bits ~= 64 then
      fail(name, "is a 32-bit ELF: only the PVH entry can start it")
    end
    if info.lowest < L.kernel then
      fail(name, "loads at 0x%x, below 1 MiB where the boot structures go", info.lowest)
    end
    if not is_ram(e820, info.lowest, info.top - info.lowest) then
      fail(name, "needs RAM from 0x%x to 0x%x; the machine has %d MiB", info.lowest, info.top,
           machine.ram_size >> 20)
    end
    write_kernel = function() elf.load(vm, kernel) end
    placed.format = "elf"
    placed.rip = entry == "pvh" and info.pvh_entry or info.phys_entry
    placed.kernel = { addr = info.lowest, size = info.top - info.lowest, top = info.top }
    placed.elf = info
    kernel_end = info.top
    -- x86-64's header.S says the same: initrds up to 2 GiB, command lines
    -- of COMMAND_LINE_SIZE (2048) bytes with the NUL.
    initrd_max = opts.initrd_addr_max or 0x7fffffff
    cmdline_size = 2047
  elseif head:sub(0x202 + 1, 0x202 + 4) == "HdrS" then
    if entry == "pvh" then fail(name, "a bzImage has no PVH entry (boot a vmlinux for that)") end
    entry = "64"
    local h = M.parse_bzimage(head, name, kernel.size)
    local load = L.kernel
    -- The decompressor's output (boot.rst: init_size from the aligned load
    -- address, which the kernel raises to LOAD_PHYSICAL_ADDR, pref_address).
    local run_at = math.max(align_up(load, h.kernel_alignment), h.pref_address)
    kernel_end = math.max(load + h.kernel_size, run_at + h.init_size)
    if not is_ram(e820, load, kernel_end - load) then
      fail(name, "needs RAM from 0x%x to 0x%x (the image, then init_size 0x%x at 0x%x); "
           .. "the machine has %d MiB", load, kernel_end, h.init_size, run_at,
           machine.ram_size >> 20)
    end
    write_kernel = function() elf.copy(memory, load, kernel, h.kernel_offset, h.kernel_size) end
    placed.format = "bzimage"
    placed.rip = load + 0x200
    placed.kernel = { addr = load, size = h.kernel_size, top = kernel_end,
                      version = string.format("%d.%02d", h.version >> 8, h.version & 0xff) }
    placed.header = h
    hdr_bytes = h.header_bytes
    p.code32_start = load
    initrd_max = opts.initrd_addr_max or h.initrd_addr_max
    cmdline_size = h.cmdline_size
  else
    fail(name, "is neither a bzImage (no \"HdrS\" at 0x202) nor an ELF file")
  end
  placed.entry = entry

  -- The command line, NUL-terminated.
  if cmdline:find("\0", 1, true) then fail(name, "the command line contains a NUL byte") end
  if #cmdline > cmdline_size then
    fail(name, "the command line has %d bytes; the kernel takes at most %d (cmdline_size)",
         #cmdline, cmdline_size)
  end
  if #cmdline >= L.cmdline_max then
    fail(name, "the command line has %d bytes; there is room for %d", #cmdline, L.cmdline_max - 1)
  end
  p.cmdline_size, p.initrd_addr_max = cmdline_size, initrd_max

  -- The initrd: as high as it may go, page-aligned, above the kernel.
  p.initrd_addr, p.initrd_size = 0, 0
  local initrd
  if opts.initrd ~= nil then
    initrd = open(opts.initrd, "initrd")
    local size = initrd.size
    if size == 0 then fail(initrd.name, "the initrd is empty") end
    local limit = math.min(initrd_max + 1, 0x100000000)
    local ram = machine:highest_ram_below(limit)
    local addr = ram and (ram.stop - size) & ~0xfff
    if not ram or addr < math.max(ram.start, kernel_end) then
      fail(initrd.name, "the initrd (%d bytes) does not fit between the kernel's end 0x%x and "
           .. "0x%x (initrd_addr_max 0x%x, top of RAM below it)", size, kernel_end,
           ram and ram.stop or 0, initrd_max)
    end
    p.initrd_addr, p.initrd_size = addr, size
    placed.initrd = { addr = addr, size = size }
  end

  -- All checked: now the bytes.
  write_kernel()
  memory:write(L.cmdline, cmdline .. "\0")
  if initrd then elf.copy(memory, p.initrd_addr, initrd, 0, p.initrd_size) end
  local cpu = vm:cpu(opts.cpu or 0)
  if entry == "64" then
    zero_page(memory, L.boot_params, hdr_bytes, p)
    placed.boot_params = L.boot_params
    mode.long(cpu, { entry = placed.rip, selectors = { code = M.BOOT_CS, data = M.BOOT_DS } })
    cpu:set{ rsi = L.boot_params }
  else
    start_info(memory, L.start_info, p)
    placed.start_info = L.start_info
    mode.protected(cpu, { entry = placed.rip })
    cpu:set{ rbx = L.start_info }
  end
  return placed
end

--- linux.boot(machine, opts) -> placed
--- machine: a vmm.pc machine (its e820 map is what the kernel gets).
--- opts: kernel (a path or { data = bytes, name = "label" }: a bzImage or
--- a vmlinux ELF; read in pieces, never whole),
--- initrd (the same, optional), cmdline (string), entry ("auto", "64" or
--- "pvh"; auto is "64": a vmlinux can be entered either way, and the 64-bit
--- entry gets our e820 map exactly as built), cpu (index, default 0),
--- rsdp (the ACPI RSDP's address, for acpi_rsdp_addr / rsdp_paddr).
--- Returns what went where: { format = "bzimage"|"elf", entry = "64"|"pvh",
---   rip, kernel = { addr, size, top, version }, boot_params, start_info,
---   cmdline = { addr, size, text }, initrd = { addr, size } or nil, e820 }.
function M.boot(machine, opts)
  if type(machine) ~= "table" or type(machine.e820) ~= "function" then
    error("linux.boot: machine must be a vmm.pc machine (it supplies the e820 map)", 2)
  end
  opts = opts or {}
  if opts.kernel == nil then error("linux.boot: opts.kernel is required", 2) end
  local entry = opts.entry or "auto"
  if entry ~= "auto" and entry ~= "64" and entry ~= "pvh" then
    error(string.format("linux.boot: entry must be \"auto\", \"64\" or \"pvh\", got %s",
                        tostring(entry)), 2)
  end
  local cmdline = opts.cmdline or ""
  if type(cmdline) ~= "string" then
    error("linux.boot: cmdline must be a string, got " .. type(cmdline), 2)
  end
  local readers = {}
  local ok, placed = pcall(boot, machine, opts, entry, cmdline, function(src, what)
    local r = elf.reader(src, "linux: the " .. what, what)
    readers[#readers + 1] = r
    return r
  end)
  for _, r in ipairs(readers) do r.close() end
  if not ok then error(placed, 0) end
  return placed
end

--- linux.e820_lines(map) -> the lines Linux prints for it ("BIOS-e820: [mem
--- 0x0000000000000000-0x000000000009fbff] usable"), one string each.
function M.e820_lines(map)
  local names = { "usable", "reserved", "ACPI data", "ACPI NVS", "unusable" }
  local out = {}
  for _, e in ipairs(map) do
    out[#out + 1] = string.format("BIOS-e820: [mem 0x%016x-0x%016x] %s", e.addr,
                                  e.addr + e.size - 1, names[e.type] or ("type " .. e.type))
  end
  return out
end

--- linux.com1(vm, { port = 0x3f8, output = fn(string) }) -> device table
--- A stand-in 16550 written in Lua, enough for the kernel's polled
--- console output (earlyprintk=serial and the 8250 driver's console
--- write): registers read back what was written, the transmitter is always
--- empty (LSR 0x60), there is no input and no interrupt. Each transmitted
--- byte goes to output (io.write by default). The C UART (vm:serial) is the
--- real thing; this one is for captures in tests and for machines without it.
function M.com1(vm, opts)
  opts = opts or {}
  local output = opts.output or function(s) io.write(s) end
  local reg = { [1] = 0, [3] = 0, [4] = 0, [7] = 0, dll = 0, dlm = 0 }
  local dev = { bytes = 0 }
  vm:on_io(opts.port or 0x3f8, 8, function(_, off, _, value)
    local dlab = reg[3] & 0x80 ~= 0
    if value ~= nil then
      value = value & 0xff
      if off == 0 and dlab then reg.dll = value
      elseif off == 0 then dev.bytes = dev.bytes + 1; output(string.char(value))
      elseif off == 1 and dlab then reg.dlm = value
      elseif off == 1 then reg[1] = value & 0x0f
      elseif off ~= 2 then reg[off] = value end    -- 2 is the FIFO control: ignored
      return
    end
    if off == 0 then return dlab and reg.dll or 0
    elseif off == 1 then return dlab and reg.dlm or reg[1]
    elseif off == 2 then return 0x01               -- IIR: no interrupt pending
    elseif off == 5 then return 0x60               -- LSR: transmitter empty
    elseif off == 6 then
      -- MSR: in loopback the modem outputs come back as inputs (RTS->CTS,
      -- DTR->DSR, OUT1->RI, OUT2->DCD); otherwise CTS, DSR and DCD are up.
      local mcr = reg[4]
      if mcr & 0x10 ~= 0 then
        return ((mcr & 2) << 3) | ((mcr & 1) << 5) | ((mcr & 4) << 4) | ((mcr & 8) << 4)
      end
      return 0xb0
    end
    return reg[off] or 0
  end)
  return dev
end

return M
