-- A Multiboot (version 0.6.96, "Multiboot 1") loader for vmm.pc machines:
-- finds the kernel's header, loads the kernel and its modules, writes the
-- boot information structure, and leaves vCPU 0 at the kernel's entry in
-- 32-bit protected mode.
--
--   local multiboot = require "vmm.multiboot"
--   local info = multiboot.boot(machine, { kernel = "kernel.bin", cmdline = "debug",
--     modules = { { path = "initrd.img", cmdline = "initrd" } } })
--   machine.vm:run()
--
-- Every field of the header comes from the file and is checked before use;
-- errors name the file and the field ("multiboot: k.bin: entry_addr 0x200000
-- is outside the loaded image [0x100000, 0x100400)").
--
-- Kernels: the header must lie in the first 8192 bytes, 4-byte aligned.
-- Header flags 0 (page-aligned modules) and 1 (memory information) are
-- honoured (modules are always page-aligned, and the memory fields and map
-- are always given); flag 2 (a video mode) and the unknown flags 3-15 are
-- refused, as the spec requires of a loader that cannot meet them. With
-- flag 16 the a.out addresses in the header say where the file goes;
-- without it the kernel must be an ELF file (32- or 64-bit), loaded by
-- vmm.elf: each PT_LOAD segment at its physical address, which must be
-- usable RAM below 4 GiB, and the entry is e_entry made physical through
-- the segment that holds it (a higher-half kernel links its entry at its
-- virtual address).
--
-- Memory (all of it usable RAM in machine:e820(), nothing sharing a page):
--   kernel      [load_addr, bss_end_addr), as the header says, the bss
--               zeroed; or an ELF kernel's segments, [lowest, highest end)
--   modules     one after another from the first page above the kernel
--               (where there is no room there, in the first free pages from
--               0x1000 up), each page-aligned (whatever flag 0 says: it
--               costs nothing)
--   info block  the first free pages at or above 0x1000 (normally 0x1000:
--               page 0 is left alone, as real-mode IVT and NULL), holding
--               in order, 8-byte aligned: the info structure (116 bytes),
--               the memory map, the module list, the strings (command line,
--               module strings, boot loader name) and the GDT that the
--               entry's segments come from
-- Registers at entry: eax = 0x2BADB002, ebx = the info structure; cs a flat
-- 32-bit code segment (selector 0x08), ds = es = fs = gs = ss a flat data
-- segment (0x10), paging off, interrupts off, IDT limit 0, esp = 0 (the
-- spec promises no stack). The other vCPUs wait for INIT/SIPI, which needs
-- the in-kernel irqchip: a machine with several vCPUs and none is refused.
--
-- The info structure's fields: flags (bits 0 memory, 2 cmdline, 3 mods,
-- 6 mmap, 9 boot loader name), mem_lower and mem_upper in KiB (the RAM from
-- 0, and the contiguous RAM from 1 MiB), cmdline, mods_count/mods_addr
-- (entries { mod_start, mod_end (one past the last byte), string, 0 }),
-- mmap_length/mmap_addr (entries { size = 20, u64 addr, u64 len, type },
-- machine:e820() as it is; install ACPI first so its range is listed) and
-- boot_loader_name. The command line is opts.cmdline as given (no kernel
-- name in front, unlike GRUB); a module's string is its cmdline, or its
-- path when it has none.

local vmm = require "vmm"
local pc = require "vmm.pc"
local mode = require "vmm.mode"

local M = {}

M.HEADER_MAGIC = 0x1BADB002
M.BOOTLOADER_MAGIC = 0x2BADB002
M.SEARCH_LIMIT = 8192

-- Header flags.
M.PAGE_ALIGN, M.MEMORY_INFO, M.VIDEO_MODE, M.AOUT_KLUDGE = 1 << 0, 1 << 1, 1 << 2, 1 << 16
-- Info structure flags.
M.INFO_MEMORY, M.INFO_BOOTDEV, M.INFO_CMDLINE, M.INFO_MODS = 1 << 0, 1 << 1, 1 << 2, 1 << 3
M.INFO_MEM_MAP, M.INFO_BOOT_LOADER_NAME = 1 << 6, 1 << 9

M.INFO_SIZE = 116
M.PAGE = 4096
M.INFO_FLOOR = 0x1000
M.BOOT_LOADER_NAME = vmm.version

local function fail(name, fmt, ...)
  error("multiboot: " .. name .. ": " .. string.format(fmt, ...), 0)
end

local function align(v, a) return (v + a - 1) // a * a end

local function u32(data, off) return (string.unpack("<I4", data, off + 1)) end

-- The flags that name the bits set in v, for messages: "3, 5".
local function bit_list(v)
  local bits = {}
  for i = 0, 31 do
    if v & (1 << i) ~= 0 then bits[#bits + 1] = tostring(i) end
  end
  return table.concat(bits, ", ")
end

--- multiboot.parse_header(data [, name]) -> header
--- header = { offset, flags, checksum, and with flag 16: header_addr,
--- load_addr, load_end_addr, bss_end_addr, entry_addr }. Raises on a
--- missing, corrupt or unsupported header. name (default "kernel") goes
--- in messages.
function M.parse_header(data, name)
  name = name or "kernel"
  if type(data) ~= "string" then error("multiboot.parse_header: data must be a string", 2) end
  local limit = math.min(#data, M.SEARCH_LIMIT)
  local magic = string.pack("<I4", M.HEADER_MAGIC)
  local found, bad
  for off = 0, limit - 12, 4 do
    if u32(data, off) == M.HEADER_MAGIC then
      local flags, checksum = u32(data, off + 4), u32(data, off + 8)
      if (M.HEADER_MAGIC + flags + checksum) & 0xffffffff == 0 then
        found = { offset = off, flags = flags, checksum = checksum }
        break
      end
      bad = bad or { offset = off, flags = flags, checksum = checksum }
    end
  end
  if not found then
    if bad then
      fail(name, "the Multiboot header at offset 0x%x has a bad checksum: magic 0x%x + "
           .. "flags 0x%x + checksum 0x%x = 0x%x, not 0 (mod 2^32)", bad.offset, M.HEADER_MAGIC,
           bad.flags, bad.checksum, (M.HEADER_MAGIC + bad.flags + bad.checksum) & 0xffffffff)
    end
    -- Say why the magic that is there does not count.
    local at = data:find(magic, 1, true)
    if at and (at - 1) % 4 ~= 0 and at - 1 < M.SEARCH_LIMIT then
      fail(name, "no Multiboot header in the first %d bytes: the magic 0x%x at offset 0x%x "
           .. "is not 4-byte aligned", M.SEARCH_LIMIT, M.HEADER_MAGIC, at - 1)
    end
    if at and at - 1 < M.SEARCH_LIMIT then
      if at - 1 + 12 > #data then
        fail(name, "the Multiboot header at offset 0x%x is cut short: the file ends after %d "
             .. "of its 12 bytes", at - 1, #data - (at - 1))
      end
      fail(name, "the Multiboot header at offset 0x%x does not fit in the first %d bytes",
           at - 1, M.SEARCH_LIMIT)
    end
    if at then
      fail(name, "no Multiboot header in the first %d bytes: the magic 0x%x at offset 0x%x "
           .. "is beyond them", M.SEARCH_LIMIT, M.HEADER_MAGIC, at - 1)
    end
    fail(name, "no Multiboot header (magic 0x%x) in the first %d bytes", M.HEADER_MAGIC,
         M.SEARCH_LIMIT)
  end

  local h = found
  local required = h.flags & 0xffff
  if required & M.VIDEO_MODE ~= 0 then
    fail(name, "the kernel requires a video mode (header flag 2), which luavmm cannot provide")
  end
  local unknown = required & ~(M.PAGE_ALIGN | M.MEMORY_INFO)
  if unknown ~= 0 then
    fail(name, "the kernel requires features luavmm does not know (header flags %s: 0x%x); "
         .. "the Multiboot spec says to refuse it", bit_list(unknown), unknown)
  end
  if h.flags & M.AOUT_KLUDGE ~= 0 then
    local size = 32
    if h.offset + size > #data then
      fail(name, "the Multiboot header at offset 0x%x is cut short: with flag 16 it has %d "
           .. "bytes, and the file ends after %d", h.offset, size, #data - h.offset)
    end
    if h.offset + size > M.SEARCH_LIMIT then
      fail(name, "the Multiboot header at offset 0x%x does not fit in the first %d bytes: "
           .. "with flag 16 it has %d bytes", h.offset, M.SEARCH_LIMIT, size)
    end
    h.header_addr, h.load_addr, h.load_end_addr, h.bss_end_addr, h.entry_addr =
      string.unpack("<I4I4I4I4I4", data, h.offset + 12 + 1)
  end
  return h
end

-- The usable RAM below 4 GiB (a 32-bit kernel sees no more), sorted.
local function usable_ram(machine)
  local out = {}
  for _, e in ipairs(machine:e820()) do
    if e.type == pc.E820_RAM and e.addr < (1 << 32) then
      out[#out + 1] = { start = e.addr, stop = math.min(e.addr + e.size, 1 << 32) }
    end
  end
  return out
end

local function in_usable(usable, start, stop)
  for _, r in ipairs(usable) do
    if start >= r.start and stop <= r.stop then return true end
  end
  return false
end

local function describe_usable(usable)
  local parts = {}
  for _, r in ipairs(usable) do parts[#parts + 1] = string.format("[0x%x, 0x%x)", r.start, r.stop) end
  return table.concat(parts, " ")
end

-- The lowest page-aligned address >= floor where size bytes fit in usable
-- RAM without touching a page of anything in taken; nil if none.
local function allocate(usable, taken, size, floor)
  for _, r in ipairs(usable) do
    local at = align(math.max(r.start, floor), M.PAGE)
    while at + size <= r.stop do
      local clash
      for _, t in ipairs(taken) do
        if at < t.stop and at + size > t.start then clash = t break end
      end
      if not clash then return at end
      at = align(clash.stop, M.PAGE)
    end
  end
  return nil
end

-- Loads the a.out-kludge image after checking every address against the
-- file and the machine's usable RAM. Returns { start, load_end, stop, entry }.
local function load_aout(machine, data, h, name)
  local usable = usable_ram(machine)
  if h.load_addr > h.header_addr then
    fail(name, "load_addr 0x%x is above header_addr 0x%x: the header must be part of the "
         .. "loaded image", h.load_addr, h.header_addr)
  end
  local load_offset = h.offset - (h.header_addr - h.load_addr)
  if load_offset < 0 then
    fail(name, "header_addr 0x%x is outside the file: with the header at offset 0x%x, "
         .. "load_addr 0x%x would be 0x%x bytes before the file's start", h.header_addr,
         h.offset, h.load_addr, -load_offset)
  end
  local available = #data - load_offset
  local load_end = h.load_end_addr
  if load_end == 0 then
    load_end = h.load_addr + available
  elseif load_end < h.load_addr then
    fail(name, "load_end_addr 0x%x is below load_addr 0x%x", load_end, h.load_addr)
  elseif load_end - h.load_addr > available then
    fail(name, "load_end_addr 0x%x is beyond the file: it asks for 0x%x bytes from offset "
         .. "0x%x, and the file has 0x%x there", load_end, load_end - h.load_addr, load_offset,
         available)
  end
  if h.header_addr + 32 > load_end then
    fail(name, "header_addr 0x%x is outside the loaded image [0x%x, 0x%x)", h.header_addr,
         h.load_addr, load_end)
  end
  local bss_end = h.bss_end_addr
  if bss_end == 0 then
    bss_end = load_end
  elseif bss_end < load_end then
    fail(name, "bss_end_addr 0x%x is below load_end_addr 0x%x", bss_end, load_end)
  end
  if h.entry_addr < h.load_addr or h.entry_addr >= load_end then
    fail(name, "entry_addr 0x%x is outside the loaded image [0x%x, 0x%x)", h.entry_addr,
         h.load_addr, load_end)
  end
  if bss_end > (1 << 32) then
    fail(name, "the image [0x%x, 0x%x) does not fit below 4 GiB", h.load_addr, bss_end)
  end
  if not in_usable(usable, h.load_addr, bss_end) then
    fail(name, "the image [0x%x, 0x%x) is not inside usable RAM (%s)", h.load_addr, bss_end,
         describe_usable(usable))
  end
  local mem = machine.vm.memory
  mem:write(h.load_addr, data:sub(load_offset + 1, load_offset + load_end - h.load_addr))
  if bss_end > load_end then mem:fill(load_end, bss_end - load_end, 0) end
  return { start = h.load_addr, load_end = load_end, stop = bss_end, entry = h.entry_addr }
end

-- Loads an ELF kernel (no a.out addresses) through vmm.elf, its segments
-- at their physical addresses, after checking each against usable RAM
-- below 4 GiB. The entry is e_entry, made physical through its segment.
local function load_elf(machine, data, name)
  local elf = require "vmm.elf"
  local parsed = elf.parse(data, name)
  local usable = usable_ram(machine)
  for _, seg in ipairs(parsed.segments) do
    if seg.memsz > 0 then
      local stop = seg.paddr + seg.memsz
      if stop > (1 << 32) then
        fail(name, "ELF program header %d: [0x%x, 0x%x) does not fit below 4 GiB", seg.index,
             seg.paddr, stop)
      end
      if not in_usable(usable, seg.paddr, stop) then
        fail(name, "ELF program header %d: [0x%x, 0x%x) is not inside usable RAM (%s)",
             seg.index, seg.paddr, stop, describe_usable(usable))
      end
    end
  end
  if parsed.phys_entry >= (1 << 32) then
    fail(name, "the ELF entry point 0x%x is not below 4 GiB", parsed.phys_entry)
  end
  elf.load(machine.vm, { data = data, name = name })
  return { start = parsed.lowest, load_end = parsed.top, stop = parsed.top,
           entry = parsed.phys_entry, elf = parsed }
end

local function read_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then error(string.format("multiboot: cannot open %s: %s", what, err), 0) end
  local data, rerr = f:read("a")
  f:close()
  if not data then error(string.format("multiboot: cannot read %s '%s': %s", what, path, rerr), 0) end
  return data
end

local function check_string(v, what)
  if v == nil then return nil end
  if type(v) ~= "string" then
    error(string.format("multiboot.boot: %s must be a string, got %s", what, type(v)), 3)
  end
  if v:find("\0", 1, true) then
    error(string.format("multiboot.boot: %s must not contain a NUL byte", what), 3)
  end
  return v
end

-- The modules option, checked: { { path, data, string }, ... }.
local function check_modules(list)
  if list == nil then return {} end
  if type(list) ~= "table" then
    error("multiboot.boot: modules must be a list, got " .. type(list), 3)
  end
  local out = {}
  for i, m in ipairs(list) do
    if type(m) == "string" then m = { path = m } end
    if type(m) ~= "table" then
      error(string.format("multiboot.boot: modules[%d] must be a table or a path", i), 3)
    end
    local what = string.format("modules[%d]", i)
    local path = check_string(m.path, what .. ".path")
    if m.data ~= nil and type(m.data) ~= "string" then
      error(string.format("multiboot.boot: %s.data must be a string", what), 3)
    end
    if (path == nil) == (m.data == nil) then
      error(string.format("multiboot.boot: %s needs a path or data (one of them)", what), 3)
    end
    local cmdline = check_string(m.cmdline, what .. ".cmdline")
    out[i] = { path = path, data = m.data, string = cmdline or path or "" }
  end
  return out
end

-- mem_lower and mem_upper in KiB: the RAM that starts at 0, and the RAM
-- that starts at 1 MiB, as far as it runs without a gap.
local function memory_sizes(map)
  local lower, upper_end = 0, 0x100000
  for _, e in ipairs(map) do
    if e.type == pc.E820_RAM then
      if e.addr == 0 then lower = math.min(e.size, 640 * 1024) end
      if e.addr <= upper_end and e.addr + e.size > upper_end then upper_end = e.addr + e.size end
    end
  end
  return lower // 1024, math.min((upper_end - 0x100000) // 1024, 0xffffffff)
end

local KNOWN = { kernel = true, cmdline = true, modules = true }

--- multiboot.boot(machine, { kernel = path, cmdline = s, modules = { { path =,
--- cmdline = } or { data =, cmdline = } or path, ... } }) -> info
--- info = { entry, info (the structure's address), flags, magic, header,
--- kernel = { start, load_end, stop }, modules = { { start, stop, string,
--- string_addr, path }, ... }, mods_addr, mmap = { addr, length, count },
--- cmdline (address), boot_loader_name (address), gdt, block = { addr,
--- size }, mem_lower, mem_upper }
function M.boot(machine, opts)
  if type(machine) ~= "table" or not machine.vm or type(machine.e820) ~= "function" then
    error("multiboot.boot: expected a vmm.pc machine", 2)
  end
  if type(opts) ~= "table" then error("multiboot.boot: options must be a table", 2) end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(string.format("multiboot.boot: unknown option '%s' (known: kernel, cmdline, modules)",
                          tostring(k)), 2)
    end
  end
  local kernel = check_string(opts.kernel, "kernel")
  if not kernel then error("multiboot.boot: kernel (a path) is required", 2) end
  local cmdline = check_string(opts.cmdline, "cmdline") or ""
  local modules = check_modules(opts.modules)
  local vm = machine.vm
  if vm.cpus > 1 and not vm.irqchip then
    error(string.format("multiboot.boot: a machine with %d vCPUs needs irqchip = true: the "
                        .. "other vCPUs must wait for INIT/SIPI while the kernel starts on vCPU 0",
                        vm.cpus), 2)
  end

  local data = read_file(kernel, "kernel")
  local header = M.parse_header(data, kernel)
  local image
  if header.flags & M.AOUT_KLUDGE ~= 0 then
    image = load_aout(machine, data, header, kernel)
  elseif data:sub(1, 4) == "\x7fELF" then
    image = load_elf(machine, data, kernel)
  else
    fail(kernel, "the header has no a.out addresses (flag 16), so the kernel must be an ELF "
         .. "file, and it is not")
  end

  local usable = usable_ram(machine)
  local taken = { { start = image.start - image.start % M.PAGE, stop = align(image.stop, M.PAGE) } }
  local mem = vm.memory

  -- Modules, each page-aligned, from the first page above the kernel.
  local placed = {}
  local floor = image.stop
  for i, m in ipairs(modules) do
    local bytes = m.data or read_file(m.path, string.format("module %d", i))
    local at = allocate(usable, taken, math.max(#bytes, 1), floor)
      or allocate(usable, taken, math.max(#bytes, 1), M.INFO_FLOOR)
    if not at then
      fail(m.path or string.format("module %d", i), "no room for its %d bytes in usable RAM "
           .. "below 4 GiB (%s)", #bytes, describe_usable(usable))
    end
    mem:write(at, bytes)
    taken[#taken + 1] = { start = at, stop = align(at + math.max(#bytes, 1), M.PAGE) }
    placed[i] = { start = at, stop = at + #bytes, string = m.string, path = m.path }
    floor = at + #bytes
  end

  -- The info block: its size first, then its place, then its bytes.
  local map = machine:e820()
  local off = align(M.INFO_SIZE, 8)
  local mmap_off = off
  off = off + 24 * #map
  local mods_off = off
  off = off + 16 * #placed
  local strings = { cmdline }
  for _, p in ipairs(placed) do strings[#strings + 1] = p.string end
  strings[#strings + 1] = M.BOOT_LOADER_NAME
  local string_off = {}
  for i, s in ipairs(strings) do
    string_off[i] = off
    off = off + #s + 1
  end
  off = align(off, 8)
  local gdt_off = off
  off = off + 24
  local block_size = off
  local base = allocate(usable, taken, block_size, M.INFO_FLOOR)
  if not base then
    fail(kernel, "no room for the %d-byte boot information in usable RAM below 4 GiB (%s)",
         block_size, describe_usable(usable))
  end

  local mem_lower, mem_upper = memory_sizes(map)
  local flags = M.INFO_MEMORY | M.INFO_CMDLINE | M.INFO_MODS | M.INFO_MEM_MAP
    | M.INFO_BOOT_LOADER_NAME
  local mmap = {}
  for _, e in ipairs(map) do mmap[#mmap + 1] = string.pack("<I4I8I8I4", 20, e.addr, e.size, e.type) end
  local mods = {}
  for i, p in ipairs(placed) do
    p.string_addr = base + string_off[i + 1]
    mods[i] = string.pack("<I4I4I4I4", p.start, p.stop, p.string_addr, 0)
  end
  local info = string.pack("<I4I4I4I4I4I4I4", flags, mem_lower, mem_upper, 0, base + string_off[1],
                           #placed, base + mods_off)
    .. string.rep("\0", 16)                                         -- syms
    .. string.pack("<I4I4", 24 * #map, base + mmap_off)
    .. string.rep("\0", 12)                                         -- drives, config table
    .. string.pack("<I4", base + string_off[#strings])              -- boot loader name
  -- The pieces in offset order, each padded up to its offset.
  local pieces = { { 0, info }, { mmap_off, table.concat(mmap) }, { mods_off, table.concat(mods) } }
  for i, s in ipairs(strings) do pieces[#pieces + 1] = { string_off[i], s .. "\0" } end
  local block, len = {}, 0
  for _, p in ipairs(pieces) do
    block[#block + 1] = string.rep("\0", p[1] - len) .. p[2]
    len = p[1] + #p[2]
  end
  block[#block + 1] = string.rep("\0", block_size - len)
  local bytes = table.concat(block)
  mem:write(base, bytes)

  local cpu = vm:cpu(0)
  mode.protected(cpu, { entry = image.entry, stack = 0, gdt = base + gdt_off })
  cpu:set{ rax = M.BOOTLOADER_MAGIC, rbx = base }

  return {
    entry = image.entry, info = base, flags = flags, magic = M.BOOTLOADER_MAGIC, header = header,
    kernel = { start = image.start, load_end = image.load_end, stop = image.stop },
    modules = placed, mods_addr = base + mods_off,
    mmap = { addr = base + mmap_off, length = 24 * #map, count = #map },
    cmdline = base + string_off[1], boot_loader_name = base + string_off[#strings],
    gdt = base + gdt_off, block = { addr = base, size = block_size },
    mem_lower = mem_lower, mem_upper = mem_upper,
  }
end

return M
